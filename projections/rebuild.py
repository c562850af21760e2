"""Rebuild the read models from credit.ledger, from the beginning, into a fresh store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from contract import topics
from ledger.domain.catalogue import Catalogue, load_catalogue
from ledger.domain.workdays import local_date
from projections.fold import fold_into
from projections.projector import Projector
from projections.store import ProjectionStore
from streams.clients import consume_all


def rebuild_from_topic(
    bootstrap: str,
    store: ProjectionStore,
    settings: Any = None,
    *,
    idle: float = 2.0,
    catalogue: Catalogue | None = None,
) -> tuple[ProjectionStore, int]:
    """Fold every message of credit.ledger into ``store``; return it and how many events it read.

    The whole ledger is folded in memory first (one pass, no per-event I/O), then written in one
    batch per ten thousand subjects: what lets a rebuild run far faster than the live projector.
    """
    states: dict[str, Any] = {}
    loads, get = orjson.loads, states.get

    def fold_batch(values: list[bytes]) -> None:
        for value in values:
            message = loads(value)
            key = message["subject_key"]
            states[key] = fold_into(get(key), message)

    count = consume_all(bootstrap, topics.LEDGER, fold_batch, idle=idle)
    write(store, states, catalogue or load_catalogue(getattr(settings, "catalogue", None)))
    return store, count


def write(store: ProjectionStore, states: dict[str, Any], catalogue: Catalogue) -> None:
    """Save folded states with their list rows and due items (the memberships they stand at)."""
    projector = Projector(store, catalogue)
    today = local_date(datetime.now(UTC))
    store.save((projector.saved_now(s, today) for s in states.values()), fresh=True)
