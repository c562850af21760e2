"""The portal's guards: sessions, CSRF tokens, the public search's rate limit and the security headers.

- Sessions live in the ledger's database (``SessionStore``), so every worker on it knows them and
  a restart keeps them; only the SHA-256 of a session's token is stored. The cookie carries the
  token, HttpOnly and SameSite=Strict, and Secure when the request came over TLS (directly or via
  a proxy that says so). A session ends when idle too long, when too old, at sign-out, or when
  its key is revoked (docs/portal.md#sessions).
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

import orjson
from aiohttp import web

from ledger.application.ports import SessionStore
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
    """A signed-in subject or department: who, and what they sent from the portal."""

    principal: Principal
    key_id: str
    token_hash: str
    created_at: float
    last_used_at: float
    sent: list[dict[str, str]] = field(default_factory=list)  # submissions, newest last
    flash: str = ""


def hash_token(token: str) -> str:
    """What the database keeps of a session's token: its SHA-256 (a stolen table opens nothing)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """Sessions in the ledger's database, by the hash of their token, with two timeouts.

    ``idle``: seconds without a request after which a session ends; ``lifetime``: seconds after
    sign-in after which it ends however busy it is. Times are wall-clock seconds (every worker
    compares the same stored times). A use is written at most every ``touch_every`` seconds, so
    reading pages costs no write each time; a session may thus end up to that much early.
    ``principal_of`` finds the key's principal, None once it is revoked (which ends the session).
    """

    def __init__(
        self,
        store: SessionStore,
        principal_of: Callable[[str], Principal | None],
        *,
        idle: float = 1800.0,
        lifetime: float = 28_800.0,
        touch_every: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.principal_of = principal_of
        self.idle = idle
        self.lifetime = lifetime
        self.touch_every = min(touch_every, idle / 2)
        self.clock = clock

    def open(self, key_id: str) -> tuple[str, Session] | None:
        """A new session for the key: (the cookie's token, the session); None for a key not valid."""
        principal = self.principal_of(key_id)
        if principal is None:
            return None
        now = self.clock()
        self.store.delete_sessions(used_before=now - self.idle, created_before=now - self.lifetime)
        token = secrets.token_urlsafe(32)
        session = Session(principal, key_id, hash_token(token), now, now)
        self.store.add_session(
            {
                "session_hash": session.token_hash,
                "key_id": key_id,
                "created_at": now,
                "last_used_at": now,
                "data": _data(session),
            }
        )
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The session of this token while it is valid; an expired one is deleted and refused."""
        if not token:
            return None
        token_hash = hash_token(token)
        row = self.store.session(token_hash)
        if row is None:
            return None
        now = self.clock()
        expired = now - row["last_used_at"] > self.idle or now - row["created_at"] > self.lifetime
        principal = None if expired else self.principal_of(row["key_id"])
        if principal is None:
            self.store.delete_session(token_hash)
            return None
        data = orjson.loads(row["data"])
        session = Session(
            principal,
            row["key_id"],
            token_hash,
            row["created_at"],
            row["last_used_at"],
            data.get("sent", []),
            data.get("flash", ""),
        )
        if now - session.last_used_at >= self.touch_every:
            session.last_used_at = now
            self.save(session)
        return session

    def save(self, session: Session) -> None:
        """Write what the session keeps (sent submissions, a message to show) and its last use."""
        self.store.touch_session(session.token_hash, session.last_used_at, _data(session))

    def close(self, token: str | None) -> None:
        """Sign-out: the session's row is deleted, so no worker accepts the token any more."""
        if token:
            self.store.delete_session(hash_token(token))


def _data(session: Session) -> str:
    return orjson.dumps({"sent": session.sent, "flash": session.flash}).decode()


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
