"""Benchmark: projections rebuilt from credit.ledger (>= 1M events) and applied live, in events/s.

Run: python bench/projections.py [--events 1000000] [--subjects 50000] [--live 200000]
Builds a real ledger from generated submissions (in memory; not timed), publishes its events
to credit.ledger on a fresh embedded broker (not timed), then times:
  rebuild  `projections rebuild`'s path: read the topic from the beginning until fetches come
           back empty, fold every event, write states, list rows and due items to a fresh SQLite store;
  live     the live projector's path: batches of 5,000 events applied with one transaction each.
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
from pathlib import Path

import orjson

from contract import topics
from contract.messages import ledger_message
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from projections.projector import Projector
from projections.store import ProjectionStore
from streams import admin
from streams.broker import EmbeddedBroker
from streams.producing import send_all, start_producer
from streams.rebuild import rebuild_from_topic


def build_ledger(target: int, subjects: int, path: Path, catalogue: Catalogue) -> CreditLedger:
    """A real ledger of at least ``target`` events, on a SQLite file (so it does not sit in memory)."""
    ledger = _harness.open_ledger(path, catalogue)
    generator = SubmissionGenerator(catalogue.latest, subjects=subjects, seed=7)
    while (ledger.recorder.max_notification_id() or 0) < target:
        ledger.submit(generator.take(5000))
    return ledger


def ledger_pages(ledger: CreditLedger, target: int) -> Iterator[list[tuple[bytes, bytes]]]:
    """The ledger's first ``target`` events as credit.ledger messages, a page at a time."""
    position, sent = 1, 0
    while sent < target:
        page = ledger.recorder.select_notifications(position, min(20_000, target - sent))
        if not page:
            return
        yield [
            ledger_message(n.id, n.originator_id, n.originator_version, n.topic, orjson.loads(n.state))
            for n in page
        ]
        sent += len(page)
        position = page[-1].id + 1


async def publish(bootstrap: str, pages: Iterator[list[tuple[bytes, bytes]]]) -> int:
    producer = await start_producer(bootstrap)
    count = 0
    try:
        for page in pages:
            count += await send_all(producer, topics.LEDGER, page)
    finally:
        await producer.stop()
    return count


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
        sample = [orjson.loads(v) for page in ledger_pages(ledger, args.live) for _, v in page]
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

    print(
        f"rebuild: {read:,} events in {rebuild:.2f} s = {read / rebuild:,.0f} events/s "
        f"({counts['subjects']:,} subjects, {counts['list_members']:,} list rows, {counts['due']:,} due items)"
    )
    print(
        f"live apply: {len(sample):,} events in {live:.2f} s = {len(sample) / live:,.0f} events/s (batches of 5,000)"
    )
    print(f"peak RSS: {_harness.peak_rss_mb():.0f} MB")
    print(f"target rebuild >= 50,000 events/s: {'met' if read / rebuild >= 50_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
