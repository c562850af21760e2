"""The intake: batches of raw submissions from Kafka into the ledger, each with exactly one outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from contract import topics
from ledger.application.service import CreditLedger
from ledger.domain.outcomes import Outcome

log = logging.getLogger(__name__)

INTAKE_GROUP = "credit-ledger.intake"


def source_of(message: Any) -> str:
    """Where a message came from: the receipt key for a message that has no usable id of its own.

    The record's timestamp is part of it: offsets start again at 0 when a topic is recreated (the
    embedded broker keeps topics in memory), and a new message must not meet an old one's receipt.
    """
    return f"{message.topic}/{message.partition}/{message.offset}@{message.timestamp}"


@dataclass
class IntakeStats:
    batches: int = 0
    submissions: int = 0
    applying_seconds: float = 0.0  # in the ledger; the rest of the time is waiting for input


async def apply_batch(
    ledger: CreditLedger,
    executor: Executor,
    values: Sequence[bytes],
    sources: Sequence[str],
    *,
    first_delay: float = 0.5,
    max_delay: float = 10.0,
) -> list[Outcome]:
    """Apply one batch in the ledger's thread, retrying while the database is unavailable.

    Offsets are committed by the caller only after this returns, so a batch interrupted here
    (stop, crash) is redelivered, and the ledger's receipts make the redelivery harmless.
    """
    loop = asyncio.get_running_loop()
    delay = first_delay
    while True:
        try:
            return await loop.run_in_executor(
                executor, lambda: ledger.submit_safely(list(values), sources=list(sources))
            )
        except Exception:
            log.exception("the ledger could not apply a batch of %d; retrying in %.1fs", len(values), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


class Intake(Service):
    """Consumes credit.submissions in batches (aiokafka ``getmany``) and commits after applying.

    Why not a Faust agent: Faust's per-event stream machinery delivers at most ~11k events/s on
    this machine with an agent that does nothing (aiokafka ``getmany``: 540k+/s), which alone
    would cap the intake below its 10k/s end-to-end target. The intake still lives inside the
    Faust app (started, stopped and supervised with it); every worker joins the consumer group
    ``credit-ledger.intake``, so partitions, and with them subjects, spread across workers.
    """

    def __init__(
        self,
        ledger: CreditLedger,
        executor: Executor,
        *,
        bootstrap: str,
        batch_size: int,
        session_timeout: float,
        heartbeat_interval: float,
        **kwargs: Any,
    ) -> None:
        self.ledger = ledger
        self.executor = executor
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.session_timeout = session_timeout
        self.heartbeat_interval = heartbeat_interval
        self.stats = IntakeStats()
        self.consumer: AIOKafkaConsumer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            topics.SUBMISSIONS,
            bootstrap_servers=self.bootstrap,
            group_id=INTAKE_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.session_timeout * 1000),
            heartbeat_interval_ms=int(self.heartbeat_interval * 1000),
            max_poll_records=self.batch_size,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group; uncommitted batches are redelivered

    def owns_leadership(self) -> bool:
        """Exactly one member of the group owns partition 0 at a time: that one runs the relay."""
        consumer = self.consumer
        return consumer is not None and TopicPartition(topics.SUBMISSIONS, 0) in consumer.assignment()

    @Service.task
    async def _consume(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        committing: asyncio.Future[None] | None = None
        try:
            while not self.should_stop:
                fetched = await consumer.getmany(timeout_ms=100, max_records=self.batch_size)
                # Per-partition order is kept, and a subject lives in one partition: its order holds.
                messages = [m for tp in sorted(fetched) for m in fetched[tp]]
                if not messages:
                    continue
                began = time.perf_counter()
                await apply_batch(
                    self.ledger, self.executor, [m.value for m in messages], [source_of(m) for m in messages]
                )
                self.stats.applying_seconds += time.perf_counter() - began
                # The batch is in the ledger: its offsets may be committed. The commit's round trip
                # overlaps the next batch instead of idling the ledger; commits still go in order.
                if committing is not None:
                    await committing
                offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items() if records}
                committing = asyncio.ensure_future(consumer.commit(offsets))
                self.stats.batches += 1
                self.stats.submissions += len(messages)
                log.debug("intake: %s", self.stats)
        finally:
            if committing is not None:
                await committing
