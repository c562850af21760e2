"""The fault harness: a load of submissions, followers of what comes out, and exact counts of it.

Shared by the fault tests (tests/faults/, bounded sizes, run in CI) and bench/faults.py (the full
figures of docs/benchmarks.md), so both count the same way:

- **lost**: a submission the broker acknowledged that never got a first outcome;
- **doubled**: a submission with more than one first outcome, or an event that two first
  outcomes claim (a submission applied twice);
- **missing**: a message on credit.submissions (a copy a department sent, counted once however
  often it was delivered) without its outcome; **extra**: outcomes beyond the messages received.
- **re-sent**: outcome or ledger records the relay published again after a crash (the same
  position twice); consumers recognise them by position, so they are counted, not failures.

The end of a topic is never decided from end offsets (the embedded broker under-reports them):
followers keep reading, and callers wait, with deadlines, for what they expect to see.

One module of just over 400 lines: it is the one harness every fault test drives (the load, the
publisher and followers, the counts and the ledger check), and its counts mean something only
read against each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contract import topics
from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue
from streams.clients import prepare
from tests.integration.serving import SUBJECT_SECRET, is_scheduler_command, wait_for

MASTER_KEY = "5e" * 32
"""The master key every process of a fault scenario is given (``CREDIT_MASTER_KEY``): workers that
share one ledger must wrap and unwrap its data keys under one key, whatever their data dirs."""
WORKER_ENV = {"CREDIT_MASTER_KEY": MASTER_KEY}
"""What every `serve` of a scenario gets on top of serving.Served's settings."""

Record = tuple[int, int, dict[str, Any]]
"""(partition, offset, decoded value) of one record a follower read."""


def load(
    count: int, *, subjects: int, seed: int, prefix: str, bad_ratio: float = 0.04
) -> list[dict[str, Any]]:
    """``count`` generated submissions over ``subjects`` subjects, ``bad_ratio`` of them wrong on purpose."""
    generator = SubmissionGenerator(
        load_catalogue().latest, subjects=subjects, seed=seed, bad_ratio=bad_ratio, prefix=prefix
    )
    return generator.take(count)


class Publisher(threading.Thread):
    """A department sending the load with kafka-python as ``credit-ledger publish`` does (acks=all,
    the client's idempotence where the broker grants it), in a thread, ``rate`` submissions a
    second at most; remembers per submission id what the broker acknowledged or refused."""

    def __init__(self, bootstrap: str, submissions: Sequence[dict[str, Any]], *, rate: float | None = None):
        super().__init__(name="fault-load", daemon=True)
        self.bootstrap = bootstrap
        self.submissions = submissions
        self.rate = rate
        self.acked: set[str] = set()
        self.refused: dict[str, str] = {}
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=10,
            retries=5,
            max_in_flight_requests_per_connection=1,
        )
        began = time.monotonic()
        try:
            for number, submission in enumerate(self.submissions, 1):
                if self._halt.is_set():
                    break
                line = prepare(orjson.dumps(submission), None, number)
                sid = str(submission["submission_id"])
                future = producer.send(topics.SUBMISSIONS, key=line.key, value=line.value)
                future.add_callback(self._acked, sid)
                future.add_errback(self._refused, sid)
                if self.rate and number % 500 == 0:
                    ahead = number / self.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)  # pacing a load, not waiting for a condition
            if not self._halt.is_set():
                producer.flush(timeout=120)
        except BaseException as exc:  # reported by finish(), in the test's thread
            self.error = exc
        finally:
            # Stopped: what is not yet acknowledged is abandoned (each send's errback says so).
            producer.close(timeout=0 if self._halt.is_set() else 10)

    def _acked(self, sid: str, _metadata: Any) -> None:
        with self._lock:
            self.acked.add(sid)

    def _refused(self, sid: str, exc: BaseException) -> None:
        with self._lock:
            self.refused[sid] = type(exc).__name__

    def check(self) -> None:
        """Raise the error that ended the sending thread, if one did: a load that died sends
        nothing more, so no wait for its outcomes may go on."""
        if self.error is not None:
            raise AssertionError(f"the load stopped sending: {self.error!r}") from self.error

    def stop(self) -> Publisher:
        """Stop sending (the broker is gone): what was acknowledged so far stays acknowledged."""
        self._halt.set()
        self.join(30)
        return self

    def start_and_finish(self, timeout: float = 300.0) -> Publisher:
        self.start()
        return self.finish(timeout)

    def finish(self, timeout: float = 300.0) -> Publisher:
        self.join(timeout)
        assert not self.is_alive(), f"the load was not sent within {timeout:.0f} s"
        if self.error is not None:
            raise self.error
        return self


class Follower(threading.Thread):
    """Every record of one topic from the beginning, read in a thread and kept, decoded."""

    def __init__(self, bootstrap: str, topic: str, *, decode: Callable[[bytes], Any] = orjson.loads) -> None:
        super().__init__(name=f"follow-{topic}", daemon=True)
        self.bootstrap, self.topic, self.decode = bootstrap, topic, decode
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self.grew_at = time.monotonic()
        self.start()

    def run(self) -> None:
        try:
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        except BaseException as exc:  # surfaced by records()
            self.error = exc
            return
        try:
            while not self._halt.is_set() and not (found := consumer.partitions_for_topic(self.topic)):
                self._halt.wait(0.2)
            if self._halt.is_set():
                return
            partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            while not self._halt.is_set():
                batch = consumer.poll(timeout_ms=200, max_records=20_000)
                decoded = [(r.partition, r.offset, self.decode(r.value)) for rs in batch.values() for r in rs]
                with self._lock:
                    self._records += decoded
                if decoded:
                    self.grew_at = time.monotonic()
        except BaseException as exc:
            self.error = exc
        finally:
            consumer.close()

    def records(self, start: int = 0) -> list[Record]:
        """The records read so far (from the ``start``-th on: a caller that polls reads only the new)."""
        if self.error is not None:
            raise AssertionError(f"reading {self.topic} failed: {self.error!r}")
        with self._lock:
            return self._records[start:]

    def settled(self, at_least: int, idle: float = 1.0) -> bool:
        """At least ``at_least`` records, and none new for ``idle`` seconds (the end, as far as
        reading can tell: never an end offset)."""
        return len(self.records()) >= at_least and time.monotonic() - self.grew_at >= idle

    def close(self) -> None:
        self._halt.set()
        self.join(15)


def submission_id(value: bytes) -> Any:
    return orjson.loads(value).get("submission_id")


@dataclass
class Counts:
    """What became of a load: see the module docstring for each word."""

    submissions: int
    acknowledged: int
    received: int | None  # messages of the load on credit.submissions (None: the broker lost them)
    outcomes: int  # distinct outcome positions of the load's submissions
    lost: int
    doubled: int
    missing: int
    extra: int
    resent: int
    vanished: int = 0  # the embedded broker's known limit: acknowledged, unapplied, gone with its memory
    refused: int = 0  # sends the broker did not acknowledge (the department knows; it re-sends)
    internal_errors: int = 0  # first outcomes rejected as internal_error: a fault must never cause one

    @property
    def clean(self) -> bool:
        return self.lost == self.doubled == self.missing == self.extra == self.internal_errors == 0

    def line(self) -> str:
        received = "?" if self.received is None else f"{self.received:,}"
        return (
            f"{self.submissions:,} submissions, {self.acknowledged:,} acknowledged, {self.refused} refused, "
            f"{received} received, {self.outcomes:,} outcomes: lost {self.lost}, doubled {self.doubled}, "
            f"missing {self.missing}, extra {self.extra}, internal_error {self.internal_errors}; "
            f"re-sent by the relay {self.resent}; "
            f"vanished with the embedded broker {self.vanished}"
        )


def by_position(records: Iterable[Record]) -> tuple[dict[int, dict[str, Any]], int]:
    """The first record of every position, and how many records repeated a position."""
    first: dict[int, dict[str, Any]] = {}
    repeats = 0
    for _, _, value in records:
        if value["position"] in first:
            repeats += 1
        else:
            first[value["position"]] = value
    return first, repeats


class FirstOutcomes:
    """How many first (not ``duplicate``) outcomes each of ``ids`` has, counted as records come in:
    the first record of each position counts, as in ``by_position``. A wait that polls a follower
    every 0.1 s adds only the new records (measured: counting 55,000 afresh took 50 ms of CPU,
    every 0.1 s, in the process that also reads the topics, on the cores the platform runs on)."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids
        self.counts: Counter[str] = Counter()
        self.seen = 0  # records added so far
        self._positions: set[int] = set()

    def add(self, records: Iterable[Record]) -> Counter[str]:
        for _, _, o in records:
            self.seen += 1
            if o["position"] in self._positions:
                continue
            self._positions.add(o["position"])
            if not o["duplicate"] and o["submission_id"] in self.ids:
                self.counts[o["submission_id"]] += 1
        return self.counts

    def follow(self, follower: Follower) -> Counter[str]:
        """The counts once the records ``follower`` has read since the last call are added."""
        return self.add(follower.records(self.seen))


def first_outcomes(outcomes: Iterable[Record], ids: set[str]) -> Counter[str]:
    """How many first (not ``duplicate``) outcomes each of ``ids`` has so far."""
    return FirstOutcomes(ids).add(outcomes)


def count(
    ids: set[str],
    acknowledged: set[str],
    outcomes: Iterable[Record],
    received: Counter[str] | None,
    *,
    vanished: int = 0,
    refused: int = 0,
) -> Counts:
    """The counts of a load from what credit.outcomes (and credit.submissions) hold."""
    distinct, resent = by_position(outcomes)
    ours = [o for o in distinct.values() if o["submission_id"] in ids and not is_scheduler_command(o)]
    firsts = Counter(o["submission_id"] for o in ours if not o["duplicate"])
    every = Counter(o["submission_id"] for o in ours)
    claims = Counter(e for o in ours if not o["duplicate"] for e in o.get("events", []))
    doubled = sum(1 for n in firsts.values() if n > 1) + sum(1 for n in claims.values() if n > 1)
    if received is None:  # the copies are gone with the broker: each submission needs one first outcome
        missing, extra = sum(1 for i in ids if firsts[i] == 0), 0
    else:
        missing = sum(max(0, received[i] - every[i]) for i in ids)
        extra = sum(max(0, every[i] - received[i]) for i in ids)
    return Counts(
        submissions=len(ids),
        acknowledged=len(acknowledged),
        received=None if received is None else sum(received[i] for i in ids),
        outcomes=len(ours),
        lost=sum(1 for i in acknowledged if firsts[i] == 0),
        doubled=doubled,
        missing=missing,
        extra=extra,
        resent=resent,
        vanished=vanished,
        refused=refused,
        internal_errors=sum(
            1 for o in ours if not o["duplicate"] and (o.get("reason") or {}).get("code") == "internal_error"
        ),
    )


def received_copies(submissions: Iterable[Record]) -> Counter[str]:
    """Messages per submission id on credit.submissions (a follower decoding ``submission_id``)."""
    return Counter(str(value) for _, _, value in submissions)


@dataclass
class LedgerCheck:
    """credit.ledger against the ledger store: in order, without gaps, copies only as re-sent tails."""

    published: int = 0  # distinct positions on the topic
    stored: int = 0  # credit-file events in the store
    resent: int = 0
    problems: list[str] = field(default_factory=list)


def check_ledger_topic(
    records: Sequence[Record],
    stored: dict[int, tuple[str, int]],
    stored_after: dict[int, tuple[str, int]] | None = None,
) -> LedgerCheck:
    """Per partition, every new position comes after the last new one (published in order), and a
    position seen before comes back only with the same event (a re-sent tail); per subject the
    versions are 1, 2, 3 ... in order; every position of ``stored`` is on the topic, and nothing is
    that ``stored_after`` (the store read again after the topic, as the ledger may have grown) lacks."""
    after = stored if stored_after is None else stored_after
    check = LedgerCheck(stored=len(stored))
    newest: dict[int, int] = {}
    seen: dict[int, tuple[str, int]] = {}
    versions: dict[str, int] = {}
    for partition, offset, m in records:  # in each partition's offset order, as a follower reads
        position, event = m["position"], (m["subject_key"], m["version"])
        if position in seen:
            check.resent += 1
            if seen[position] != event:
                check.problems.append(f"position {position} published as {seen[position]} and as {event}")
            continue
        if position <= newest.get(partition, 0):
            check.problems.append(
                f"partition {partition} offset {offset}: new position {position} out of order"
            )
        newest[partition] = max(position, newest.get(partition, 0))
        seen[position] = event
        if m["version"] != versions.get(m["subject_key"], 0) + 1:
            check.problems.append(
                f"{m['subject_key']} version {m['version']} after {versions.get(m['subject_key'])}"
            )
        versions[m["subject_key"]] = m["version"]
    check.published = len(seen)
    gaps = sorted(set(stored) - set(seen))
    strangers = sorted(set(seen) - set(after))
    if gaps:
        check.problems.append(f"{len(gaps)} stored positions never published, first {gaps[:5]}")
    if strangers:
        check.problems.append(f"{len(strangers)} published positions not in the store, first {strangers[:5]}")
    check.problems += [
        f"position {p}: {seen[p]} stored as {stored[p]}" for p in seen if p in stored and seen[p] != stored[p]
    ][:5]
    return check


def settings(data_dir: Path, database_url: str | None = None) -> Settings:
    return Settings(
        data_dir=data_dir, database_url=database_url, subject_secret=SUBJECT_SECRET, master_key=MASTER_KEY
    )


def stored_events(data_dir: Path, database_url: str | None = None) -> dict[int, tuple[str, int]]:
    """(subject key, version) of every credit-file event in the ledger store, by position."""
    return {
        p: (key, version)
        for p, (key, version, kind) in stored_rows(data_dir, database_url).items()
        if kind != "QueryRecorded"
    }


def stored_rows(data_dir: Path, database_url: str | None = None) -> dict[int, tuple[str, int, str]]:
    """(stream id, version, event type) of every event in the ledger store, by position."""
    ledger = build_ledger(settings(data_dir, database_url))
    try:
        events: dict[int, tuple[str, int, str]] = {}
        after = 0
        while rows := ledger.reader.event_rows(after, 10_000):
            for position, stream_id, version, topic, _ in rows:
                events[position] = (str(stream_id), version, topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1])
            after = rows[-1][0]
        return events
    finally:
        ledger.close()


def last_outcome_position(data_dir: Path, database_url: str | None = None) -> int:
    """The position of the ledger's newest outcome (how many the relay has to publish)."""
    ledger = build_ledger(settings(data_dir, database_url))
    try:
        return ledger.reader.last_outcome_position()
    finally:
        ledger.close()


def cli(
    data_dir: Path, bootstrap: str, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREDIT_DATA_DIR": str(data_dir), "CREDIT_KAFKA_BOOTSTRAP": bootstrap}
    env["CREDIT_SUBJECT_SECRET"] = SUBJECT_SECRET
    env.update(WORKER_ENV)
    if database_url:
        env["CREDIT_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "credit_ledger.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


def verify_and_rebuild(
    data_dir: Path, bootstrap: str, *, database_url: str | None = None, timeout: float = 120.0
) -> tuple[str, dict[str, Any]]:
    """`credit-ledger verify` (it must pass) and `projections rebuild` until it equals the live
    views (the projector may still be catching up); returns verify's summary and the rebuild's.

    Both only read the ledger, so verify runs in a thread beside the rebuild (each takes 10-30 s
    at the tests' sizes); verify's failure is reported first, as it was when they ran in turn."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
        verifying = pool.submit(cli, data_dir, bootstrap, "verify", database_url=database_url)
        try:
            summary = _rebuilt(data_dir, bootstrap, database_url, timeout)
        except AssertionError as exc:
            rebuild_failed: AssertionError | None = exc
        else:
            rebuild_failed = None
        verified = verifying.result()
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    if rebuild_failed is not None:
        raise rebuild_failed
    return verified.stderr.strip().splitlines()[-1], summary


def _rebuilt(data_dir: Path, bootstrap: str, database_url: str | None, timeout: float) -> dict[str, Any]:
    """`projections rebuild` into a new directory until it equals the live views; its summary."""
    attempts = iter(range(1_000_000))

    def rebuilt() -> dict[str, Any] | None:
        into = data_dir / f"rebuilt-{next(attempts)}"
        done = cli(
            data_dir, bootstrap, "projections", "rebuild", "--into", str(into), database_url=database_url
        )
        summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1]) if done.stdout.strip() else {}
        return summary if done.returncode == 0 and summary.get("differences") == 0 else None

    summary: dict[str, Any] = wait_for(rebuilt, timeout, lambda: "the rebuild never equalled the live views")
    return summary
