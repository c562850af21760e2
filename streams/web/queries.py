"""Handlers of the authorised query path: status, a subject's own file and grants, lists, the register.

Each hands the query service what the caller sent and answers what it decided; the service records
every answer and refusal. Input of the wrong shape is refused here (``ApiError``, naming the field),
and the server records that refusal too. Identity numbers never travel in a URL: status is a POST.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from contract.messages import inbox_item
from ledger.application.queries import Answer
from ledger.domain.inbox import inbox_source
from streams.web.api import Api
from streams.web.bodies import json_object
from streams.web.calls import ApiError, Call, Reply
from streams.web.inbox import record

HTTP_STATUS = {
    "ok": 200,
    "invalid": 400,
    "not_authenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "unavailable": 503,
}
"""The query service's outcomes (``ledger.application.queries.OUTCOMES``) as HTTP status codes."""

MAX_TEXT = 1000
"""Longest purpose, basis, authorisation id or subject id a query takes (characters)."""

LISTS = ("black", "red")


def reply(answer: Answer) -> Reply:
    return Reply(HTTP_STATUS[answer.outcome], answer.body)


# -- status ---------------------------------------------------------------------------------------


async def status(api: Api, call: Call) -> Reply:
    request = await json_object(call)
    fields = status_request(request)
    return reply(api.queries.status(call.who, channel=call.channel, **fields))


def status_request(request: Any) -> dict[str, Any]:
    """The keyword arguments of ``QueryService.status`` from a status query's JSON; 400 naming a field."""
    fields: dict[str, Any] = {"code": subject_id(request, '"purpose": ...')}
    for name in ("purpose", "basis", "authorisation_id"):
        value = request.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid(name, f"must be a string (or left out), not {json_type(value)}")
        fields[name] = None if value is None else _bounded(name, value)
    fields["as_of"] = as_of(request.get("as_of"))
    return fields


def subject_id(request: Any, rest: str) -> str:
    """The subject's code from a JSON body ``{"subject": {"id": CODE}, ...}``; 400 naming the field."""
    if not isinstance(request, Mapping):
        raise _invalid("", f'the body must be a JSON object: {{"subject": {{"id": CODE}}, {rest}}}')
    subject = request.get("subject")
    if not isinstance(subject, Mapping) or "id" not in subject:
        raise _invalid("subject.id", f'expected {{"subject": {{"id": CODE}}, {rest}}}')
    code = subject["id"]
    if not isinstance(code, str):
        raise _invalid("subject.id", f"must be a string (an identity number or code), not {json_type(code)}")
    return _bounded("subject.id", code)


def as_of(value: Any) -> datetime | None:
    """``as_of`` as an aware datetime; 400 for anything but an RFC 3339 time with a zone offset."""
    if value is None:
        return None
    expected = "must be an RFC 3339 time with a zone offset, e.g. 2026-10-10T10:00:00+08:00"
    if not isinstance(value, str):
        raise _invalid("as_of", f"{expected}, not {json_type(value)}")
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 64 else None
    except ValueError:
        moment = None
    if moment is None:
        raise _invalid("as_of", expected)
    if moment.tzinfo is None:
        raise _invalid("as_of", f"{expected}: the zone offset is missing")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise _invalid("as_of", f"{expected}, within the years 0001 to 9999 in UTC") from None
    return moment


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages that must not echo the value."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return "null" if value is None else "a string"


def _bounded(field: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise _invalid(field, f"at most {MAX_TEXT:,} characters, got {len(value):,}")
    return value


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_input", field, message)


# -- a subject's own --------------------------------------------------------------------------------


def me(what: str) -> Any:
    async def handler(api: Api, call: Call) -> Reply:
        return reply(api.queries.me(call.who, what, channel=call.channel))

    handler.__name__ = f"me_{what}"
    return handler


async def grant(api: Api, call: Call) -> Reply:
    """Sent as the platform's ``grant_authorisation`` command; its outcome is at /v1/outcomes."""
    refused = api.queries.may_manage_authorisations(call.who, channel=call.channel)
    if refused is not None:
        return reply(refused)
    body = await json_object(call)
    if not isinstance(body, Mapping):
        raise _invalid("", f"the body must be a JSON object (the authorisation), not {json_type(body)}")
    authorisation_id = body.get("authorisation_id")
    if not isinstance(authorisation_id, str) or not authorisation_id.strip():
        raise _invalid("authorisation_id", "must be a non-blank string naming the authorisation")
    _bounded("authorisation_id", authorisation_id)
    command = {"action": "grant_authorisation", "authorisation": dict(body)}
    return await _send_for_subject(api, call, "grant", authorisation_id, command)


async def revoke(api: Api, call: Call) -> Reply:
    refused = api.queries.may_manage_authorisations(call.who, channel=call.channel)
    if refused is not None:
        return reply(refused)
    authorisation_id = _bounded("authorisation_id", call.params["authorisation_id"])
    command = {"action": "revoke_authorisation", "authorisation_id": authorisation_id}
    return await _send_for_subject(api, call, "revoke", authorisation_id, command)


async def _send_for_subject(
    api: Api, call: Call, verb: str, authorisation_id: str, command: dict[str, Any]
) -> Reply:
    subject_key = call.who.subject_key
    # Unique per department (the platform): derived from the subject and the request itself.
    digest = hashlib.sha256(f"{subject_key}|me.{verb}.{authorisation_id}".encode()).hexdigest()[:40]
    submission = {
        "submission_id": f"{verb}.{digest}",
        "department": "credit_platform",
        "subject": {"key": subject_key},
        "occurred_at": api.parts.ledger.clock().isoformat(),
        **command,
    }
    # Recorded in the inbox before the answer, as POST /v1/submissions does: never lost.
    (position,) = await record(api, [inbox_item(submission, orjson.dumps(submission))])
    return Reply(
        202,
        {
            "queued": submission["submission_id"],
            "inbox_position": position,
            "source": inbox_source(position),
            "outcomes": "/v1/outcomes?department=credit_platform",
        },
    )


# -- lists and the register -----------------------------------------------------------------------------


async def lists(api: Api, call: Call) -> Reply:
    """The black or red list (public; identity numbers masked)."""
    list_name = call.params["list_name"]
    if list_name not in LISTS:
        raise ApiError(404, "not_found", "list_name", "lists are black and red")
    filters = {k: call.query.get(k) or None for k in ("domain", "department", "since", "until")}
    return reply(api.queries.lists(call.who, list_name, filters, channel=call.channel))


AUDIT_FILTERS = ("requester", "organisation", "subject_key", "purpose", "since", "until")


async def audit(api: Api, call: Call) -> Reply:
    """The query register (auditors): by requester, organisation, subject key, purpose, time."""
    filters = {k: call.query.get(k) for k in AUDIT_FILTERS}
    return reply(api.queries.audit(call.who, filters, channel=call.channel))
