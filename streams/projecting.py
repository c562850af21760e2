"""The projector process: credit.ledger into the read models, list changes out, time into commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson

from contract import topics
from ledger.domain.workdays import local_date
from projections.projector import Projector
from projections.scheduler import scheduled_submissions
from projections.store import ProjectionStore
from streams.broker import group_timing

log = logging.getLogger(__name__)

PROJECTIONS_GROUP = "credit-ledger.projections"


async def run_projector_process(
    projector: Projector,
    bootstrap: str,
    *,
    session_timeout: float = 6.0,
    scheduler_interval: float = 60.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: asyncio.Event | None = None,
) -> None:
    """Consume credit.ledger into the store; commit offsets only after the store has the batch.

    The member that owns partition 0 of credit.ledger also runs the scheduler, so the platform's
    time-driven commands are sent once per deployment (and re-sent harmlessly until acted on).
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: PLC0415

    store = projector.store
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projections")
    loop = asyncio.get_running_loop()
    consumer = AIOKafkaConsumer(
        topics.LEDGER,
        topics.QUERY_AUDIT,
        bootstrap_servers=bootstrap,
        group_id=PROJECTIONS_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **group_timing(session_timeout),
        max_poll_records=5000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    stop = stop or asyncio.Event()
    lease = TopicPartition(topics.LEDGER, 0)
    next_tick = 0.0
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
            messages = [orjson.loads(m.value) for tp in sorted(fetched) for m in fetched[tp]]
            if messages:
                await loop.run_in_executor(executor, projector.apply, messages)
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in fetched.items() if rs})
            if lease in consumer.assignment() and loop.time() >= next_tick:
                next_tick = loop.time() + scheduler_interval
                await _schedule(projector, store, producer, executor, clock())
            await _publish_changes(store, producer, executor)
    finally:
        await consumer.stop()
        await producer.stop()


async def _schedule(
    projector: Projector, store: ProjectionStore, producer: Any, executor: ThreadPoolExecutor, now: datetime
) -> None:
    loop = asyncio.get_running_loop()
    today = local_date(now)
    due = await loop.run_in_executor(executor, store.due_on_or_before, today.isoformat())
    commands = scheduled_submissions(due, today)
    acks = [
        await producer.send(topics.SUBMISSIONS, key=c["subject"]["key"].encode(), value=orjson.dumps(c))
        for c in commands
    ]
    await asyncio.gather(*acks)
    announced = await loop.run_in_executor(executor, projector.announce_clean, today)
    if commands or announced:
        log.info("scheduler: %d ledger commands sent, %d clean-record entries", len(commands), len(announced))


async def _publish_changes(store: ProjectionStore, producer: Any, executor: ThreadPoolExecutor) -> None:
    """The outbox of list changes, in order; marked published only after the broker acknowledged."""
    loop = asyncio.get_running_loop()
    while True:
        pending = await loop.run_in_executor(executor, store.unpublished, 1000)
        if not pending:
            return
        acks = []
        for _, message in pending:
            key = orjson.loads(message)["subject_key"].encode()
            acks.append(await producer.send(topics.LIST_CHANGES, key=key, value=message))
        await asyncio.gather(*acks)
        await loop.run_in_executor(executor, store.mark_published, [p for p, _ in pending])
