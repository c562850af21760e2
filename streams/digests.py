"""Checkpoints of the ledger's Merkle tree, signed, cosigned by witnesses and published to
credit.digests by the relay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract import topics
from ledger.application.service import CreditLedger
from ledger.verification.checkpoints import CheckpointLog, checkpoint_json, checkpoint_signer, moment
from ledger.verification.merkle import Checkpoint, CheckpointSigner
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from ledger.verification.transparency import LedgerTree
from streams.witnessing import WitnessClient

log = logging.getLogger(__name__)

EVERY_EVENTS = 10_000
"""Publish once the tree has grown by this many events since the last checkpoint ..."""

EVERY_SECONDS = 60.0
"""... or once this long has passed since it, if the tree grew at all."""

# send(topic, key, value) schedules one record and returns an awaitable for its acknowledgement.
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class CheckpointPublisher:
    """Signs a checkpoint of the ledger's tree every N new events or T seconds, whichever comes first.

    Only when the tree grew. Each checkpoint is a C2SP checkpoint note of the log ``origin`` (a
    version 3 checkpoint); with ``witnesses``, each is first sent to them with a consistency proof,
    and the cosignatures they give are added to the note. Then it is sent to ``credit.digests``
    keyed by its key id, and once acknowledged appended to ``DATA_DIR/checkpoints.jsonl``. The tree is caught
    up from the store on a thread of its own, ``chunk`` events at a time, so neither the event loop
    nor the relay waits long; while a backlog is being read nothing is published, so a restart over
    a large ledger publishes one checkpoint at the end rather than one per chunk.
    """

    def __init__(
        self,
        ledger: CreditLedger,
        send: Send,
        *,
        data_dir: Path,
        signer: CheckpointSigner | None = None,
        every_events: int = EVERY_EVENTS,
        every_seconds: float = EVERY_SECONDS,
        poll_interval: float = 1.0,
        chunk: int = 20_000,
        topic: str = topics.DIGESTS,
        executor: Executor | None = None,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        origin: str = DEFAULT_ORIGIN,
        witnesses: WitnessClient | None = None,
        key: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.send = send
        self.data_dir = data_dir
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.poll_interval = poll_interval
        self.chunk = chunk
        self.topic = topic
        self.tree = LedgerTree(ledger)
        self.checkpoints = CheckpointLog.in_dir(self.data_dir)
        self.published = 0
        self.last: Checkpoint | None = None
        self.origin = origin
        self.witnesses = witnesses
        self._signer = signer
        self._key = key  # CREDIT_CHECKPOINT_KEY as the composition root read it (None: the seed file)
        self._executor = executor
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._started = False
        self._last_at = 0.0  # monotonic time of the last checkpoint
        self._polled = float("-inf")

    async def maybe_publish(self) -> int:
        """Publish a checkpoint if one is due; return how many were published."""
        now = self._monotonic()
        if now - self._polled < self.poll_interval:
            return 0
        self._polled = now
        if not self._started:
            await self._run(self._start)
        appended = await self._run(self.tree.catch_up, self.chunk)
        if appended >= self.chunk:
            self._polled = float("-inf")  # a backlog: keep reading on the next call, publish at its end
            return 0
        last_size = self.last.size if self.last is not None else 0
        grown = self.tree.size - last_size
        if grown < 0:
            log.warning(
                "the ledger holds %d events, fewer than the %d of the last checkpoint: nothing is published "
                "until it grows past it; run 'credit-ledger verify'",
                self.tree.size,
                last_size,
            )
            return 0
        if grown == 0 or (grown < self.every_events and now - self._last_at < self.every_seconds):
            return 0
        await self.publish()
        return 1

    async def publish(self) -> Checkpoint:
        """Catch the tree up, sign a checkpoint of it, send it, and once acknowledged, file it."""
        if not self._started or self._signer is None:
            await self._run(self._start)
        await self._run(self.tree.catch_up)
        assert self._signer is not None  # set by _start
        cp = self.tree.checkpoint(self._signer, self._clock(), origin=self.origin)
        if self.witnesses is not None:
            cp = cp.cosigned(await self.witnesses.cosign(cp, self._prove))
        ack = await self.send(self.topic, cp.key_id.encode(), checkpoint_json(cp))
        await ack
        await self._run(self.checkpoints.append, cp)
        self.last, self._last_at = cp, self._monotonic()
        self.published += 1
        cosigned = len(cp.cosignatures)
        log.info("published checkpoint size=%d root=%s cosignatures=%d", cp.size, cp.root, cosigned)
        return cp

    async def _prove(self, old: int, new: int) -> list[bytes]:
        """The consistency proof a witness is sent, from the tree (on the tree's thread)."""
        proof: list[bytes] = await self._run(self.tree.log.consistency_proof, old, new)
        return proof

    def _start(self) -> CheckpointSigner:
        """Load the key (writing one on first use) and learn the last checkpoint this key signed.

        With none, the first checkpoint is due as soon as the tree holds anything.
        """
        if self._signer is None:
            self._signer = checkpoint_signer(self.data_dir, self._key)
        self.last = self.checkpoints.latest(self._signer.signed)
        self._last_at = float("-inf")
        if self.last is not None:
            age = (self._clock() - moment(self.last.time)).total_seconds()
            self._last_at = self._monotonic() - max(0.0, age)
        self._started = True
        return self._signer

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digests")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
