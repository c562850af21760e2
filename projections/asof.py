"""Status as of any moment: fold a subject's events recorded up to then, as the ledger holds them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ledger.domain.catalogue import Catalogue
from ledger.domain.workdays import local_date
from projections.fold import State, empty, fold_into
from projections.views import status


def state_as_of(history: Iterable[Mapping[str, Any]], key: str, moment: datetime) -> State | None:
    """The subject's folded state with every event of ``history`` recorded by ``moment``."""
    state = None
    for message in history:
        if datetime.fromisoformat(message["recorded_at"]) > moment:
            break  # a subject's events are recorded in version order
        state = fold_into(state or empty(key), message)
    return state


def status_as_of(
    history: Iterable[Mapping[str, Any]], key: str, moment: datetime, catalogue: Catalogue
) -> dict[str, Any] | None:
    state = state_as_of(history, key, moment)
    if state is None:
        return None
    day = local_date(moment)
    return status(state, day, catalogue.edition_at(day), catalogue)
