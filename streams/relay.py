"""The outbox relay: publishes the ledger's events and outcomes to Kafka, in order, from tracked positions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from ledger.application import CreditLedger
from ledger.outcomes import REJECTED
from streams import topics
from streams.broker import group_timing
from streams.digests import CheckpointPublisher
from streams.messages import ledger_message, outcome_message

log = logging.getLogger(__name__)

LEDGER_CURSOR = "credit.ledger"
QUERY_RECORDED = "QueryRecorded"
OUTCOMES_CURSOR = "credit.outcomes"

# send(topic, key, value) schedules one record and returns an awaitable for its acknowledgement.
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class Relay:
    """Reads the ledger's notification log and submission register after the last position it
    published, sends every record, waits for the broker's acknowledgement, and only then
    records the new position. A crash between sending and recording re-sends a tail that
    consumers recognise by ``position`` (and events by ``subject_key``/``version``); nothing
    is ever published that the ledger did not commit, and nothing committed is skipped.
    """

    def __init__(self, ledger: CreditLedger, send: Send, executor: Executor, *, page: int = 2000) -> None:
        self.ledger = ledger
        self.send = send
        self.executor = executor
        self.page = page
        self._positions: dict[str, int] = {}  # what this relay saved last; read once from the ledger

    async def _position(self, cursor: str) -> int:
        if cursor not in self._positions:
            self._positions[cursor] = await self._db(self.ledger.register.relay_position, cursor)
        return self._positions[cursor]

    async def _save(self, cursor: str, position: int) -> None:
        await self._db(self.ledger.register.save_relay_position, cursor, position)
        self._positions[cursor] = position

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_once(self) -> int:
        """Publish everything committed so far; return how many records were sent."""
        sent = 0
        while True:
            batch = await self._relay_events() + await self._relay_outcomes()
            sent += batch
            if batch == 0:
                return sent

    async def _relay_events(self) -> int:
        position = await self._position(LEDGER_CURSOR)
        notifications = await self._db(self.ledger.recorder.select_notifications, position + 1, self.page)
        if not notifications:
            return 0
        acks = []
        for n in notifications:
            # orjson's plain view of the stored state: the one tagged value in an event's state is
            # its timestamp, which ledger_message unwraps; nothing is upcast or re-interpreted.
            key, value = ledger_message(
                n.id, n.originator_id, n.originator_version, n.topic, orjson.loads(n.state)
            )
            # Query records are ledger events too, but they are the query register's, not credit data.
            topic = topics.QUERY_AUDIT if n.topic.endswith(QUERY_RECORDED) else topics.LEDGER
            acks.append(await self.send(topic, key, value))
        await asyncio.gather(*acks)
        await self._save(LEDGER_CURSOR, notifications[-1].id)
        return len(notifications)

    async def _relay_outcomes(self) -> int:
        position = await self._position(OUTCOMES_CURSOR)
        receipts = await self._db(self.ledger.receipts_after, position, None, self.page)
        if not receipts:
            return 0
        acks = []
        for pos, receipt in receipts:
            key, value = outcome_message(pos, receipt)
            acks.append(await self.send(topics.OUTCOMES, key, value))
            if receipt.status == REJECTED:
                acks.append(await self.send(topics.REJECTIONS, key, value))
        await asyncio.gather(*acks)
        await self._save(OUTCOMES_CURSOR, receipts[-1][0])
        return len(receipts)


RELAY_GROUP = "credit-ledger.relay"


async def run_relay_process(
    ledger: CreditLedger,
    bootstrap: str,
    *,
    session_timeout: float = 6.0,
    interval: float = 0.05,
    stop: asyncio.Event | None = None,
    data_dir: Path | None = None,
) -> None:
    """Run the relay as its own process, so its work uses a core the intake does not.

    Several relay processes may run (one per `serve`); only the one holding the lease publishes.
    The lease is ownership of partition 0 of credit.submissions in the group
    ``credit-ledger.relay``: Kafka's group protocol gives it to exactly one live member at a
    time, and moves it when that member dies. The relay never consumes those submissions.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: PLC0415

    lease = TopicPartition(topics.SUBMISSIONS, 0)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    consumer = AIOKafkaConsumer(
        topics.SUBMISSIONS,
        bootstrap_servers=bootstrap,
        group_id=RELAY_GROUP,
        enable_auto_commit=False,
        **group_timing(session_timeout),
    )

    async def send(topic: str, key: bytes, value: bytes) -> Any:
        return await producer.send(topic, value=value, key=key)

    await producer.start()
    await consumer.start()
    relay = Relay(ledger, send, ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay"))
    digests = CheckpointPublisher(ledger, send, data_dir=data_dir)
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            consumer.pause(*consumer.assignment())  # a lease, not a subscription: fetch nothing
            await consumer.getmany(timeout_ms=0)  # keeps this member alive in the group
            leader = lease in consumer.assignment()
            sent = await relay.run_once() if leader else 0
            if leader:
                sent += await digests.maybe_publish()
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
    finally:
        await consumer.stop()
        await producer.stop()
