"""Measure notices as the read models derive them from a folded state: rows, messages, reminders.

The fold (``projections.fold``) keeps each designation's notice life (its history of states, each
with the event that caused it) and the feedback on each notice; the catalogue turns a designation
into its notices (``ledger.domain.notices.notices_for``). Everything here is a pure function of a
state, a ledger message and the catalogue, so the live projector and a rebuild derive the same
rows and the same messages.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from contract.measures import notice_message, reminder_message
from ledger.domain import notices
from ledger.domain.catalogue import Catalogue, Edition
from projections.fold import State, china_day

Notified = tuple[str, Mapping[str, Any], Mapping[str, Any], Edition, list[notices.Notice]]
"""(designation id, designation, its notice life, its edition, its notices)."""


def notified(
    state: State, catalogue: Catalogue, department: str | None = None, *, only: Container[str] | None = None
) -> Iterator[Notified]:
    """Every designation of ``state`` (those named in ``only``, if given) that has issued notices,
    with its notices (``department``'s only, if given)."""
    for designation_id, designation in state["designations"].items():
        track = designation.get("notices")
        if not track or track["state"] is None or (only is not None and designation_id not in only):
            continue
        edition = notices.edition_of(catalogue, designation["made_at"])
        measures = edition.notified_measures(designation["list"])
        if department is not None:
            measures = tuple(m for m in measures if department in m.implementing_departments)
        found = notices.notices_for(state["subject_key"], designation_id, designation["list"], measures)
        yield (
            designation_id,
            designation,
            track,
            edition,
            [n for n in found if department in (None, n.department)],
        )


def notice_rows(state: State, catalogue: Catalogue, department: str | None = None) -> list[dict[str, Any]]:
    """One row per notice (``department``'s only, if given): where it stands, its feedback, and the
    dates supervision counts by. What a designation's notices share is worked out once for them all."""
    rows = []
    feedback = state.get("feedback", {})
    unanswered: dict[str, Any] = {"versions": {}, "first_response": None, "reminded": []}
    for designation_id, designation, track, edition, found in notified(state, catalogue, department):
        history = track["history"]
        within = edition.feedback_within_working_days
        current = str(track["version"])
        days = {e["version"]: china_day(e["at"]) for e in history}
        due = {e["version"]: _due(e, within) for e in history}
        left = {e["version"]: _left_force_on(history, e) for e in history}
        # Unanswered, a notice is judged by the first state it stayed in force in until its due day
        # (a suspension before then took the duty away), or the one it is in now.
        missed = next(
            (
                e["version"]
                for e in notices.obligations(history)
                if (left[e["version"]] or "9999-12-31") > (due[e["version"]] or "")
            ),
            None,
        )
        shared = {
            "subject_key": state["subject_key"],
            "list": designation["list"],
            "designation_id": designation_id,
            "document_number": designation["document_number"],
            "valid_from": designation["valid_from"],
            "valid_until": designation["valid_until"],
            "state": track["state"],
            "state_version": track["version"],
            "since": track["since"],
            "issued_on": days[1],
            "current_due_on": due[track["version"]] if track["state"] in notices.IN_FORCE else None,
            "edition": edition.edition,
            "designating_department": designation["department"],
        }
        for notice in found:
            entry = feedback.get(notice.notice_id, unanswered)
            versions = entry["versions"]
            first = entry["first_response"]
            answered = first["state_version"] if first else missed
            rows.append(
                {
                    "notice_id": notice.notice_id,
                    "department": notice.department,
                    "measure": notice.measure.id,
                    "title": notice.measure.title,
                    "kind": notice.measure.kind,
                    **shared,
                    "obligation_on": days.get(answered),
                    "due_on": due.get(answered),
                    "feedback": versions.get(current, {}).get("outcome"),
                    "response": _response(versions),
                    "first_response_on": first["on"] if first else None,
                    "stopped": any(v["outcome"] == notices.STOPPED for v in versions.values()),
                    "reminded": [r["state_version"] for r in entry["reminded"]],
                    "left_force_on": left.get(answered),
                }
            )
    return rows


def notice_messages(state: State, message: Mapping[str, Any], catalogue: Catalogue) -> list[dict[str, Any]]:
    """The ``credit.measures`` messages ``message`` (just folded into ``state``) causes: one per
    notice for each notice state it began, and a reminder for a ``FeedbackOverdue``."""
    event_id = message.get("event_id")
    if event_id is None or not state["designations"]:
        return []
    cause = {"event_id": event_id, "type": message.get("type"), "version": message.get("version")}
    body = message.get("body", {})
    if message.get("type") == "FeedbackOverdue":
        return _reminder(state, message, body, catalogue, cause)
    began = {
        designation_id
        for designation_id, designation in state["designations"].items()
        if any(e["event"] == event_id for e in (designation.get("notices") or {}).get("history", ()))
    }
    out: list[dict[str, Any]] = []
    for designation_id, designation, track, edition, found in notified(state, catalogue, only=began):
        history = track["history"]
        within = edition.feedback_within_working_days
        for i, entry in enumerate(history):
            if entry["event"] != event_id:
                continue
            for notice in found:
                out.append(
                    notice_message(
                        notice=_notice(notice, designation_id, designation, edition),
                        subject=state,
                        entry=entry,
                        previous=history[i - 1] if i else None,
                        issued_at=history[0]["at"],
                        feedback_due=_due(entry, within) if entry["state"] in notices.IN_FORCE else None,
                        cause=cause,
                    )
                )
    return out


def _reminder(
    state: State,
    message: Mapping[str, Any],
    body: Mapping[str, Any],
    catalogue: Catalogue,
    cause: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The reminder a ``FeedbackOverdue`` sends the department the notice is addressed to."""
    wanted = {str(body.get("designation_id"))}
    for designation_id, designation, track, edition, found in notified(
        state, catalogue, body.get("department"), only=wanted
    ):
        for notice in found:
            if notice.notice_id != body.get("notice_id"):
                continue
            entry = _entry(track["history"], body["state_version"]) or track["history"][-1]
            return [
                reminder_message(
                    notice=_notice(notice, designation_id, designation, edition),
                    subject=state,
                    state=entry["state"],
                    state_version=body["state_version"],
                    feedback_due=body["due_on"],
                    effective_at=message.get("occurred_at"),
                    cause=cause,
                )
            ]
    return []


def reminders_due(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, ref, due date) for the scheduler, from a subject's notice rows: a reminder the day
    after feedback on a notice in force fell due, once per state version, unless answered."""
    items = []
    for row in rows:
        version = row["state_version"]
        if row["current_due_on"] is None or row["feedback"] is not None or version in row["reminded"]:
            continue
        day_after = date.fromisoformat(row["current_due_on"]) + timedelta(days=1)
        items.append(("remind", f"{row['notice_id']}@{version}", day_after.isoformat()))
    return items


def measures_view(rows: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """The measures notified against a subject, as their status shows them: one entry per
    designation and measure, with each implementing department's feedback."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["designation_id"], row["measure"])
        group = grouped.setdefault(
            key,
            {
                "designation_id": row["designation_id"],
                "list": row["list"],
                "measure": row["measure"],
                "title": row["title"],
                "kind": row["kind"],
                "state": row["state"],
                "state_version": row["state_version"],
                "since": row["since"],
                "departments": [],
            },
        )
        group["departments"].append(
            {
                "department": row["department"],
                "notice_id": row["notice_id"],
                "feedback": row["feedback"],
                "overdue": is_overdue(row, today),
            }
        )
    return list(grouped.values())


def is_overdue(row: Mapping[str, Any], today: date) -> bool:
    """In force, unanswered in its current state, and past the day feedback was due."""
    due = row["current_due_on"]
    return due is not None and row["feedback"] is None and due < today.isoformat()


def _notice(
    notice: notices.Notice, designation_id: str, designation: Mapping[str, Any], edition: Edition
) -> dict[str, Any]:
    measure = notice.measure
    return {
        "notice_id": notice.notice_id,
        "department": notice.department,
        "list": notice.list,
        "measure": {"id": measure.id, "title": measure.title, "kind": measure.kind, "basis": measure.basis},
        "designation": {
            "designation_id": designation_id,
            "department": designation["department"],
            "basis": designation["basis"],
            "document_number": designation["document_number"],
            "valid_from": designation["valid_from"],
            "valid_until": designation["valid_until"],
        },
        "edition": edition.edition,
    }


def _response(versions: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The notice's latest standing answer while in force (applied, not applicable or failed)."""
    answers = [(int(v), f["outcome"]) for v, f in versions.items() if f["outcome"] in notices.RESPONSES]
    return max(answers)[1] if answers else None


def _entry(history: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    return next((e for e in history if e["version"] == version), None)


def _left_force_on(history: list[dict[str, Any]], since: Mapping[str, Any] | None) -> str | None:
    """The day the notice stopped being in force after ``since`` (None while it still is)."""
    if since is None:
        return None
    later = [e for e in history if e["version"] > since["version"] and e["state"] not in notices.IN_FORCE]
    return china_day(later[0]["at"]) if later else None


def _due(entry: Mapping[str, Any] | None, within: int) -> str | None:
    if entry is None or not entry.get("at"):
        return None
    return notices.feedback_due(date.fromisoformat(china_day(entry["at"]) or ""), within).isoformat()
