"""Benchmark: CPU seconds per record and records/s of the outbox relay publishing a SQLite ledger to an embedded broker; run: python bench/relay.py [--submissions 50000] [--runs 3] [--check] [--profile 40]."""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import argparse
import asyncio
import cProfile
import hashlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from contract import topics
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from streams import admin
from streams.broker import EmbeddedBroker
from streams.producing import start_producer
from streams.relay import LEDGER_CURSOR, OUTCOMES_CURSOR, KafkaPublisher, Relay

EPILOG = """\
The ledger is built first (not measured). Each run then starts a fresh broker, opens the ledger
afresh as the relay process would, and times Relay.run_once from position 0 until every event
and outcome is acknowledged. A record is one event or one outcome (a rejection's second copy, on
credit.rejections, is not counted). CPU is time.process_time() of this process: the relay's reads
(on its executor thread) and its publishing; the broker is another process.
--check reads every published partition back and prints a digest of its (key, value) sequence,
so two versions of the relay can be shown to publish the same records in the same order.
--profile runs the relay's reads on the event loop's thread so that cProfile sees them; its
figures are inflated by the profiler.
"""

PUBLISHED_TOPICS = (topics.LEDGER, topics.QUERY_AUDIT, topics.OUTCOMES, topics.REJECTIONS)

Digests = dict[str, tuple[int, str]]  # "topic/partition" -> (records, sha256 of their keys and values)


@dataclass
class RelayRun:
    records: int
    wall: float
    cpu: float
    system: float  # the part of cpu spent in the kernel (reading the database file, sockets)
    profile: cProfile.Profile | None


class InlineExecutor(Executor):
    """Runs the relay's reads on the calling thread, so cProfile (one thread's profiler) sees them."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: Future[object] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def build_ledger(path: Path, catalogue: Catalogue, args: argparse.Namespace) -> Counter[str]:
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    ledger = _harness.open_ledger(path, catalogue)
    outcomes = Counter[str]()
    try:
        for start in range(0, args.submissions, 1000):
            batch = [orjson.dumps(s) for s in generator.take(min(1000, args.submissions - start))]
            outcomes.update(o.status for o in ledger.submit(batch))
    finally:
        ledger.close()
    return outcomes


async def run_relay(ledger: CreditLedger, bootstrap: str, page: int | None, profile: bool) -> RelayRun:
    """Publish the whole ledger as the relay process does (same producer, publisher and executor)."""
    publisher = KafkaPublisher(await start_producer(bootstrap))
    try:
        executor = InlineExecutor() if profile else ThreadPoolExecutor(max_workers=1)
        relay = Relay(ledger, publisher.publish, executor, **({"page": page} if page else {}))
        profiler = cProfile.Profile() if profile else None
        cpu, system, wall = time.process_time(), os.times().system, time.perf_counter()
        if profiler is not None:
            profiler.enable()
        records = await relay.run_once()
        if profiler is not None:
            profiler.disable()
        wall, cpu, system = time.perf_counter() - wall, time.process_time() - cpu, os.times().system - system
        return RelayRun(records, wall, cpu, system, profiler)
    finally:
        await publisher.producer.stop()


async def partition_digests(bootstrap: str) -> Digests:
    """Every partition of the published topics, read from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata, so partitions_for_topic knows them
        partitions = [
            TopicPartition(topic, p)
            for topic in PUBLISHED_TOPICS
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        hashes = {tp: hashlib.sha256() for tp in partitions}
        counts = Counter[TopicPartition]()
        # Until the broker has nothing more to give: the embedded broker's end offsets run short
        # of what it serves, so they cannot say when everything has been read.
        while fetched := await consumer.getmany(timeout_ms=1000, max_records=10_000):
            for tp, records in fetched.items():
                for r in records:
                    for part in (r.key or b"", r.value or b""):
                        hashes[tp].update(len(part).to_bytes(4, "big") + part)
                counts[tp] += len(records)
        return {f"{tp.topic}/{tp.partition}": (counts[tp], hashes[tp].hexdigest()) for tp in partitions}
    finally:
        await consumer.stop()


def relay_once(
    path: Path, catalogue: Catalogue, args: argparse.Namespace, *, profile: bool = False
) -> tuple[RelayRun, Digests]:
    """One measured run: a fresh broker, the ledger opened afresh and published from position 0."""
    ledger = _harness.open_ledger(path, catalogue)  # a fresh process's view: nothing cached
    try:
        for cursor in (LEDGER_CURSOR, OUTCOMES_CURSOR):
            ledger.register.save_relay_position(cursor, 0)
        with EmbeddedBroker() as broker:
            admin.ensure_topics(broker.bootstrap)
            run = asyncio.run(run_relay(ledger, broker.bootstrap, args.page, profile))
            digests = asyncio.run(partition_digests(broker.bootstrap)) if args.check else {}
        saved = tuple(ledger.register.relay_position(c) for c in (LEDGER_CURSOR, OUTCOMES_CURSOR))
        if saved != (ledger.reader.head(), args.submissions):
            raise SystemExit(f"the relay stopped short: saved positions {saved}")
    finally:
        ledger.close()
    return run, digests


def print_run(run: RelayRun, digests: Digests) -> None:
    print(
        f"relay: {run.records} records in {run.wall:.2f} s = {run.records / run.wall:,.0f} records/s; "
        f"CPU {run.cpu:.2f} s (system {run.system:.2f} s) = {run.cpu / run.records * 1e6:.1f} µs per record"
        + (" (under cProfile: inflated)" if run.profile else "")
    )
    if digests:
        total = sum(n for n, _ in digests.values())
        combined = hashlib.sha256("".join(f"{k}={h}" for k, (_, h) in sorted(digests.items())).encode())
        print(f"  published: {total} records; digest of all partitions {combined.hexdigest()[:16]}")
        for name, (n, digest) in sorted(digests.items()):
            print(f"    {name}: {n} records, {digest[:16]}")


def print_profile(profile: cProfile.Profile, lines: int) -> None:
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)


def main() -> int:
    parser = _harness.parser(__doc__, EPILOG)
    parser.add_argument("--submissions", type=int, default=50_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--page", type=int, default=None, help="relay page size (default: the relay's)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs over the same ledger")
    parser.add_argument(
        "--check", action="store_true", help="print per-partition digests of what was published"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="LINES",
        default=0,
        help="then one more run under cProfile; print LINES",
    )
    args = parser.parse_args()

    _harness.start()  # GC tuned as `credit-ledger relay` does at start
    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        started = time.perf_counter()
        outcomes = build_ledger(path, catalogue, args)
        print(
            f"ledger: {args.submissions} submissions over {args.subjects} subjects, "
            f"outcomes {dict(outcomes)} (built in {time.perf_counter() - started:.1f} s, not measured)"
        )
        runs = []
        for _ in range(args.runs):
            run, digests = relay_once(path, catalogue, args)
            print_run(run, digests)
            runs.append(run)
        profiled = relay_once(path, catalogue, args, profile=True)[0] if args.profile else None
    if runs:
        per_record = sorted(r.cpu / r.records * 1e6 for r in runs)
        print(
            f"CPU per record over {len(runs)} runs: median {statistics.median(per_record):.1f} µs, "
            f"min {per_record[0]:.1f} µs, max {per_record[-1]:.1f} µs"
        )
    if profiled is not None and profiled.profile is not None:
        print_run(profiled, {})
        print_profile(profiled.profile, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
