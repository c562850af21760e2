"""HTTP views for auditors: checkpoints and Merkle proofs under /v1/proofs/."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

if TYPE_CHECKING:
    from streams.app import WorkerParts


def register_proof_views(app: faust.App, parts: WorkerParts) -> None:
    """Register the /v1/proofs/ views (none yet)."""
