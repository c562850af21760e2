"""Reading what a caller sent: the body within its route's limit, JSON, and query-string numbers.

Every refusal here is an ``ApiError`` naming the field at fault, so no malformed input reaches a
handler's logic and none becomes a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from streams.web.calls import ApiError, Call

CHUNK = 64 * 1024
DIGITS = re.compile(r"-?[0-9]{1,18}")
NDJSON_HINT = "; for JSON lines send Content-Type: application/x-ndjson"


def too_large(call: Call, size: int | None) -> ApiError:
    """413, in the route's words: a batch for submissions, a body for everything else."""
    limit = call.route.max_body
    got = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    if call.route.path == "/v1/submissions":
        message = (
            f"the body is {got}; at most {limit:,} bytes ({limit // 2**20} MiB) per request: "
            "split the batch (10,000 typical submissions fit)"
        )
        return ApiError(413, "batch_too_large", "", message)
    return ApiError(413, "body_too_large", "", f"the body is {got}; at most {limit:,} bytes here")


async def read_body(call: Call) -> bytes:
    """The request body, refused early (413) once it passes the route's ``max_body``."""
    limit = call.route.max_body
    request: Any = call.request
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(call, declared)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(call, None)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes, *, hint_ndjson: bool = False) -> Any:
    """The body as one JSON document; 400 ``undecodable`` saying what is wrong (and how to fix it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        message = f"the body is not valid JSON: {exc}"
        if hint_ndjson and "unexpected content after document" in str(exc):
            message += NDJSON_HINT
        raise ApiError(400, "undecodable", "", message) from None


async def json_object(call: Call, *, empty: Any = None) -> Any:
    """The body as one JSON value (``empty`` when there is none); the caller checks its shape."""
    body = await read_body(call)
    if not body.strip():
        return empty
    return decode_json(body)


def integer(
    query: Mapping[str, str], name: str, *, default: int, low: int = 0, high: int | None = None
) -> int:
    """A query-string (or path) integer within [low, high]; 400 naming ``name`` otherwise."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    bounds = f"from {low:,} to {high:,}" if high is not None else f"of at least {low:,}"
    value = int(raw) if DIGITS.fullmatch(raw) else None
    if value is None or value < low or (high is not None and value > high):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ApiError(400, "invalid_query", name, f"{name} must be an integer {bounds}, not {shown!r}")
    return value
