"""双公示 publicity: licences and penalties in their publicity period, for the API and the portal alike.

Public data (names, masked codes, decision numbers, titles), so it is not a query of the register;
what leaves the pages at the end of its period, or on repair or revocation, stays in the ledger.
Names and titles are sealed in the ledger and the read store: a page is opened through the query
service's one opening path (``QueryService.public``) while its items are public.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

from ledger.application.queries import QueryService
from ledger.domain.workdays import local_date
from projections.publicity import PUBLICITY_CATEGORIES, Filters
from projections.store import ProjectionStore
from streams.web.api import Api
from streams.web.bodies import integer
from streams.web.calls import ApiError, Call, Reply

PAGE_SIZE = 20
MAX_PAGE = 10_000
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
FILTERS = ("domain", "department", "since", "until", "category")


def filters_of(query: Mapping[str, str]) -> Filters:
    """The filters of a publicity or search request; 400 naming the field for a malformed one."""
    values = {name: (query.get(name) or "").strip() or None for name in FILTERS}
    for name in ("since", "until"):
        value = values[name]
        if value is not None and not DAY.fullmatch(value):
            raise ApiError(400, "invalid_query", name, f"{name} must be a day, YYYY-MM-DD")
    category = values["category"]
    if category is not None and category not in PUBLICITY_CATEGORIES:
        raise ApiError(
            400, "invalid_query", "category", f"category is one of {', '.join(PUBLICITY_CATEGORIES)}"
        )
    for name in ("domain", "department"):
        value = values[name]
        if value is not None and len(value) > 100:
            raise ApiError(400, "invalid_query", name, f"{name} is at most 100 characters")
    return Filters(**values)


def page_of(store: ProjectionStore, today: str, filters: Filters, page: int) -> dict[str, Any]:
    """One page of publicity, newest decision first, with the count and the page numbers."""
    total, items = store.records.publicity(today, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return {
        "as_of": today,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "page_size": PAGE_SIZE,
        "items": [public_item(item) for item in items],
    }


def public_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the public sees of a record: no subject key, no objection grounds."""
    return {
        "name": row["name"],
        "masked_code": row["masked_code"],
        "subject_kind": row["subject_kind"],
        "department": row["provider"],
        "record_id": row["record_id"],
        "category": row["category"],
        "domain": row["domain"],
        "severity": row["severity"],
        "title": row["title"],
        "decision_document": row["decision_document"],
        "decision_date": row["decision_date"],
        "legal_basis": row["legal_basis"],
        "publicity_until": row["display_until"],
        "disputed": bool(row.get("disputed")),
    }


def opened(queries: QueryService, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (public items or entries) with its sealed names and titles opened; 503 naming the
    field if a ciphertext was altered."""
    answer = queries.public(body)
    if not answer.ok:
        error = answer.body["error"]
        raise ApiError(503, error["code"], error.get("field", ""), error["message"])
    return answer.body


async def publicity(api: Api, call: Call) -> Reply:
    """GET /v1/publicity: the 双公示 page as JSON."""
    store, queries = api.parts.read_store, api.parts.queries
    if store is None or queries is None:
        raise ApiError(503, "no_read_models", "", "this worker serves no read models")
    filters = filters_of(call.query)
    page = integer(call.query, "page", default=1, low=1, high=MAX_PAGE)
    today = local_date(api.parts.ledger.clock()).isoformat()
    try:
        answer = await asyncio.get_running_loop().run_in_executor(
            api.parts.executor, lambda: opened(queries, page_of(store, today, filters, page))
        )
    except (OSError, sqlite3.OperationalError) as exc:  # locked, gone, disk: the store, not the request
        raise ApiError(503, "read_models_unavailable", "", f"the read models cannot be read: {exc}") from None
    return Reply(200, answer)
