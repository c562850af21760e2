"""Read models as stories: what a subject's status, the lists and the feed show as the ledger moves."""

from __future__ import annotations

import copy
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from contract.messages import messages_from_store
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from projections.fold import OutOfOrder, fold, fold_all
from projections.projector import Projector
from projections.scheduler import scheduled_submissions
from projections.store import ProjectionStore
from projections.views import status
from tests.conftest import ORGANISATION, OTHER_PERSON, PERSON, Clock, example, file_of


class World:
    """A ledger (in memory) and a projector (SQLite in tmp) kept in step by hand."""

    def __init__(self, ledger: CreditLedger, catalogue: Catalogue, path: Path) -> None:
        self.ledger = ledger
        self.catalogue = catalogue
        self.store = ProjectionStore(path)
        self.projector = Projector(self.store, catalogue, history=self.history)
        self.seen = 0
        self.changes: list[dict[str, Any]] = []

    def history(self, key: str) -> list[dict[str, Any]]:
        from uuid import UUID  # noqa: PLC0415

        return messages_from_store(self.ledger.reader, UUID(key))

    def submit(self, *subs: dict[str, Any]) -> None:
        for outcome in self.ledger.submit(list(subs)):
            assert outcome.accepted, outcome.reason
        self.project()

    def project(self) -> None:
        new = messages_from_store(self.ledger.reader)[self.seen :]
        self.seen += len(new)
        self.changes += self.projector.apply(new)

    def status(self, code: str, today: date) -> dict[str, Any]:
        key = str(file_of(self.ledger, code).id)
        state = self.store.state(key)
        assert state is not None
        return status(state, today, self.catalogue.latest)

    def changes_for(self, list_name: str) -> list[tuple[str, str]]:
        return [(c["change"], c["masked_code"]) for c in self.changes if c["list"] == list_name]


@pytest.fixture
def world(ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path) -> World:
    return World(ledger, catalogue, tmp_path / "projections.sqlite")


def sub(name: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example(name))
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


TODAY = date(2026, 11, 2)


def test_a_black_listed_subjects_sanctions_are_suspended_while_disputed_and_lifted_by_repair(
    world: World,
) -> None:
    serious = sub("file_record")
    serious["record"].update(category="tax_evasion", severity="general", display_months=6)
    black = sub("designate", department="tax_bureau", subject=serious["subject"])
    black["designation"]["records"] = [{"record_id": "SW-2026-0101"}]
    world.submit(serious, black)
    view = world.status(PERSON, TODAY)
    assert view["lists"]["black"]
    assert view["sanctions"]["in_force"]
    assert ("entry", "110105********002X") in world.changes_for("black")

    world.submit(sub("raise_objection"))
    view = world.status(PERSON, TODAY)
    assert view["disputed"] == ["tax_bureau:SW-2026-0101"]
    assert not view["sanctions"]["in_force"]
    assert all(s["why"] == "a record it rests on is disputed" for s in view["sanctions"]["suspended"])

    world.submit(sub("resolve_objection"))  # rejected: the sanctions resume
    assert world.status(PERSON, TODAY)["sanctions"]["in_force"]

    world.submit(sub("request_repair"), sub("decide_repair"))
    view = world.status(PERSON, TODAY)
    assert not view["lists"]["black"]
    assert view["records"] == []  # repaired: no longer shown or shared
    exit_change = [c for c in world.changes if c["list"] == "black" and c["change"] == "exit"]
    assert exit_change[0]["reason"] == "credit repair was granted"
    assert exit_change[0]["cause"]["type"] == "DesignationEnded"


def test_a_display_period_ends_by_a_scheduled_expiry_event_and_the_record_leaves_the_view(
    world: World,
) -> None:
    world.submit(sub("file_record_minor"))
    assert [r["record"] for r in world.status(PERSON, date(2026, 5, 1))["records"]] == [
        "transport:JT-2026-0401"
    ]
    due = world.store.due_on_or_before("2026-07-02")
    commands = scheduled_submissions(due, date(2026, 7, 2))
    assert [c["action"] for c in commands] == ["expire_record"]
    assert commands == scheduled_submissions(due, date(2026, 7, 9)), (
        "sending again is a duplicate, not a conflict"
    )
    assert scheduled_submissions(due, date(2026, 7, 1)) == []
    world.submit(*commands)
    assert world.status(PERSON, date(2026, 7, 2))["records"] == []
    assert world.store.due_on_or_before("2030-01-01") == []


def test_an_objection_left_past_its_deadline_is_marked_overdue_by_the_scheduler(world: World) -> None:
    world.submit(sub("file_record_minor"), sub("raise_objection_minor"))
    commands = scheduled_submissions(world.store.due_on_or_before("2026-05-01"), date(2026, 5, 1))
    assert [c["action"] for c in commands] == ["mark_objection_overdue"]
    world.submit(*commands)
    record = world.status(PERSON, date(2026, 5, 2))["records"][0]
    assert record["open_objection"]["overdue"]


def test_three_years_without_an_adverse_record_make_a_person_eligible_on_that_date(
    world: World, clock: Clock
) -> None:
    old = sub("file_record", occurred_at="2023-05-01T09:00:00+08:00")
    old["record"]["decision"]["date"] = "2023-04-28"
    old["occurred_at"] = "2026-04-02T09:00:00+08:00"
    world.submit(old)
    view = world.status(PERSON, date(2026, 4, 27))
    assert view["clean_record"] == {
        "eligible": False,
        "since": "2026-04-28",
        "last_adverse": {"record": "tax_bureau:SW-2026-0101", "decision_date": "2023-04-28"},
    }
    assert world.projector.announce_clean(date(2026, 4, 27)) == []
    (change,) = world.projector.announce_clean(date(2026, 4, 28))
    assert (change["list"], change["change"], change["effective_at"]) == (
        "clean",
        "entry",
        "2026-04-28T00:00:00+08:00",
    )
    assert change["cause"] is None  # time alone brought it
    assert world.projector.announce_clean(date(2026, 5, 1)) == [], "announced once"


def test_an_organisations_serious_record_reaches_its_responsible_persons_status(world: World) -> None:
    world.submit(sub("file_record_organisation"))
    person = world.status(OTHER_PERSON, TODAY)
    (record,) = person["records"]
    assert record["linked_from"]["record"] == "market_regulator:SJ-2026-0201"
    assert person["counts"]["adverse"]["serious"] == 1
    assert not person["clean_record"]["eligible"]
    assert world.status(ORGANISATION, TODAY)["records"][0]["responsible_persons"] == [
        person["subject"]["subject_key"]
    ]


def test_the_score_is_explained_point_by_point(world: World) -> None:
    world.submit(sub("file_record_minor"))
    score = world.status(PERSON, date(2026, 5, 1))["score"]
    assert score["contributions"] == [
        {"source": "transport:JT-2026-0401", "rule": "adverse.minor", "points": -5}
    ]
    assert score["value"] == score["base"] - 5


def test_the_lists_filter_by_domain_department_and_date(world: World) -> None:
    world.submit(sub("file_record_organisation"), sub("designate"))
    (row,) = world.store.members("black", domain="product_quality")
    assert (row["masked_code"], row["department"], row["document_number"]) == (
        "91350100M000100Y43",
        "market_regulator",
        "闽市监信〔2026〕202号",
    )
    assert world.store.members("black", domain="taxation") == []
    assert world.store.members("black", department="court") == []
    assert world.store.members("black", since="2026-07-11") == []
    assert world.store.members("red") == []


def test_redelivered_and_republished_messages_change_nothing(world: World) -> None:
    world.submit(sub("file_record_organisation"), sub("designate"), sub("file_record"))
    before = list(world.store.states())
    changes = len(world.changes)
    world.projector.apply(messages_from_store(world.ledger.reader))  # the whole ledger again
    world.projector.apply(list(reversed(messages_from_store(world.ledger.reader))))  # and out of order
    assert list(world.store.states()) == before
    assert len(world.changes) == changes


def test_a_gap_in_a_subjects_versions_is_repaired_from_the_ledger(world: World) -> None:
    world.ledger.submit([sub("file_record"), sub("correct_record"), sub("raise_objection")])
    messages = messages_from_store(world.ledger.reader)
    world.projector.apply([m for m in messages if m["version"] != 2])  # version 2 lost in transit
    state = world.store.state(messages[0]["subject_key"])
    assert state is not None
    assert state["version"] == messages[-1]["version"]
    title = world.ledger.privacy.open(state["records"]["tax_bureau:SW-2026-0101"]["title"])  # type: ignore[union-attr]
    assert title.endswith("（2025年度），处以罚款")


def test_the_pure_fold_never_changes_its_input_and_rejects_gaps() -> None:
    opened = {
        "type": "Opened",
        "subject_key": "k",
        "version": 1,
        "position": 1,
        "body": {"subject_kind": "person", "masked_code": "m", "name": "n"},
    }
    state = fold(None, opened)
    assert fold(state, opened) == state  # a re-delivery changes nothing
    with pytest.raises(OutOfOrder):
        fold(state, {**opened, "version": 3})
    later = fold(state, {"type": "StatementAdded", "subject_key": "k", "version": 2, "body": {}})
    assert (state["statements"], later["statements"]) == (0, 1)


def test_folding_a_generated_ledger_in_any_per_subject_interleaving_gives_the_same_states(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    ledger.submit(SubmissionGenerator(catalogue.latest, subjects=15, seed=4, bad_ratio=0.05).take(400))
    messages = messages_from_store(ledger.reader)
    reference = fold_all(messages)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_subject.setdefault(m["subject_key"], []).append(m)
    rng = random.Random(3)
    queues = list(by_subject.values())
    shuffled = []
    while queues:
        queue = rng.choice(queues)
        shuffled.append(queue.pop(0))
        queues = [q for q in queues if q]
    assert fold_all(shuffled) == reference


def test_status_as_of_a_past_moment_folds_the_subjects_events_up_to_then(world: World, clock: Clock) -> None:
    clock.set("2026-06-01T02:00:00+00:00")
    world.submit(sub("file_record"))
    clock.set("2026-09-08T08:00:00+00:00")
    world.submit(sub("request_repair"), sub("decide_repair"))
    from projections.asof import status_as_of  # noqa: PLC0415

    key = file_of(world.ledger, PERSON).id
    history = messages_from_store(world.ledger.reader, key)
    before = status_as_of(history, str(key), datetime(2026, 7, 1, tzinfo=UTC), world.catalogue)
    after = status_as_of(history, str(key), datetime(2026, 9, 9, tzinfo=UTC), world.catalogue)
    assert [r["record"] for r in before["records"]] == ["tax_bureau:SW-2026-0101"]
    assert after["records"] == []
    live = world.status(PERSON, date(2026, 9, 9))
    assert after == live


def test_a_new_file_is_not_announced_clean_until_three_years_have_been_observed(world: World) -> None:
    world.submit(sub("add_statement", subject={"id": "440524188001010014", "name": "李四"}, record=None))
    assert world.changes_for("clean") == []  # no entry-then-exit noise for every new file
    view = world.status("440524188001010014", TODAY)
    assert view["clean_record"] == {"eligible": False, "since": "2029-11-02", "last_adverse": None}


def test_a_display_period_that_began_before_the_first_edition_still_expires(world: World) -> None:
    old = sub("file_record_minor", submission_id="TRN-OLD")
    old["record"].update(record_id="JT-OLD", decision={"document_number": "旧文书", "date": "2025-12-01"})
    world.submit(old)
    commands = scheduled_submissions(world.store.due_on_or_before("2026-03-01"), date(2026, 3, 1))
    assert [c["occurred_at"] for c in commands] == ["2026-03-01T00:00:00+08:00"]  # before the 2026-04 edition
    world.submit(*commands)
    assert world.status(PERSON, TODAY)["records"] == []
