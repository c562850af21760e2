"""Benchmark: end-to-end intake (publish -> ledger -> credit.ledger/credit.outcomes) vs raw produce rate.

Run: python bench/intake.py [--submissions 100000] [--subjects 10000]
Starts a fresh embedded broker and one `credit-ledger serve --no-http` worker process (SQLite
ledger in a temporary directory), then in this process: (1) the raw produce rate, sending the
same encoded submissions to a scratch topic with one aiokafka producer; (2) publishes the
submissions to credit.submissions with the same producer and times until every outcome is on
credit.outcomes and every accepted event is on credit.ledger.
Targets (issue 3): >= 10,000 submissions/s end to end, and >= 40% of the raw produce rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from credit_ledger.generator import SubmissionGenerator
from ledger.catalogue import load_catalogue
from streams import topics
from streams.broker import EmbeddedBroker
from streams.messages import submission_key

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


async def count_until(bootstrap: str, topic: str, done: asyncio.Future[None], want: int) -> int:
    """Consume ``topic`` from the start (assigned, no group) until ``want`` records are seen."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        while not partitions:
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        while seen < want:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            seen += sum(len(records) for records in batch.values())
        return seen
    finally:
        await consumer.stop()


def start_worker(bootstrap: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """The intake path only: the projector (read models) is not on the measured path, publish ->
    outcome, and at scale runs on its own host; here it would take a share of the two cores."""
    env = {
        **os.environ,
        "CREDIT_KAFKA_BOOTSTRAP": bootstrap,
        "CREDIT_DATA_DIR": str(data_dir),
        "CREDIT_KAFKA_SESSION_TIMEOUT": "2",
        "CREDIT_SUBJECT_SECRET": "bench-secret-0123456789",
    }
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [sys.executable, "-m", "credit_ledger.cli", "serve", "--no-http", "--no-project"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def main_async(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    submissions = generator.take(args.submissions)
    messages = [(submission_key(s), orjson.dumps(s)) for s in submissions]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap
        topics.ensure_topics(bootstrap)
        from kafka.admin import KafkaAdminClient, NewTopic  # noqa: PLC0415

        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(SCRATCH, topics.DEFAULT_PARTITIONS, 1)])
        admin.close()

        raw_seconds = await produce(bootstrap, SCRATCH, messages)
        raw_rate = len(messages) / raw_seconds

        worker = start_worker(bootstrap, Path(tmp))
        try:
            deadline = time.monotonic() + 60
            log = Path(tmp) / "worker.log"
            while "is serving" not in log.read_text():
                if time.monotonic() > deadline or worker.poll() is not None:
                    print(log.read_text(), file=sys.stderr)
                    return 1
                await asyncio.sleep(0.1)
            # Warm-up: one submission through the whole path, so group join is not timed.
            warm = SubmissionGenerator(catalogue.latest, subjects=1, seed=1, prefix="warm").take(1)
            await produce(bootstrap, topics.SUBMISSIONS, [(submission_key(warm[0]), orjson.dumps(warm[0]))])
            await count_until(bootstrap, topics.OUTCOMES, asyncio.get_running_loop().create_future(), 1)

            started = time.perf_counter()
            publish_seconds = await produce(bootstrap, topics.SUBMISSIONS, messages)
            await count_until(
                bootstrap, topics.OUTCOMES, asyncio.get_running_loop().create_future(), len(messages) + 1
            )
            outcomes_seconds = time.perf_counter() - started
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            if args.show_log:
                print((Path(tmp) / "worker.log").read_text()[-args.show_log :], file=sys.stderr)

    e2e = len(messages) / outcomes_seconds
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"submissions: {len(messages)} over {args.subjects} subjects "
        f"({sum(len(v) for _, v in messages) / len(messages):.0f} bytes each)"
    )
    print(f"raw produce: {raw_rate:,.0f} msg/s (aiokafka, acks=all, {raw_seconds:.2f} s)")
    print(f"publish of the submissions: {publish_seconds:.2f} s")
    print(
        "end to end (first publish -> last outcome on credit.outcomes): "
        f"{outcomes_seconds:.2f} s = {e2e:,.0f} submissions/s"
    )
    print(f"ratio end-to-end / raw produce: {e2e / raw_rate:.0%}")
    print(
        f"targets: >= 10,000/s {'met' if e2e >= 10_000 else 'NOT met'}; "
        f">= 40% of raw {'met' if e2e >= 0.4 * raw_rate else 'NOT met'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--show-log", type=int, default=0, metavar="CHARS", help="print the end of the worker's log"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
