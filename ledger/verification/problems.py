"""What the audit reports: one ``Problem`` per thing that does not verify."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.domain.redaction import mask_identity_numbers


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify: ``kind``, a sentence naming it, and its particulars."""

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As ``verify`` prints it; like every message the ledger produces, with no identity number
        in full (a submission id may hold one)."""
        return {"problem": self.kind, "message": mask_identity_numbers(self.message), **self.details}
