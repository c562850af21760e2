"""The demo's implementing departments: how each answers a measure notice, as a pure function.

Every implementing department of the catalogue takes part. What a department does with a notice
is decided by the notice's id alone, so the same notice always gets the same answer:

| share | the department |
| --- | --- |
| 45% | applies the measure within a few days (on time) |
| 10% | applies it, but a week or more after the notice (late) |
| 15% | reports it not applicable (no business with the subject) |
| 5% | reports that it failed |
| 10% | answers only when the platform reminds it (after the deadline) |
| 15% | never answers: the notice stays overdue |

A department that applied a measure reports it ``stopped`` when the notice is suspended or
withdrawn. Feedback is dated after the notice by the chosen delay, but never later than now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ledger.domain import notices
from ledger.domain.workdays import local_date

ON_TIME, LATE, NOT_APPLICABLE, FAILED, ON_REMINDER, SILENT = (
    "on_time",
    "late",
    "not_applicable",
    "failed",
    "on_reminder",
    "silent",
)
_SHARES = ((45, ON_TIME), (55, LATE), (70, NOT_APPLICABLE), (75, FAILED), (85, ON_REMINDER), (100, SILENT))
APPLYING = frozenset({ON_TIME, LATE, ON_REMINDER})


def behaviour(notice_id: str) -> tuple[str, int]:
    """(what the department does with this notice, a number 0-99 to vary its delay by)."""
    roll = int(hashlib.sha256(notice_id.encode()).hexdigest()[:8], 16) % 100
    return next(kind for bound, kind in _SHARES if roll < bound), roll


def respond(message: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The feedback submission a department sends for one ``credit.measures`` message, or None."""
    kind, roll = behaviour(str(message["notice_id"]))
    state = message.get("state")
    if message.get("type") == "reminder":
        if kind != ON_REMINDER:
            return None
        return _feedback(message, now, days=1, outcome=notices.APPLIED)
    if state in notices.STOPPABLE:
        return _feedback(message, now, days=1, outcome=notices.STOPPED) if kind in APPLYING else None
    if state not in notices.IN_FORCE or kind in (ON_REMINDER, SILENT):
        return None
    if kind in (ON_TIME, LATE):
        days = 1 + roll % 3 if kind == ON_TIME else 8 + roll % 5
        return _feedback(message, now, days=days, outcome=notices.APPLIED)
    reasons = {
        NOT_APPLICABLE: "本部门无该主体在办的相关审批或服务事项",
        FAILED: "该主体相关业务已于通知前办结，未能限制",
    }
    return _feedback(message, now, days=1 + roll % 4, outcome=kind, reason=reasons[kind])


def _feedback(
    message: Mapping[str, Any], now: datetime, *, days: int, outcome: str, reason: str | None = None
) -> dict[str, Any]:
    since = datetime.fromisoformat(str(message["effective_at"]))
    at = min(now, since + timedelta(days=days))
    version = message["state_version"]
    body: dict[str, Any] = {
        "feedback_id": f"fb-{message['notice_id']}-{version}",
        "notice_id": message["notice_id"],
        "state_version": version,
        "outcome": outcome,
    }
    day = local_date(at).isoformat()
    if outcome == notices.APPLIED:
        body.update(
            business_reference=f"{message['department']}-{str(message['notice_id'])[:8]}", applied_on=day
        )
    elif outcome == notices.STOPPED:
        body["stopped_on"] = day
    else:
        body["reason"] = reason
    return {
        "submission_id": f"demo-fb-{message['notice_id']}-{version}",
        "department": message["department"],
        "action": "report_feedback",
        "subject": {"key": message["subject_key"]},
        "occurred_at": at.isoformat(),
        "feedback": body,
    }
