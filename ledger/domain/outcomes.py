"""The single outcome every submission ends with: accepted (with its events) or rejected (with a reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCEPTED = "accepted"
REJECTED = "rejected"


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

    @property
    def key(self) -> tuple[str, str]:
        return (self.department, self.submission_id)


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
