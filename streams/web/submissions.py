"""Handlers for departments without Kafka: send submissions, read back their own outcomes.

``POST /v1/submissions`` records every item it accepts in the ledger's **inbox**, in one
transaction, and only then answers 202: a receipt is never lost, whatever happens to the broker
afterwards. The relay drains the inbox to ``credit.submissions`` (``streams.drain``); each item's
outcome says ``source: inbox/<position>``, the position its receipt gives.

Limits at this door (docs/http.md): a body of at most ``MAX_BODY`` bytes, at most ``MAX_BATCH``
submissions in it, and each at most ``Api.max_item_bytes`` once encoded, the size that fits one
Kafka message. An item over a limit is refused in its receipt and never recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from contract.messages import inbox_item, original_fields, outcome_message, submission_key
from ledger.domain.errors import reason
from ledger.domain.inbox import InboxItem, inbox_source
from streams.web.api import Api
from streams.web.bodies import decode_json, integer, read_body
from streams.web.calls import ApiError, Call, Reply
from streams.web.inbox import record
from streams.web.queries import reply

MAX_BATCH = 10_000
MAX_BODY = 16 * 2**20
"""16 MiB: 10,000 typical submissions (about 370 bytes each, 3.7 MB) with room for large ones."""
MAX_OUTCOMES = 10_000
NDJSON = ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/jsonlines")


def items_of(body: bytes, content_type: str) -> list[Any]:
    """A JSON object, a JSON array, or JSON lines (``application/x-ndjson``: one item per line).

    An undecodable line is one refused item, not a refused batch: the other lines still go.
    """
    if content_type in NDJSON or "ndjson" in content_type or "jsonl" in content_type:
        return [_line(line) for line in body.splitlines() if line.strip()]
    value = decode_json(body, hint_ndjson=True)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise ApiError(
        400,
        "undecodable",
        "",
        "the body must be a JSON object, an array of them, or JSON lines "
        "(Content-Type: application/x-ndjson)",
    )


class _Undecodable:
    def __init__(self, raw: bytes, error: str) -> None:
        self.raw = raw
        self.error = error


def _line(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _Undecodable(line, str(exc))


def _refused(index: int, code: str, message: str, raw: bytes | None) -> dict[str, Any]:
    receipt: dict[str, Any] = {"index": index, "status": "rejected", "reason": reason(code, "", message)}
    if raw is not None:
        receipt.update(original_fields(raw))
    return receipt


def _encoded(index: int, item: Any, limit: int) -> tuple[bytes, bytes] | dict[str, Any]:
    """(key, value) to publish, or the receipt refusing the item."""
    if isinstance(item, _Undecodable):
        return _refused(index, "undecodable", f"the line is not valid JSON: {item.error}", item.raw[:1024])
    if not isinstance(item, dict):
        return _refused(index, "undecodable", "each submission must be a JSON object", None)
    try:
        value = orjson.dumps(item)
    except orjson.JSONEncodeError:  # deeper than the 254 levels of nesting orjson writes
        return _refused(index, "too_deep", "the submission nests JSON more than 254 levels deep", None)
    key = submission_key(item)
    if len(value) + len(key) > limit:
        message = (
            f"the submission is {len(value):,} bytes; at most {limit:,} bytes with its key "
            "fit one Kafka message"
        )
        return _refused(index, "too_large", message, None)
    return key, value


async def submit(api: Api, call: Call) -> Reply:
    """Record each item in the inbox; 202 once they are all recorded, a receipt per item.

    A queued item's receipt has its ``inbox_position`` and ``source`` (``inbox/<position>``, what
    its outcome will name). ``partition`` and ``offset`` are null: the item is not on Kafka yet
    (the relay publishes it after this answer), and they would not identify it anyway once a
    broker that lost its topics has it drained again at another offset.
    """
    body = await read_body(call)
    request: Any = call.request  # aiohttp's: its content_type is the media type, lower-cased
    items = items_of(body, request.content_type)
    if len(items) > MAX_BATCH:
        message = f"at most {MAX_BATCH:,} submissions per request, got {len(items):,}: split the batch"
        raise ApiError(413, "batch_too_large", "", message)
    limit = api.max_item_bytes
    receipts: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], InboxItem]] = []
    for index, item in enumerate(items):
        encoded = _encoded(index, item, limit)
        if isinstance(encoded, dict):
            receipts.append(encoded)
            continue
        receipt = {
            "index": index,
            "status": "queued",
            "submission_id": item.get("submission_id"),
            "department": item.get("department"),
        }
        receipts.append(receipt)
        pending.append((receipt, inbox_item(item, encoded[1])))
    positions = await record(api, [i for _, i in pending]) if pending else []
    for (receipt, _), position in zip(pending, positions, strict=True):
        receipt.update(inbox_position=position, source=inbox_source(position), partition=None, offset=None)
    queued = len(pending)
    return Reply(
        202,
        {
            "queued": queued,
            "rejected": len(receipts) - queued,
            "receipts": receipts,
            "outcomes": _outcomes_link(receipts),
        },
    )


def _outcomes_link(receipts: list[dict[str, Any]]) -> str:
    """Where the batch's outcomes will be read: its department's, when it names one department."""
    # A receipt echoes what the item said, which may be any JSON (the intake rejects it later).
    departments = {d for r in receipts if isinstance(d := r.get("department"), str)}
    (only,) = departments if len(departments) == 1 else (None,)
    return f"/v1/outcomes?department={quote(only)}" if only is not None else "/v1/outcomes"


def _subjects_own(receipt: Any) -> bool:
    """A grant or revocation a subject sent over HTTP (``streams.web.queries``), not a scheduler command."""
    return str(receipt.submission_id).startswith(("grant.", "revoke."))


async def outcomes(api: Api, call: Call) -> Reply:
    """A page of the caller's own outcomes (a department's key; the administrator reads all)."""
    query: Mapping[str, str] = call.query
    after = integer(query, "after", default=0)
    limit = integer(query, "limit", default=1000, low=1, high=MAX_OUTCOMES)
    department = query.get("department") or None
    ledger = api.parts.ledger

    def read(scope: str | None, subject_key: str | None) -> dict[str, Any]:
        rows = ledger.outcomes_after(after, department=scope, limit=limit)
        last = rows[-1][0] if rows else after
        if subject_key is not None:  # a subject's own grants and revocations, filed as the platform
            rows = [(p, r) for p, r in rows if r.subject_key == subject_key and _subjects_own(r)]
        found = [orjson.loads(outcome_message(position, r, ledger.open_original)[1]) for position, r in rows]
        return {"outcomes": found, "next": last}

    filters = {"department": department, "after": after, "limit": limit}

    def answer() -> Reply:
        return reply(
            api.queries.outcomes(
                call.who, department=department, read=read, filters=filters, channel=call.channel
            )
        )

    return await asyncio.get_running_loop().run_in_executor(api.parts.executor, answer)


async def original(api: Api, call: Call) -> Reply:
    """The whole original of a rejection whose outcome message carries only a preview."""
    position = integer(call.params, "position", default=0, low=1)  # a path segment is never empty
    ledger = api.parts.ledger

    def answer() -> Reply:
        found = api.queries.original(call.who, position, read=ledger.original_at, channel=call.channel)
        if found.ok:  # bytes as received: as text when UTF-8, else base64, whole
            raw: bytes = found.body.pop("original")
            found.body.update(original_fields(raw, budget=len(raw) * 6 + 64))
        return reply(found)

    return await asyncio.get_running_loop().run_in_executor(api.parts.executor, answer)
