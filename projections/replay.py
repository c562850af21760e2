"""An auditor's replay: fold credit.ledger as read from Kafka, as of a moment or for one subject."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from ledger.domain.catalogue import Catalogue
from ledger.domain.workdays import local_date
from projections.fold import State, empty, fold_into
from projections.views import status, view_digest


def replay(
    messages: Iterable[Mapping[str, Any]],
    *,
    as_of: datetime | None = None,
    subject_key: str | None = None,
    keep_history_for: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, State], dict[str, list[Mapping[str, Any]]], int]:
    """Fold messages (in topic order) into states; keep whole histories for ``keep_history_for``.

    Returns (states, histories, events read). With ``as_of``, only events the ledger had recorded
    by then count; with ``subject_key``, only that subject's.
    """
    states: dict[str, State] = {}
    histories: dict[str, list[Mapping[str, Any]]] = {}
    count = 0
    for message in messages:
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
        key = message["subject_key"]
        if subject_key is not None and key != subject_key:
            continue
        if as_of is not None and datetime.fromisoformat(message["recorded_at"]) > as_of:
            continue
        states[key] = fold_into(states.get(key), message)
        if keep_history_for is not None and key in keep_history_for:
            histories.setdefault(key, []).append(message)
    return states, histories, count


def check_recorded_queries(
    queries: Iterable[Mapping[str, Any]],
    histories: Mapping[str, list[Mapping[str, Any]]],
    catalogue: Catalogue,
) -> list[dict[str, Any]]:
    """Recompute every recorded, allowed status answer from the replayed events; name each mismatch."""
    problems = []
    for q in queries:
        if q.get("endpoint") != "status" or q.get("outcome") != "allowed" or not q.get("view_digest"):
            continue
        key, version = q["subject_key"], q["ledger_version"]
        state: State = empty(key)
        for message in histories.get(key, []):
            if message["version"] <= version:
                state = fold_into(state, message)
        day: date = local_date(datetime.fromisoformat(q.get("as_of") or q["recorded_at"]))
        digest = view_digest(status(state, day, catalogue.edition_at(day), catalogue))
        if digest != q["view_digest"]:
            problems.append(
                {
                    "query_id": q.get("query_id"),
                    "subject": key,
                    "view": "status",
                    "field": "view_digest",
                    "expected": q["view_digest"],
                    "found": digest,
                }
            )
    return problems
