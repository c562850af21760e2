"""Rebuild the read models from the ledger's messages, from the beginning, into a fresh store.

Pure over its input: the caller reads the messages (``streams.rebuild`` from ``credit.ledger``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.domain.catalogue import Catalogue
from ledger.domain.workdays import local_date
from projections.fold import State, fold_into
from projections.projector import Projector
from projections.store import ProjectionStore


class Rebuild:
    """The whole ledger folded in memory (one pass, no per-event I/O), then written in one go: what
    lets a rebuild run far faster than the live projector."""

    def __init__(self) -> None:
        self.states: dict[str, State] = {}
        self.events = 0

    def fold(self, values: Iterable[bytes]) -> None:
        """Fold encoded ledger messages, in topic order (each subject's in version order)."""
        states, loads, get = self.states, orjson.loads, self.states.get
        for value in values:
            message = loads(value)
            key = message["subject_key"]
            states[key] = fold_into(get(key), message)
            self.events += 1

    def write(self, store: ProjectionStore, catalogue: Catalogue) -> None:
        write(store, self.states, catalogue)


def write(store: ProjectionStore, states: dict[str, Any], catalogue: Catalogue) -> None:
    """Save folded states with their list rows and due items (the memberships they stand at)."""
    projector = Projector(store, catalogue)
    today = local_date(datetime.now(UTC))
    store.save((projector.saved_now(s, today) for s in states.values()), fresh=True)
