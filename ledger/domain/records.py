"""State of one record and one list designation inside a credit file (plain, mutable by events only)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from ledger.domain.personal import SHREDDED

ACTIVE = "active"
EXPIRED = "expired"
REVOKED = "revoked"
REPAIRED = "repaired"


@dataclass
class Objection:
    objection_id: str
    grounds: str
    raised_on: str
    due_by: str
    outcome: str | None = None  # None while open, then "upheld" or "rejected"
    overdue: bool = False  # the provider missed the resolution deadline


@dataclass
class RepairApplication:
    application_id: str
    measures_taken: str
    decision: str | None = None  # None while pending, then "granted" or "refused"
    reason: str = ""


@dataclass
class RecordState:
    """One record on a subject's file: its content as last corrected and where it is in its life."""

    key: str
    record_id: str
    provider: str
    category: str
    kind: str
    domain: str
    severity: str | None
    title: str
    decision_document: str
    decision_date: str
    legal_basis: str
    display_months: int | None  # as the provider asked; None = the longest the catalogue allows
    display_from: str
    display_until: str | None
    repairable_from: str | None
    early_end: bool
    edition: str
    filed_at: str
    responsible_persons: list[dict[str, str]] = field(default_factory=list)
    linked_from: dict[str, str] | None = None
    status: str = ACTIVE
    ended_reason: str = ""
    ended_on: str = ""  # when it stopped being shown or used: where its retention is counted from
    shredded_at: str = ""  # when its personal content was destroyed (crypto-shredding)
    corrections: int = 0
    objections: dict[str, Objection] = field(default_factory=dict)
    repairs: dict[str, RepairApplication] = field(default_factory=dict)

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE

    @property
    def open_objection(self) -> Objection | None:
        for objection in self.objections.values():
            if objection.outcome is None:
                return objection
        return None

    @property
    def disputed(self) -> bool:
        return self.open_objection is not None

    @property
    def pending_repair(self) -> RepairApplication | None:
        for application in self.repairs.values():
            if application.decision is None:
                return application
        return None

    @property
    def is_serious_adverse(self) -> bool:
        return self.kind == "adverse" and self.severity == "serious"

    def shred(self, at: str) -> None:
        """Forget the personal content (its data key is destroyed); what the rules need stays."""
        self.shredded_at = at
        self.title = self.ended_reason = SHREDDED
        self.responsible_persons = [{**p, "name": SHREDDED} for p in self.responsible_persons]
        for objection in self.objections.values():
            objection.grounds = SHREDDED
        for repair in self.repairs.values():
            repair.measures_taken = SHREDDED
            repair.reason = SHREDDED

    def apply_changes(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        self.corrections += 1


@dataclass
class Designation:
    """An entry on the black or red list, made by a designating department."""

    designation_id: str
    list: str
    department: str
    basis: str
    document_number: str
    valid_from: str
    valid_until: str
    records: builtins.list[str]  # "list" is also a field name here (black or red)
    made_at: str
    active: bool = True
    ended_reason: str = ""
    ended_on: str = ""
    # Its measure notices (ledger.domain.notices): one life for all of them, followed event by event.
    notice_state: str | None = None  # None until issued, then issued, suspended, resumed, withdrawn
    notice_version: int = 0  # the notices' state version (1 = issued)
    notice_since: str = ""  # occurred_at of the event that began the current state
    basis_upheld: bool = False  # an objection to a record it rests on was upheld


@dataclass(frozen=True)
class Feedback:
    """An implementing department's feedback on one state version of one notice."""

    feedback_id: str
    outcome: str
    state_version: int
    reported_on: str  # the China day it was reported (its occurred_at)
