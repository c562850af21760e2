"""Benchmark: events/s delivered by a Faust agent that does nothing, against aiokafka's batched getmany.

Run: python bench/delivery.py [--records 200000] [--agent take_events|events]
Publishes N small records (400 bytes, keyed over 10,000 keys) to a scratch topic of 6 partitions
on a fresh embedded broker (not timed), then times, from the first record in to the last:
  getmany  an aiokafka consumer (the intake's way: getmany of up to 1,000 records at a time);
  faust    a Faust worker whose agent counts and does nothing else, in a process of its own
           (take_events(1000, within=0.1), or one event at a time with --agent events).
Why it matters: the intake spends about 80 µs of CPU per submission; delivery must cost far less.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams.broker import EmbeddedBroker
from streams.producing import send_all, start_producer

TOPIC = "bench.delivery"
PARTITIONS = 6


async def publish(bootstrap: str, records: int) -> None:
    producer = await start_producer(bootstrap)
    try:
        for start in range(0, records, 20_000):
            page = [
                (str(i % 10_000).encode(), b"x" * 400) for i in range(start, min(records, start + 20_000))
            ]
            await send_all(producer, TOPIC, page)
    finally:
        await producer.stop()


async def getmany_rate(bootstrap: str, records: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=1000)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count, first = 0, None
        while count < records:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if fetched and first is None:
                first = time.perf_counter()
            count += sum(len(rs) for rs in fetched.values())
        assert first is not None
        return count / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def faust_worker(bootstrap: str, records: int, mode: str, result: Path) -> None:
    """Runs in a child process: a Faust worker whose agent counts ``records`` events, then stops."""
    import faust  # noqa: PLC0415 - only in the child

    app = faust.App(
        f"bench-delivery-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=False,
        topic_partitions=PARTITIONS,
        web_enabled=False,
        broker_session_timeout=2.0,
        broker_heartbeat_interval=0.3,
        consumer_auto_offset_reset="earliest",
        datadir=str(result.parent / "faust"),
    )
    topic = app.topic(TOPIC, key_type=bytes, value_type=bytes)
    seen = {"count": 0, "first": 0.0}

    def arrived(n: int) -> None:
        if not seen["count"]:
            seen["first"] = time.perf_counter()
        seen["count"] += n
        if seen["count"] >= records:
            rate = seen["count"] / (time.perf_counter() - seen["first"])
            result.write_text(f"{rate:.0f}")
            os.kill(os.getpid(), signal.SIGTERM)

    if mode == "take_events":

        @app.agent(topic)
        async def count_batches(stream):  # type: ignore[no-untyped-def]
            async for events in stream.take_events(1000, within=0.1):
                arrived(len(events))

    else:

        @app.agent(topic)
        async def count_events(stream):  # type: ignore[no-untyped-def]
            async for _ in stream.events():
                arrived(1)

    worker = faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--agent", choices=("take_events", "events"), default="take_events")
    parser.add_argument("--child", nargs=2, metavar=("BOOTSTRAP", "RESULT"), help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        faust_worker(args.child[0], args.records, args.agent, Path(args.child[1]))
        return 0
    _harness.start(gc=False)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        admin.close()
        asyncio.run(publish(broker.bootstrap, args.records))
        print(f"records: {args.records:,} of 400 bytes on {PARTITIONS} partitions")
        print(f"aiokafka getmany: {asyncio.run(getmany_rate(broker.bootstrap, args.records)):,.0f} records/s")
        result = Path(tmp) / "faust.rate"
        command = [sys.executable, __file__, "--records", str(args.records), "--agent", args.agent]
        subprocess.run([*command, "--child", broker.bootstrap, str(result)], check=False, timeout=600)
        rate = float(result.read_text()) if result.exists() else float("nan")
        print(f"faust agent ({args.agent}, doing nothing): {rate:,.0f} events/s")
    return 0


def argparse_hidden() -> str:
    import argparse  # noqa: PLC0415

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
