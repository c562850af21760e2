"""The one runner and poison isolation: no message stalls a flow, and nothing is committed before it is applied.

One module of about 475 lines: the loop, poison isolation and the flows that use them are
exercised through the same fakes (``FakeConsumer``, ``FakeProducer``, ``Parked``, ``Sleeps``).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from eventsourcing.persistence import OperationalError

from contract import topics
from contract.deadletters import PAYLOAD_LIMIT, Source, dead_letter, payload_of
from contract.messages import messages_from_store
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from projections.projector import Projector
from projections.store import ProjectionStore
from streams.intake import Intake, LedgerApplier, source_of
from streams.isolation import ATTEMPTS, Backoff, DeadLetters
from streams.producing import MAX_REQUEST_BYTES
from streams.projecting import StoreApplier
from streams.relay import Record, Relay
from streams.runner import Runner
from streams.scheduling import Scheduler
from streams.storelock import StoreLock
from tests.conftest import ORGANISATION, example, file_of

SUBMISSIONS = ["file_record", "file_record_organisation", "correct_record", "designate", "raise_objection"]


def record(offset: int, value: bytes, *, topic: str = topics.SUBMISSIONS, partition: int = 3) -> Any:
    """A consumed record as aiokafka hands it over."""
    return ConsumerRecord(
        topic, partition, offset, 1_700_000_000_000 + offset, 0, b"k", value, None, 1, len(value), []
    )


def submissions(names: Sequence[str]) -> list[bytes]:
    return [orjson.dumps(example(name)) for name in names]


class Sleeps:
    """An injected back-off: records each delay instead of sleeping it."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Parked:
    """Where a flow's dead letters go: remembered, decoded, acknowledged at once."""

    def __init__(self) -> None:
        self.letters: list[tuple[str, bytes, dict[str, Any]]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        assert len(value) < MAX_REQUEST_BYTES
        self.letters.append((topic, key, orjson.loads(value)))


def ledger_raising_for(ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch, poison: bytes) -> list[int]:
    """Make the ledger raise (as a bug would) for every batch that holds ``poison``; count those calls."""
    real = ledger.submit_safely
    calls: list[int] = []

    def submit_safely(batch: Sequence[Any], **kwargs: Any) -> Any:
        if poison in batch:
            calls.append(len(batch))
            raise RecursionError("maximum recursion depth exceeded (deeply nested JSON)")
        return real(batch, **kwargs)

    monkeypatch.setattr(ledger, "submit_safely", submit_safely)
    return calls


def test_a_poison_message_in_the_middle_of_a_batch_is_receipted_parked_with_its_position_and_the_messages_after_it_are_applied(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = orjson.dumps({**example("file_record"), "submission_id": "TAX-POISON-1"})
    values = [*submissions(SUBMISSIONS[:2]), poison, *submissions(SUBMISSIONS[2:])]
    records = [record(40 + i, v) for i, v in enumerate(values)]
    ledger_raising_for(ledger, monkeypatch, poison)
    parked = Parked()
    applier = LedgerApplier(
        ledger, ThreadPoolExecutor(1), DeadLetters("intake", parked.send), Backoff(sleep=Sleeps())
    )

    asyncio.run(applier.apply(records))

    receipts = {r.submission_id: r for _, r in ledger.receipts_after(0)}
    assert [receipts[example(n)["submission_id"]].status for n in SUBMISSIONS] == ["accepted"] * 5
    assert receipts["TAX-POISON-1"].status == "rejected"
    assert receipts["TAX-POISON-1"].reason is not None
    assert receipts["TAX-POISON-1"].reason["code"] == "internal_error"
    ((topic, key, letter),) = parked.letters
    assert (topic, key) == (topics.DEAD_LETTERS, b"k")
    assert letter["flow"] == "intake"
    assert letter["source"] == {"topic": topics.SUBMISSIONS, "partition": 3, "offset": 42, "position": None}
    assert letter["error"] == "RecursionError"
    assert "Traceback" not in orjson.dumps(letter).decode()
    assert letter["receipt"] == {
        "department": "tax_bureau",
        "submission_id": "TAX-POISON-1",
        "status": "rejected",
    }
    assert len(letter["correlation_id"]) == 32
    assert payload_of(letter) == poison


def test_a_message_whose_apply_keeps_raising_is_parked_after_n_attempts_not_retried_forever(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = b'{"submission_id": "X-1", "department": "tax_bureau", "action": "file_record"}'
    calls = ledger_raising_for(ledger, monkeypatch, poison)
    sleeps = Sleeps()
    parked = Parked()
    applier = LedgerApplier(
        ledger, ThreadPoolExecutor(1), DeadLetters("intake", parked.send), Backoff(sleep=sleeps)
    )
    records = [record(i, v) for i, v in enumerate([*submissions(SUBMISSIONS[:3]), poison])]

    asyncio.run(applier.apply(records))

    assert calls.count(1) == ATTEMPTS, "the message alone is tried ATTEMPTS times, then parked"
    assert sleeps.delays == [0.5, 1.0], "back-off between those attempts only, and no real sleep"
    assert len(parked.letters) == 1
    assert {r.submission_id: r.status for _, r in ledger.receipts_after(0)}["X-1"] == "rejected"


def test_a_message_the_ledger_cannot_even_receipt_is_receipted_under_its_source_and_parked(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = b'{"submission_id": "X-2", "department": "tax_bureau"}'
    ledger_raising_for(ledger, monkeypatch, poison)
    real_reject = ledger.reject_unapplicable

    def reject_unapplicable(raw: Any, source: str | None) -> Any:
        if raw == poison:
            raise OverflowError("date value out of range")
        return real_reject(raw, source)

    monkeypatch.setattr(ledger, "reject_unapplicable", reject_unapplicable)
    parked = Parked()
    applier = LedgerApplier(
        ledger, ThreadPoolExecutor(1), DeadLetters("intake", parked.send), Backoff(sleep=Sleeps())
    )
    message = record(7, poison)
    asyncio.run(applier.apply([message]))

    ((_, receipt),) = ledger.receipts_after(0)
    assert (receipt.department, receipt.submission_id) == ("", source_of(message))
    assert receipt.reason is not None
    assert receipt.reason["code"] == "internal_error"
    assert parked.letters[0][2]["receipt"]["submission_id"] == source_of(message)


def test_transient_database_errors_are_retried_with_back_off_and_nothing_is_parked(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ledger.submit_safely
    failures = [OperationalError("database is locked"), OperationalError("database is locked")]

    def submit_safely(batch: Sequence[Any], **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(batch, **kwargs)

    monkeypatch.setattr(ledger, "submit_safely", submit_safely)
    sleeps, parked = Sleeps(), Parked()
    applier = LedgerApplier(
        ledger, ThreadPoolExecutor(1), DeadLetters("intake", parked.send), Backoff(sleep=sleeps)
    )
    asyncio.run(applier.apply([record(i, v) for i, v in enumerate(submissions(SUBMISSIONS))]))
    assert sleeps.delays == [0.5, 1.0]
    assert parked.letters == []
    assert len(ledger.receipts_after(0)) == 5


class FakeConsumer:
    """Partitions of records, a position per partition, committed offsets; logs what happens in order."""

    def __init__(self, records: list[Any], committed: dict[TopicPartition, int] | None = None) -> None:
        self.records = records
        self.committed = dict(committed or {})
        self.position = dict(self.committed)
        self.log: list[str] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        out: dict[TopicPartition, list[Any]] = {}
        for r in self.records:
            tp = TopicPartition(r.topic, r.partition)
            if r.offset >= self.position.get(tp, 0) and sum(map(len, out.values())) < max_records:
                out.setdefault(tp, []).append(r)
        for tp, rs in out.items():
            self.position[tp] = rs[-1].offset + 1
        self.log.append(f"fetch {sum(map(len, out.values()))}")
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(f"commit {sorted(offsets.values())}")
        self.committed.update(offsets)


class Crash(BaseException):
    """The process dies (SIGKILL has no handler: nothing after this point runs)."""


def test_the_runner_commits_only_after_apply_and_a_crash_between_redelivers_harmlessly(
    ledger: CreditLedger,
) -> None:
    values = submissions(SUBMISSIONS)
    records = [record(i, v, partition=i % 2) for i, v in enumerate(values)]
    consumer = FakeConsumer(records)
    applier = LedgerApplier(ledger, ThreadPoolExecutor(1), DeadLetters("intake", Parked().send), Backoff())

    async def apply_then_die(batch: Sequence[Any]) -> None:
        await applier.apply(batch)
        consumer.log.append(f"applied {len(batch)}")
        raise Crash  # after the ledger has the batch, before its offsets are committed

    with pytest.raises(Crash):
        asyncio.run(Runner(consumer, apply_then_die, max_records=3).run(lambda: False))
    assert consumer.log == ["fetch 3", "applied 3"], "nothing committed for a batch that was not done"
    assert consumer.committed == {}
    first = {(r.department, r.submission_id) for _, r in ledger.receipts_after(0)}
    assert len(first) == 3

    # The restarted process starts from the committed offsets: the batch comes again.
    restarted = FakeConsumer(records, consumer.committed)
    stop = iter([False, False, True])

    async def apply(batch: Sequence[Any]) -> None:
        await applier.apply(batch)
        restarted.log.append(f"applied {len(batch)}")

    asyncio.run(Runner(restarted, apply, max_records=3).run(lambda: next(stop)))
    log = restarted.log
    assert [e for e in log if not e.startswith("commit")] == ["fetch 3", "applied 3", "fetch 2", "applied 2"]
    assert log.index("commit [2, 3]") > log.index("applied 3"), "a batch's offsets only after it is applied"
    assert log.index("commit [4, 5]") > log.index("applied 2")
    receipts = ledger.receipts_after(0)
    assert len(receipts) == 5, "the redelivered three were answered from their receipts, not applied again"
    assert restarted.committed == {
        TopicPartition(topics.SUBMISSIONS, 0): 5,
        TopicPartition(topics.SUBMISSIONS, 1): 4,
    }


class SlowCommitConsumer(FakeConsumer):
    """A consumer whose commits take a broker's round trip, and which says when it was stopped."""

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        fetched = await super().getmany(timeout_ms=timeout_ms, max_records=max_records)
        if not fetched:
            await asyncio.sleep(timeout_ms / 1000)  # a fetch that finds nothing waits out its timeout
        return fetched

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append("commit sent")
        await asyncio.sleep(0.3)
        await super().commit(offsets)

    async def stop(self) -> None:
        self.log.append("consumer stopped")


def test_a_stopping_intake_stops_its_consumer_only_after_the_last_offset_commit_is_answered(
    ledger: CreditLedger,
) -> None:
    consumer = SlowCommitConsumer([record(i, v) for i, v in enumerate(submissions(SUBMISSIONS))])
    intake = Intake(
        ledger, ThreadPoolExecutor(1), bootstrap="127.0.0.1:1", batch_size=10, session_timeout=6,
        heartbeat_interval=2, send=None,  # type: ignore[arg-type]  # never sends: nothing is parked here
    )  # fmt: skip

    async def stop_while_a_commit_is_in_flight() -> None:
        intake.consumer = consumer  # type: ignore[assignment]  # the fake stands in for aiokafka's
        consuming = asyncio.ensure_future(Intake._consume(intake))
        async with asyncio.timeout(10):
            while "commit sent" not in consumer.log:
                await asyncio.sleep(0.01)
        await intake.stop()  # what the worker does at SIGTERM: on_stop, then cancel the tasks
        await consuming

    asyncio.run(stop_while_a_commit_is_in_flight())
    log = [entry for entry in consumer.log if not entry.startswith("fetch")]
    assert log == ["commit sent", "commit [5]", "consumer stopped"], "the commit was answered first"
    assert consumer.committed == {TopicPartition(topics.SUBMISSIONS, 3): 5}


class FakeProducer:
    """Acknowledges what it may; refuses a record of the given value as a broker would."""

    def __init__(self, refuse: bytes | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.refuse = refuse

    async def publish(self, records: Sequence[Record]) -> None:
        if any(value == self.refuse for _, _, value in records):
            raise MessageSizeTooLargeError("the broker's message.max.bytes is smaller")
        self.sent.extend(records)

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.sent if t == topic]


def test_the_relay_parks_an_oversize_record_and_keeps_publishing(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.submit([*submissions(SUBMISSIONS[:2]), b'{"submission_id": "BIG", "department": "tax_bureau"}'])
    ledger.submit(submissions(SUBMISSIONS[2:]))
    from contract import messages  # noqa: PLC0415

    real = messages.outcome_message

    def huge_for_big(position: int, receipt: Any) -> tuple[bytes, bytes]:
        key, value = real(position, receipt)
        if receipt.submission_id == "BIG":  # as a 3 MB original made it before originals were capped
            return key, orjson.dumps({**orjson.loads(value), "original": "x" * (3 * 1024 * 1024)})
        return key, value

    monkeypatch.setattr("streams.relay.outcome_message", huge_for_big)
    producer = FakeProducer()
    relay = Relay(ledger, producer.publish, ThreadPoolExecutor(1), page=2)
    asyncio.run(relay.run_once())

    outcomes = producer.on(topics.OUTCOMES)
    assert [o["position"] for o in outcomes] == [1, 2, 4, 5, 6], "every outcome but the oversize one"
    letters = producer.on(topics.DEAD_LETTERS)
    assert [(d["source"]["topic"], d["source"]["position"]) for d in letters] == [
        (topics.OUTCOMES, 3),
        (topics.REJECTIONS, 3),
    ]
    assert letters[0]["error"] == "MessageSizeTooLargeError"
    assert letters[0]["payload"] is None, "a digest, not the payload"
    assert letters[0]["payload_bytes"] > 3 * 1024 * 1024
    assert len(letters[0]["payload_sha256"]) == 64
    assert all(len(v) < MAX_REQUEST_BYTES for _, _, v in producer.sent)
    assert ledger.reader.relay_position("credit.outcomes") == 6
    assert relay.dead_letters.count == 2


def test_the_relay_parks_a_record_the_broker_refuses_and_publishes_the_rest_of_the_page(
    ledger: CreditLedger,
) -> None:
    ledger.submit(submissions(SUBMISSIONS))
    events = messages_from_store(ledger.reader)
    refused = next(m for m in events if m["position"] == 4)
    from streams.relay import _event_record  # noqa: PLC0415

    rows = ledger.reader.event_rows(3, 1)
    producer = FakeProducer(refuse=_event_record(*rows[0])[2])
    asyncio.run(Relay(ledger, producer.publish, ThreadPoolExecutor(1)).run_once())

    published = [m["position"] for m in producer.on(topics.LEDGER)]
    assert published == [m["position"] for m in events if m is not refused]
    (letter,) = producer.on(topics.DEAD_LETTERS)
    assert letter["source"] == {"topic": topics.LEDGER, "partition": None, "offset": None, "position": 4}
    assert payload_of(letter) == producer.refuse, "a small record travels whole, for replay"


def projector_world(ledger: CreditLedger, catalogue: Catalogue, path: Path) -> tuple[Projector, list[Any]]:
    """A projector on a fresh store, and the ledger's events as records of credit.ledger."""
    ledger.submit(submissions(SUBMISSIONS))
    store = ProjectionStore(path)
    from uuid import UUID  # noqa: PLC0415

    projector = Projector(store, catalogue, history=lambda key: messages_from_store(ledger.reader, UUID(key)))
    events = [orjson.dumps(m) for m in messages_from_store(ledger.reader)]
    return projector, [record(100 + i, v, topic=topics.LEDGER, partition=1) for i, v in enumerate(events)]


def test_the_projector_parks_an_unfoldable_message_and_keeps_folding(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projector, records = projector_world(ledger, catalogue, tmp_path / "projections.sqlite")
    organisation = str(file_of(ledger, ORGANISATION).id)
    from projections.fold import fold_into as real_fold  # noqa: PLC0415

    def fold_into(state: Any, message: Any) -> Any:
        if message["subject_key"] == organisation:
            raise KeyError("a fold that cannot read this event")
        return real_fold(state, message)

    monkeypatch.setattr("projections.projector.fold_into", fold_into)
    garbage = record(99, b"not json at all", topic=topics.LEDGER, partition=1)
    parked = Parked()
    applier = StoreApplier(
        projector,
        ThreadPoolExecutor(1),
        DeadLetters("projector", parked.send),
        lock=StoreLock(str(tmp_path / "projections.sqlite")),
        backoff=Backoff(sleep=Sleeps()),
    )

    asyncio.run(applier.apply([garbage, *records]))

    offsets = sorted(letter["source"]["offset"] for _, _, letter in parked.letters)
    unfoldable = [r.offset for r in records if orjson.loads(r.value)["subject_key"] == organisation]
    assert offsets == sorted([99, *unfoldable])
    assert {letter["error"] for _, _, letter in parked.letters} == {"JSONDecodeError", "KeyError"}
    folded = {orjson.loads(r.value)["subject_key"] for r in records} - {organisation}
    assert folded
    assert all(projector.store.subject_version(key) > 0 for key in folded)
    assert projector.store.subject_version(organisation) == 0


def test_a_dead_letter_carries_a_digest_instead_of_a_payload_too_large_to_travel() -> None:
    big = b"x" * (PAYLOAD_LIMIT + 1)
    _key, value = dead_letter(
        "relay",
        Source(topics.OUTCOMES, position=3),
        key=b"k",
        payload=big,
        error="MessageSizeTooLargeError",
        reason="r" * 10_000,
        correlation_id="c",
        parked_at="2026-11-22T00:00:00+00:00",
    )
    letter = orjson.loads(value)
    assert len(value) < 1000
    assert (letter["payload"], letter["payload_bytes"]) == (None, PAYLOAD_LIMIT + 1)
    assert payload_of(letter) is None
    small = orjson.loads(
        dead_letter(
            "intake",
            Source(topics.SUBMISSIONS, 1, 2),
            key=None,
            payload=b"\xff",
            error="E",
            reason="",
            correlation_id="c",
            parked_at="t",
        )[1]
    )
    assert (small["payload_encoding"], payload_of(small)) == ("base64", b"\xff")


def test_a_scheduler_round_sends_the_due_commands_and_runs_again_only_after_its_interval(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path
) -> None:
    minor = copy.deepcopy(example("file_record_minor"))
    ledger.submit([minor])
    store = ProjectionStore(tmp_path / "projections.sqlite")
    projector = Projector(store, catalogue)
    projector.apply(messages_from_store(ledger.reader))
    sent: list[tuple[str, list[tuple[bytes, bytes]]]] = []

    async def send_all(topic: str, records: Any) -> int:
        sent.append((topic, list(records)))
        return len(sent[-1][1])

    now = [0.0]
    scheduler = Scheduler(
        projector,
        send_all,
        interval=60.0,
        lock=StoreLock(str(tmp_path / "projections.sqlite")),
        clock=lambda: datetime(2026, 7, 2, 9, tzinfo=UTC),
        monotonic=lambda: now[0],
    )

    async def ticks() -> None:
        for moment in (0.0, 1.0, 59.0, 60.0):
            now[0] = moment
            await scheduler.tick()

    asyncio.run(ticks())
    assert scheduler.stats.runs == 2, "at once, and again one interval later"
    (topic, commands), _ = sent
    assert topic == topics.SUBMISSIONS
    assert [orjson.loads(v)["action"] for _, v in commands] == ["expire_record"]
    assert date.fromisoformat(scheduler.stats.last_run_at[:10]) == date(2026, 7, 2)  # type: ignore[index]
    scheduler.close()


def test_health_counts_dead_letters_per_flow_and_only_those_past_the_acknowledged_offsets_as_new() -> None:
    from streams.deadletters import DeadLetterWatch  # noqa: PLC0415

    watch = DeadLetterWatch("unused:9092", keep=2)
    for partition, offset, flow in [(0, 0, "intake"), (0, 1, "relay"), (3, 0, "projector"), (0, 2, "intake")]:
        _, value = dead_letter(
            flow,
            Source(topics.SUBMISSIONS, 1, offset),
            key=None,
            payload=b"{}",
            error="E",
            reason="r",
            correlation_id=f"c{offset}",
            parked_at="t",
        )
        watch.add(partition, offset, value)
    watch.add(5, 0, b"not a letter")
    watch.acknowledged = {0: 2, 3: 1}  # partition 0 up to offset 2 (exclusive), partition 3 all

    summary = watch.summary()
    assert (summary["total"], summary["unacknowledged"]) == (5, 2)
    assert summary["by_flow"]["intake"] == {"total": 2, "unacknowledged": 1}
    assert summary["by_flow"]["relay"] == {"total": 1, "unacknowledged": 0}
    assert summary["by_flow"]["projector"] == {"total": 1, "unacknowledged": 0}
    assert summary["by_flow"]["unknown"] == {"total": 1, "unacknowledged": 1}
    assert [e["letter"] for e in summary["last"]] == [
        {"partition": 5, "offset": 0},
        {"partition": 0, "offset": 2},
    ]
    assert [e["acknowledged"] for e in summary["last"]] == [False, False]
    assert all("payload" not in e for e in summary["last"])


def test_the_scheduler_timers_overlap_warning_is_dropped_and_other_timers_still_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A round longer than the 1 s tick is expected (the tick only asks whether a round is due), so
    # mode's "is overlapping" warning for it read as a fault on serve's terminal (issue 17).
    import logging  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    from mode.timers import logger as timers_log  # noqa: PLC0415

    from streams.scheduling import TIMER_NAME, QuietOverlaps, register_scheduler  # noqa: PLC0415

    app = SimpleNamespace(timer=lambda **_: lambda function: function)
    register_scheduler(app, SimpleNamespace(interval=60.0))  # type: ignore[arg-type]
    [quiet] = [f for f in timers_log.filters if isinstance(f, QuietOverlaps)]
    try:
        with caplog.at_level(logging.WARNING, logger="mode.timers"):
            timers_log.warning("Timer %s is overlapping (interval=%r runtime=%r)", TIMER_NAME, 1.0, 1.23)
            timers_log.warning("Timer %s is overlapping (interval=%r runtime=%r)", "other", 1.0, 1.23)
    finally:
        timers_log.removeFilter(quiet)
    assert [r.getMessage() for r in caplog.records] == [
        "Timer other is overlapping (interval=1.0 runtime=1.23)"
    ]
