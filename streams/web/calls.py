"""What a route is, the call a handler answers, its reply, and the one error a handler raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faust.web import Request

from ledger.domain.access import Principal
from ledger.domain.errors import error_body

if TYPE_CHECKING:
    import faust

    from streams.parts import WorkerParts

NONE, OPTIONAL, REQUIRED = "none", "optional", "required"
"""Route.auth: no key read; a key accepted but the public served too; a key needed (role checked)."""


JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """A handler's answer: an HTTP status and a JSON body (or bytes, with another content type)."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


class ApiError(Exception):
    """A refusal a handler raises: answered as ``{"error": {code, field, message}}`` with ``status``."""

    def __init__(self, status: int, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.message = message

    def reply(self) -> Reply:
        return Reply(self.status, error_body(self.code, self.field, self.message))


Handler = Callable[..., Awaitable[Reply]]
"""``async def handler(api: streams.web.api.Api, call: Call) -> Reply``."""


@dataclass(frozen=True)
class Route:
    """One HTTP route, declared once: it registers the view and writes the OpenAPI operation.

    ``responses`` are the statuses the handler answers (the server adds 500, 413 and 400 where
    they apply: ``streams.web.openapi.statuses``). ``endpoint`` names the route in the query
    register: every answer and refusal on it is recorded there. ``max_body`` is the largest
    request body read, in bytes (0: the body is never read).
    """

    method: str
    path: str
    summary: str
    handler: Handler | None
    responses: Mapping[int, str]
    auth: str = NONE
    endpoint: str | None = None
    max_body: int = 0
    request_body: Mapping[str, Any] | None = None  # OpenAPI "content", by media type
    parameters: tuple[Mapping[str, Any], ...] = ()
    response_schemas: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    registered_by: Callable[[faust.App, WorkerParts], None] | None = None
    """For a view another module registers itself (health): called instead of ``handler``."""
    media_type: str = JSON
    """The content type of its successful answers (its refusals are JSON)."""
    matches: Mapping[str, str] = field(default_factory=dict)
    """A regular expression a path parameter matches (default: one path segment)."""

    @property
    def pattern(self) -> str:
        """The path as the router matches it: each parameter with its expression, if it has one."""
        path = self.path
        for name, expression in self.matches.items():
            path = path.replace(f"{{{name}}}", f"{{{name}:{expression}}}")
        return path

    @property
    def needs_queries(self) -> bool:
        """Served only by a worker with a query service: it authenticates or records."""
        return self.auth != NONE or self.endpoint is not None


@dataclass
class Call:
    """One request as a handler sees it: the request, its path parameters, who is asking."""

    request: Request
    params: Mapping[str, str]
    route: Route
    principal: Principal | None = None  # set before the handler runs on routes with auth
    channel: str = "http"

    @property
    def who(self) -> Principal:
        assert self.principal is not None, "only routes with auth read the principal"
        return self.principal

    @property
    def query(self) -> Mapping[str, str]:
        query: Mapping[str, str] = self.request.query
        return query
