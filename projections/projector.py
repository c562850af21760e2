"""The projector: folds batches of ledger messages into the store and derives list changes and
measure notices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ledger.domain.catalogue import Catalogue
from ledger.domain.workdays import local_date
from projections.changes import list_changes
from projections.fold import OutOfOrder, State, empty, fold_into
from projections.notices import notice_messages, notice_rows, reminders_due
from projections.store import ProjectionStore, Saved
from projections.views import clean_record, due, memberships

log = logging.getLogger(__name__)

NONE_ANNOUNCED: Mapping[str, bool] = {"black": False, "red": False, "clean": False}
"""The memberships announced for a subject the feed has not mentioned yet."""

History = Callable[[str], Sequence[Mapping[str, Any]]]
"""All ledger messages of one subject, from the ledger store (to repair a gap)."""


def _event_day(message: Mapping[str, Any]) -> date:
    stamp = message.get("occurred_at") or message.get("recorded_at")
    return local_date(datetime.fromisoformat(stamp)) if stamp else date.min


class Projector:
    """Applies ledger messages to the store: idempotent by per-subject version, one transaction a batch."""

    def __init__(self, store: ProjectionStore, catalogue: Catalogue, history: History | None = None) -> None:
        self.store = store
        self.catalogue = catalogue
        self.history = history
        self._years: dict[date, int] = {}

    def _clean_years(self, day: date) -> int:
        years = self._years.get(day)
        if years is None:
            try:
                years = self.catalogue.edition_at(day).clean_record_years
            except Exception:  # a day before the first edition: the default rule
                years = 3
            self._years[day] = years
        return years

    def apply(self, messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Fold a batch and save it; return the list changes it produced (also in the outbox, with
        the measure notices it produced in theirs)."""
        everything = list(messages)
        # Query records are the query register's: filed as they are, not folded into a file.
        queries = [
            {**m["body"]["record"], "at": m.get("recorded_at")}
            for m in everything
            if m["type"] == "QueryRecorded"
        ]
        batch = [m for m in everything if m["type"] != "QueryRecorded"]
        loaded = self.store.load({m["subject_key"] for m in batch})
        states: dict[str, State] = {k: v[0] for k, v in loaded.items()}
        announced: dict[str, dict[str, bool]] = {k: v[1] for k, v in loaded.items()}
        touched: dict[str, date] = {}
        changes: list[dict[str, Any]] = []
        notified: list[dict[str, Any]] = []
        for message in batch:
            key = message["subject_key"]
            state = states.get(key) or empty(key)
            if message["version"] <= state["version"]:
                continue  # re-delivered or re-published: already applied
            try:
                state = fold_into(state, message)
            except OutOfOrder:
                state = self._repair(key, state["version"], message, notified)
            else:
                notified += notice_messages(state, message, self.catalogue)
            states[key] = state
            day = _event_day(message)
            announced[key], caused = self.changes_after(state, announced.get(key, NONE_ANNOUNCED), message)
            changes += caused
            touched[key] = day
        saved = (self._saved(states[k], announced[k]) for k in touched)
        self.store.save(saved, changes, queries=queries, notices=notified)
        return changes

    def changes_after(
        self, state: State, before: Mapping[str, bool], message: Mapping[str, Any]
    ) -> tuple[dict[str, bool], list[dict[str, Any]]]:
        """The memberships ``state`` has on the day of ``message`` (just folded into it), and the
        list changes from ``before``: what the live projector and a rebuild both derive per event."""
        day = _event_day(message)
        after = memberships(state, day, self._clean_years(day))
        changes = list_changes(before, after, state, message, effective_at=message.get("occurred_at") or "")
        return after, changes

    def clean_announcement(
        self, state: State, before: Mapping[str, bool], today: date
    ) -> tuple[dict[str, bool], list[dict[str, Any]]]:
        """The memberships on ``today`` of a subject no event has touched since, and the change a
        clean record beginning by then makes (``announce_clean`` per subject)."""
        years = self._clean_years(today)
        after = memberships(state, today, years)
        since = clean_record(state, today, years)["since"] or today.isoformat()
        return after, list_changes(before, after, state, None, effective_at=f"{since}T00:00:00+08:00")

    def saved_now(self, state: State, today: date | None = None) -> Saved:
        """A state to save as it stands today, its memberships as announced (a rebuild's view)."""
        if today is None:
            today = local_date(datetime.now(UTC))
        return self._saved(state, memberships(state, today, self._clean_years(today)))

    def clean_on(self, state: State) -> str | None:
        """The day a person's clean record begins (or began), as the scheduler looks for it."""
        since: str | None = clean_record(state, date.max, self._clean_years(date.max))["since"]
        return since

    def _saved(self, state: State, announced: Mapping[str, bool]) -> Saved:
        clean_on = None
        if state["kind"] == "person" and not announced.get("clean"):
            clean_on = self.clean_on(state)
        retention = {e.edition: e.retention_years for e in self.catalogue.editions}
        if not state["designations"]:
            return Saved(state, announced, clean_on, due(state, retention))
        rows = notice_rows(state, self.catalogue)
        return Saved(state, announced, clean_on, due(state, retention) + reminders_due(rows), rows)

    def _repair(
        self, key: str, had: int, message: Mapping[str, Any], notified: list[dict[str, Any]]
    ) -> State:
        """A gap in a subject's versions: rebuild it from the ledger's own history, deriving the
        notices of the versions it had not folded (the outbox keeps one copy of each)."""
        if self.history is None:
            raise OutOfOrder(f"subject {key}: version {message['version']} arrived out of order")
        log.warning("subject %s: version gap at %s; rebuilding it from the ledger", key, message["version"])
        state = empty(key)
        for m in self.history(key):
            if m["version"] <= message["version"]:
                state = fold_into(state, m)
                if m["version"] > had:
                    notified += notice_messages(state, m, self.catalogue)
        return state

    def announce_clean(self, today: date) -> list[dict[str, Any]]:
        """Clean-record eligibility begins on a date, with no event: announce those due by ``today``."""
        keys = self.store.clean_due(today.isoformat())
        if not keys:
            return []
        loaded = self.store.load(keys)
        changes: list[dict[str, Any]] = []
        saved = []
        for state, before in loaded.values():
            after, announced = self.clean_announcement(state, before, today)
            changes += announced
            saved.append(self._saved(state, after))
        self.store.save(saved, changes)
        return changes
