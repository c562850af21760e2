"""Status as of any moment: fold a subject's events recorded up to then, straight from the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from contract.messages import messages_from_store
from ledger.domain.catalogue import Catalogue
from ledger.domain.workdays import local_date
from projections.fold import State, empty, fold_into
from projections.views import status


def state_as_of(ledger: Any, key: UUID, moment: datetime) -> State | None:
    """The subject's folded state with every event the ledger had recorded by ``moment``."""
    state = None
    for message in messages_from_store(ledger, key):
        if datetime.fromisoformat(message["recorded_at"]) > moment:
            break  # a subject's events are recorded in version order
        state = fold_into(state or empty(str(key)), message)
    return state


def status_as_of(ledger: Any, key: UUID, moment: datetime, catalogue: Catalogue) -> dict[str, Any] | None:
    state = state_as_of(ledger, key, moment)
    if state is None:
        return None
    day = local_date(moment)
    return status(state, day, catalogue.edition_at(day))
