"""A rebuild reproduces the derived feeds, and the comparison looks at them (issue 10 item 15);
a new person's file is not clean when it opens (item 18).

The live side is the projector fed by hand from an in-memory ledger (as in ``test_projections``),
with the scheduler's clean-record announcements run on chosen days; the rebuild folds the same
ledger messages in one pass.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract.messages import messages_from_store
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from projections.compare import compare_stores
from projections.projector import Projector
from projections.rebuild import Rebuild, write
from projections.store import ProjectionStore
from tests.conftest import OTHER_PERSON, PERSON, Clock, example


class Live:
    """The ledger and the live projector, kept in step by hand."""

    def __init__(self, ledger: CreditLedger, catalogue: Catalogue, clock: Clock, path: Path) -> None:
        self.ledger, self.catalogue, self.clock = ledger, catalogue, clock
        self.store = ProjectionStore(path)
        self.projector = Projector(self.store, catalogue)
        self.seen = 0

    def submit(self, at: str, *subs: dict[str, Any]) -> None:
        self.clock.set(at)
        for outcome in self.ledger.submit(list(subs)):
            assert outcome.accepted, outcome.reason
        new = messages_from_store(self.ledger.reader)[self.seen :]
        self.seen += len(new)
        self.projector.apply(new)

    def rebuilt(self, path: Path, today: date) -> ProjectionStore:
        rebuild = Rebuild(self.catalogue, today=today)
        rebuild.fold(orjson.dumps(m) for m in messages_from_store(self.ledger.reader))
        store = ProjectionStore(path)
        rebuild.write(store, self.catalogue)
        return store


@pytest.fixture
def live(ledger: CreditLedger, catalogue: Catalogue, clock: Clock, tmp_path: Path) -> Live:
    return Live(ledger, catalogue, clock, tmp_path / "live.sqlite")


def sub(name: str, at: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example(name))
    body.update(changes, occurred_at=at)
    return body


def old_adverse(submission_id: str, code: str, decided: str, record_id: str) -> dict[str, Any]:
    """A general tax penalty decided long before it is filed (in 2026), so its clean record begins soon."""
    filing = sub("file_record", "2026-04-02T09:00:00+08:00", submission_id=submission_id)
    filing["subject"] = {"id": code, "name": "某人"}
    filing["record"].update(record_id=record_id, display_months=6)
    filing["record"]["decision"]["date"] = decided
    return filing


def a_history(live: Live) -> None:
    """Black- and red-list entries and exits, a clean record begun by time and ended by an event."""
    live.submit("2026-04-02T10:00:00+08:00", old_adverse("T-1", PERSON, "2023-04-28", "R-1"))
    live.submit("2026-04-02T10:00:00+08:00", old_adverse("T-2", OTHER_PERSON, "2023-05-20", "R-2"))
    live.projector.announce_clean(date(2026, 4, 28))  # the scheduler's day: PERSON's clean record begins
    black = sub("designate", "2026-06-01T10:00:00+08:00")
    black["designation"].update(records=[], valid_from="2026-06-01")  # the organisation's black-list entry
    live.submit("2026-06-01T10:00:00+08:00", black)
    live.submit(
        "2026-06-20T10:00:00+08:00",
        sub("end_designation", "2026-06-20T10:00:00+08:00", reason="withdrawn"),
    )
    fresh = old_adverse("T-3", PERSON, "2026-06-25", "R-3")  # a new adverse record: clean exit
    fresh["occurred_at"] = "2026-07-01T09:00:00+08:00"
    live.submit("2026-07-01T10:00:00+08:00", fresh)
    live.projector.announce_clean(date(2026, 11, 2))  # OTHER_PERSON's began on 2026-05-20


def test_item_15_a_rebuild_derives_the_list_change_feed_and_equals_the_live_store(
    live: Live, tmp_path: Path
) -> None:
    a_history(live)
    live_changes = list(live.store.list_changes())
    assert {(c["list"], c["change"]) for c in live_changes} >= {
        ("black", "entry"),
        ("black", "exit"),
        ("clean", "entry"),
        ("clean", "exit"),
    }
    rebuilt = live.rebuilt(tmp_path / "rebuilt.sqlite", date(2026, 11, 2))
    assert compare_stores(live.store, rebuilt) == []
    assert len(list(rebuilt.list_changes())) == len(live_changes)


def test_item_15_a_rebuild_without_the_feed_is_reported_not_passed(live: Live, tmp_path: Path) -> None:
    a_history(live)
    states_only = ProjectionStore(tmp_path / "states-only.sqlite")
    rebuild = Rebuild(live.catalogue)
    rebuild.fold(orjson.dumps(m) for m in messages_from_store(live.ledger.reader))
    write(states_only, rebuild.states, live.catalogue)  # what the rebuild wrote before: no feed
    diffs = compare_stores(live.store, states_only)
    assert diffs
    # Every feed it lacks is named: the list changes, and the black-list entry's measure notices.
    assert {d["view"] for d in diffs} == {"list_changes", "measure_notices"}
    assert all(str(d["found"]).startswith("(absent") for d in diffs)


def test_item_15_a_list_change_that_differs_is_named_by_subject_list_and_place(
    live: Live, tmp_path: Path
) -> None:
    a_history(live)
    rebuilt = live.rebuilt(tmp_path / "rebuilt.sqlite", date(2026, 11, 2))
    first_black = next(c for c in live.store.list_changes() if c["list"] == "black")
    positions = rebuilt.conn.execute(
        "SELECT position, message FROM list_changes ORDER BY position"
    ).fetchall()
    gone = next(p for p, m in positions if orjson.loads(m)["list"] == "black")
    rebuilt.conn.execute("DELETE FROM list_changes WHERE position = ?", (gone,))
    (diff,) = compare_stores(live.store, rebuilt)
    assert (diff["subject"], diff["view"], diff["field"]) == (
        first_black["subject_key"],
        "list_changes",
        "black[0]",
    )
    assert diff["expected"]["change"] == "entry"


def test_item_15_a_clean_record_the_live_scheduler_has_not_announced_yet_is_a_difference(
    live: Live, tmp_path: Path
) -> None:
    live.submit("2026-04-02T10:00:00+08:00", old_adverse("T-1", PERSON, "2023-04-28", "R-1"))
    rebuilt = live.rebuilt(tmp_path / "rebuilt.sqlite", date(2026, 11, 2))
    (diff,) = compare_stores(live.store, rebuilt)
    assert (diff["view"], diff["field"], diff["expected"]) == (
        "list_changes",
        "clean[0]",
        "(absent: 0 items)",
    )
    live.projector.announce_clean(date(2026, 11, 2))
    assert compare_stores(live.store, rebuilt) == []


def test_item_18_a_new_persons_file_is_not_clean_when_it_opens_but_after_three_years(live: Live) -> None:
    statement = sub("add_statement", "2026-06-16T09:00:00+08:00")
    del statement["record"]  # opens the file: no record, so no adverse one
    live.submit("2026-06-16T10:00:00+08:00", statement)
    assert list(live.store.list_changes()) == []  # no clean entry on opening
    assert live.projector.announce_clean(date(2029, 6, 15)) == []
    (entry,) = live.projector.announce_clean(date(2029, 6, 16))
    assert (entry["list"], entry["change"], entry["effective_at"]) == (
        "clean",
        "entry",
        "2029-06-16T00:00:00+08:00",
    )
