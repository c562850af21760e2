"""The one streaming runner: fetch a batch, apply it, commit its offsets only after; and the lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from streams.broker import group_timing

log = logging.getLogger(__name__)

FETCH_BYTES = 4 * 1024 * 1024
"""Per partition and fetch: several submissions of the largest size the platform accepts."""


def group_consumer(
    bootstrap: str,
    *topic_names: str,
    group: str,
    session_timeout: float = 6.0,
    heartbeat_interval: float | None = None,
    max_records: int = 1000,
) -> AIOKafkaConsumer:
    """A consumer in ``group`` that never commits by itself and starts new groups at the beginning."""
    timing = group_timing(session_timeout)
    if heartbeat_interval is not None:
        timing["heartbeat_interval_ms"] = int(heartbeat_interval * 1000)
    return AIOKafkaConsumer(
        *topic_names,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,  # offsets follow what was applied, never what was fetched
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        max_partition_fetch_bytes=FETCH_BYTES,
        **timing,
    )


Apply = Callable[[Sequence[ConsumerRecord[Any, Any]]], Awaitable[None]]
"""Applies a batch, in order; returns once its effects are durable (it isolates poison itself)."""


@dataclass
class RunnerStats:
    batches: int = 0
    records: int = 0
    applying_seconds: float = 0.0  # inside ``apply``; the rest of the time is waiting for input


class Runner:
    """consume → apply → commit, for every flow that consumes (the intake and the projector).

    Each fetch (``getmany``, up to ``max_records``) is ordered by partition, each partition's order
    kept, and handed to ``apply`` whole. Only once ``apply`` has returned are the batch's offsets
    committed: a stop or a crash before that delivers the batch again, and the flows' effects are
    idempotent (the ledger's receipts, the read models' versions). The commit's round trip overlaps
    the next batch instead of idling the flow, and commits still follow each other in order.
    ``between`` runs after every fetch, empty or not (the projector's list-change outbox).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        apply: Apply,
        *,
        max_records: int,
        timeout_ms: int = 100,
        between: Callable[[], Awaitable[None]] | None = None,
        stats: RunnerStats | None = None,
    ) -> None:
        self.consumer = consumer
        self.apply = apply
        self.max_records = max_records
        self.timeout_ms = timeout_ms
        self.between = between
        self.stats = stats if stats is not None else RunnerStats()

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Run until ``stopping()`` is true (checked between batches); the last commit is awaited."""
        consumer = self.consumer
        stats = self.stats
        committing: asyncio.Future[None] | None = None
        try:
            while not stopping():
                fetched = await consumer.getmany(timeout_ms=self.timeout_ms, max_records=self.max_records)
                # Per-partition order is kept, and a subject lives in one partition: its order holds.
                records = [r for tp in sorted(fetched) for r in fetched[tp]]
                if records:
                    began = time.perf_counter()
                    await self.apply(records)
                    stats.applying_seconds += time.perf_counter() - began
                    if committing is not None:
                        await committing
                    offsets = {tp: rs[-1].offset + 1 for tp, rs in fetched.items() if rs}
                    committing = asyncio.ensure_future(self._commit(offsets))
                    stats.batches += 1
                    stats.records += len(records)
                if self.between is not None:
                    await self.between()
        finally:
            if committing is not None:
                await committing

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member meanwhile: it gets these records again, and
            # what they did is answered from the receipts (or skipped by version). Not an error.
            log.warning("offsets not committed (%s); the records will be delivered again", exc)


class Lease:
    """Ownership of partition 0 of ``topic`` in ``group``: Kafka gives it to one live member at a time.

    The member subscribes but pauses every partition, so it fetches nothing; ``held()`` keeps it
    alive in the group and says whether it holds partition 0 now. When the holder dies the group
    protocol moves the lease after the session timeout; a holder that stops cleanly leaves at once.
    The relay holds one (only the holder publishes). The scheduler is not leased this way: it runs
    on a Faust timer on the leader of the Faust app's group (streams/scheduling.py).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        session_timeout: float = 6.0,
        client_id: str | None = None,
    ) -> None:
        self.partition = TopicPartition(topic, 0)
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            # Who holds the lease, as `kafka-consumer-groups.sh --describe` and DescribeGroups show it.
            client_id=client_id or f"{group}-{socket.gethostname()}-{os.getpid()}",
            **group_timing(session_timeout),
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def held(self) -> bool:
        consumer = self.consumer
        consumer.pause(*consumer.assignment())  # a lease, not a subscription: fetch nothing
        await consumer.getmany(timeout_ms=0)  # keeps this member alive in the group
        return self.partition in consumer.assignment()


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless ``stop`` is set first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
