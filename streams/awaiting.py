"""`publish --until-outcome`: send submissions and follow credit.outcomes until each is answered.

A submission sent over Kafka is safe only once it is decided: the embedded broker keeps topics in
memory, so one that dies before the intake read a message loses it, and the department was told
the broker had it. This client does not stop at the acknowledgement:

- each send's acknowledgement gives where the message landed, ``credit.submissions/<partition>/
  <offset>@<timestamp>``, which is exactly the ``source`` the ledger records and every outcome on
  credit.outcomes names: an outcome answers a send when its ``source`` is that send's;
- it follows credit.outcomes from the beginning (the relay publishes every outcome again after a
  broker lost its topics) until every submission has an answer;
- when no new answer came for ``resend_after`` seconds, it sends the unanswered ones again, the
  same bytes, and reads credit.outcomes from the beginning again (a topic that was recreated
  starts its offsets again). A re-send is idempotent by (department, submission_id): if the first
  copy was decided after all, the copy is answered ``duplicate`` and changes nothing;
- a submission's answer is the first decision among its sends' answers (``accepted`` or
  ``rejected``); ``duplicate`` when every answer is a duplicate (its id was decided before this run);
  ``unanswered`` when none came before ``wait`` seconds. A line without a string ``department``
  and ``submission_id`` is not idempotent, so it is sent once and never again.

The end is never decided from end offsets: only answers, or the deadline, end it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from contract import topics
from streams.clients import Prepared, PublishReport, department_producer, prepared

ACCEPTED, REJECTED, DUPLICATE, UNANSWERED = "accepted", "rejected", "duplicate", "unanswered"


@dataclass
class Pending:
    """One line sent: where each of its sends landed, and the best answer seen so far."""

    line: Prepared
    sources: set[str] = field(default_factory=set)
    answer: dict[str, Any] | None = None

    @property
    def verdict(self) -> str:
        if self.answer is None:
            return UNANSWERED
        return DUPLICATE if self.answer.get("duplicate") else str(self.answer["status"])


@dataclass
class AwaitReport(PublishReport):
    """``PublishReport`` plus what came back: one verdict per line sent, and the re-sends made."""

    accepted: int = 0
    rejected: int = 0
    duplicate: int = 0
    unanswered: int = 0
    resent: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "refused": self.refused,
            "failed": self.failed,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicate": self.duplicate,
            "unanswered": self.unanswered,
            "resent": self.resent,
        }


class Answers:
    """Which of our sends each outcome answers: by its ``source``, or (from a ledger older than the
    ``source`` field) by department and submission id. Kafka-free, so it is tested on its own."""

    def __init__(self) -> None:
        self.by_source: dict[str, Pending] = {}
        self.by_ident: dict[tuple[str, str], list[Pending]] = {}

    def expect(self, pending: Pending) -> None:
        if pending.line.ident is not None:
            self.by_ident.setdefault(pending.line.ident, []).append(pending)

    def landed(self, pending: Pending, source: str) -> None:
        pending.sources.add(source)
        self.by_source[source] = pending

    def take(self, value: bytes) -> int:
        """Note one outcome message; 1 when it is the first answer to one of our lines, else 0. A
        first decision replaces a duplicate seen before (a re-send's answer can only come before
        the first copy's when the first was read earlier, or on a rewind that has not reached it)."""
        try:
            outcome = orjson.loads(value)
        except orjson.JSONDecodeError:
            return 0
        if not isinstance(outcome, dict):
            return 0
        if "source" in outcome:
            found = self.by_source.get(outcome["source"]) if isinstance(outcome["source"], str) else None
            candidates = [found] if found is not None else []
        else:
            ident: Any = (outcome.get("department"), outcome.get("submission_id"))
            candidates = [p for p in self.by_ident.get(ident, []) if p.answer is None][:1]
        first = 0
        for pending in candidates:
            if pending.answer is None or (pending.answer.get("duplicate") and not outcome.get("duplicate")):
                first += pending.answer is None
                pending.answer = outcome
        return first


class Follower:
    """Sends, follows credit.outcomes, re-sends: the loop described in the module's docstring."""

    def __init__(self, bootstrap: str, topic: str, *, resend_after: float, poll: float = 0.2) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.resend_after = resend_after
        self.poll_ms = int(poll * 1000)
        self.producer = department_producer(bootstrap)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,  # credit.outcomes is the platform's to create
        )
        self.answers = Answers()
        self.in_flight: list[tuple[Pending, Any]] = []
        self.partitions: list[TopicPartition] = []
        self.away = False

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()

    def send(self, pending: Pending) -> None:
        """Hand one line to the producer; not at all while the broker is away this round (a send
        that timed out waiting for the topic), so a round costs one timeout, not one per line."""
        if self.away:
            return
        try:
            future = self.producer.send(self.topic, key=pending.line.key, value=pending.line.value)
        except KafkaTimeoutError:
            self.away = True  # the broker or the topic is not there: the rest wait for the next round
            return
        except KafkaError:
            return  # not handed over (refused by the producer itself): unanswered until re-sent
        self.in_flight.append((pending, future))

    def settle(self, report: AwaitReport, *, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` seconds in all) for every send in flight; remember where each
        acknowledged one landed. If any failed, the producer is replaced: an idempotent producer's
        id means nothing to a broker that restarted (every send then fails, UnknownProducerId),
        and a new producer asks for a new one."""
        deadline = time.monotonic() + timeout
        failed = False
        try:
            self.producer.flush(timeout=timeout)
        except KafkaError:
            failed = True
        for pending, future in self.in_flight:
            try:
                metadata = future.get(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaError:
                failed = True
                continue
            if not pending.sources:
                report.sent += 1
            self.answers.landed(
                pending, f"{metadata.topic}/{metadata.partition}/{metadata.offset}@{metadata.timestamp}"
            )
        self.in_flight.clear()
        if failed:
            self.producer.close(timeout=1)
            self.producer = department_producer(self.bootstrap)

    def rewind(self) -> None:
        """Read credit.outcomes from the beginning (again), on every partition it has now."""
        found = self.consumer.partitions_for_topic(topics.OUTCOMES) or set()
        self.partitions = [TopicPartition(topics.OUTCOMES, p) for p in sorted(found)]
        self.consumer.assign(self.partitions)
        if self.partitions:
            self.consumer.seek_to_beginning(*self.partitions)

    def read(self) -> int:
        """One poll of credit.outcomes; how many of our sends got a (better) answer."""
        if not self.partitions:
            self.rewind()
            if not self.partitions:
                time.sleep(self.poll_ms / 1000)
                return 0
        try:
            batch = self.consumer.poll(timeout_ms=self.poll_ms, max_records=5000)
        except KafkaError:
            return 0  # the broker is away: try again at the next poll
        answered = 0
        for records in batch.values():
            for record in records:
                answered += self.answers.take(record.value)
        return answered


def publish_until_outcome(
    bootstrap: str,
    lines: Iterable[bytes],
    topic: str,
    *,
    department: str | None = None,
    wait: float = 300.0,
    resend_after: float = 30.0,
    on_refusal: Callable[[str], None] | None = None,
    on_progress: Callable[[AwaitReport], None] | None = None,
    report: AwaitReport | None = None,
) -> AwaitReport:
    """Send every line, then follow credit.outcomes until each has an answer or ``wait`` seconds
    have passed since the last line was sent; ``report`` is filled in as it goes."""
    report = report or AwaitReport()
    follower = Follower(bootstrap, topic, resend_after=resend_after)
    sent: list[Pending] = []
    try:
        for line in prepared(lines, department, report, on_refusal):
            pending = Pending(line)
            sent.append(pending)
            follower.answers.expect(pending)
            follower.send(pending)
            if len(follower.in_flight) >= 5000:
                follower.settle(report)
        follower.settle(report)
        _follow(follower, sent, report, wait, on_progress)
    finally:
        follower.close()
        _count(sent, report)
    return report


def _follow(
    follower: Follower,
    sent: list[Pending],
    report: AwaitReport,
    wait: float,
    on_progress: Callable[[AwaitReport], None] | None,
) -> None:
    deadline = time.monotonic() + wait
    open_ = sum(p.answer is None for p in sent)
    quiet_since = time.monotonic()
    while open_ and time.monotonic() < deadline:
        answered = follower.read()
        open_ -= answered
        now = time.monotonic()
        if answered:
            quiet_since = now
            if on_progress:
                _count(sent, report)
                on_progress(report)
        elif now - quiet_since >= follower.resend_after:
            follower.away = False
            again = [p for p in sent if p.answer is None and (p.line.ident is not None or not p.sources)]
            for pending in again:
                follower.send(pending)
            report.resent += len(follower.in_flight)
            follower.settle(report)
            follower.rewind()
            quiet_since = time.monotonic()


def _count(sent: list[Pending], report: AwaitReport) -> None:
    verdicts = [p.verdict for p in sent]
    report.accepted = verdicts.count(ACCEPTED)
    report.rejected = verdicts.count(REJECTED)
    report.duplicate = verdicts.count(DUPLICATE)
    report.unanswered = verdicts.count(UNANSWERED)
    report.failed = sum(not p.sources for p in sent)
