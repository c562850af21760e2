"""Benchmark: apply N submissions over S subjects to a SQLite-file ledger in batches; print submissions/s.

Run: python bench/ledger_append.py [--submissions 100000] [--subjects 10000] [--batch 1000]
Target (issue 2): >= 10,000 submissions/s on a 2-core machine.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    _harness.start()
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    # Encoded up front: the intake receives bytes, and generating them is not the ledger's cost.
    messages = [orjson.dumps(s) for s in generator.take(args.submissions)]

    print(f"submissions: {args.submissions} over {args.subjects} subjects, batches of {args.batch}")
    rates = {}
    # Off first, then on, each on a fresh file in the same process: the loss is encryption's alone.
    for encrypted in (False, True):
        label = "encryption on " if encrypted else "encryption off"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ledger.sqlite"
            ledger = _harness.open_ledger(path, catalogue, encrypted=encrypted)
            outcomes = Counter[str]()
            started = time.perf_counter()
            for i in range(0, len(messages), args.batch):
                for outcome in ledger.submit(messages[i : i + args.batch]):
                    outcomes[outcome.status] += 1
            elapsed = time.perf_counter() - started
            events = ledger.recorder.max_notification_id()
            size_mb = path.stat().st_size / 1e6
            ledger.close()
        rate = rates[encrypted] = args.submissions / elapsed
        print(f"{label}: outcomes {dict(outcomes)}; events stored: {events}; database: {size_mb:.1f} MB")
        print(f"{label}: {elapsed:.2f} s, {rate:,.0f} submissions/s ({events / elapsed:,.0f} events/s)")
    loss = 1 - rates[True] / rates[False]
    print(f"peak RSS: {_harness.peak_rss_mb():.0f} MB")
    print(f"encryption costs {loss:.1%} of throughput (bound: 15%): {'met' if loss <= 0.15 else 'NOT met'}")
    print(f"target >= 10,000 submissions/s with encryption: {'met' if rates[True] >= 10_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
