"""Checkpoints of the ledger's Merkle tree, published to credit.digests by the relay."""

from __future__ import annotations

from typing import Any


class CheckpointPublisher:
    """Publishes a signed checkpoint every N events or T seconds (not yet)."""

    def __init__(self, ledger: Any, send: Any) -> None:
        self.ledger = ledger
        self.send = send

    async def maybe_publish(self) -> int:
        """Publish a checkpoint if one is due; return how many were published."""
        return 0
