"""Benchmark: apply N submissions over S subjects to a SQLite-file ledger in batches; print submissions/s.

Run: python bench/ledger_append.py [--submissions 100000] [--subjects 10000] [--batch 1000]
Target (issue 2): >= 10,000 submissions/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson

from credit_ledger.compose import tune_gc
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    tune_gc()  # as credit-ledger's long-running commands do at start (see credit_ledger/bootstrap.py)
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    # Encoded up front: the intake receives bytes, and generating them is not the ledger's cost.
    messages = [orjson.dumps(s) for s in generator.take(args.submissions)]
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        ledger = CreditLedger(
            catalogue=catalogue, secret=b"bench-secret-0123456789", clock=lambda: now, env=env
        )
        outcomes = Counter[str]()
        started = time.perf_counter()
        for i in range(0, len(messages), args.batch):
            for outcome in ledger.submit(messages[i : i + args.batch]):
                outcomes[outcome.status] += 1
        elapsed = time.perf_counter() - started
        events = ledger.recorder.max_notification_id()
        size_mb = path.stat().st_size / 1e6
        ledger.close()

    rate = args.submissions / elapsed
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"submissions: {args.submissions} over {args.subjects} subjects, batches of {args.batch}")
    print(f"outcomes: {dict(outcomes)}; events stored: {events}; database: {size_mb:.1f} MB")
    print(f"elapsed: {elapsed:.2f} s")
    print(f"throughput: {rate:,.0f} submissions/s ({events / elapsed:,.0f} events/s)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"target >= 10,000 submissions/s: {'met' if rate >= 10_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
