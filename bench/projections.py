"""Benchmark: projections rebuilt from credit.ledger (>= 1M events) and applied live, in events/s.

Run: python bench/projections.py [--events 1000000] [--subjects 50000] [--live 200000]
Builds a real ledger from generated submissions (in memory; not timed), publishes its events
to credit.ledger on a fresh embedded broker (not timed), then times:
  rebuild  `projections rebuild`'s path: read the topic from the beginning until fetches come
           back empty, fold every event, write states, list rows and due items to a fresh SQLite store;
  live     the live projector's fold: batches of 5,000 decoded events, one transaction each;
  process  the same batches as the projector process applies them: records decoded on its thread,
           folded through its applier (poison isolation, the store lock held shared).
Target (issue 4): >= 50,000 events/s for the rebuild.
"""

from __future__ import annotations

import _harness  # first: the import path (this file shares its name with the projections package)

# isort: split
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from aiokafka import ConsumerRecord

from contract import topics
from contract.deadletters import PROJECTOR
from contract.messages import ledger_message
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from projections.projector import Projector
from projections.store import ProjectionStore
from streams import admin
from streams.broker import EmbeddedBroker
from streams.isolation import DeadLetters
from streams.producing import send_all, start_producer
from streams.projecting import BATCH, StoreApplier
from streams.rebuild import rebuild_from_topic
from streams.storelock import StoreLock


def build_ledger(target: int, subjects: int, path: Path, catalogue: Catalogue) -> CreditLedger:
    """A real ledger of at least ``target`` events, on a SQLite file (so it does not sit in memory)."""
    ledger = _harness.open_ledger(path, catalogue)
    generator = SubmissionGenerator(catalogue.latest, subjects=subjects, seed=7)
    while ledger.reader.head() < target:
        ledger.submit(generator.take(5000))
    return ledger


def ledger_pages(ledger: CreditLedger, target: int) -> Iterator[list[tuple[bytes, bytes]]]:
    """The ledger's first ``target`` events as credit.ledger messages, a page at a time."""
    position, sent = 0, 0
    while sent < target:
        page = ledger.reader.event_rows(position, min(20_000, target - sent))
        if not page:
            return
        yield [
            ledger_message(at, stream, version, topic, orjson.loads(state))
            for at, stream, version, topic, state in page
        ]
        sent += len(page)
        position = page[-1][0]


async def publish(bootstrap: str, pages: Iterator[list[tuple[bytes, bytes]]]) -> int:
    producer = await start_producer(bootstrap)
    count = 0
    try:
        for page in pages:
            count += await send_all(producer, topics.LEDGER, page)
    finally:
        await producer.stop()
    return count


async def through_the_applier(raw: list[tuple[bytes, bytes]], path: Path, catalogue: Catalogue) -> float:
    """Seconds to apply ``raw`` as the projector process does, on a fresh store."""
    store = ProjectionStore(path)
    records = [
        ConsumerRecord(topics.LEDGER, 0, offset, 0, 0, key, value, None, len(key), len(value), [])
        for offset, (key, value) in enumerate(raw)
    ]
    applier = StoreApplier(
        Projector(store, catalogue),
        ThreadPoolExecutor(max_workers=1),
        DeadLetters(PROJECTOR),
        lock=StoreLock(str(path)),
    )
    started = time.perf_counter()
    for i in range(0, len(records), BATCH):
        await applier.apply(records[i : i + BATCH])
    return time.perf_counter() - started


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=50_000)
    parser.add_argument("--live", type=int, default=200_000, help="events for the live-path measurement")
    args = parser.parse_args()
    _harness.start()
    catalogue = load_catalogue()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        started = time.perf_counter()
        ledger = build_ledger(args.events, args.subjects, Path(tmp) / "ledger.sqlite", catalogue)
        built = time.perf_counter() - started
        admin.ensure_topics(broker.bootstrap)
        published = asyncio.run(publish(broker.bootstrap, ledger_pages(ledger, args.events)))
        raw = [(k, v) for page in ledger_pages(ledger, args.live) for k, v in page]
        sample = [orjson.loads(v) for _, v in raw]
        ledger.close()
        del ledger
        print(
            f"ledger events published: {published:,} over up to {args.subjects:,} subjects (built in {built:.0f} s, not timed)"
        )

        store = ProjectionStore(Path(tmp) / "rebuild.sqlite")
        started = time.perf_counter()
        _, read = rebuild_from_topic(broker.bootstrap, store, catalogue, idle=1.0)
        rebuild = time.perf_counter() - started - 1.0  # the last second is the idle wait that ends the read
        counts = store.counts()

        live_store = ProjectionStore(Path(tmp) / "live.sqlite")
        projector = Projector(live_store, catalogue)
        started = time.perf_counter()
        for i in range(0, len(sample), 5000):
            projector.apply(sample[i : i + 5000])
        live = time.perf_counter() - started
        process = asyncio.run(through_the_applier(raw, Path(tmp) / "process.sqlite", catalogue))

    print(
        f"rebuild: {read:,} events in {rebuild:.2f} s = {read / rebuild:,.0f} events/s "
        f"({counts['subjects']:,} subjects, {counts['list_members']:,} list rows, {counts['due']:,} due items)"
    )
    print(
        f"live apply: {len(sample):,} events in {live:.2f} s = {len(sample) / live:,.0f} events/s (batches of 5,000)"
    )
    print(
        f"process path: {len(raw):,} events in {process:.2f} s = {len(raw) / process:,.0f} events/s "
        "(decode + StoreApplier + store lock, batches of 5,000)"
    )
    print(f"peak RSS: {_harness.peak_rss_mb():.0f} MB")
    print(f"target rebuild >= 50,000 events/s: {'met' if read / rebuild >= 50_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
