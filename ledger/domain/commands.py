"""Typed commands: what a parsed submission asks the ledger to do to one subject's file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from ledger.domain.subjects import SubjectCode


@dataclass(frozen=True)
class RecordRef:
    """A record on file, named by its provider and the provider's own record id."""

    provider: str
    record_id: str

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.record_id}"


@dataclass(frozen=True)
class ResponsiblePerson:
    subject: SubjectCode
    name: str
    role: str


@dataclass(frozen=True)
class Envelope:
    """Who submitted what, about whom, and when: common to every action."""

    submission_id: str
    department: str
    action: str
    subject: SubjectCode | None  # None when the platform addresses an existing file by its key
    subject_name: str
    occurred_at: datetime
    digest: str
    checksum_override: dict[str, str] | None = None
    subject_key: UUID | None = None  # set instead of subject, by the platform's own commands

    @property
    def key(self) -> str:
        return f"{self.department}/{self.submission_id}"


@dataclass(frozen=True)
class FileRecord:
    record_id: str
    category: str
    domain: str
    severity: str | None
    title: str
    decision_document: str
    decision_date: date
    legal_basis: str
    display_months: int | None = None
    responsible_persons: tuple[ResponsiblePerson, ...] = ()


@dataclass(frozen=True)
class CorrectRecord:
    record: RecordRef
    changes: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class RaiseObjection:
    record: RecordRef
    objection_id: str
    grounds: str


@dataclass(frozen=True)
class ResolveObjection:
    record: RecordRef
    objection_id: str
    outcome: str  # "upheld" | "rejected"
    explanation: str
    remedy: str | None = None  # "correct" | "revoke" when upheld
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AddStatement:
    statement_id: str
    text: str
    record: RecordRef | None = None


@dataclass(frozen=True)
class RequestRepair:
    record: RecordRef
    application_id: str
    measures_taken: str


@dataclass(frozen=True)
class DecideRepair:
    record: RecordRef
    application_id: str
    decision: str  # "granted" | "refused"
    reason: str


@dataclass(frozen=True)
class MarkObjectionOverdue:
    record: RecordRef
    objection_id: str


@dataclass(frozen=True)
class GrantAuthorisation:
    authorisation_id: str
    organisation: str
    purpose: str
    valid_from: date
    valid_until: date


@dataclass(frozen=True)
class RevokeAuthorisation:
    authorisation_id: str


@dataclass(frozen=True)
class ExpireRecord:
    record: RecordRef


@dataclass(frozen=True)
class RevokeRecord:
    record: RecordRef
    reason: str
    document: str = ""


@dataclass(frozen=True)
class Designate:
    designation_id: str
    list: str
    basis: str
    document_number: str
    valid_from: date
    valid_until: date
    records: tuple[RecordRef, ...] = ()


@dataclass(frozen=True)
class ShredRecord:
    """Destroy a record's personal content (its data key), or with no record the whole file's."""

    record: RecordRef | None
    basis: str  # retention_ended (the scheduler) or erasure_request (the subject asked)
    legal_basis: str


@dataclass(frozen=True)
class EndDesignation:
    designation_id: str
    reason: str


@dataclass(frozen=True)
class ReportFeedback:
    """An implementing department's feedback on a measure notice (docs/measures.md)."""

    notice_id: str
    feedback_id: str
    outcome: str  # "applied" | "not_applicable" | "failed" | "stopped"
    state_version: int | None = None  # the notice state it answers; None: the current one
    business_reference: str | None = None
    applied_on: date | None = None
    stopped_on: date | None = None
    reason: str | None = None
    supersedes: str | None = None  # the feedback this one corrects


@dataclass(frozen=True)
class RemindFeedback:
    """The platform's scheduler: feedback on a notice state is overdue."""

    notice_id: str
    state_version: int


Action = (
    FileRecord
    | CorrectRecord
    | RaiseObjection
    | ResolveObjection
    | AddStatement
    | RequestRepair
    | DecideRepair
    | ExpireRecord
    | MarkObjectionOverdue
    | GrantAuthorisation
    | RevokeAuthorisation
    | RevokeRecord
    | Designate
    | EndDesignation
    | ReportFeedback
    | RemindFeedback
    | ShredRecord
)


@dataclass(frozen=True)
class Command:
    """One submission, parsed: the envelope and the action it carries."""

    envelope: Envelope
    action: Action
