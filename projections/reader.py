"""The read models as the query service reads them: ``ledger.application.ports.ReadModels``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from ledger.domain.catalogue import Catalogue
from projections.anomalies import anomaly_hints
from projections.asof import status_as_of
from projections.notices import notice_rows
from projections.store import ProjectionStore
from projections.supervision import measure_stats
from projections.views import clean_record, memberships, shredded, status

History = Callable[[str], Iterable[Mapping[str, Any]]]
"""One subject's ledger messages, in version order, read from the ledger itself (for as-of views)."""


VIEWS_REMEMBERED = 1024
"""How many (state, day, department) views ``check_view`` keeps (least recently used go)."""


class ProjectionReader:
    """Views of the projection store, plus status as of a past moment folded from the ledger's history."""

    def __init__(self, store: ProjectionStore, catalogue: Catalogue, history: History) -> None:
        self.store = store
        self.catalogue = catalogue
        self.history = history
        self._views: OrderedDict[tuple[bytes, date, str], dict[str, Any]] = OrderedDict()
        """A check's view by the exact stored state, the day and the department (``check_view``)."""
        self._memo_lock = threading.Lock()

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
        """What a check reads of a subject: a pure function of the stored state, ``today`` and the
        department (the catalogue is fixed for a reader), so it is remembered by the exact stored
        bytes it comes from, read fresh every time: the same subject checked again and again by a
        department (hundreds a second in bench/checks.py) costs the state's read and a dictionary
        look-up instead of parsing the state and deriving its notices, lists and clean record
        again (about 100 us, session 13). A state that changed is other bytes, so a view is never
        stale. Views are read, never changed, by callers."""
        stored = self.store.state_bytes(key)
        if stored is None:
            return None
        memo = (stored, today, department)
        with self._memo_lock:
            view = self._views.get(memo)
            if view is not None:
                self._views.move_to_end(memo)
                return view
        state = orjson.loads(stored)
        years = self.catalogue.edition_at(today).clean_record_years
        view = {
            "subject": {k: state[k] for k in ("subject_key", "masked_code", "name", "kind")},
            "ledger_version": state["version"],
            "notices": notice_rows(state, self.catalogue, department),
            "lists": memberships(state, today, years),
            "clean_record": clean_record(state, today, years),
        }
        with self._memo_lock:
            self._views[memo] = view
            if len(self._views) > VIEWS_REMEMBERED:
                self._views.popitem(last=False)
        return view

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
