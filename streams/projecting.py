"""The projector process: credit.ledger into the read models through the runner; list changes and
measure notices out, each from its outbox."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from contract import topics
from contract.deadletters import PROJECTOR, Source
from contract.measures import measures_record
from ledger.application.service import MISCONFIGURED, TRANSIENT
from projections.projector import Projector
from projections.store import ProjectionStore
from streams.isolation import Backoff, DeadLetters, Failure, correlation_id, settle
from streams.producing import send_all, send_all_with_headers, start_producer
from streams.runner import Runner, group_consumer
from streams.storelock import StoreLock

log = logging.getLogger(__name__)

PROJECTIONS_GROUP = "credit-ledger.projections"
BATCH = 5000


def _database_errors() -> tuple[type[Exception], ...]:
    """The read models' "not now": a locked or unreachable database (SQLite, or PostgreSQL if installed)."""
    errors: list[type[Exception]] = [*TRANSIENT, sqlite3.OperationalError]
    try:
        import psycopg  # noqa: PLC0415 - only with the postgres extra

        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:
        pass
    return tuple(errors)


STORE_UNAVAILABLE = _database_errors()


def classify(exc: Exception) -> Failure:
    """The store (or the ledger, read to repair a gap) unavailable is "not now"; this process
    given another master key than the ledger's (opening a name for the blind index) ends it;
    anything else a fold raises is about the messages."""
    if isinstance(exc, MISCONFIGURED):
        return Failure.FATAL
    return Failure.TRANSIENT if isinstance(exc, STORE_UNAVAILABLE) else Failure.POISON


class StoreApplier:
    """Folds batches of ledger messages into the store, one transaction each; parks what cannot fold.

    A message that cannot be decoded or folded (the fold raises for it even alone) is parked on
    credit.dead-letters with its offset and the projector moves on: the subject's later versions
    then meet a gap and are repaired from the ledger's own history, or parked in their turn.
    """

    def __init__(
        self,
        projector: Projector,
        executor: ThreadPoolExecutor,
        dead_letters: DeadLetters,
        *,
        lock: StoreLock | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.projector = projector
        self.executor = executor
        self.dead_letters = dead_letters
        self.lock = lock
        self.backoff = backoff or Backoff()

    async def apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        await settle(records, self._fold, self._park, classify=classify, backoff=self.backoff)

    async def _fold(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self._fold_now, records)

    def _fold_now(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        messages = [orjson.loads(r.value) for r in records]
        if self.lock is None:
            self.projector.apply(messages)
            return
        with self.lock.shared():  # the scheduler's announcements wait; other projectors need not
            self.projector.apply(messages)

    async def _park(self, record: ConsumerRecord[Any, Any], error: Exception) -> None:
        correlation = correlation_id()
        log.error(
            "the message at %s/%d/%d cannot be folded; parking it on %s (correlation id %s)",
            record.topic,
            record.partition,
            record.offset,
            topics.DEAD_LETTERS,
            correlation,
            exc_info=error,
        )
        await self.dead_letters.park(
            Source(record.topic, record.partition, record.offset),
            key=record.key,
            payload=record.value,
            error=error,
            reason="the read models could not fold it, alone, after repeated attempts",
            correlation=correlation,
        )


async def run_projector_process(
    projector: Projector,
    bootstrap: str,
    *,
    session_timeout: float = 6.0,
    stop: asyncio.Event | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Consume credit.ledger and credit.query-audit into the store; commit only after the store has them.

    After every fetch, the list-change and measure-notice outboxes are published. The scheduler no
    longer runs here: it is a Faust timer on the serve workers' leader (streams/scheduling.py).
    """
    store = projector.store
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projections")
    consumer = group_consumer(
        bootstrap,
        topics.LEDGER,
        topics.QUERY_AUDIT,
        group=PROJECTIONS_GROUP,
        session_timeout=session_timeout,
        max_records=BATCH,
    )
    producer = await start_producer(bootstrap)
    await consumer.start()

    async def send(topic: str, key: bytes, value: bytes) -> None:
        await send_all(producer, topic, [(key, value)])

    lock = StoreLock(store.target)
    applier = StoreApplier(projector, executor, DeadLetters(PROJECTOR, send), lock=lock, backoff=backoff)
    runner = Runner(
        consumer,
        applier.apply,
        max_records=BATCH,
        timeout_ms=200,
        between=lambda: publish_outboxes(store, producer, executor),
    )
    stop = stop or asyncio.Event()
    try:
        await runner.run(stop.is_set)
    finally:
        await consumer.stop()
        await producer.stop()
        lock.close()


async def publish_outboxes(store: ProjectionStore, producer: Any, executor: ThreadPoolExecutor) -> None:
    """Both outboxes, list changes first (a designation's list entry before its notices)."""
    await publish_changes(store, producer, executor)
    await publish_notices(store, producer, executor)


async def publish_changes(store: ProjectionStore, producer: Any, executor: ThreadPoolExecutor) -> None:
    """The outbox of list changes, in order; marked published only after the broker acknowledged."""
    loop = asyncio.get_running_loop()
    while True:
        pending = await loop.run_in_executor(executor, store.unpublished, 1000)
        if not pending:
            return
        records = [(orjson.loads(m)["subject_key"].encode(), m) for _, m in pending]
        await send_all(producer, topics.LIST_CHANGES, records)
        await loop.run_in_executor(executor, store.mark_published, [p for p, _ in pending])


async def publish_notices(store: ProjectionStore, producer: Any, executor: ThreadPoolExecutor) -> None:
    """The notice outbox to credit.measures, in order, keyed by subject, the implementing department
    in a header; marked published only after the broker acknowledged (at least once)."""
    loop = asyncio.get_running_loop()
    while True:
        pending = await loop.run_in_executor(executor, store.unpublished_notices, 1000)
        if not pending:
            return
        records = [measures_record(orjson.loads(m)) for _, m in pending]
        await send_all_with_headers(producer, topics.MEASURES, records)
        await loop.run_in_executor(executor, store.mark_notices_published, [p for p, _ in pending])
