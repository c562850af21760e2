"""The portal's guards: sessions, CSRF tokens, the public search's rate limit and the security headers.

- Sessions live in this worker's memory (a load balancer in front of several workers keeps a
  client on one: docs/portal.md); the cookie carries only a random id, HttpOnly and
  SameSite=Strict, and Secure when the request came over TLS (directly or via a proxy that says so).
- Every form carries a token bound to the visitor's CSRF cookie by an HMAC under a secret of
  this process, so a page of another site cannot post a form that passes.
- The public search is limited per client address (a token bucket), so no one can walk the
  population by name or by code; the limited answer says how long to wait.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ledger.domain.access import Principal

SESSION_COOKIE = "portal_session"
CSRF_COOKIE = "portal_csrf"
CSRF_FIELD = "csrf_token"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""No script at all (the portal works without JavaScript), styles and images only from here."""

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def over_tls(request: web.Request) -> bool:
    """The request came over TLS: to this server, or to a proxy that forwards the scheme."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, **extra: Any
) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="Strict", secure=over_tls(request), path="/", **extra
    )


@dataclass
class Session:
    """A signed-in subject or department: who, until when, and what they sent from the portal."""

    principal: Principal
    key_id: str
    expires: float
    sent: list[dict[str, str]] = field(default_factory=list)  # submissions, newest last
    flash: str = ""


class Sessions:
    """Sessions by random id, expiring ``ttl`` seconds after their last use."""

    def __init__(self, ttl: float = 1800.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def open(self, principal: Principal, key_id: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(principal, key_id, self.clock() + self.ttl)
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        now = self.clock()
        if session.expires < now:
            del self._by_id[session_id or ""]
            return None
        session.expires = now + self.ttl
        return session

    def close(self, session_id: str | None) -> None:
        self._by_id.pop(session_id or "", None)


class Csrf:
    """Tokens bound to the visitor's CSRF cookie: HMAC-SHA256 under a secret of this process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    def token(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.token(cookie), token)


class RateLimit:
    """A token bucket per client: ``capacity`` requests at once, refilled over ``window`` seconds."""

    def __init__(
        self,
        capacity: int = 30,
        window: float = 60.0,
        *,
        clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.window = window
        self.clients = clients  # at most this many buckets are kept; the least recent go first
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if the request may go; otherwise the seconds until it may."""
        now = self.clock()
        rate = self.capacity / self.window
        tokens, then = self._buckets.pop(client, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + (now - then) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.clients:
            self._buckets.popitem(last=False)
        return wait


def client_of(request: web.Request) -> str:
    """The client a rate limit counts: the peer address (a proxy in front gives each client one)."""
    return request.remote or "unknown"


def form_value(form: Mapping[str, Any], name: str, limit: int = 2000) -> str:
    """A form field as stripped text, at most ``limit`` characters (longer input is cut, not echoed)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""
