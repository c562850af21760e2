"""The fold: (subject state, ledger message) -> subject state. Pure, deterministic, no I/O."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ledger.domain import notices
from ledger.domain.personal import SHREDDED
from ledger.domain.workdays import local_date

State = dict[str, Any]
Message = Mapping[str, Any]


class OutOfOrder(ValueError):
    """A message skips versions of its subject's stream: the state must be rebuilt from the ledger."""


def empty(subject_key: str) -> State:
    return {
        "subject_key": subject_key,
        "kind": None,
        "masked_code": None,
        "name": None,
        "version": 0,
        "position": 0,
        "records": {},
        "designations": {},
        "statements": 0,
        "authorisations": {},
    }


def fold(state: State | None, message: Message) -> State:
    """Apply one ledger message to a subject's state, returning a new state (the input is untouched).

    A message at or below the state's version is a re-delivery and changes nothing; one that
    skips a version raises OutOfOrder.
    """
    return fold_into(copy.deepcopy(state) if state is not None else None, message)


def fold_into(state: State | None, message: Message) -> State:
    """``fold`` on a state the caller owns, changed in place: the projector's and rebuild's path."""
    current = state if state is not None else empty(message["subject_key"])
    version = message["version"]
    if version <= current["version"]:
        return current
    if version != current["version"] + 1:
        msg = f"subject {message['subject_key']}: version {version} after {current['version']}"
        raise OutOfOrder(msg)
    apply = _APPLY.get(message["type"])
    if apply is not None:  # an event type this projection does not know changes only the version
        apply(current, message["body"], message)
    if current["designations"]:
        _follow_notices(current, message)
    current["version"] = version
    current["position"] = max(current["position"], message.get("position") or 0)
    return current


def fold_all(messages: Iterable[Message], states: dict[str, State] | None = None) -> dict[str, State]:
    """Fold many messages of many subjects in order, in place on ``states`` (returned)."""
    states = {} if states is None else states
    for message in messages:
        key = message["subject_key"]
        states[key] = fold_into(states.get(key), message)
    return states


def _opened(s: State, body: Mapping[str, Any], m: Message) -> None:
    s.update(kind=body["subject_kind"], masked_code=body["masked_code"], name=body["name"])
    s["opened_at"] = m.get("recorded_at")


def _filed(s: State, body: Mapping[str, Any], m: Message) -> None:
    fields = body["fields"]
    s["records"][body["record"]] = {
        "provider": body["provider"],
        "record_id": fields["record_id"],
        "category": fields["category"],
        "kind": fields["kind"],
        "domain": fields["domain"],
        "severity": fields["severity"],
        "title": fields["title"],
        "decision_document": fields["decision_document"],
        "decision_date": fields["decision_date"],
        "display_until": fields["display_until"],
        "edition": fields["edition"],
        "status": "active",
        "filed_at": m.get("occurred_at"),
        "ended_at": None,
        "open_objection": None,  # {"id", "due_by", "overdue"} while disputed
        "linked_from": body.get("linked_from"),
        "responsible_persons": [p["subject_key"] for p in fields.get("responsible_persons", [])],
        "filed_by_event": m.get("event_id"),
        # What the portal shows a subject and the public (kept since the portal, issue 14):
        "legal_basis": fields.get("legal_basis"),
        "repairable_from": fields.get("repairable_from"),
        "early_end": fields.get("early_end", True),
        "objections": [],  # every objection with its outcome: a department's resolution times
        "repairs": [],  # every repair application with its decision: the subject tracks them
    }


def _corrected(s: State, body: Mapping[str, Any], m: Message) -> None:
    record = s["records"][body["record"]]
    for name in ("title", "severity", "domain", "decision_document", "decision_date", "display_until"):
        if name in body["changes"]:
            record[name] = body["changes"][name]


def _objection_raised(s: State, body: Mapping[str, Any], m: Message) -> None:
    record = s["records"][body["record"]]
    record["open_objection"] = {"id": body["objection_id"], "due_by": body["due_by"], "overdue": False}
    record.setdefault("objections", []).append(
        {
            "id": body["objection_id"],
            "raised_at": m.get("occurred_at"),
            "due_by": body["due_by"],
            "resolved_at": None,
            "outcome": None,
            "overdue": False,
        }
    )


def _objection(record: State, objection_id: str) -> State:
    """The history entry of one objection (a stand-in for states folded before it was kept)."""
    for entry in record.get("objections", []):
        if entry["id"] == objection_id:
            return entry  # type: ignore[no-any-return]
    return {}


def _objection_resolved(s: State, body: Mapping[str, Any], m: Message) -> None:
    record = s["records"][body["record"]]
    record["open_objection"] = None
    _objection(record, body["objection_id"]).update(resolved_at=m.get("occurred_at"), outcome=body["outcome"])
    if body.get("outcome") == "upheld":  # the measures resting on it are withdrawn
        for designation in s["designations"].values():
            if designation["active"] and body["record"] in designation["records"]:
                designation["basis_upheld"] = True


def _objection_overdue(s: State, body: Mapping[str, Any], m: Message) -> None:
    record = s["records"][body["record"]]
    objection = record["open_objection"]
    if objection is not None:
        objection["overdue"] = True
    _objection(record, body["objection_id"])["overdue"] = True


def _repair_requested(s: State, body: Mapping[str, Any], m: Message) -> None:
    s["records"][body["record"]].setdefault("repairs", []).append(
        {"id": body["application_id"], "requested_at": m.get("occurred_at"), "decision": None, "reason": ""}
    )


def _repair_decided(decision: str) -> Callable[[State, Mapping[str, Any], Message], None]:
    def apply(s: State, body: Mapping[str, Any], m: Message) -> None:
        record = s["records"][body["record"]]
        for entry in record.get("repairs", []):
            if entry["id"] == body["application_id"]:
                entry.update(
                    decision=decision, reason=body.get("reason", ""), decided_at=m.get("occurred_at")
                )
        if decision == "granted":
            _ended("repaired")(s, body, m)

    return apply


def _ended(status: str) -> Callable[[State, Mapping[str, Any], Message], None]:
    def apply(s: State, body: Mapping[str, Any], m: Message) -> None:
        record = s["records"][body["record"]]
        record["status"] = body.get("status", status)
        record["ended_at"] = m.get("occurred_at")

    return apply


def _designated(s: State, body: Mapping[str, Any], m: Message) -> None:
    fields = body["fields"]
    s["designations"][body["designation_id"]] = {
        "list": fields["list"],
        "department": body["department"],
        "basis": fields["basis"],
        "document_number": fields["document_number"],
        "valid_from": fields["valid_from"],
        "valid_until": fields["valid_until"],
        "records": list(fields["records"]),
        "active": True,
        "made_at": m.get("occurred_at"),
        "ended_at": None,
        "ended_reason": None,
        "made_by_event": m.get("event_id"),
        # Its measure notices' one life (ledger.domain.notices), followed after every event.
        "notices": {"state": None, "version": 0, "since": None, "history": []},
    }


def _designation_ended(s: State, body: Mapping[str, Any], m: Message) -> None:
    designation = s["designations"][body["designation_id"]]
    designation.update(active=False, ended_at=m.get("occurred_at"), ended_reason=body["reason"])


def _granted(s: State, body: Mapping[str, Any], m: Message) -> None:
    fields = body["fields"]
    s.setdefault("authorisations", {})[fields["authorisation_id"]] = {**fields, "active": True}


def _grant_revoked(s: State, body: Mapping[str, Any], m: Message) -> None:
    s["authorisations"][body["authorisation_id"]]["active"] = False


def _shredded(s: State, body: Mapping[str, Any], m: Message) -> None:
    """The unit's data key is destroyed: its content goes from the view too; what and when stay."""
    shredded = {"at": m.get("occurred_at"), "basis": body["basis"], "legal_basis": body["legal_basis"]}
    if body["record"] is None:
        s["name"] = SHREDDED
        s["shredded"] = shredded
        return
    record = s["records"][body["record"]]
    record["title"] = SHREDDED
    record["shredded"] = shredded


def _statement(s: State, body: Mapping[str, Any], m: Message) -> None:
    s["statements"] += 1


def _follow_notices(s: State, m: Message) -> None:
    """Move each designation's notices to where its basis stands, as the credit file does
    (``ledger.domain.notices.follow``), keeping each state with the event that caused it."""
    for designation in s["designations"].values():
        track = designation.get("notices")
        if track is None or track["state"] == notices.WITHDRAWN:
            continue  # a designation folded before notices existed: a rebuild gives it its notices
        target, why = notices.basis(
            active=designation["active"],
            ended_reason=designation["ended_reason"],
            upheld=designation.get("basis_upheld", False),
            records=[
                notices.RecordBasis(record["status"], record["open_objection"] is not None)
                for key in designation["records"]
                if (record := s["records"].get(key)) is not None
            ],
        )
        for state in notices.transitions(track["state"], target):
            track["version"] += 1
            track["state"], track["since"] = state, m.get("occurred_at")
            reason = {
                notices.ISSUED: f"designated by {designation['department']}",
                notices.RESUMED: notices.UNDISPUTED,
            }.get(state, why)
            track["history"].append(
                {
                    "version": track["version"],
                    "state": state,
                    "at": m.get("occurred_at"),
                    "event": m.get("event_id"),
                    "type": m.get("type"),
                    "reason": reason,
                }
            )


def _feedback(s: State, body: Mapping[str, Any], m: Message) -> None:
    """The standing feedback per notice and state version (a correction replaces what it supersedes)."""
    entry = _feedback_entry(s, body["notice_id"])
    on = china_day(m.get("occurred_at"))
    entry["versions"][str(body["state_version"])] = {
        "feedback_id": body["feedback_id"],
        "outcome": body["outcome"],
        "state": body["state"],
        "reported_on": on,
        "business_reference": body.get("business_reference"),
        "applied_on": body.get("applied_on"),
        "stopped_on": body.get("stopped_on"),
        "reason": body.get("reason"),
        "supersedes": body.get("supersedes"),
        "event": m.get("event_id"),
    }
    if body["outcome"] in notices.RESPONSES and entry["first_response"] is None:
        entry["first_response"] = {"on": on, "state_version": body["state_version"]}


def _feedback_overdue(s: State, body: Mapping[str, Any], m: Message) -> None:
    entry = _feedback_entry(s, body["notice_id"])
    entry["reminded"].append({"state_version": body["state_version"], "due_on": body["due_on"]})


def _feedback_entry(s: State, notice_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = s.setdefault("feedback", {}).setdefault(
        notice_id, {"versions": {}, "first_response": None, "reminded": []}
    )
    return entry


def china_day(stamp: str | None) -> str | None:
    """The China calendar day (YYYY-MM-DD) of an RFC 3339 time, or None without one."""
    return local_date(datetime.fromisoformat(stamp)).isoformat() if stamp else None


_APPLY: dict[str, Callable[[State, Mapping[str, Any], Message], None]] = {
    "Opened": _opened,
    "RecordFiled": _filed,
    "RecordCorrected": _corrected,
    "ObjectionRaised": _objection_raised,
    "ObjectionResolved": _objection_resolved,
    "ObjectionOverdue": _objection_overdue,
    "StatementAdded": _statement,
    "AuthorisationGranted": _granted,
    "AuthorisationRevoked": _grant_revoked,
    "RepairRequested": _repair_requested,
    "RepairGranted": _repair_decided("granted"),
    "RepairRefused": _repair_decided("refused"),
    "RecordExpired": _ended("expired"),
    "RecordRevoked": _ended("revoked"),
    "LinkedRecordClosed": _ended("closed"),
    "DesignationMade": _designated,
    "DesignationEnded": _designation_ended,
    "RecordShredded": _shredded,
    "FeedbackReported": _feedback,
    "FeedbackOverdue": _feedback_overdue,
}
