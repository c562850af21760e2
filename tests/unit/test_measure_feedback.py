"""Execution feedback (执行反馈) on measure notices: the rules, judged on the subject's own file (issue 13).

Each rule is a typed rejection naming the field; accepted feedback is a hash-chained event on the
subject's credit file, which the read models fold.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from contract.messages import messages_from_store
from ledger.application import submissions
from ledger.domain.catalogue import Catalogue
from tests.conftest import example
from tests.unit.measuredesk import DESIGNATION, MeasureDesk, designated, feedback, measure_desk, sub

AFTER = "2026-07-13T10:00:00+08:00"


@pytest.fixture
def desk(catalogue: Catalogue, tmp_path: Path) -> MeasureDesk:
    d = measure_desk(catalogue, tmp_path)
    designated(d)
    return d.at(AFTER)


def court_exit(desk: MeasureDesk) -> dict[str, Any]:
    return next(n for n in desk.notices("court") if n["measure"] == "black.restrict_exit")


def rejected(desk: MeasureDesk, submission: dict[str, Any]) -> dict[str, str]:
    (outcome,) = desk.send(submission)
    assert outcome.status == "rejected", outcome
    assert outcome.reason is not None
    return outcome.reason


def accepted(desk: MeasureDesk, submission: dict[str, Any]) -> None:
    (outcome,) = desk.send(submission)
    assert outcome.accepted, outcome.reason


def withdraw(desk: MeasureDesk, at: str) -> None:
    ended = sub("end_designation", submission_id="END-1", occurred_at=at, designation_id=DESIGNATION)
    ended["reason"] = "withdrawn"
    accepted(desk.at(at), ended)


def test_applied_feedback_becomes_a_hash_chained_event_on_the_subjects_file(desk: MeasureDesk) -> None:
    notice = court_exit(desk)
    accepted(desk, feedback(notice, "applied", at=AFTER, state_version=1))
    last = messages_from_store(desk.ledger.reader, desk.organisation.id)[-1]
    assert last["type"] == "FeedbackReported"
    assert (last["department"], last["body"]["outcome"], last["body"]["state_version"]) == (
        "court",
        "applied",
        1,
    )
    assert last["body"]["measure"] == "black.restrict_exit"
    assert desk.ledger.verify(desk.organisation.id) == []
    row = court_exit(desk)
    assert (row["feedback"], row["response"], row["first_response_on"]) == (
        "applied",
        "applied",
        "2026-07-13",
    )


def test_feedback_by_another_department_is_rejected_naming_the_department(desk: MeasureDesk) -> None:
    reason = rejected(desk, feedback(court_exit(desk), "applied", at=AFTER, department="tax_bureau"))
    assert (reason["code"], reason["field"]) == ("not_authorised", "department")
    assert "addressed to 'court'" in reason["message"]


def test_feedback_on_a_notice_that_does_not_exist_is_rejected(desk: MeasureDesk) -> None:
    made_up = {**court_exit(desk), "notice_id": "00000000-0000-5000-8000-000000000000"}
    reason = rejected(desk, feedback(made_up, "applied", at=AFTER))
    assert (reason["code"], reason["field"]) == ("unknown_notice", "feedback.notice_id")


def test_applied_after_withdrawal_is_rejected(desk: MeasureDesk) -> None:
    withdraw(desk, "2026-07-14T09:00:00+08:00")
    later = "2026-07-15T09:00:00+08:00"
    reason = rejected(desk.at(later), feedback(court_exit(desk), "applied", at=later))
    assert (reason["code"], reason["field"]) == ("notice_not_in_force", "feedback.outcome")
    assert "withdrawn" in reason["message"]


def test_stopped_is_reported_only_after_a_suspension_or_a_withdrawal(desk: MeasureDesk) -> None:
    notice = court_exit(desk)
    reason = rejected(desk, feedback(notice, "stopped", at=AFTER))
    assert (reason["code"], reason["field"]) == ("notice_in_force", "feedback.outcome")
    accepted(desk, feedback(notice, "applied", at=AFTER))
    withdraw(desk, "2026-07-14T09:00:00+08:00")
    accepted(
        desk.at("2026-07-15T09:00:00+08:00"), feedback(notice, "stopped", at="2026-07-15T09:00:00+08:00")
    )
    row = court_exit(desk)
    assert (row["state"], row["feedback"], row["response"], row["stopped"]) == (
        "withdrawn",
        "stopped",
        "applied",
        True,
    )


def test_one_feedback_per_state_of_a_notice_and_a_correction_supersedes_it(desk: MeasureDesk) -> None:
    notice = court_exit(desk)
    accepted(desk, feedback(notice, "failed", at=AFTER, feedback_id="FK-1", reason="系统故障"))
    again = feedback(notice, "applied", at=AFTER, feedback_id="FK-2")
    reason = rejected(desk, again)
    assert (reason["code"], reason["field"]) == ("feedback_exists", "feedback.supersedes")
    wrong = feedback(notice, "applied", at=AFTER, feedback_id="FK-3", supersedes="FK-9")
    assert rejected(desk, wrong)["field"] == "feedback.supersedes"
    accepted(desk, feedback(notice, "applied", at=AFTER, feedback_id="FK-4", supersedes="FK-1"))
    assert court_exit(desk)["response"] == "applied"
    reused = feedback(notice, "applied", at=AFTER, feedback_id="FK-1", supersedes="FK-4")
    assert rejected(desk, reused) == {
        "code": "duplicate_id",
        "field": "feedback.feedback_id",
        "message": "feedback 'FK-1' was already reported",
    }


def test_feedback_on_a_state_the_notice_has_left_is_rejected_as_stale(desk: MeasureDesk) -> None:
    withdraw(desk, "2026-07-14T09:00:00+08:00")
    late = feedback(court_exit(desk), "stopped", at="2026-07-15T09:00:00+08:00", state_version=1)
    reason = rejected(desk.at("2026-07-15T09:00:00+08:00"), late)
    assert (reason["code"], reason["field"]) == ("stale_notice", "feedback.state_version")
    assert "state version 2 (withdrawn" in reason["message"]


def test_a_measure_is_not_applied_before_its_designation_took_effect(desk: MeasureDesk) -> None:
    reason = rejected(desk, feedback(court_exit(desk), "applied", at=AFTER, applied_on="2026-07-01"))
    assert (reason["code"], reason["field"]) == ("invalid_date", "feedback.applied_on")


def test_applied_needs_the_business_reference_and_the_day_named_by_the_schema() -> None:
    missing = copy.deepcopy(example("report_feedback"))
    del missing["feedback"]["business_reference"]
    with pytest.raises(submissions.InvalidInput) as refused:
        submissions.parse(missing, now=submissions.strict_datetime("2026-07-20T00:00:00+08:00", "now"))
    assert (refused.value.code, refused.value.field) == ("missing_field", "feedback.business_reference")
    fractional = copy.deepcopy(example("report_feedback"))
    fractional["feedback"]["state_version"] = 1.0
    with pytest.raises(submissions.InvalidInput) as refused:
        submissions.parse(fractional, now=submissions.strict_datetime("2026-07-20T00:00:00+08:00", "now"))
    assert refused.value.field == "feedback.state_version"


def test_a_department_addresses_the_file_by_the_key_its_notice_carried_but_only_for_feedback(
    desk: MeasureDesk,
) -> None:
    notice = court_exit(desk)
    accepted(desk, feedback(notice, "applied", at=AFTER))  # subject: {"key": ...}
    keyed = sub("end_designation", submission_id="END-K", occurred_at=AFTER, designation_id=DESIGNATION)
    keyed["subject"] = {"key": notice["subject_key"]}
    reason = rejected(desk, keyed)
    assert (reason["code"], reason["field"]) == ("not_authorised", "subject.key")


def test_the_published_examples_are_accepted_in_order(catalogue: Catalogue, tmp_path: Path) -> None:
    desk = measure_desk(catalogue, tmp_path, now="2026-07-20T09:00:00+08:00")
    outcomes = desk.send(
        example("file_record_organisation"),
        example("designate"),
        example("report_feedback"),
        example("report_feedback_not_applicable"),
        example("remind_feedback"),
    )
    assert [o.status for o in outcomes] == ["accepted"] * 5, [o.reason for o in outcomes]
    reminded = next(m for m in desk.messages() if m["type"] == "reminder")
    assert (reminded["department"], reminded["feedback_due"]) == ("state_assets", "2026-07-17")
