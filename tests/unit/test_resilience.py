"""A stream must never stall or corrupt itself on one bad submission, and redelivery changes nothing."""

from __future__ import annotations

import asyncio
import copy
import gc
import random
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from eventsourcing.persistence import OperationalError

from ledger.application import handlers
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.domain.creditfile import CreditFile
from ledger.store.rows import StaleRead
from streams.intake import Intake
from streams.relay import LEDGER_CURSOR, MAX_REQUEST_BYTES, OUTCOMES_CURSOR, KafkaPublisher, Record, Relay
from tests.conftest import PERSON, SECRET, Clock, example, file_of


def failing_on_the_correction(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The ledger's command handler raises ``error`` for the example correction (TAX-2026-000102)."""
    real_handle = handlers.handle

    def failing(command: Any, *args: Any) -> Any:
        if command.envelope.submission_id == "TAX-2026-000102":
            raise error
        return real_handle(command, *args)

    monkeypatch.setattr("ledger.application.service.handle", failing)


def test_a_submission_that_breaks_the_ledger_is_rejected_alone_and_the_rest_go_through(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_on_the_correction(monkeypatch, RuntimeError("a bug in one command"))
    outcomes = ledger.submit_safely(
        [example("file_record"), example("correct_record"), example("raise_objection")]
    )
    assert [o.status for o in outcomes] == ["accepted", "rejected", "accepted"]
    assert outcomes[1].reason is not None
    assert outcomes[1].reason["code"] == "internal_error"


def test_an_abandoned_batch_leaves_nothing_behind_in_the_cache(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.submit([example("file_record")])
    version = file_of(ledger, PERSON).version

    def half_done(self: CreditFile, *args: Any, **kwargs: Any) -> None:
        self._record_corrected(
            record="tax_bureau:SW-2026-0101",
            changes={"title": "half"},
            reason="x",
            occurred_at="2026-06-03T03:00:00+00:00",
            timestamp=ledger.clock(),
            submission="x",
        )
        raise RuntimeError("failed after changing the file")

    monkeypatch.setattr(CreditFile, "correct_record", half_done)
    (outcome,) = ledger.submit_safely([example("correct_record")])
    assert outcome.reason is not None
    assert outcome.reason["code"] == "internal_error"
    monkeypatch.undo()
    file = file_of(ledger, PERSON)
    assert file.version == version
    assert file.records["tax_bureau:SW-2026-0101"].corrections == 0


def test_a_file_another_writer_changed_meanwhile_is_retried_alone_not_rejected(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several workers, the platform's own commands for a subject can reach another worker
    than the departments' submissions about it: a conflict is that writer's doing, never a reason
    to reject a submission (the fault suite caught internal_error outcomes under such conflicts)."""
    real_save = ledger._save_batch
    conflicts = iter(range(4))  # the batch's 3 attempts and the first attempt of the submission alone

    def contended(*args: Any, **kwargs: Any) -> None:
        if next(conflicts, None) is not None:
            raise StaleRead("1 file(s) changed after the batch read them")
        real_save(*args, **kwargs)

    monkeypatch.setattr(ledger, "_save_batch", contended)
    (outcome,) = ledger.submit_safely([example("file_record")])
    assert (outcome.status, outcome.duplicate) == ("accepted", False)


def test_a_database_gone_while_a_command_reads_its_file_is_not_now_never_a_rejection(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unavailable (or closed) database while deciding is the batch's to retry later: deciding
    it as internal_error one submission at a time made a stopping worker hang on a closed pool."""
    failing_on_the_correction(
        monkeypatch, OperationalError("pool has already been opened/closed and cannot be reused")
    )
    with pytest.raises(OperationalError):
        ledger.submit_safely([example("file_record"), example("correct_record")])
    monkeypatch.undo()
    outcomes = ledger.submit_safely([example("file_record"), example("correct_record")])
    assert [(o.status, o.duplicate) for o in outcomes] == [("accepted", False), ("accepted", False)]


def test_a_stopping_intake_waits_for_the_batch_the_ledger_thread_is_applying(ledger: CreditLedger) -> None:
    """serve closes the ledger once the intake has stopped: by then no batch may still be running."""
    executor = ThreadPoolExecutor(max_workers=1)
    intake = Intake(
        ledger, executor, bootstrap="127.0.0.1:1", batch_size=10, session_timeout=6, heartbeat_interval=2,
        send=None,  # type: ignore[arg-type]  # never sends: nothing is parked here
    )  # fmt: skip
    finished = threading.Event()

    def a_batch() -> None:
        time.sleep(0.3)
        finished.set()

    async def stop_during_a_batch() -> None:
        running = asyncio.get_running_loop().run_in_executor(executor, a_batch)
        await intake.on_stop()
        assert finished.is_set()
        await running

    asyncio.run(stop_during_a_batch())
    executor.shutdown()


def test_an_undecodable_message_is_receipted_by_its_source_so_redelivery_is_answered_the_same(
    ledger: CreditLedger,
) -> None:
    (first,) = ledger.submit([b"\xff not json"], sources=["credit.submissions/2/41"])
    (again,) = ledger.submit([b"\xff not json"], sources=["credit.submissions/2/41"])
    assert first.submission_id == "credit.submissions/2/41"
    assert (first.status, again.duplicate, again.reason) == ("rejected", True, first.reason)
    ((_, receipt),) = ledger.receipts_after(0)
    assert ledger.open_original(receipt.original) == b"\xff not json"  # kept sealed, opened for its sender


def test_a_serious_record_linked_to_a_person_ends_that_persons_red_list_entry(ledger: CreditLedger) -> None:
    red = copy.deepcopy(example("designate"))
    red.update(department="volunteer_federation", subject={"id": "440524188001010014", "name": "李四"})
    red["designation"].update(list="red", records=[])
    assert ledger.submit([red])[0].accepted
    assert ledger.submit([example("file_record_organisation")])[0].accepted
    person = file_of(ledger, "440524188001010014")
    assert person.designations["HMD-2026-0202"].ended_reason == "serious_adverse_record"


class FakeProducer:
    """Acknowledges every record; remembers what it was sent, in order."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []
        self.fail_after = fail_after

    async def publish(self, records: Sequence[Record]) -> None:
        for topic, key, value in records:
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                raise ConnectionError("broker went away")
            self.sent.append((topic, key, orjson.loads(value)))


def relay_with(ledger: CreditLedger, producer: FakeProducer) -> Relay:
    return Relay(ledger, producer.publish, ThreadPoolExecutor(1), page=3)


def test_the_relay_publishes_in_ledger_order_and_resumes_after_what_was_acknowledged(
    ledger: CreditLedger,
) -> None:
    ledger.submit([example("file_record"), example("file_record_organisation"), example("correct_record")])
    producer = FakeProducer(fail_after=4)
    with pytest.raises(ConnectionError):
        asyncio.run(relay_with(ledger, producer).run_once())
    assert ledger.recorder.relay_position(LEDGER_CURSOR) == 3  # type: ignore[attr-defined]  # one page acknowledged
    producer.fail_after = None
    asyncio.run(relay_with(ledger, producer).run_once())
    ledger_messages = [m for topic, _, m in producer.sent if topic == "credit.ledger"]
    assert [m["position"] for m in ledger_messages] == list(range(1, 8))
    assert ledger.recorder.relay_position(OUTCOMES_CURSOR) == 3  # type: ignore[attr-defined]
    keys = {m["subject_key"] for m in ledger_messages}
    assert all(key.decode() in keys for topic, key, _ in producer.sent if topic == "credit.ledger")


def test_a_relay_round_ends_at_the_first_short_page_without_reading_again_to_find_nothing(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.submit([example("file_record"), example("file_record_organisation"), example("correct_record")])
    read = ledger.reader.event_rows
    pages: list[int] = []

    def counted(after: int, limit: int, **kwargs: Any) -> Any:
        rows = read(after, limit, **kwargs)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(ledger.reader, "event_rows", counted)
    producer = FakeProducer()
    relay = relay_with(ledger, producer)
    assert asyncio.run(relay.run_once()) == 7 + 3  # seven events, three outcomes
    assert pages == [3, 3, 1], "a full page is followed by another read; a short one ends the round"
    assert [m["position"] for t, _, m in producer.sent if t == "credit.ledger"] == list(range(1, 8))
    assert asyncio.run(relay.run_once()) == 0  # nothing new: one read of each, nothing sent
    assert pages == [3, 3, 1, 0]


def test_rejections_go_to_both_outcomes_and_rejections_with_the_original_sealed(ledger: CreditLedger) -> None:
    ledger.submit([{"submission_id": "x", "department": "tax_bureau"}])
    producer = FakeProducer()
    asyncio.run(relay_with(ledger, producer).run_once())
    topics_sent = [t for t, _, _ in producer.sent]
    assert topics_sent == ["credit.outcomes", "credit.rejections"]
    message = producer.sent[1][2]
    assert message["reason"]["field"] == "action"
    assert (message["original"], message["original_sealed"]) == (None, True)
    _department, original = ledger.original_at(message["position"])  # type: ignore[misc]
    assert orjson.loads(original) == {"submission_id": "x", "department": "tax_bureau"}


def test_the_relay_reads_the_same_records_from_sqlite_as_from_the_in_memory_store(
    catalogue: Catalogue, clock: Clock, tmp_path: Path
) -> None:
    # Every recorder serves the read port (ledger.reader); what the relay publishes from it must not
    # depend on which one (tests/contract holds the recorders to the port itself).
    sent = []
    for env in (
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "ledger.sqlite")},
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
    ):
        ledger = CreditLedger(catalogue=catalogue, secret=SECRET, clock=clock, env=env)
        try:
            ledger.submit(
                [example("file_record"), example("file_record_organisation"), example("correct_record")]
            )
            ledger.record_query({"purpose": "a query is a ledger event of the query register"})
            producer = FakeProducer()
            asyncio.run(relay_with(ledger, producer).run_once())
        finally:
            ledger.close()
        assert [t for t, _, _ in producer.sent].count("credit.query-audit") == 1
        # Query records have random ids; everything else is determined by the submissions.
        sent.append([r for r in producer.sent if r[0] != "credit.query-audit"])
    assert sent[0] == sent[1]


class FakeKafka:
    """The part of AIOKafkaProducer that KafkaPublisher uses, with aiokafka's own batch builder."""

    def __init__(self, partitions: int = 6, batch_bytes: int = 512 * 1024, fail: bool = False) -> None:
        self.partitions = partitions
        self.batch_bytes = batch_bytes
        self.fail = fail
        self.batches: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        assert batch.closed(), "a batch must be closed before it is handed over"
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
        self.batches.append((topic, partition, records))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            ack.set_exception(ConnectionError("not acknowledged"))
        else:
            ack.set_result(None)
        return ack


def some_records(n: int) -> list[Record]:
    """Keys as the relay's are (subject keys, submission ids, empty), repeated, and some other bytes."""
    rng = random.Random(7)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(40)]
    keys += [b"", b"TAX-2026-000102", "失信名单".encode(), bytes(rng.getrandbits(8) for _ in range(77))]
    return [
        (rng.choice(("credit.ledger", "credit.outcomes")), rng.choice(keys), orjson.dumps({"n": i}))
        for i in range(n)
    ]


def test_the_publisher_puts_each_record_on_the_partition_producer_send_would_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streams.relay.HASH_CACHE_SIZE", 10)  # the cache is emptied and refilled, too
    kafka = FakeKafka(batch_bytes=300)  # a few records a batch: partitions span several batches
    records = some_records(500)
    asyncio.run(KafkaPublisher(kafka).publish(records))
    partitions = sorted(range(kafka.partitions))
    expected: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, key, value in records:
        expected.setdefault((topic, DefaultPartitioner()(key, partitions, partitions)), []).append(
            (key, value)
        )
    published: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, partition, batch in kafka.batches:
        published.setdefault((topic, partition), []).extend(batch)
    assert published == expected
    assert len(kafka.batches) > len(expected)


def test_the_publisher_raises_when_a_batch_is_not_acknowledged() -> None:
    with pytest.raises(ConnectionError):
        asyncio.run(KafkaPublisher(FakeKafka(fail=True)).publish(some_records(50)))


def test_the_publisher_refuses_a_record_larger_than_a_request_before_sending_any() -> None:
    kafka = FakeKafka()
    records = [*some_records(5), ("credit.rejections", b"k", b"x" * MAX_REQUEST_BYTES)]
    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(KafkaPublisher(kafka).publish(records))
    assert kafka.batches == []


class BrokenKafka(FakeKafka):
    """Takes four batches, whose acknowledgements fail, and then cannot take any more."""

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[None]:
        if len(self.batches) == 4:
            raise RuntimeError("producer closed")
        return await super().send_batch(batch, topic, partition=partition)


def test_a_page_the_producer_cannot_take_fails_without_leaving_failures_unobserved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(RuntimeError, match="producer closed"):
        asyncio.run(KafkaPublisher(BrokenKafka(fail=True)).publish(some_records(100)))
    gc.collect()
    assert "exception was never retrieved" not in caplog.text
