"""Benchmark: end-to-end intake (publish -> ledger -> credit.ledger/credit.outcomes) vs raw produce rate.

Run: python bench/intake.py [--submissions 100000] [--subjects 10000] [--workers 1] [--kafka real]
Starts a fresh embedded broker (``--kafka embedded``, the default) or a 3-node Apache Kafka cluster on
loopback (``--kafka real``: scripts/kafka_cluster.py, topics replicated 3 times with
min.insync.replicas=2, as the test suite's cluster) and `credit-ledger serve --no-http --no-project --workers N` (a
SQLite ledger in a temporary directory; N intake processes), then in this process: (1) the raw
produce rate, sending the same encoded submissions to a scratch topic with one aiokafka producer; (2) publishes the
submissions to credit.submissions with the same producer and times until every outcome is on
credit.outcomes and every event the accepted ones made is on credit.ledger. It also prints the
CPU seconds each process used in that window (from /proc), which shows where the two cores go.
Targets (issue 3): >= 10,000 submissions/s end to end, and >= 40% of the raw produce rate.

It runs twice, on a fresh broker and data dir each: encryption off (the worker started through
bench/_unsealed.py, which only a benchmark can do; with --workers 1), then on, as production runs;
it prints both and the loss. Target (issue 15): encryption costs at most 15%.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contract import topics
from contract.messages import submission_key
from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue
from streams import admin
from streams.broker import EmbeddedBroker

SCRATCH = "bench.raw"


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=262144)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k) for k, v in messages]
        await producer.flush()
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def assigned_consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer of every partition of ``topic`` from the start (assigned, no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    while not partitions:
        await asyncio.sleep(0.1)
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return consumer


class Arrivals:
    """Follows credit.outcomes and credit.ledger until every outcome and every stored event is in.

    Once the last outcome is out, the ledger holds every event the run made: the count of stored
    events (read from the worker's SQLite file) is then the number to wait for on credit.ledger.
    Counting is all these followers do, so the bench's own share of the CPU stays small.
    """

    def __init__(self, want_outcomes: int, ledger_file: Path) -> None:
        self.want_outcomes = want_outcomes
        self.ledger_file = ledger_file
        self.outcomes = 0
        self.events_expected = 0
        self.events = 0
        self.outcomes_done = asyncio.get_running_loop().create_future()
        self.outcomes_at = 0.0
        self.events_at = 0.0

    async def follow_outcomes(self, bootstrap: str) -> None:
        consumer = await assigned_consumer(bootstrap, topics.OUTCOMES)
        try:
            while self.outcomes < self.want_outcomes:
                batch = await consumer.getmany(timeout_ms=200, max_records=10000)
                self.outcomes += sum(len(records) for records in batch.values())
            self.outcomes_at = time.perf_counter()
            with sqlite3.connect(f"file:{self.ledger_file}?mode=ro", uri=True) as db:
                (self.events_expected,) = db.execute("SELECT count(*) FROM stored_events").fetchone()
            self.outcomes_done.set_result(None)
        finally:
            await consumer.stop()

    async def follow_ledger(self, bootstrap: str) -> None:
        consumer = await assigned_consumer(bootstrap, topics.LEDGER)
        try:
            while not self.outcomes_done.done() or self.events < self.events_expected:
                batch = await consumer.getmany(timeout_ms=200, max_records=10000)
                self.events += sum(len(records) for records in batch.values())
            self.events_at = time.perf_counter()
        finally:
            await consumer.stop()

    async def run(self, bootstrap: str, timeout: float) -> None:
        await asyncio.wait_for(
            asyncio.gather(self.follow_outcomes(bootstrap), self.follow_ledger(bootstrap)), timeout
        )


SESSION_TIMEOUT = 2.0
"""The workers' group session timeout: the embedded broker lets a member join after half of it."""


def start_worker(
    bootstrap: str, data_dir: Path, workers: int, *, encrypted: bool = True
) -> subprocess.Popen[bytes]:
    """The intake path only: the projector (read models) is not on the measured path, publish ->
    outcome, and at scale runs on its own host; here it would take a share of the two cores.
    ``serve --workers N`` runs N intake processes (itself and N-1 children) in the intake's group."""
    env = {
        **os.environ,
        "CREDIT_KAFKA_BOOTSTRAP": bootstrap,
        "CREDIT_DATA_DIR": str(data_dir),
        "CREDIT_KAFKA_SESSION_TIMEOUT": str(SESSION_TIMEOUT),
        "CREDIT_SUBJECT_SECRET": _harness.SECRET.decode(),
        "PYTHONPATH": str(_harness.ROOT),  # the worker runs this checkout, wherever the bench is started
    }
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - lives as long as the worker
    command = ["serve", "--no-http", "--no-project", "--workers", str(workers)]
    launcher = ["-m", "credit_ledger.cli"] if encrypted else [str(Path(__file__).with_name("_unsealed.py"))]
    return subprocess.Popen(
        [sys.executable, *launcher, *command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def serving(worker: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> bool:
    """Wait until the worker says it is serving; False (and its log on stderr) if it never does."""
    deadline = time.monotonic() + timeout
    while not log.exists() or "is serving" not in log.read_text():
        if time.monotonic() > deadline or worker.poll() is not None:
            print(log.read_text() if log.exists() else f"{log} was never written", file=sys.stderr)
            return False
        await asyncio.sleep(0.1)
    return True


def print_cpu_use(
    roles: dict[int, str], cpu_used: dict[int, float], submissions: int, seconds: float
) -> None:
    cores = os.cpu_count() or 1
    print(
        f"CPU seconds in that window ({cores} cores x {seconds:.2f} s = {cores * seconds:.2f} s available):"
    )
    by_role: dict[str, float] = {}
    for pid, used in cpu_used.items():
        by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + used
    for role, used in sorted(by_role.items(), key=lambda item: -item[1]):
        print(f"  {used:6.2f} s  {used / submissions * 1e6:5.1f} us/submission  {role}")
    print(f"  {sum(by_role.values()):6.2f} s  in all")


def start_broker(kind: str, stack: ExitStack, tmp: Path) -> tuple[str, int, list[int]]:
    """The broker under test, stopped by ``stack``: its bootstrap, replication factor and pids."""
    if kind == "real":
        from tests.integration.kafka import REPLICATION_FACTOR, start_cluster  # noqa: PLC0415

        began = time.monotonic()
        cluster = start_cluster(tmp / "kafka")
        stack.callback(cluster.stop, graceful=False)
        print(f"Apache Kafka cluster of 3 nodes up in {time.monotonic() - began:.1f} s", file=sys.stderr)
        os.environ["CREDIT_REPLICATION_FACTOR"] = str(REPLICATION_FACTOR)  # the worker's topics too
        return cluster.bootstrap, REPLICATION_FACTOR, [n.pid for n in cluster.nodes if n.pid]
    broker = stack.enter_context(EmbeddedBroker())
    return broker.bootstrap, 1, [broker.pid or 0]


def create_topics(bootstrap: str, replicas: int) -> None:
    """The platform's topics and the raw-produce scratch topic, replicated as the platform's are."""
    admin.ensure_topics(bootstrap, replication_factor=replicas)
    from kafka.admin import KafkaAdminClient, NewTopic  # noqa: PLC0415

    scratch = KafkaAdminClient(bootstrap_servers=bootstrap)
    durability = {"min.insync.replicas": "2"} if replicas >= 3 else {}
    scratch.create_topics([NewTopic(SCRATCH, topics.DEFAULT_PARTITIONS, replicas, topic_configs=durability)])
    scratch.close()


async def main_async(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    submissions = generator.take(args.submissions)
    messages = [(submission_key(s), orjson.dumps(s)) for s in submissions]
    if args.workers > 1:
        print("encryption off needs --workers 1 (the children seal); running encryption on only")
    rates = {}
    for encrypted in (False, True) if args.workers == 1 else (True,):
        print(f"== encryption {'on' if encrypted else 'off'}")
        rate = await one_run(args, catalogue, messages, encrypted=encrypted)
        if rate is None:
            return 1
        rates[encrypted] = rate
    if False in rates:
        loss = 1 - rates[True] / rates[False]
        print(
            f"end to end: encryption off {rates[False]:,.0f}/s, on {rates[True]:,.0f}/s; encryption "
            f"costs {loss:.1%} (bound: 15%): {'met' if loss <= 0.15 else 'NOT met'}"
        )
    return 0


async def one_run(
    args: argparse.Namespace, catalogue: Any, messages: list[tuple[bytes, bytes]], *, encrypted: bool
) -> float | None:
    """One timed run on a fresh broker and data dir; the end-to-end rate (None if it failed)."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        bootstrap, replicas, broker_pids = start_broker(args.kafka, stack, Path(tmp))
        create_topics(bootstrap, replicas)

        raw_seconds = await produce(bootstrap, SCRATCH, messages)
        raw_rate = len(messages) / raw_seconds

        worker = start_worker(bootstrap, Path(tmp), args.workers, encrypted=encrypted)
        try:
            for log in ["worker.log", *(f"intake-{n}.log" for n in range(2, args.workers + 1))]:
                if not await serving(worker, Path(tmp) / log):
                    return None
            if args.workers > 1:
                # The children join the intake's group after the first worker took every partition:
                # give the rebalance (half a session timeout on the embedded broker) time to end, so
                # the timed run does not include it. (A benchmark's settle time, not a test's wait.)
                await asyncio.sleep(2 * SESSION_TIMEOUT)
            # Warm-up: one submission through the whole path, so group join is not timed.
            warm = SubmissionGenerator(catalogue.latest, subjects=1, seed=1, prefix="warm").take(1)
            await produce(bootstrap, topics.SUBMISSIONS, [(submission_key(warm[0]), orjson.dumps(warm[0]))])
            await Arrivals(1, Path(tmp) / "ledger.sqlite").run(bootstrap, 60)

            pids = {pid: _harness.command_of(pid) for pid in _harness.process_tree(worker.pid)}
            role = "broker (Apache Kafka JVMs)" if args.kafka == "real" else "broker (tansu)"
            for pid in broker_pids:
                pids.update(dict.fromkeys(_harness.process_tree(pid), role))
            pids[os.getpid()] = "bench client (produce + follow)"
            cpu_before = {pid: _harness.cpu_seconds(pid) for pid in pids}
            arrivals = Arrivals(len(messages) + 1, Path(tmp) / "ledger.sqlite")
            started = time.perf_counter()
            follow = asyncio.create_task(arrivals.run(bootstrap, 600))
            publish_seconds = await produce(bootstrap, topics.SUBMISSIONS, messages)
            await follow
            cpu_used = {pid: _harness.cpu_seconds(pid) - cpu_before[pid] for pid in pids}
            outcomes_seconds = arrivals.outcomes_at - started
            seconds = max(arrivals.outcomes_at, arrivals.events_at) - started
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            if args.show_log:
                for log_file in sorted(Path(tmp).glob("*.log")):
                    print(f"== {log_file.name}\n{log_file.read_text()[-args.show_log :]}", file=sys.stderr)

    e2e = len(messages) / seconds
    print(_harness.machine())
    print(
        f"broker: {'Apache Kafka, 3 nodes, RF 3, min ISR 2' if args.kafka == 'real' else 'embedded (tansu)'}"
    )
    print(
        f"submissions: {len(messages)} over {args.subjects} subjects "
        f"({sum(len(v) for _, v in messages) / len(messages):.0f} bytes each); intake workers: {args.workers}"
    )
    print(f"raw produce: {raw_rate:,.0f} msg/s (aiokafka, acks=all, {raw_seconds:.2f} s)")
    print(f"publish of the submissions: {publish_seconds:.2f} s")
    print(f"last outcome on credit.outcomes after {outcomes_seconds:.2f} s")
    print(
        f"end to end (first publish -> last outcome and last of {arrivals.events:,} events on "
        f"credit.ledger): {seconds:.2f} s = {e2e:,.0f} submissions/s"
    )
    print_cpu_use(pids, cpu_used, len(messages), seconds)
    print(f"ratio end-to-end / raw produce: {e2e / raw_rate:.0%}")
    print(
        f"targets: >= 10,000/s {'met' if e2e >= 10_000 else 'NOT met'}; "
        f">= 40% of raw {'met' if e2e >= 0.4 * raw_rate else 'NOT met'}"
    )
    return e2e


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--workers", type=int, default=1, help="intake processes: serve --workers N (default 1)"
    )
    parser.add_argument(
        "--kafka",
        choices=["embedded", "real"],
        default="embedded",
        help="the embedded broker (default) or a 3-node Apache Kafka cluster on loopback",
    )
    parser.add_argument(
        "--show-log", type=int, default=0, metavar="CHARS", help="print the end of the worker's log"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
