"""Supervision of joint measures (跟踪问效, 004 item 48): how implementing departments answer notices.

Statistics per implementing department and per measure, from the notice rows the read models
keep (``projections.notices.notice_rows``). A notice counts once, by its id:

- ``received``: notices issued (in the period, by the day they were issued);
- ``applied``, ``not_applicable``, ``failed``: by the notice's latest standing answer while in force;
- ``stopped``: notices the department reported stopped after a suspension or withdrawal;
- ``overdue``: in force, unanswered in their current state, past the day feedback was due;
- ``late``: first answered after the day it was due;
- ``median_delay_working_days``: from the day the answered state began to the first answer;
- ``on_time_rate`` (奖惩到位率): of the mandatory notices that fell due or were answered, the share
  applied by their due day. An answered notice is judged by the state it first answered; an
  unanswered one by the first state it stayed in force in until its due day (or the one it is in
  now). Notices answered ``not_applicable``, and those suspended or withdrawn before any due day
  without an answer, are not counted: there was nothing to apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from statistics import median
from typing import Any

from ledger.domain import notices
from ledger.domain.workdays import working_days_between
from projections.notices import is_overdue

Row = Mapping[str, Any]


def measure_stats(
    rows: Iterable[Row],
    today: date,
    *,
    department: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Totals, then one entry per implementing department and one per measure, as of ``today``."""
    selected = [
        r
        for r in rows
        if (not department or r["department"] == department)
        and (not since or r["issued_on"] >= since)
        and (not until or r["issued_on"] <= until)
    ]
    by_department: dict[str, list[Row]] = {}
    by_measure: dict[str, list[Row]] = {}
    for row in selected:
        by_department.setdefault(row["department"], []).append(row)
        by_measure.setdefault(row["measure"], []).append(row)
    return {
        "as_of": today.isoformat(),
        "filters": {"department": department, "since": since, "until": until},
        "totals": tally(selected, today),
        "by_department": [{"department": k, **tally(v, today)} for k, v in sorted(by_department.items())],
        "by_measure": [
            {"measure": k, "title": v[0]["title"], "kind": v[0]["kind"], **tally(v, today)}
            for k, v in sorted(by_measure.items())
        ],
    }


def tally(rows: list[Row], today: date) -> dict[str, Any]:
    """The figures of one group of notices."""
    delays = [
        working_days_between(
            date.fromisoformat(r["obligation_on"]), date.fromisoformat(r["first_response_on"])
        )
        for r in rows
        if r["first_response_on"] and r["obligation_on"]
    ]
    counted = [r for r in rows if r["kind"] == "mandatory" and _counted(r, today)]
    on_time = [
        r for r in counted if r["response"] == notices.APPLIED and r["first_response_on"] <= r["due_on"]
    ]
    return {
        "received": len(rows),
        "applied": sum(1 for r in rows if r["response"] == notices.APPLIED),
        "not_applicable": sum(1 for r in rows if r["response"] == notices.NOT_APPLICABLE),
        "failed": sum(1 for r in rows if r["response"] == notices.FAILED),
        "stopped": sum(1 for r in rows if r["stopped"]),
        "overdue": sum(1 for r in rows if is_overdue(r, today)),
        "late": sum(
            1 for r in rows if r["first_response_on"] and r["due_on"] and r["first_response_on"] > r["due_on"]
        ),
        "median_delay_working_days": median(delays) if delays else None,
        "mandatory_counted": len(counted),
        "mandatory_applied_on_time": len(on_time),
        "on_time_rate": round(len(on_time) / len(counted), 4) if counted else None,
    }


def _counted(row: Row, today: date) -> bool:
    """Whether a mandatory notice counts in the on-time rate (see the module's docstring)."""
    due = row["due_on"]
    if due is None or row["response"] == notices.NOT_APPLICABLE:
        return False
    return bool(row["first_response_on"]) or due < today.isoformat()
