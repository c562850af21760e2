"""kafka-python clients for departments and auditors: publish submissions, read topics to their end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from contract.measures import department_of
from contract.messages import submission_key
from ledger.application.limits import MAX_DECODED_BYTES, MAX_SUBMISSION_BYTES


@dataclass
class PublishReport:
    sent: int = 0
    refused: int = 0  # lines that never left this machine (not JSON, too large, wrong department)
    failed: int = 0  # the broker did not acknowledge


class LocalRefusal(ValueError):
    """A line the publisher will not send, with the reason a person can act on."""


@dataclass(frozen=True)
class Prepared:
    """One line ready to send: its number in the file, Kafka key and value, and the (department,
    submission id) the ledger will register it under (None when it has no string pair)."""

    number: int
    key: bytes
    value: bytes
    ident: tuple[str, str] | None


def too_large(number: int, size: int) -> LocalRefusal:
    """The ledger's own limit and code (``ledger.application.limits``), refused before sending."""
    return LocalRefusal(
        f"line {number}: too_large: the submission is {size:,} bytes; at most {MAX_SUBMISSION_BYTES:,} "
        "bytes are accepted (the ledger's limit for one submission)"
    )


def prepare(line: bytes, department: str | None, number: int, action: str | None = None) -> Prepared:
    """One JSON line ready to send; raises LocalRefusal for a line that cannot be sent.

    ``action``: this publisher sends only that action (filled in where a line has none)."""
    if len(line) > MAX_DECODED_BYTES:  # not even read: it could only be refused
        raise too_large(number, len(line))
    try:
        submission = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LocalRefusal(f"line {number}: not valid JSON ({exc})") from None
    if not isinstance(submission, dict):
        raise LocalRefusal(f"line {number}: a submission must be a JSON object")
    if department is not None:
        declared = submission.setdefault("department", department)
        if declared != department:
            raise LocalRefusal(
                f"line {number}: department is {declared!r}, but this publisher is {department!r}"
            )
        line = orjson.dumps(submission)
    if action is not None:
        declared_action = submission.setdefault("action", action)
        if declared_action != action:
            raise LocalRefusal(
                f"line {number}: action is {declared_action!r}; this publisher sends only {action!r}"
            )
        line = orjson.dumps(submission)
    if len(line) > MAX_SUBMISSION_BYTES:
        raise too_large(number, len(line))
    who, sid = submission.get("department"), submission.get("submission_id")
    ident = (who, sid) if isinstance(who, str) and isinstance(sid, str) else None
    return Prepared(number, submission_key(submission), line, ident)


def prepared(
    lines: Iterable[bytes],
    department: str | None,
    report: PublishReport,
    on_refusal: Callable[[str], None] | None,
    action: str | None = None,
) -> Iterator[Prepared]:
    """The lines that can be sent, numbered as in the file (blank lines count, and are skipped);
    each refusal is counted in ``report`` and told to ``on_refusal``."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield prepare(line, department, number, action)
        except LocalRefusal as exc:
            report.refused += 1
            if on_refusal:
                on_refusal(str(exc))


SEND_BLOCK_SECONDS = 10
"""How long a send may wait for the topic's metadata (the broker away, the topic not there yet)."""


def department_producer(bootstrap: str) -> KafkaProducer:
    """The department client's producer: acks=all, one request in flight (order kept on retries),
    requests large enough for any submission the ledger accepts, and it never creates a topic.

    A broker with automatic topic creation (the embedded one has it) would otherwise create
    credit.submissions with its own partition count when a client sends to it before ``serve``
    has made the platform's topics (after a restart, say), and ``serve`` then refuses to start
    on a topic that does not have the contract's partitions."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=10,
        retries=5,
        max_in_flight_requests_per_connection=1,
        max_request_size=max(MAX_SUBMISSION_BYTES * 2, 1024 * 1024),
        allow_auto_create_topics=False,
        max_block_ms=SEND_BLOCK_SECONDS * 1000,
    )


def publish(
    bootstrap: str,
    lines: Iterable[bytes],
    topic: str,
    *,
    department: str | None = None,
    action: str | None = None,
    on_progress: Callable[[PublishReport], None] | None = None,
    on_refusal: Callable[[str], None] | None = None,
    report: PublishReport | None = None,
) -> PublishReport:
    """Send every line with acks=all and wait for every acknowledgement.

    A line that cannot be sent (not a JSON object, over the ledger's size limit, another
    department's) is refused here and the others still go; a send the broker fails is counted as
    failed and the others still go. ``report`` (filled in as it goes) lets a caller that is
    interrupted still say what happened.
    """
    report = report or PublishReport()
    producer = department_producer(bootstrap)
    futures = []
    away = False  # the broker did not take a line in time: the rest are counted failed, unsent
    try:
        for line in prepared(lines, department, report, on_refusal, action):
            if away:
                report.failed += 1
                continue
            try:
                futures.append(producer.send(topic, key=line.key, value=line.value))
            except KafkaTimeoutError:
                report.failed += 1
                away = True
                if on_refusal:
                    on_refusal(
                        f"line {line.number}: the broker did not take it within {SEND_BLOCK_SECONDS} s "
                        f"(is {topic} there?); it and the lines after it are not sent"
                    )
            except KafkaError:  # refused by the producer itself: this line only
                report.failed += 1
            if len(futures) >= 5000:
                _settle(futures, report, on_progress)
        producer.flush()
        _settle(futures, report, on_progress)
    finally:
        producer.close()
    return report


def send_records(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Send (key, value) records in order with acks=all; return how many, once all are acknowledged.

    Raises the first failure: for the platform's own records (signed checkpoints), where a
    missing one must be an error, not a count in a report. The platform's one producer
    (``streams.producing``), so these records are produced exactly as the relay's are.
    """
    import asyncio  # noqa: PLC0415

    from streams.producing import send_all, start_producer  # noqa: PLC0415 - aiokafka only when sending

    batch = list(records)
    if not batch:
        return 0  # no connection for nothing (serve calls this at every start)

    async def run() -> int:
        producer = await start_producer(bootstrap)
        try:
            return await send_all(producer, topic, batch)
        finally:
            await producer.stop()

    return asyncio.run(run())


def _settle(
    futures: list[Any], report: PublishReport, on_progress: Callable[[PublishReport], None] | None
) -> None:
    for future in futures:
        try:
            future.get(timeout=30)
            report.sent += 1
        except Exception:
            report.failed += 1
    futures.clear()
    if on_progress:
        on_progress(report)


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    idle: float = 2.0,
    from_beginning: bool = True,
    deadline: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Any]:
    """Every record of ``topic`` across all partitions, from the beginning (or the end).

    Without ``follow`` it stops when fetches have come back empty for ``idle`` seconds: the
    end is never decided from end offsets, which the embedded broker under-reports.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, allow_auto_create_topics=False
    )
    try:
        partitions = _partitions(consumer, topic)
        consumer.assign(partitions)
        if from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        last = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            if batch:
                last = time.monotonic()
                for records in batch.values():
                    yield from records
            elif not follow and time.monotonic() - last >= idle:
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            if stop is not None and stop.is_set():
                return
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str, timeout: float = 10.0) -> list[TopicPartition]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        time.sleep(0.1)
    msg = f"topic {topic} does not exist on {consumer.config['bootstrap_servers']}; is the ledger serving?"
    raise LookupError(msg)


def consume_all(
    bootstrap: str, topic: str, on_batch: Callable[[list[bytes]], None], *, idle: float = 2.0
) -> int:
    """Feed every record value of ``topic``, from the beginning, to ``on_batch``; return the count.

    aiokafka's batched fetches (several hundred thousand records/s here) for bulk reads such as a
    rebuild. Like ``read_topic``, the end is where fetches have come back empty for ``idle``
    seconds, never an end offset.
    """
    import asyncio  # noqa: PLC0415

    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from aiokafka import TopicPartition as AioPartition  # noqa: PLC0415

    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            deadline = time.monotonic() + 10
            while not (found := consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise LookupError(f"topic {topic} does not exist on {bootstrap}")
                await consumer._client.force_metadata_update()
            partitions = [AioPartition(topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            count, last = 0, time.monotonic()
            while True:
                fetched = await consumer.getmany(timeout_ms=200, max_records=20_000)
                if fetched:
                    values = [r.value for tp in sorted(fetched) for r in fetched[tp]]
                    on_batch(values)
                    count += len(values)
                    last = time.monotonic()
                elif time.monotonic() - last >= idle:
                    return count
        finally:
            await consumer.stop()

    return asyncio.run(run())


def read_measures(
    bootstrap: str,
    topic: str,
    department: str,
    *,
    group: str | None,
    from_beginning: bool = False,
    follow: bool = False,
    idle: float = 2.0,
    consumer_options: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """The values of ``department``'s messages on ``credit.measures``, picked by their header
    (others' are never decoded).

    With ``from_beginning`` every message from the start, the group's position left alone;
    otherwise the consumer ``group`` (a new one starts at the first message) and its position,
    committed as it goes. Without ``follow`` it stops after ``idle`` seconds of quiet.
    """
    if from_beginning:
        for record in read_topic(bootstrap, topic, follow=follow, idle=idle, stop=stop):
            if department_of(record.headers) == department:
                yield record.value
        return
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        **(consumer_options or {}),
    )
    try:
        last = None
        while stop is None or not stop.is_set():
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            if batch:
                last = time.monotonic()
                for records in batch.values():
                    for record in records:
                        if department_of(record.headers) == department:
                            yield record.value
            elif consumer.assignment():
                last = last or time.monotonic()  # quiet counts from the group's assignment
                if not follow and time.monotonic() - last >= idle:
                    return
    finally:
        consumer.close(timeout_ms=5000)  # commit what was read, leave the group: bounded (default 30 s)
