"""The rules of execution feedback (执行反馈) on a measure notice: small guards the credit file applies.

Each raises one ``LedgerError`` naming the field at fault. They are judged on the file's own
events: the notice's state comes from the designation it follows (``ledger.domain.notices``).
"""

from __future__ import annotations

from datetime import date, datetime

from ledger.domain import notices
from ledger.domain.errors import NotAuthorised, RuleViolation, UnknownRecord
from ledger.domain.notices import Notice
from ledger.domain.records import Designation, Feedback
from ledger.domain.workdays import local_date


def check_addressed(notice: Notice, department: str) -> None:
    """Only the department a notice is addressed to reports on it."""
    if department != notice.department:
        raise NotAuthorised(
            f"notice {notice.notice_id} ({notice.measure.id}) is addressed to {notice.department!r}; "
            "only that department reports feedback on it",
            field="department",
        )


def check_answers_current(notice: Notice, designation: Designation, state_version: int | None) -> None:
    """Feedback that names a state version answers the notice's current one."""
    if state_version is not None and state_version != designation.notice_version:
        raise RuleViolation(
            f"notice {notice.notice_id} is at state version {designation.notice_version} "
            f"({designation.notice_state} since {designation.notice_since}); this feedback answers "
            f"version {state_version}",
            field="feedback.state_version",
            code="stale_notice",
        )


def check_outcome_fits(notice: Notice, outcome: str, state: str | None) -> None:
    """applied, not applicable and failed only while in force; stopped only after a suspension or
    a withdrawal."""
    if outcome in notices.RESPONSES and state not in notices.IN_FORCE:
        raise RuleViolation(
            f"notice {notice.notice_id} is {state}: {outcome} is reported only while a notice is in "
            "force (issued or resumed)",
            field="feedback.outcome",
            code="notice_not_in_force",
        )
    if outcome == notices.STOPPED and state not in notices.STOPPABLE:
        raise RuleViolation(
            f"notice {notice.notice_id} is {state}: stopped is reported only after a suspension or a "
            "withdrawal",
            field="feedback.outcome",
            code="notice_in_force",
        )


def check_new_id(feedback_id: str, used: set[str]) -> None:
    if feedback_id in used:
        raise RuleViolation(
            f"feedback {feedback_id!r} was already reported",
            field="feedback.feedback_id",
            code="duplicate_id",
        )


def check_one_per_state(
    notice: Notice, version: int, standing: Feedback | None, supersedes: str | None
) -> None:
    """One feedback per state of a notice; a correction names the feedback it supersedes."""
    if supersedes is None and standing is not None:
        raise RuleViolation(
            f"notice {notice.notice_id} already has feedback {standing.feedback_id!r} "
            f"({standing.outcome}) for state version {version}; to correct it, send "
            f"supersedes: {standing.feedback_id!r}",
            field="feedback.supersedes",
            code="feedback_exists",
        )
    if supersedes is not None and (standing is None or standing.feedback_id != supersedes):
        stands = f"feedback {standing.feedback_id!r} stands" if standing else "there is none"
        raise UnknownRecord(
            f"feedback {supersedes!r} is not the feedback standing on notice {notice.notice_id} "
            f"for state version {version} ({stands})",
            field="feedback.supersedes",
        )


def check_acted_on(designation: Designation, on: date | None, name: str, reported_on: date) -> None:
    """The day a measure was applied or stopped: not after the report, not before the designation."""
    if on is None:
        return
    if on > reported_on:
        raise RuleViolation(
            f"{name} {on.isoformat()} is after occurred_at {reported_on.isoformat()}",
            field=f"feedback.{name}",
            code="invalid_date",
        )
    made = local_date(datetime.fromisoformat(designation.made_at))
    if on < made:
        raise RuleViolation(
            f"{name} {on.isoformat()} is before designation {designation.designation_id} took effect "
            f"({made.isoformat()})",
            field=f"feedback.{name}",
            code="invalid_date",
        )
