"""Rebuild the read models from ``credit.ledger`` as Kafka holds it (the fold is projections.rebuild)."""

from __future__ import annotations

from collections.abc import Callable

from contract import topics
from ledger.domain.catalogue import Catalogue
from projections.rebuild import Rebuild
from projections.store import ProjectionStore
from streams.clients import consume_all


def rebuild_from_topic(
    bootstrap: str,
    store: ProjectionStore,
    catalogue: Catalogue,
    *,
    idle: float = 2.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[ProjectionStore, int]:
    """Fold every message of credit.ledger into ``store``; return it and how many events it read.

    ``progress(events)`` is told how many events are folded so far, a fetched batch at a time."""
    rebuild = Rebuild(catalogue)  # the catalogue the live projector runs with

    def fold(values: list[bytes]) -> None:
        rebuild.fold(values)
        if progress is not None:
            progress(rebuild.events)

    consume_all(bootstrap, topics.LEDGER, fold, idle=idle)
    rebuild.write(store, catalogue)
    return store, rebuild.events
