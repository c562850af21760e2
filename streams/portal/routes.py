"""The portal's routes: every page at its path on the worker's web server (the API stays under /v1/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiohttp import web

from streams.parts import WorkerParts
from streams.portal import dashboard, public, selfservice
from streams.portal.site import Handler, Portal, PortalSettings


def register_portal(app: faust.App, parts: WorkerParts, settings: PortalSettings | None = None) -> Portal:
    """Serve the portal's pages at ``/`` on ``app``'s web server (the API stays under ``/v1/``).

    Needs the worker's read models and query service; call it after ``register_views``.
    """
    if parts.queries is None or parts.read_store is None:
        raise ValueError("the portal needs a worker with read models and the query service")
    portal = Portal(parts, settings or PortalSettings())
    webserver: Any = app.web
    router = webserver.web_app.router
    routes: Mapping[tuple[str, str], Callable[[Portal, web.Request], Awaitable[web.StreamResponse]]] = {
        ("GET", "/"): public.home,
        ("POST", "/search"): public.search,
        ("GET", "/publicity"): public.publicity,
        ("GET", "/lists/{list_name}"): public.list_page,
        ("GET", "/static/portal.css"): public.stylesheet,
        ("GET", "/login"): selfservice.login_page,
        ("POST", "/login"): selfservice.login,
        ("POST", "/logout"): selfservice.logout,
        ("GET", "/me"): selfservice.me,
        ("POST", "/me/report"): selfservice.report,
        ("GET", "/me/applications"): selfservice.applications,
        ("POST", "/me/objection"): selfservice.objection,
        ("POST", "/me/repair"): selfservice.repair,
        ("POST", "/me/statement"): selfservice.statement,
        ("GET", "/dashboard"): dashboard.dashboard,
    }
    for (method, path), handler in routes.items():
        router.add_route(method, path, _bound(portal, handler))
    return portal


def _bound(
    portal: Portal, handler: Callable[[Portal, web.Request], Awaitable[web.StreamResponse]]
) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(portal, request)

    handle.__name__ = handler.__name__
    return handle
