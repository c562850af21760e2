"""What the audit reports: one ``Problem`` per thing that does not verify."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify: ``kind``, a sentence naming it, and its particulars."""

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.kind, "message": self.message, **self.details}
