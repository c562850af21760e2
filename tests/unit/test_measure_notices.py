"""Measure notices (信息推送) follow a designation: issued, suspended, resumed, withdrawn (issue 13).

Stories through the ledger's one entry point and the live projector, in memory; the notices are
read back from the read models' rows and the credit.measures outbox.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import orjson
import pytest

from contract.measures import DEPARTMENT_HEADER, measures_record, message_id
from contract.messages import messages_from_store
from ledger.application.measures import file_measures
from ledger.domain.catalogue import Catalogue
from ledger.domain.notices import notice_id
from projections.compare import compare_stores
from projections.rebuild import Rebuild
from projections.store import ProjectionStore
from tests.unit.measuredesk import (
    DESIGNATION,
    MeasureDesk,
    catalogue_with,
    designated,
    measure_desk,
    sub,
)


@pytest.fixture
def desk(catalogue: Catalogue, tmp_path: Path) -> MeasureDesk:
    return measure_desk(catalogue, tmp_path)


ORGANISATION_SUBJECT = {"id": "91350100M000100Y43", "name": "福州某某贸易有限公司"}


def objection(at: str, objection_id: str = "YY-2026-0301") -> dict[str, object]:
    return sub(
        "raise_objection",
        subject=ORGANISATION_SUBJECT,
        submission_id=f"OBJ-{objection_id}",
        occurred_at=at,
        record={"provider": "market_regulator", "record_id": "SJ-2026-0201"},
        objection_id=objection_id,
        grounds="本企业对认定事实有异议",
    )


def resolution(at: str, outcome: str, objection_id: str = "YY-2026-0301") -> dict[str, object]:
    body = sub(
        "resolve_objection",
        submission_id=f"RES-{objection_id}",
        department="market_regulator",
        occurred_at=at,
        record={"record_id": "SJ-2026-0201"},
        objection_id=objection_id,
        outcome=outcome,
        explanation="经核查",
    )
    body["subject"] = ORGANISATION_SUBJECT
    body.pop("changes", None)
    body.pop("remedy", None)
    return body


def test_a_black_list_designation_notifies_exactly_the_catalogues_implementing_departments(
    desk: MeasureDesk, catalogue: Catalogue
) -> None:
    designated(desk)
    expected = Counter(
        (m.id, d) for m in catalogue.latest.measures_for("black") for d in m.implementing_departments
    )
    notices = desk.notices()
    assert Counter((n["measure"], n["department"]) for n in notices) == expected
    assert len(notices) == 85
    assert {n["state"] for n in notices} == {"issued"}
    messages = desk.messages()
    assert Counter((m["measure"]["id"], m["department"]) for m in messages) == expected
    court = next(m for m in messages if m["department"] == "court" and m["measure"]["id"].endswith("exit"))
    assert court["masked_code"] == "91350100M000100Y43"
    assert (court["designation_id"], court["document_number"]) == (DESIGNATION, "闽市监信〔2026〕202号")
    assert court["in_force"] == {"from": "2026-07-10", "until": "2029-07-10"}
    assert court["feedback_due"] == "2026-07-17"  # five working days after Friday 10 July
    assert court["notice_id"] == notice_id(court["subject_key"], DESIGNATION, "black.restrict_exit", "court")
    key, value, headers = measures_record(court)
    assert key == court["subject_key"].encode()
    assert headers == [(DEPARTMENT_HEADER, b"court")]
    assert orjson.loads(value) == court


def test_a_measure_not_published_in_the_catalogue_is_never_notified(tmp_path: Path) -> None:
    desk = measure_desk(catalogue_with(unpublished=["black.restrict_exit"]), tmp_path)
    designated(desk)
    assert not [n for n in desk.notices() if n["measure"] == "black.restrict_exit"]
    assert not [m for m in desk.messages() if m["measure"]["id"] == "black.restrict_exit"]
    assert len(desk.notices()) == 85 - 2  # the court and public security would have implemented it


def test_an_objection_suspends_the_notices_and_its_rejection_resumes_them(desk: MeasureDesk) -> None:
    designated(desk)
    desk.at("2026-07-13T09:00:00+08:00").submit(objection("2026-07-13T09:00:00+08:00"))
    assert {(n["state"], n["state_version"]) for n in desk.notices()} == {("suspended", 2)}
    desk.at("2026-07-20T09:00:00+08:00").submit(resolution("2026-07-20T09:00:00+08:00", "rejected"))
    assert {(n["state"], n["state_version"]) for n in desk.notices()} == {("resumed", 3)}
    court = [m for m in desk.messages() if m["department"] == "court" and m["measure"]["id"].endswith("exit")]
    assert [(m["state"], m["state_version"]) for m in court] == [
        ("issued", 1),
        ("suspended", 2),
        ("resumed", 3),
    ]
    # Each follow-up refers to the original notice: the same id, its issue time, the state it follows.
    assert {m["notice_id"] for m in court} == {court[0]["notice_id"]}
    assert {m["issued_at"] for m in court} == {court[0]["effective_at"]}
    assert [m["follows"] for m in court] == [
        None,
        {"state": "issued", "state_version": 1},
        {"state": "suspended", "state_version": 2},
    ]
    assert court[1]["feedback_due"] is None  # nothing is applied while suspended
    assert court[2]["feedback_due"] == "2026-07-27"  # five working days after the resumption
    assert court[1]["reason"] == "a record it rests on is disputed"


def test_an_upheld_objection_withdraws_the_notices(desk: MeasureDesk) -> None:
    designated(desk)
    desk.at("2026-07-13T09:00:00+08:00").submit(objection("2026-07-13T09:00:00+08:00"))
    upheld = resolution("2026-07-20T09:00:00+08:00", "upheld")
    upheld.update(remedy="correct", changes={"title": "更正后的处罚决定"})
    desk.at("2026-07-20T09:00:00+08:00").submit(upheld)
    assert {(n["state"], n["state_version"]) for n in desk.notices()} == {("withdrawn", 3)}
    last = desk.messages()[-1]
    assert last["reason"] == "an objection to a record it rests on was upheld"
    assert last["cause"]["type"] == "ObjectionResolved"


def test_a_repair_withdraws_the_notices(desk: MeasureDesk) -> None:
    designated(desk)
    assert {n["state"] for n in desk.notices()} == {"issued"}
    repair = {"record": {"provider": "market_regulator", "record_id": "SJ-2026-0201"}}
    desk.at("2027-08-01T09:00:00+08:00").submit(
        sub(
            "request_repair",
            submission_id="REP-1",
            subject=ORGANISATION_SUBJECT,
            occurred_at="2027-08-01T09:00:00+08:00",
            **repair,
        )
    )
    decided = sub(
        "decide_repair",
        submission_id="REP-2",
        department="market_regulator",
        occurred_at="2027-08-05T09:00:00+08:00",
        record={"record_id": "SJ-2026-0201"},
    )
    decided["subject"] = ORGANISATION_SUBJECT
    outcomes = desk.at("2027-08-05T09:00:00+08:00").send(decided)
    assert outcomes[0].accepted, outcomes[0].reason
    assert {n["state"] for n in desk.notices()} == {"withdrawn"}
    withdrawal = desk.messages()[-1]
    assert (withdrawal["state"], withdrawal["reason"]) == (
        "withdrawn",
        "every record it rests on has ended: repaired",
    )
    assert withdrawal["cause"]["type"] == "RepairGranted"
    assert desk.organisation.designations[DESIGNATION].ended_reason == "repaired"


def test_the_file_and_the_read_models_agree_on_every_notice_and_its_state(
    desk: MeasureDesk, catalogue: Catalogue
) -> None:
    designated(desk)
    desk.at("2026-07-13T09:00:00+08:00").submit(objection("2026-07-13T09:00:00+08:00"))
    on_file = file_measures(desk.organisation, catalogue)
    designation = desk.organisation.designations[DESIGNATION]
    assert (designation.notice_state, designation.notice_version) == ("suspended", 2)
    assert sum(len(m["departments"]) for m in on_file) == len(desk.notices()) == 85
    assert {(m["state"], m["state_version"]) for m in on_file} == {("suspended", 2)}


def test_a_redelivered_ledger_message_notifies_nothing_twice(desk: MeasureDesk) -> None:
    designated(desk)
    before = desk.messages()
    desk.projector.apply(messages_from_store(desk.ledger.reader))  # the whole ledger again
    assert desk.messages() == before
    assert len({message_id(m) for m in before}) == len(before)


def test_a_rebuild_produces_the_same_notices_as_the_live_projector(desk: MeasureDesk, tmp_path: Path) -> None:
    designated(desk)
    desk.at("2026-07-13T09:00:00+08:00").submit(objection("2026-07-13T09:00:00+08:00"))
    rebuild = Rebuild(desk.ledger.catalogue, today=date(2026, 7, 13))
    rebuild.fold(orjson.dumps(m) for m in messages_from_store(desk.ledger.reader))
    rebuilt = ProjectionStore(tmp_path / "rebuilt.sqlite", names=desk.ledger.name_index.of)
    rebuild.write(rebuilt, desk.ledger.catalogue)
    assert compare_stores(desk.store, rebuilt) == []
    assert [message_id(m) for m in rebuilt.notice_messages()] == [message_id(m) for m in desk.messages()]
    assert len(rebuilt.notice_rows()) == 85
