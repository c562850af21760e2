"""The read models as the query service reads them: ``ledger.application.ports.ReadModels``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ledger.domain.catalogue import Catalogue
from projections.anomalies import anomaly_hints
from projections.asof import status_as_of
from projections.notices import notice_rows
from projections.store import ProjectionStore
from projections.supervision import measure_stats
from projections.views import clean_record, memberships, shredded, status

History = Callable[[str], Iterable[Mapping[str, Any]]]
"""One subject's ledger messages, in version order, read from the ledger itself (for as-of views)."""


class ProjectionReader:
    """Views of the projection store, plus status as of a past moment folded from the ledger's history."""

    def __init__(self, store: ProjectionStore, catalogue: Catalogue, history: History) -> None:
        self.store = store
        self.catalogue = catalogue
        self.history = history

    def subject(self, key: str) -> Mapping[str, Any] | None:
        return self.store.state(key)

    def status(
        self, key: str, today: date, *, state: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        state = state if state is not None else self.store.state(key)
        if state is None:
            return None
        return status(dict(state), today, self.catalogue.edition_at(today), self.catalogue)

    def status_as_of(self, key: str, moment: datetime) -> dict[str, Any] | None:
        return status_as_of(self.history(key), key, moment, self.catalogue)

    def shredded(self, key: str) -> list[dict[str, Any]]:
        state = self.store.state(key)
        return shredded(dict(state)) if state else []

    def memberships(self, key: str, today: date) -> dict[str, bool]:
        state = self.store.state(key)
        return memberships(state, today) if state else {}

    def members(self, list_name: str, **filters: str | None) -> list[dict[str, Any]]:
        return self.store.members(list_name, **filters)

    def check_view(self, key: str, today: date, department: str) -> dict[str, Any] | None:
        state = self.store.state(key)
        if state is None:
            return None
        years = self.catalogue.edition_at(today).clean_record_years
        return {
            "subject": {k: state[k] for k in ("subject_key", "masked_code", "name", "kind")},
            "ledger_version": state["version"],
            "notices": notice_rows(state, self.catalogue, department),
            "lists": memberships(state, today, years),
            "clean_record": clean_record(state, today, years),
        }

    def measure_stats(
        self, today: date, *, department: str | None, since: str | None, until: str | None
    ) -> dict[str, Any]:
        rows = self.store.notice_rows(department=department, since=since, until=until)
        return measure_stats(rows, today, department=department, since=since, until=until)

    def queries(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.queries(**filters)

    def anomaly_hints(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return anomaly_hints(rows, acted=self._acted_by(rows))

    def _acted_by(self, rows: Sequence[Mapping[str, Any]]) -> Callable[[str, str, str], bool]:
        """Did an organisation file anything on a subject after a time? Each file is read once."""
        states = self.store.load({q["subject_key"] for q in rows if q.get("subject_key")})

        def acted(subject_key: str, organisation: str, after: str) -> bool:
            loaded = states.get(subject_key)
            if loaded is None:
                return False
            records = loaded[0]["records"].values()
            return any(r["provider"] == organisation and (r["filed_at"] or "") > after for r in records)

        return acted
