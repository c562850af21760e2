"""HTTP views of the authorised query path: status, a subject's own file, lists, the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

import faust
import orjson
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from ledger.application.queries import Answer, QueryService
    from streams.parts import WorkerParts


HTTP_STATUS = {
    "ok": 200,
    "invalid": 400,
    "not_authenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "unavailable": 503,
}
"""The query service's outcomes (``ledger.application.queries.OUTCOMES``) as HTTP status codes."""


def api_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def register_query_views(app: faust.App, parts: WorkerParts, service: QueryService) -> None:
    """Identity numbers never travel in a URL (access logs keep URLs): status is a POST."""

    async def run(request: Request, call: Any) -> tuple[int, dict[str, Any]]:
        # On the event loop itself: a query is a fraction of a millisecond of work (one indexed read,
        # one small insert), and a hop to another thread costs more in GIL hand-offs than it saves.
        principal = service.authenticate(api_key(request))
        answer: Answer | None = None if principal is None else call(principal)
        if answer is None:
            return 401, {"error": {"code": "invalid_key", "field": "", "message": "the API key is not valid"}}
        return HTTP_STATUS[answer.outcome], answer.body

    @app.page("/v1/queries/status")
    class Status(View):
        """POST {"subject": {"id": CODE}, "purpose": P, "basis": B | "authorisation_id": A, "as_of": T}."""

        async def post(self, request: Request) -> Response:
            try:
                body = orjson.loads(await request.read())
                code = body["subject"]["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return self.json(
                    {
                        "error": {
                            "code": "invalid_input",
                            "field": "subject.id",
                            "message": 'expected {"subject": {"id": CODE}, "purpose": ...}',
                        }
                    },
                    status=400,
                )
            as_of = body.get("as_of")
            from datetime import datetime  # noqa: PLC0415

            moment = datetime.fromisoformat(as_of) if as_of else None
            status, payload = await run(
                request,
                lambda who: service.status(
                    who,
                    code,
                    purpose=body.get("purpose"),
                    basis=body.get("basis"),
                    authorisation_id=body.get("authorisation_id"),
                    as_of=moment,
                ),
            )
            return self.json(payload, status=status)

    for what in ("status", "queries", "report"):

        class Me(View):
            part = what

            async def get(self, request: Request) -> Response:
                status, payload = await run(request, lambda who, view=self.part: service.me(who, view))
                return self.json(payload, status=status)

        app.page(f"/v1/me/{what}")(Me)

    @app.page("/v1/lists/{list_name}")
    class Lists(View):
        """GET the black or red list (public; identity numbers masked)."""

        async def get(self, request: Request, list_name: str) -> Response:
            if list_name not in ("black", "red"):
                return self.json(
                    {"error": {"code": "not_found", "field": "list", "message": "lists are black and red"}},
                    status=404,
                )
            filters = {k: request.query.get(k) or None for k in ("domain", "department", "since", "until")}
            status, payload = await run(request, lambda who: service.lists(who, list_name, filters))
            return self.json(payload, status=status)

    @app.page("/v1/audit/queries")
    class Audit(View):
        """GET the query register (auditors): by requester, organisation, subject key, purpose, time."""

        async def get(self, request: Request) -> Response:
            q = request.query
            filters = {
                "requester": q.get("requester"),
                "organisation": q.get("organisation"),
                "subject_key": q.get("subject_key"),
                "purpose": q.get("purpose"),
                "since": q.get("since"),
                "until": q.get("until"),
            }
            status, payload = await run(request, lambda who: service.audit(who, filters))
            return self.json(payload, status=status)


def register_grant_views(app: faust.App, parts: WorkerParts, service: QueryService) -> None:
    """Subjects grant and revoke authorisations with their own key: sent as the platform's commands."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from contract.messages import submission_key  # noqa: PLC0415
    from ledger.domain.access import decide_endpoint  # noqa: PLC0415

    async def send(request: Request, make: Any) -> tuple[int, dict[str, Any]]:
        principal = await asyncio.get_running_loop().run_in_executor(
            parts.executor, service.authenticate, api_key(request)
        )
        if principal is None or not decide_endpoint(principal, "me.authorisations").allowed:
            return 403, {
                "error": {
                    "code": "forbidden_role",
                    "field": "",
                    "message": "only a subject manages authorisations to their own file",
                }
            }
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return 400, {"error": {"code": "undecodable", "field": "", "message": "the body is not JSON"}}
        made = make(body)
        # Unique per department (the platform): derived from the subject and the request itself.
        digest = hashlib.sha256(f"{principal.subject_key}|{made['submission_id']}".encode()).hexdigest()[:40]
        made["submission_id"] = f"{made['submission_id'].split('.')[1]}.{digest}"
        submission = {
            "department": "credit_platform",
            "subject": {"key": principal.subject_key},
            "occurred_at": datetime.now(UTC).isoformat(),
            **made,
        }
        future = await parts.submissions.send(key=submission_key(submission), value=orjson.dumps(submission))
        await future
        return 202, {
            "queued": submission["submission_id"],
            "outcomes": "/v1/outcomes?department=credit_platform",
        }

    @app.page("/v1/me/authorisations")
    class Grant(View):
        """POST {"authorisation_id", "organisation", "purpose", "valid_from", "valid_until"}."""

        async def post(self, request: Request) -> Response:
            status, payload = await send(
                request,
                lambda body: {
                    "submission_id": f"me.grant.{body.get('authorisation_id')}",
                    "action": "grant_authorisation",
                    "authorisation": body,
                },
            )
            return self.json(payload, status=status)

    @app.page("/v1/me/authorisations/{authorisation_id}/revoke")
    class Revoke(View):
        async def post(self, request: Request, authorisation_id: str) -> Response:
            status, payload = await send(
                request,
                lambda body: {
                    "submission_id": f"me.revoke.{authorisation_id}",
                    "action": "revoke_authorisation",
                    "authorisation_id": authorisation_id,
                },
            )
            return self.json(payload, status=status)
