"""HTTP API under /v1/ for departments that cannot speak Kafka, served by the worker's web server."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from contract.messages import original_fields, outcome_message, submission_key
from streams.health import register_health_view
from streams.openapi import openapi_document
from streams.parts import WorkerParts
from streams.proofs_http import register_proof_views

MAX_BATCH = 10_000


def _parse_body(body: bytes, content_type: str) -> list[Any]:
    """A JSON array, a single JSON object, or JSON lines (application/x-ndjson)."""
    if "ndjson" in content_type or "jsonl" in content_type:
        return [_loads(line) for line in body.splitlines() if line.strip()]
    value = orjson.loads(body)
    return value if isinstance(value, list) else [value]


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _Undecodable(line)


class _Undecodable:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def register_views(app: faust.App, parts: WorkerParts) -> None:
    ledger = parts.ledger
    submissions_topic = parts.submissions

    @app.page("/v1/submissions")
    class Submissions(View):
        """POST a batch of submissions: each is published to credit.submissions and receipted."""

        async def post(self, request: Request) -> Response:
            body = await request.read()
            try:
                items = _parse_body(body, request.headers.get("Content-Type", ""))
            except orjson.JSONDecodeError as exc:
                return self.json(
                    _problem("undecodable", "", f"the body is not valid JSON: {exc}"), status=400
                )
            if len(items) > MAX_BATCH:
                return self.json(
                    _problem(
                        "batch_too_large",
                        "",
                        f"at most {MAX_BATCH} submissions per request, got {len(items)}",
                    ),
                    status=413,
                )
            receipts: list[dict[str, Any]] = []
            pending = []
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raw = item.raw if isinstance(item, _Undecodable) else orjson.dumps(item)
                    receipts.append(
                        {
                            "index": index,
                            "status": "rejected",
                            "reason": {
                                "code": "undecodable",
                                "field": "",
                                "message": "each submission must be a JSON object",
                            },
                            **original_fields(raw),
                        }
                    )
                    continue
                value = orjson.dumps(item)
                future = await submissions_topic.send(key=submission_key(item), value=value)
                receipt = {
                    "index": index,
                    "status": "queued",
                    "submission_id": item.get("submission_id"),
                    "department": item.get("department"),
                }
                receipts.append(receipt)
                pending.append((receipt, future))
            for receipt, future in pending:
                metadata = await future
                receipt["partition"], receipt["offset"] = metadata.partition, metadata.offset
            queued = sum(1 for r in receipts if r["status"] == "queued")
            return self.json(
                {
                    "queued": queued,
                    "rejected": len(receipts) - queued,
                    "receipts": receipts,
                    "outcomes": "/v1/outcomes?department=...",
                },
                status=202,
            )

    @app.page("/v1/outcomes")
    class Outcomes(View):
        """GET outcomes (accepted or rejected) after a position, optionally for one department."""

        async def get(self, request: Request) -> Response:
            query = request.query
            try:
                after = int(query.get("after", "0"))
                limit = min(int(query.get("limit", "1000")), 10_000)
            except ValueError:
                return self.json(
                    _problem("invalid_query", "after", "after and limit must be integers"), status=400
                )
            department = query.get("department") or None
            loop = asyncio.get_running_loop()
            rows = await loop.run_in_executor(
                parts.executor, lambda: ledger.receipts_after(after, department=department, limit=limit)
            )
            outcomes = [orjson.loads(outcome_message(pos, r)[1]) for pos, r in rows]
            return self.json({"outcomes": outcomes, "next": outcomes[-1]["position"] if outcomes else after})

    register_health_view(app, parts)

    @app.page("/v1/openapi.json")
    class OpenAPI(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi_document())

    if parts.queries is not None:
        from streams.queries_http import register_grant_views, register_query_views  # noqa: PLC0415

        register_query_views(app, parts, parts.queries)
        register_grant_views(app, parts, parts.queries)

    register_proof_views(app, parts)


def _problem(code: str, field: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "field": field, "message": message}}
