"""The HTTP API on Faust's web server: the route table (``streams.web.routes``) served, one error path.

- Every view comes from the table, so the OpenAPI document written from it describes exactly
  what is served. Faust's own pages (``/``, ``/router/``, ``/table/``, ...) are switched off.
- Every body is JSON and every refusal ``error_body(code, field, message)``: a handler's
  ``ApiError``, the query service's refusals, and aiohttp's own 404, 405 and 413 alike.
- An unexpected exception is a 500 ``internal_error`` with a correlation id, logged with its
  traceback, and on a route of the query register recorded there as a refusal.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View

from ledger.application.queries import Answer
from ledger.domain.errors import error_body
from streams.parts import WorkerParts
from streams.web.api import Api
from streams.web.calls import JSON, NONE, REQUIRED, ApiError, Call, Reply, Route
from streams.web.openapi import operation_id
from streams.web.proofs import ProofService
from streams.web.queries import reply
from streams.web.routes import ROUTES

log = logging.getLogger(__name__)

FAUST_PAGES = (
    "web_router_enabled",
    "web_tables_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
    "web_metrics_enabled",
)
"""Faust's built-in pages, each behind a setting: undocumented, and /router/assignments/ 500s."""

RECORD_OVERHEAD = 1024
"""Room left in a Kafka message for the key, the record's headers and the batch framing."""

NEEDS_KEY = "this needs an API key: send it as Authorization: Bearer KEY (or X-API-Key: KEY)"
AIOHTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def register_views(app: faust.App, parts: WorkerParts, routes: Iterable[Route] = ROUTES) -> Api:
    """Serve ``routes`` on ``app``'s web server; routes that need the query service only with one."""
    served = tuple(r for r in routes if parts.queries is not None or not r.needs_queries)
    _configure_web(app, max_body=max((r.max_body for r in served), default=0))
    api = Api(
        parts,
        ProofService(parts.ledger, parts.data_dir, origin=parts.log_origin, key=parts.checkpoint_key),
        served,
        max_item_bytes=int(app.conf.producer_max_request_size) - RECORD_OVERHEAD,
    )
    by_path: dict[str, list[Route]] = {}
    for route in served:
        if route.auth != NONE and route.endpoint is None:
            raise ValueError(f"{route.method} {route.path} reads a key, so it needs its query-register name")
        by_path.setdefault(route.path, []).append(route)
    for group in by_path.values():
        if group[0].registered_by is not None:
            group[0].registered_by(app, parts)
        else:
            app.page(group[0].pattern)(_view(api, group))
    return api


def _configure_web(app: faust.App, *, max_body: int) -> None:
    """Faust's pages off, aiohttp's body limit at the largest route's, JSON errors from aiohttp too."""
    conf = app.conf
    for setting in FAUST_PAGES:
        setattr(conf, setting, False)
    conf.web_application_options = {  # the only options the API's aiohttp application takes
        "client_max_size": max(max_body, 1024**2),
        "middlewares": [json_errors],
    }
    webserver: Any = app.web  # the aiohttp driver, created here from the settings above
    if json_errors not in webserver.web_app.middlewares:
        raise RuntimeError("register_views must run before the app's web server is first used")
    # The production index ({"status": "OK"} at /) has no setting of its own: drop it too.
    webserver.blueprints._enabled.clear()  # faust has no public way to unregister one


def _view(api: Api, group: list[Route]) -> type[View]:
    methods: dict[str, Any] = {route.method.lower(): _method(api, route) for route in group}
    if "get" not in methods:  # Faust serves HEAD on every view; without a GET it is not allowed
        methods["head"] = _not_allowed(group)
    name = "".join(w.capitalize() for w in operation_id(group[0]).split("_")[1:]) or "Index"
    return type(name, (View,), {"__doc__": group[0].summary, **methods})


def _method(api: Api, route: Route) -> Callable[..., Awaitable[Response]]:
    async def handle(self: View, request: Request, **params: str) -> Response:
        answer = await dispatch(api, route, request, params)
        headers = dict(answer.headers)
        if answer.content_type != JSON:  # in the header: aiohttp takes no charset in content_type
            headers["Content-Type"] = answer.content_type
            return self.bytes(answer.body, status=answer.status, headers=headers)
        return self.json(answer.body, status=answer.status, headers=headers or None)

    return handle


def _not_allowed(group: list[Route]) -> Callable[..., Awaitable[Response]]:
    allowed = ", ".join(r.method for r in group)

    async def head(self: View, request: Request, **params: str) -> Response:
        body = error_body("method_not_allowed", "", f"{group[0].path} answers {allowed}")
        return self.json(body, status=405, headers={"Allow": allowed})

    return head


def api_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    key: str | None = request.headers.get("X-API-Key")
    return key


async def dispatch(api: Api, route: Route, request: Request, params: Mapping[str, str]) -> Reply:
    """Authenticate (routes with a key), run the handler, and turn every failure into JSON."""
    call = Call(request, params, route)
    try:
        if route.auth != NONE:
            assert route.endpoint is not None
            who = api.queries.authenticate_for(api_key(request), route.endpoint, channel=call.channel)
            if isinstance(who, Answer):
                return reply(who)
            call.principal = who
            if route.auth == REQUIRED and who.role == "public":  # before any input is looked at
                raise ApiError(401, "not_authenticated", "", NEEDS_KEY)
        assert route.handler is not None
        return await route.handler(api, call)
    except ApiError as exc:
        failed = _record(api, call, exc.code, f"{exc.field}: {exc.message}" if exc.field else exc.message)
        return reply(failed) if failed else exc.reply()
    except Exception:
        correlation = uuid.uuid4().hex[:16]
        log.exception("internal error %s answering %s %s", correlation, route.method, route.path)
        try:
            _record(api, call, "internal_error", f"correlation id {correlation}")
        except Exception:
            log.exception("internal error %s could not be recorded in the query register", correlation)
        return internal_error(correlation)


def _record(api: Api, call: Call, code: str, message: str) -> Answer | None:
    """A refusal decided here, in the query register when the route is in it."""
    if call.route.endpoint is None or api.parts.queries is None:
        return None
    return api.queries.refuse(
        call.principal,
        call.route.endpoint,
        code=code,
        message=message,
        channel=call.channel,
        api_key=api_key(call.request),
    )


def internal_error(correlation: str) -> Reply:
    message = f"an unexpected error; the operator finds it in the log under correlation id {correlation}"
    return Reply(500, error_body("internal_error", "", message), {"X-Correlation-Id": correlation})


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, method, body too large) and any escape, as JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = AIOHTTP_CODES.get(exc.status, f"http_{exc.status}")
        message = {
            404: f"no route {request.path}: GET /v1/ lists the routes",
            405: f"{request.path} does not answer {request.method}",
        }.get(exc.status, exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json(exc.status, error_body(code, "", message), headers)
    except Exception:
        correlation = uuid.uuid4().hex[:16]
        log.exception("internal error %s answering %s %s", correlation, request.method, request.path)
        answer = internal_error(correlation)
        return _json(answer.status, answer.body, dict(answer.headers))


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
