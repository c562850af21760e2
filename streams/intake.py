"""The intake: batches of raw submissions from Kafka into the ledger, each with exactly one outcome."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from mode import Service

from contract import topics
from contract.deadletters import INTAKE, Source
from ledger.application.service import MISCONFIGURED, TRANSIENT, CreditLedger
from ledger.domain.inbox import INBOX_HEADER, InboxSeal
from ledger.domain.outcomes import Outcome
from streams.isolation import Backoff, DeadLetters, Failure, Send, correlation_id, settle
from streams.runner import Runner, RunnerStats, group_consumer

log = logging.getLogger(__name__)

R = TypeVar("R")

INTAKE_GROUP = "credit-ledger.intake"

UNREADABLE = b"\xff(the intake could not read this message; the dead letter has its digest)"
"""What the receipt of a message the ledger could not even parse records as its original: not
UTF-8, so it is receipted under its source like any undecodable message (see ``receipt``)."""


def source_of(message: Any, seal: InboxSeal | None = None) -> str:
    """Where a message came from: the receipt key for a message that has no usable id of its own.

    The record's timestamp is part of it: offsets start again at 0 when a topic is recreated (the
    embedded broker keeps topics in memory), and a new message must not meet an old one's receipt.
    A row of the inbox, drained by the relay with its seal, is read under its inbox position
    instead (``inbox/17``): the same row drained twice is the same message (``ledger.domain.inbox``).
    """
    if message.headers and seal is not None:  # the common case, a department's message, has none
        for name, value in message.headers:
            if name == INBOX_HEADER:
                found = seal.source(value, message.value or b"")
                if found is not None:
                    return found
    return f"{message.topic}/{message.partition}/{message.offset}@{message.timestamp}"


@dataclass
class IntakeStats(RunnerStats):
    dead_letters: int = 0  # messages this worker parked on credit.dead-letters

    @property
    def submissions(self) -> int:
        return self.records


def classify(exc: Exception) -> Failure:
    """The database unavailable is "not now"; this process misconfigured (another master key than
    the ledger's) ends it; anything else the ledger raises is about the batch."""
    if isinstance(exc, MISCONFIGURED):
        return Failure.FATAL
    return Failure.TRANSIENT if isinstance(exc, TRANSIENT) else Failure.POISON


class LedgerApplier:
    """Applies batches of records to the ledger on its thread; parks what it cannot decide.

    ``submit_safely`` already decides each message of a batch (it rejects what it cannot apply as
    ``internal_error``). What is left is the ledger raising anyway (for the batch, or for a message
    even alone): the batch is bisected, and a message that keeps failing is receipted (the ledger
    records an ``internal_error`` rejection for it, so it still has its one outcome) and parked on
    credit.dead-letters with its position; then the flow goes on.
    """

    def __init__(
        self, ledger: CreditLedger, executor: Executor, dead_letters: DeadLetters, backoff: Backoff
    ) -> None:
        self.ledger = ledger
        self.executor = executor
        self.dead_letters = dead_letters
        self.backoff = backoff

    async def apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        await settle(records, self._submit, self._park, classify=classify, backoff=self.backoff)

    async def _submit(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[Outcome]:
        values = [r.value or b"" for r in records]  # a null value is an empty, undecodable message
        seal = self.ledger.inbox_seal
        sources = [source_of(r, seal) for r in records]
        return await self._db(lambda: self.ledger.submit_safely(values, sources=sources))

    async def _park(self, record: ConsumerRecord[Any, Any], error: Exception) -> None:
        correlation = correlation_id()
        log.error(
            "submission %s could not be applied even alone; rejecting it as internal_error and parking "
            "it on %s (correlation id %s)",
            source_of(record, self.ledger.inbox_seal),
            topics.DEAD_LETTERS,
            correlation,
            exc_info=error,
        )
        outcome = await self.receipt(record, correlation)
        receipt = None
        if outcome is not None:
            receipt = {
                "department": outcome.department,
                "submission_id": outcome.submission_id,
                "status": outcome.status,
            }
        await self.dead_letters.park(
            Source(record.topic, record.partition, record.offset),
            key=record.key,
            payload=record.value,
            error=error,
            reason="the ledger could not apply it, alone, after repeated attempts; it was rejected "
            "as internal_error" + ("" if outcome else " (no receipt could be recorded)"),
            correlation=correlation,
            receipt=receipt,
        )

    async def receipt(self, record: ConsumerRecord[Any, Any], correlation: str) -> Outcome | None:
        """Record the ``internal_error`` rejection; if even reading the message fails, record it
        under its source with a placeholder original. None if the ledger cannot record either."""
        source = source_of(record, self.ledger.inbox_seal)
        for raw in (record.value or b"", UNREADABLE):
            try:
                return await self._retrying(functools.partial(self.ledger.reject_unapplicable, raw, source))
            except Exception:
                log.exception("no receipt for %s (correlation id %s)", source, correlation)
        return None

    async def _retrying(self, fn: Callable[[], Outcome]) -> Outcome:
        """``fn`` on the ledger thread, retried while the database is unavailable."""
        for delay in self.backoff.delays():
            try:
                return await self._db(fn)
            except TRANSIENT:
                log.warning("the ledger is unavailable; retrying in %.1fs", delay, exc_info=True)
            await self.backoff.sleep(delay)
        raise AssertionError("unreachable: the delays never end")

    async def _db(self, fn: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


def _idle() -> None:
    """Nothing: run on the ledger thread, it returns once the work queued before it is done."""


LAST_COMMIT_SECONDS = 5.0
"""How long a stopping intake waits for its consume loop's last offset commit before it stops the
consumer anyway (a loop stuck elsewhere must not hold the stop; its batch is delivered again)."""


class Intake(Service):
    """Consumes credit.submissions in batches (aiokafka ``getmany``) through the runner.

    Why not a Faust agent: Faust's per-event stream machinery delivers far fewer events per second
    than ``getmany`` (re-measured by ``bench/delivery.py``; see docs/streams.md), which alone would
    cap the intake below its 10k/s end-to-end target. The intake still lives inside the Faust app
    (started, stopped and supervised with it); every worker joins the consumer group
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
        send: Send,
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> None:
        self.ledger = ledger
        self.bootstrap = bootstrap
        self.batch_size = batch_size
        self.session_timeout = session_timeout
        self.heartbeat_interval = heartbeat_interval
        self.stats = IntakeStats()
        self.dead_letters = DeadLetters(INTAKE, send)
        self.applier = LedgerApplier(ledger, executor, self.dead_letters, backoff or Backoff())
        self.consumer: AIOKafkaConsumer | None = None
        self._consuming: asyncio.Event | None = None  # set once the consume loop has ended
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.consumer = group_consumer(
            self.bootstrap,
            topics.SUBMISSIONS,
            group=INTAKE_GROUP,
            session_timeout=self.session_timeout,
            heartbeat_interval=self.heartbeat_interval,
            max_records=self.batch_size,
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        # The batch the ledger thread is applying finishes there even if its task is cancelled;
        # wait for it (a no-op queued behind it on the one thread) so that serve closes the ledger
        # after it, not under it: a batch meeting a closed pool made a stopping worker hang.
        await asyncio.get_running_loop().run_in_executor(self.applier.executor, _idle)
        # The consume loop sees should_stop at its next fetch and awaits its last commit. Stopping
        # the consumer under that commit closed its connection mid-request: aiokafka logged "Error
        # sending OffsetCommitRequest ... marking coordinator dead" at many a clean stop, and the
        # batch it was committing was delivered again at the next start.
        if self._consuming is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._consuming.wait(), LAST_COMMIT_SECONDS)
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group; uncommitted batches are redelivered

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        self._consuming = asyncio.Event()
        runner = Runner(self.consumer, self._apply, max_records=self.batch_size, stats=self.stats)
        try:
            await runner.run(lambda: self.should_stop)
        finally:
            self._consuming.set()

    async def _apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        await self.applier.apply(records)
        self.stats.dead_letters = self.dead_letters.count
