"""The ``credit.measures`` wire format: measure notices and feedback reminders, per implementing department.

Every message is one JSON object keyed by the subject key (so a subject's notices stay in order in
one partition), with the implementing department in the Kafka header ``department`` and in the
body, so a department filters without decoding others' messages. ``type`` is ``notice`` (one per
state of a notice: issued, suspended, resumed, withdrawn) or ``reminder`` (feedback is overdue).

Delivery is at least once. A message is identified by ``(notice_id, state_version, type)``: a copy
carries the same three, and a consumer that has seen them ignores it. A change to a published
field is a new version, never an edit (docs/measures.md): reminders are format ``v`` 1; notices
are ``v`` 2, whose ``name`` is an organisation's name and null for a person (v1 carried every
subject's name; a person's is personal data, and the masked code and the subject key identify
the entry: docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ledger.domain.personal import ENVELOPE_PREFIX

MEASURE_MESSAGE_VERSION = 1
"""The format of reminders (unchanged since the topic began)."""
NOTICE_MESSAGE_VERSION = 2
"""The format of notices: 2 since a person's name left them (``public_name``)."""
DEPARTMENT_HEADER = "department"
NOTICE, REMINDER = "notice", "reminder"


def message_id(message: Mapping[str, Any]) -> tuple[str, int, str]:
    """What identifies a message on ``credit.measures``: a redelivered copy has the same."""
    return str(message["notice_id"]), int(message["state_version"]), str(message["type"])


def public_name(subject: Mapping[str, Any]) -> str | None:
    """The subject's name as a notice may carry it: an organisation's (public by law: its entry on
    a list names it, and it identifies no natural person), never a person's. A person's name is
    personal data; a department that needs it reads it through a recorded query. A value still
    sealed (``enc1:``) is never sent: it would open for no recipient."""
    name = subject.get("name")
    if subject.get("kind") != "organisation" or not isinstance(name, str) or name.startswith(ENVELOPE_PREFIX):
        return None
    return name


def notice_message(
    *,
    notice: Mapping[str, Any],
    subject: Mapping[str, Any],
    entry: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    issued_at: str | None,
    feedback_due: str | None,
    cause: Mapping[str, Any],
) -> dict[str, Any]:
    """One state of one notice. ``notice``: notice_id, department, measure (id, title, kind,
    basis), list, designation (designation_id, department, basis, document_number, valid_from,
    valid_until), edition; ``entry``: the state entered (version, state, at, reason)."""
    designation = notice["designation"]
    measure = notice["measure"]
    return {
        "v": NOTICE_MESSAGE_VERSION,
        "type": NOTICE,
        "notice_id": notice["notice_id"],
        "state": entry["state"],
        "state_version": entry["version"],
        "follows": None
        if previous is None
        else {"state": previous["state"], "state_version": previous["version"]},
        "department": notice["department"],
        "subject_key": subject["subject_key"],
        "masked_code": subject["masked_code"],
        "name": public_name(subject),
        "list": notice["list"],
        "designation_id": designation["designation_id"],
        "designating_department": designation["department"],
        "basis": designation["basis"],
        "document_number": designation["document_number"],
        "measure": {k: measure[k] for k in ("id", "title", "kind", "basis")},
        "in_force": {"from": designation["valid_from"], "until": designation["valid_until"]},
        "issued_at": issued_at,
        "effective_at": entry["at"],
        "feedback_due": feedback_due,
        "reason": entry["reason"],
        "cause": dict(cause),
        "edition": notice["edition"],
    }


def reminder_message(
    *,
    notice: Mapping[str, Any],
    subject: Mapping[str, Any],
    state: str,
    state_version: int,
    feedback_due: str,
    effective_at: str | None,
    cause: Mapping[str, Any],
) -> dict[str, Any]:
    """Feedback on a notice state is overdue: the platform's reminder (a ``FeedbackOverdue`` event)."""
    measure = notice["measure"]
    return {
        "v": MEASURE_MESSAGE_VERSION,
        "type": REMINDER,
        "notice_id": notice["notice_id"],
        "state": state,
        "state_version": state_version,
        "department": notice["department"],
        "subject_key": subject["subject_key"],
        "masked_code": subject["masked_code"],
        "designation_id": notice["designation"]["designation_id"],
        "measure": {k: measure[k] for k in ("id", "title", "kind")},
        "feedback_due": feedback_due,
        "effective_at": effective_at,
        "reason": f"no feedback on this notice by {feedback_due}",
        "cause": dict(cause),
    }


def measures_record(message: Mapping[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a message on ``credit.measures``."""
    headers = [(DEPARTMENT_HEADER, str(message["department"]).encode())]
    return str(message["subject_key"]).encode(), orjson.dumps(message), headers


def department_of(headers: Any) -> str | None:
    """The implementing department a record is for, from its headers (None if it has none)."""
    for name, value in headers or ():
        if name == DEPARTMENT_HEADER:
            return bytes(value).decode()
    return None
