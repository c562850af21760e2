"""Feedback deadlines on the Chinese working-day calendar, the scheduler's reminders, and the
supervision figures per department and measure (issue 13, "Deadlines and supervision")."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.catalogue import Catalogue
from projections.scheduler import scheduled_submissions
from tests.unit.measuredesk import MeasureDesk, catalogue_with, designated, feedback, measure_desk, sub

SPRING_FESTIVAL_2026 = "2026-02-13T10:00:00+08:00"
"""Friday before the 2026 Spring Festival holiday (15 to 23 February; Saturday the 14th and the
28th are make-up working days)."""


def reminders(desk: MeasureDesk, today: date) -> list[dict[str, Any]]:
    due = desk.store.due_on_or_before(today.isoformat())
    return [c for c in scheduled_submissions(due, today) if c["action"] == "remind_feedback"]


def test_a_reminder_falls_on_the_right_working_day_across_the_spring_festival_holiday(
    tmp_path: Path,
) -> None:
    desk = measure_desk(catalogue_with(effective_from="2026-01-01"), tmp_path, now=SPRING_FESTIVAL_2026)
    designated(desk, at=SPRING_FESTIVAL_2026)
    row = desk.notices("court")[0]
    # Five working days: Saturday the 14th (a make-up day), then the 24th to the 27th; the
    # holiday in between counts for nothing. Counting Monday to Friday would say the 20th.
    assert (row["issued_on"], row["due_on"]) == ("2026-02-13", "2026-02-27")
    assert desk.messages()[0]["feedback_due"] == "2026-02-27"
    assert reminders(desk, date(2026, 2, 27)) == []  # still on time on the last day
    commands = reminders(desk, date(2026, 2, 28))
    assert len(commands) == len(desk.notices()) == 85
    first = commands[0]
    assert first["occurred_at"] == "2026-02-28T00:00:00+08:00"
    early = {**first, "submission_id": "EARLY-1", "occurred_at": "2026-02-27T23:00:00+08:00"}
    (outcome,) = desk.at("2026-02-28T09:00:00+08:00").send(early)
    assert (outcome.status, outcome.reason and outcome.reason["code"]) == ("rejected", "not_due")
    (outcome,) = desk.send(first)
    assert outcome.accepted, outcome.reason
    reminder = desk.messages()[-1]
    assert (reminder["type"], reminder["notice_id"], reminder["feedback_due"]) == (
        "reminder",
        first["notice_id"],
        "2026-02-27",
    )


def test_the_scheduler_reminds_each_overdue_notice_once_and_never_after_feedback(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    desk = measure_desk(catalogue, tmp_path)
    designated(desk)
    answered = desk.notices("court")[0]
    desk.at("2026-07-20T09:00:00+08:00").submit(feedback(answered, "applied", at="2026-07-20T09:00:00+08:00"))
    commands = reminders(desk, date(2026, 7, 20))
    assert answered["notice_id"] not in {c["notice_id"] for c in commands}
    assert len(commands) == 84
    assert reminders(desk, date(2026, 7, 20)) == commands  # the same ids every pass
    outcomes = desk.send(*commands)
    assert all(o.accepted for o in outcomes)
    assert reminders(desk, date(2026, 7, 21)) == []  # each state is reminded once
    again = desk.send(commands[0])
    assert again[0].duplicate
    reminded = [m for m in desk.messages() if m["type"] == "reminder"]
    assert len(reminded) == 84
    assert {m["department"] for m in reminded} == {n["department"] for n in desk.notices()}


def test_the_feedback_deadline_is_the_catalogues(tmp_path: Path) -> None:
    desk = measure_desk(catalogue_with(measure_feedback={"within_working_days": 2}), tmp_path)
    designated(desk)  # Friday 10 July 2026
    assert {n["due_on"] for n in desk.notices()} == {"2026-07-14"}


def test_statistics_per_department_and_measure_count_every_answer_and_the_on_time_rate(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    desk = measure_desk(catalogue, tmp_path)
    designated(desk)  # due 17 July
    court = {n["measure"]: n for n in desk.notices("court")}
    on_time, late = "2026-07-15T09:00:00+08:00", "2026-07-22T09:00:00+08:00"
    desk.at(on_time).submit(
        feedback(court["black.restrict_exit"], "applied", at=on_time),
        feedback(court["black.restrict_high_consumption"], "not_applicable", at=on_time),
    )
    desk.at(late).submit(
        feedback(court["black.restrict_air_rail_travel"], "applied", at=late),
        feedback(court["black.restrict_real_estate_purchase"], "failed", at=late),
    )
    answer = desk.measures.stats(desk.key("administrator", "credit_platform"), department="court")
    assert answer.ok, answer.body
    (figures,) = answer.body["by_department"]
    assert figures == {
        "department": "court",
        "received": 5,  # the court implements five black-list measures
        "applied": 2,
        "not_applicable": 1,
        "failed": 1,
        "stopped": 0,
        "overdue": 1,  # public disclosure, unanswered
        "late": 2,
        "median_delay_working_days": 5.5,  # two answers after 3 working days, two after 8
        "mandatory_counted": 4,  # the not-applicable one does not count
        "mandatory_applied_on_time": 1,
        "on_time_rate": 0.25,
    }
    everyone = desk.measures.stats(desk.key("auditor", "audit_office")).body
    exit_figures = next(m for m in everyone["by_measure"] if m["measure"] == "black.restrict_exit")
    assert (exit_figures["received"], exit_figures["applied"]) == (2, 1)  # court and public security
    assert everyone["totals"]["received"] == 85


@pytest.mark.parametrize(
    ("role", "organisation", "allowed"), [("department", "court", True), ("subject", "x", False)]
)
def test_statistics_are_for_departments_administrators_and_auditors_and_recorded(
    catalogue: Catalogue, tmp_path: Path, role: str, organisation: str, allowed: bool
) -> None:
    desk = measure_desk(catalogue, tmp_path)
    designated(desk)
    principal = desk.key(role, organisation, subject="91350100M000100Y43" if role == "subject" else None)
    answer = desk.measures.stats(principal)
    assert answer.ok is allowed
    desk.project()
    (recorded,) = desk.store.queries(endpoint="measures.stats")
    assert recorded["outcome"] == ("allowed" if allowed else "refused")
    if allowed:  # a department's key reads only its own figures
        assert {d["department"] for d in answer.body["by_department"]} == {"court"}


def test_a_notice_suspended_before_its_deadline_is_judged_by_the_deadline_after_it_resumed(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    desk = measure_desk(catalogue, tmp_path)
    designated(desk)  # due 17 July
    subject = {"id": "91350100M000100Y43", "name": "福州某某贸易有限公司"}
    record = {"provider": "market_regulator", "record_id": "SJ-2026-0201"}
    raised = sub("raise_objection", subject=subject, occurred_at="2026-07-13T09:00:00+08:00", record=record)
    desk.at("2026-07-13T09:00:00+08:00").submit(raised)
    rejected = sub(
        "resolve_objection",
        department="market_regulator",
        subject=subject,
        occurred_at="2026-07-20T09:00:00+08:00",
        record=record,
        objection_id=raised["objection_id"],
        outcome="rejected",
        explanation="经核查，原记录无误",
    )
    rejected.pop("remedy", None)
    rejected.pop("changes", None)
    desk.at("2026-07-20T09:00:00+08:00").submit(rejected)  # resumed: due 27 July
    court = desk.key("department", "court")
    before = desk.at("2026-07-27T18:00:00+08:00").measures.stats(court).body["totals"]
    assert (before["overdue"], before["mandatory_counted"], before["on_time_rate"]) == (0, 0, None)
    after = desk.at("2026-07-28T09:00:00+08:00").measures.stats(court).body["totals"]
    assert (after["overdue"], after["mandatory_counted"], after["on_time_rate"]) == (5, 5, 0.0)
    assert {n["due_on"] for n in desk.notices("court")} == {"2026-07-27"}
