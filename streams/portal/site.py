"""The portal's frame: the Jinja2 environment, one way to answer a page, forms and sessions.

Every page is a template (autoescaping on for every file); every answer carries the security
headers and a CSRF cookie; every POST is checked against its token before anything is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from typing import Any, TypeVar

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from ledger.application.keys import key_principal
from ledger.application.queries import Answer
from ledger.domain.personal import SHREDDED
from ledger.domain.workdays import local_date
from streams.parts import WorkerParts
from streams.portal.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    HEADERS,
    SESSION_COOKIE,
    Csrf,
    RateLimit,
    Session,
    Sessions,
    form_value,
    set_cookie,
)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CHANNEL = "portal"
"""The channel the query register names for what came through these pages."""

SIGN_IN_ROLES = {"subject": "/me", "department": "/dashboard", "administrator": "/dashboard"}


SHREDDED_TEXT = "已销毁（shredded）"
"""How a page shows a value whose data key was destroyed (crypto-shredding, docs/privacy.md)."""


def shown(value: Any) -> Any:
    """A template filter: an opened value as a page shows it; a shredded one says so."""
    return SHREDDED_TEXT if value == SHREDDED else value


@dataclass
class PortalSettings:
    """What an operator (or a benchmark) tunes: the public search limit and the session timeouts.

    A session ends ``session_idle`` seconds after its last request (30 minutes) and
    ``session_lifetime`` seconds after sign-in however busy (8 hours): docs/portal.md#sessions.
    """

    search_capacity: int = 30
    search_window: float = 60.0
    session_idle: float = 1800.0
    session_lifetime: float = 28_800.0


@dataclass
class Portal:
    """What every page handler reaches: the worker's parts, the templates and the guards."""

    parts: WorkerParts
    settings: PortalSettings = field(default_factory=PortalSettings)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("streams.portal", "templates"),
            autoescape=True,  # every template, whatever its name: no page is built by hand
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["shown"] = shown
        edition = self.parts.ledger.catalogue.latest
        self.env.globals.update(
            csrf_field=CSRF_FIELD,
            domains=dict(edition.domains),
            departments={k: v.title for k, v in edition.departments.items()},
            categories={k: v.title for k, v in edition.categories.items()},
            lists={k: v["title"] for k, v in edition.raw["lists"].items()},
            severities={"minor": "轻微", "general": "一般", "serious": "严重", None: ""},
            purposes={k: v["title"] for k, v in edition.query_purposes.items()},
            outcomes={"allowed": "已提供", "answered": "已答复（无档案）", "refused": "已拒绝"},
            statuses={
                "active": "公示中",
                "expired": "已到期",
                "repaired": "已修复",
                "revoked": "已撤销",
                "closed": "已关闭",
            },
        )
        keys = self.parts.ledger.keys
        self.sessions = Sessions(
            self.parts.ledger.sessions,
            lambda key_id: key_principal(keys, key_id),
            idle=self.settings.session_idle,
            lifetime=self.settings.session_lifetime,
        )
        self.csrf = Csrf()
        self.search_limit = RateLimit(self.settings.search_capacity, self.settings.search_window)
        self.stylesheet = resources.files("streams.portal").joinpath("static/portal.css").read_bytes()

    # -- answering -------------------------------------------------------------------------

    def today(self) -> date:
        return local_date(self.parts.ledger.clock())

    def render(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        """A page from ``template``, with the security headers and the visitor's CSRF token."""
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie:
            fresh = cookie = self.csrf_cookie()
        session = self.session(request)
        body = self.env.get_template(template).render(
            csrf_token=self.csrf.token(cookie),
            signed_in=session.principal if session else None,
            flash=self.take_flash(session),
            path=request.path,
            **context,
        )
        response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
        response.headers.update(HEADERS)
        if fresh:
            set_cookie(response, request, CSRF_COOKIE, fresh)
        return response

    @staticmethod
    def csrf_cookie() -> str:
        import secrets  # noqa: PLC0415 - only where a cookie is made

        return secrets.token_urlsafe(24)

    def take_flash(self, session: Session | None) -> str:
        if session is None or not session.flash:
            return ""
        flash, session.flash = session.flash, ""
        self.sessions.save(session)
        return flash

    def redirect(self, location: str) -> web.Response:
        return web.Response(status=303, headers={"Location": location, **HEADERS})

    def refused(self, request: web.Request, answer: Answer) -> web.Response:
        """A refusal of the query service, as a page (it is already in the register)."""
        error = answer.body.get("error", {})
        status = {"not_authenticated": 401, "forbidden": 403, "invalid": 400, "not_found": 404}
        return self.render(
            request, "error.html", status=status.get(answer.outcome, 503), message=error.get("message", "")
        )

    async def on_ledger_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the worker's ledger thread, which owns the read store's connection."""
        return await asyncio.get_running_loop().run_in_executor(self.parts.executor, work)

    # -- forms and sessions ---------------------------------------------------------------------

    async def form(self, request: web.Request) -> MultiDictProxy[Any] | None:
        """The posted form, or None when its CSRF token does not match the visitor's cookie."""
        form = await request.post()
        if not self.csrf.valid(request.cookies.get(CSRF_COOKIE), form_value(form, CSRF_FIELD, 200)):
            return None
        return form

    def bad_form(self, request: web.Request) -> web.Response:
        message = "表单已失效（CSRF 校验未通过），请返回上一页刷新后重新提交。"
        return self.render(request, "error.html", status=403, message=message)

    def session(self, request: web.Request) -> Session | None:
        """The signed-in session, while it is valid (idle, lifetime, and its key not revoked)."""
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))
