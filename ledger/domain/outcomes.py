"""The single outcome every submission ends with: accepted (with its events) or rejected (with a reason).

Three records of it: the **receipt** (one per department and submission id, what a re-send is
answered from, hash-chained so that no receipt can be altered unseen), the **outcomes log** (one
entry per submission *received*: the first decision, which is the receipt itself, and every
duplicate, conflict and unregistered message after it; what ``credit.outcomes`` publishes), and
the ``Outcome`` returned to the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ledger.domain.integrity import GENESIS, canonical_bytes

ACCEPTED = "accepted"
REJECTED = "rejected"

DECIDED = "decided"
"""The first decision on a submission: in the outcomes log, its receipt (at the receipt's position)."""
DUPLICATE = "duplicate"
"""An entry for a re-send of a decided submission (same content): answered by the first receipt."""
CONFLICT = "conflict"
"""An entry for a re-used submission id with other content: rejected, the first decision stands."""
UNREGISTERED = "unregistered"
"""An entry for a message with no department and submission id to register it under (and no source)."""


@dataclass(frozen=True)
class Receipt:
    """What the ledger keeps of a submission it decided on, so a re-send gets the same outcome."""

    department: str
    submission_id: str
    digest: str
    status: str
    subject_key: str | None
    events: tuple[str, ...]
    reason: dict[str, str] | None
    recorded_at: str
    original: bytes | None = None  # the submission as received, kept for rejections only
    chain_hash: str = field(default="", compare=False)  # set when read back from the register
    source: str | None = field(default=None, compare=False)  # where it was read, if known

    @property
    def key(self) -> tuple[str, str]:
        return (self.department, self.submission_id)


def receipt_chain_hash(prev: str, position: int, receipt: Receipt) -> str:
    """The link of one receipt in the register's chain: SHA-256 over the previous link, the
    receipt's position and every field of it (the original by its SHA-256), as the canonical JSON
    of the list ``[prev, position, department, submission_id, digest, status, subject_key, events,
    reason, recorded_at, original_sha256]`` (a list, not an object: it is on the intake's path).

    Computed by the recorder in the transaction that writes the receipt, from the last receipt
    committed before it, so the chain follows position order and an altered, removed or inserted
    receipt breaks it (``ledger.verification.register`` recomputes it). Where the receipt was read
    (``source``) is not part of it: it is not part of the decision."""
    body = [
        prev,
        position,
        receipt.department,
        receipt.submission_id,
        receipt.digest,
        receipt.status,
        receipt.subject_key,
        receipt.events,
        receipt.reason,
        receipt.recorded_at,
        None if receipt.original is None else hashlib.sha256(receipt.original).hexdigest(),
    ]
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


RECEIPT_GENESIS = GENESIS
"""The ``prev`` of the first receipt's link."""


@dataclass(frozen=True)
class OutcomeEntry:
    """One line of the outcomes log, written in the batch's transaction.

    ``kind`` is ``DECIDED`` (the receipt of ``department``/``submission_id`` is the entry: it is
    stored as the receipt, at the entry's position), ``DUPLICATE`` (that receipt answers it
    again), ``CONFLICT`` or ``UNREGISTERED`` (rejected here: ``reason`` and ``original`` are the
    entry's own). ``source`` names where the message was read (``topic/partition/offset``): an
    entry for a source and digest already logged is not logged again, so a redelivered message (a
    worker restarted before committing its offset) gets no second outcome."""

    kind: str
    department: str | None
    submission_id: str | None
    digest: str
    recorded_at: str
    source: str | None = None
    reason: dict[str, str] | None = None
    original: bytes | None = None

    @property
    def key(self) -> tuple[str, str] | None:
        if self.department is None or self.submission_id is None:
            return None
        return (self.department, self.submission_id)


@dataclass(frozen=True)
class LoggedOutcome:
    """An outcomes-log entry as read back, with the receipt it rests on (if any): one message."""

    entry: OutcomeEntry
    receipt: Receipt | None
    receipt_position: int | None

    @property
    def status(self) -> str:
        if self.entry.kind in (DECIDED, DUPLICATE) and self.receipt is not None:
            return self.receipt.status
        return REJECTED

    @property
    def duplicate(self) -> bool:
        return self.entry.kind == DUPLICATE

    @property
    def submission_id(self) -> str | None:
        return self.entry.submission_id

    @property
    def subject_key(self) -> str | None:
        """The file the decision was about (a conflict or an unregistered message has none)."""
        return self.receipt.subject_key if self.receipt is not None else None


@dataclass(frozen=True)
class Outcome:
    """The answer to one submission."""

    status: str
    submission_id: str | None
    department: str | None
    subject_key: str | None = None
    events: tuple[str, ...] = ()
    reason: dict[str, str] | None = None
    duplicate: bool = False
    recorded_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED

    @classmethod
    def from_receipt(cls, receipt: Receipt, *, duplicate: bool) -> Outcome:
        return cls(
            status=receipt.status,
            submission_id=receipt.submission_id,
            department=receipt.department,
            subject_key=receipt.subject_key,
            events=receipt.events,
            reason=receipt.reason,
            duplicate=duplicate,
            recorded_at=receipt.recorded_at,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "submission_id": self.submission_id,
            "department": self.department,
            "subject_key": self.subject_key,
            "duplicate": self.duplicate,
            "recorded_at": self.recorded_at,
        }
        if self.status == ACCEPTED:
            out["events"] = list(self.events)
        else:
            out["reason"] = self.reason
        out.update(self.extra)
        return out
