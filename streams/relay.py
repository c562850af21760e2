"""The outbox relay: publishes the ledger's events and outcomes to Kafka, in order, from tracked positions,
and drains the HTTP doors' inbox to credit.submissions (``streams.drain``) between its pages."""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from contract import topics
from contract.deadletters import RELAY, Source
from contract.messages import ledger_message, outcome_message
from ledger.application.service import CreditLedger
from ledger.domain.outcomes import REJECTED
from ledger.verification.policy import WitnessEndpoint
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from streams.digests import CheckpointPublisher
from streams.drain import InboxDrain
from streams.isolation import Backoff, DeadLetters, Failure, correlation_id, settle
from streams.producing import MAX_BATCH_BYTES, MAX_REQUEST_BYTES, RECORD_ERRORS, start_producer
from streams.runner import Lease, wait_or_stop
from streams.witnessing import WitnessClient

log = logging.getLogger(__name__)

LEDGER_CURSOR = "credit.ledger"
QUERY_RECORDED = "QueryRecorded"
OUTCOMES_CURSOR = "credit.outcomes"

Record = tuple[str, bytes, bytes]
"""(topic, key, value) of one record to publish."""

# publish(records) sends the records, keyed as given and in the given order within each partition,
# and returns once the broker has acknowledged every one of them (it raises if any failed).
Publish = Callable[[Sequence[Record]], Awaitable[None]]

_VALUE = operator.itemgetter(2)


@dataclass
class Page:
    """A page to publish: its records, the position each publishes (notification id, or receipt
    position for outcomes), the last position of the page and how many events or receipts it has."""

    last: int
    count: int
    positions: list[int]
    records: list[Record]

    def add(self, position: int, record: Record) -> None:
        self.positions.append(position)
        self.records.append(record)


def classify(exc: Exception) -> Failure:
    """A record the broker will never take is parked; anything else ends the process (serve
    restarts it, and it resumes after the last position saved)."""
    return Failure.POISON if isinstance(exc, RECORD_ERRORS) else Failure.FATAL


class Relay:
    """Reads the ledger's notification log and submission register after the last position it
    published, publishes a page of records, waits for the broker's acknowledgement of all of it,
    and only then records the new position. A crash between publishing and recording re-sends a
    tail that consumers recognise by ``position`` (and events by ``subject_key``/``version``);
    nothing is ever published that the ledger did not commit, and nothing committed is skipped.
    """

    def __init__(
        self,
        ledger: CreditLedger,
        publish: Publish,
        executor: Executor,
        *,
        page: int = 2000,
        backoff: Backoff | None = None,
        drain: InboxDrain | None = None,
    ) -> None:
        self.ledger = ledger
        self.publish = publish
        self.executor = executor
        self.page = page
        self.backoff = backoff or Backoff()
        self.drain = drain  # the inbox's, a page of it between each page of events and outcomes
        self.dead_letters = DeadLetters(RELAY)
        self._positions: dict[str, int] = {}  # what this relay saved last; read once from the ledger

    async def _position(self, cursor: str) -> int:
        if cursor not in self._positions:
            self._positions[cursor] = await self._db(self.ledger.reader.relay_position, cursor)
        return self._positions[cursor]

    async def _save(self, cursor: str, position: int) -> None:
        await self._db(self.ledger.reader.save_relay_position, cursor, position)
        self._positions[cursor] = position

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_once(self) -> int:
        """Publish everything committed so far; return how many events and outcomes were published.

        Pages are read until a round in which every page came back short of a full one: each read
        found everything committed when it ran. (It used to go on until a round found nothing,
        which at hundreds of query records a second was a round of three reads for every few
        records, and with the loop in ``run_relay_process`` that never paused, the relay spent
        ~500 us of CPU a record publishing pages of a few records: bench/checks.py, session 13.)
        """
        sent = 0
        while True:
            events = await self._relay_events()
            outcomes = await self._relay_outcomes()
            drained = await self.drain.run_once() if self.drain is not None else 0
            sent += events + outcomes + drained
            drain_page = self.drain.page if self.drain is not None else 1
            if events < self.page and outcomes < self.page and drained < drain_page:
                return sent

    async def _relay_events(self) -> int:
        position = await self._position(LEDGER_CURSOR)
        # Read and encoded off the event loop, in one hop: the loop keeps serving the broker meanwhile.
        page: Page = await self._db(self._event_records, position)
        if not page.records:
            return 0
        await self._publish(page)
        await self._save(LEDGER_CURSOR, page.last)
        return len(page.records)

    async def _relay_outcomes(self) -> int:
        position = await self._position(OUTCOMES_CURSOR)
        page: Page = await self._db(self._outcome_records, position)
        if not page.count:
            return 0
        await self._publish(page)
        await self._save(OUTCOMES_CURSOR, page.last)
        return page.count

    def _event_records(self, position: int) -> Page:
        """The page of events after ``position``."""
        rows = self.ledger.reader.event_rows(position, self.page)
        records = [_event_record(*row) for row in rows]
        page = Page(rows[-1][0] if rows else position, len(rows), [row[0] for row in rows], records)
        # Event keys are subject keys (36 bytes): only a value can make a record too large. One
        # pass in C over the lengths; the record-by-record check only for a page that needs it.
        if records and max(map(len, map(_VALUE, records))) > MAX_BATCH_BYTES - 64:
            self._guard(page)
        return page

    def _outcome_records(self, position: int) -> Page:
        """The page of the outcomes log after ``position``: one outcome per submission received
        (a rejection is published twice: to outcomes and to rejections), ``count`` the entries."""
        logged = self.ledger.outcomes_after(position, None, self.page)
        page = Page(logged[-1][0] if logged else position, len(logged), [], [])
        for pos, outcome in logged:
            key, value = outcome_message(pos, outcome)
            page.add(pos, (topics.OUTCOMES, key, value))
            if outcome.status == REJECTED:
                page.add(pos, (topics.REJECTIONS, key, value))
        self._guard(page)  # keys here can be submission ids of any length
        return page

    def _guard(self, page: Page) -> None:
        """Replace each record larger than a produce request may be with its dead letter."""
        for i, (_, key, value) in enumerate(page.records):
            if len(key) + len(value) <= MAX_BATCH_BYTES:  # only larger ones can be too large for a request
                continue
            size = record_size(key, value)
            if size > MAX_REQUEST_BYTES:
                position = page.positions[i]
                reason = (
                    f"a {size}-byte record is larger than the {MAX_REQUEST_BYTES} bytes a produce request "
                    f"may carry; it stays in the ledger at position {position}"
                )
                error = MessageSizeTooLargeError(reason)
                page.records[i] = self._letter(position, page.records[i], error, reason)

    async def _publish(self, page: Page) -> None:
        """Publish a page; a record the broker refuses for itself is parked and the page goes on."""
        everything = range(len(page.records))

        async def send(indices: Sequence[int]) -> None:
            whole = len(indices) == len(everything)  # the happy path: no copy of the page
            await self.publish(page.records if whole else [page.records[i] for i in indices])

        async def park(index: int, error: Exception) -> None:
            position = page.positions[index]
            reason = (
                f"the broker refused the record ({type(error).__name__}); "
                f"it stays in the ledger at position {position}"
            )
            await self.publish([self._letter(position, page.records[index], error, reason)])

        await settle(everything, send, park, classify=classify, backoff=self.backoff, what="a page")

    def _letter(self, position: int, record: Record, error: Exception, reason: str) -> Record:
        topic, key, value = record
        correlation = correlation_id()
        log.error(
            "parking the record for %s at position %d on %s (%s; correlation id %s)",
            topic,
            position,
            topics.DEAD_LETTERS,
            error,
            correlation,
        )
        return self.dead_letters.letter(
            Source(topic, position=position),
            key=key,
            payload=value,
            error=error,
            reason=reason,
            correlation=correlation,
        )


def _event_record(position: int, stream_id: Any, version: int, topic: str, state: bytes) -> Record:
    # orjson's plain view of the stored state: the one tagged value in an event's state is its
    # timestamp, which ledger_message unwraps; nothing is upcast or re-interpreted.
    key, value = ledger_message(position, stream_id, version, topic, orjson.loads(state))
    # Query records are ledger events too, but they are the query register's, not credit data.
    return (topics.QUERY_AUDIT if topic.endswith(QUERY_RECORDED) else topics.LEDGER), key, value


HASH_CACHE_SIZE = 20_000
"""Keys whose partitioning hash is remembered (about 3 MB): murmur2 in pure Python costs ~4 µs a key,
and keys recur: a submission's events and its outcome, published a page apart, share one."""


class KafkaPublisher:
    """Publishes pages of records through one aiokafka producer, in batches of one partition each.

    ``producer.send`` costs several microseconds a record (a future, a partitioner call with a
    pure-Python murmur2, accumulator bookkeeping); a page is instead grouped by partition here and
    handed over as closed batches, one acknowledgement each. Partitions are chosen exactly as the
    producer's default partitioner chooses them for a keyed record, so every record lands where
    ``producer.send`` would have put it, and each partition's records keep their order.
    """

    def __init__(self, producer: Any) -> None:
        from aiokafka.partitioner import murmur2  # noqa: PLC0415

        self.producer = producer
        self._murmur2: Callable[[bytes], int] = murmur2
        self._hashes: dict[bytes, int] = {}

    async def send(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> Any:
        """One record through the producer's own path (the checkpoint publisher's ``Send``, the
        inbox drain's ``SendHeaded``): the awaitable of its acknowledgement."""
        return await self.producer.send(topic, value=value, key=key, headers=headers)

    async def publish(self, records: Sequence[Record]) -> None:
        """Send ``records`` and return once every one is acknowledged (see ``Publish``)."""
        acks: list[Awaitable[Any]] = []
        try:
            for (topic, partition), group in (await self._by_partition(records)).items():
                acks += await self._send_partition(topic, partition, group)
        except BaseException:
            # What failed is raised; the batches already handed over may fail too, unobserved.
            asyncio.gather(*acks, return_exceptions=True)
            raise
        await asyncio.gather(*acks)

    async def _by_partition(self, records: Sequence[Record]) -> dict[tuple[str, int], list[Record]]:
        """The records grouped by the partition each goes to, each group in the records' order."""
        partitions: dict[str, list[int]] = {}
        grouped: dict[tuple[str, int], list[Record]] = {}
        hashes = self._hashes
        for record in records:
            topic, key, value = record
            if len(key) + len(value) > MAX_BATCH_BYTES:  # only these can be too large for a request
                _check_size(key, value)
            if topic not in partitions:
                # As the default partitioner indexes them: the producer's metadata, as listed.
                partitions[topic] = list(await self.producer.partitions_for(topic))
            hashed = hashes.get(key)
            if hashed is None:
                hashed = self._hash(key)
            listed = partitions[topic]
            grouped.setdefault((topic, listed[hashed % len(listed)]), []).append(record)
        return grouped

    def _hash(self, key: bytes) -> int:
        """murmur2 of ``key``, as aiokafka's DefaultPartitioner (and Java's client) computes it."""
        if len(self._hashes) >= HASH_CACHE_SIZE:
            self._hashes.clear()  # cheaper than an LRU's bookkeeping on every hit
        hashed = self._hashes[key] = self._murmur2(key) & 0x7FFFFFFF
        return hashed

    async def _send_partition(self, topic: str, partition: int, records: list[Record]) -> list[Any]:
        """Hand one partition's records to the producer as closed batches, in order; their acks."""
        acks = []
        batch = self.producer.create_batch()
        for _, key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                acks.append(await self._send_batch(batch, topic, partition))
                batch = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any record
        acks.append(await self._send_batch(batch, topic, partition))
        return acks

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        # Closed, so no producer.send() to this partition can slip a record into it, and the
        # sender takes it without lingering.
        batch.close()
        return await self.producer.send_batch(batch, topic, partition=partition)


def record_size(key: bytes, value: bytes) -> int:
    """A record's size in a batch of its own, as producer.send measures it against a request's limit."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def _check_size(key: bytes, value: bytes) -> None:
    """Refuse, as producer.send does, a record larger than a request may be (the relay parks such a
    record before it gets here; this is for any other caller)."""
    size = record_size(key, value)
    if size > MAX_REQUEST_BYTES:
        msg = f"a {size}-byte record is larger than the {MAX_REQUEST_BYTES} bytes a request may be"
        raise MessageSizeTooLargeError(msg)


RELAY_GROUP = "credit-ledger.relay"


async def run_relay_process(
    ledger: CreditLedger,
    bootstrap: str,
    *,
    session_timeout: float = 6.0,
    interval: float = 0.05,
    data_dir: Path,
    stop: asyncio.Event | None = None,
    origin: str = DEFAULT_ORIGIN,
    witnesses: Sequence[WitnessEndpoint] = (),
    checkpoint_key: str | None = None,
) -> None:
    """Run the relay as its own process, so its work uses a core the intake does not.

    Several relay processes may run (one per `serve`); only the one holding the lease publishes.
    The lease is ownership of partition 0 of credit.submissions in the group
    ``credit-ledger.relay`` (``streams.runner.Lease``); the relay never consumes those submissions.
    A failed publish ends the process (serve restarts it), and the next relay resumes after the
    last position saved, so nothing unacknowledged is ever counted as published; a record the
    broker will never take is parked on credit.dead-letters instead, and the relay goes on.
    The leader also signs checkpoints of the log ``origin`` and has ``witnesses`` cosign them
    (``streams.digests``); while it waits for witnesses (at most their timeout) it relays nothing.
    """
    lease = Lease(bootstrap, topics.SUBMISSIONS, RELAY_GROUP, session_timeout=session_timeout)
    publisher = KafkaPublisher(await start_producer(bootstrap))
    await lease.start()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
    relay = Relay(ledger, publisher.publish, executor, drain=InboxDrain(ledger, publisher.send, executor))
    digests = CheckpointPublisher(
        ledger,
        publisher.send,
        data_dir=data_dir,
        origin=origin,
        witnesses=WitnessClient(witnesses) if witnesses else None,
        key=checkpoint_key,
    )
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            if await lease.held():
                await relay.run_once()  # returns caught up: everything committed when it read
                await digests.maybe_publish()
            # Busy or idle alike, the next round reads what was committed meanwhile, at most
            # ``interval`` later: under load a page of many records instead of many pages of few.
            await wait_or_stop(stop, interval)
    finally:
        await lease.stop()
        await publisher.producer.stop()
