"""Benchmark: apply N submissions over S subjects to a SQLite-file ledger in batches; print submissions/s.

Run: python bench/ledger_append.py [--submissions 100000] [--subjects 10000] [--batch 1000] [--rounds 1]
Target (issue 2): >= 10,000 submissions/s on a 2-core machine.

Each round applies the submissions with encryption off and on, on fresh files in this process
(off first in odd rounds, on first in even ones); with several rounds it prints the medians. Beside
the wall-clock rate it prints the process's CPU seconds (user + system), which the other load on a
shared machine disturbs less. Target (issue 15): encryption costs at most 15%.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from credit_ledger.generator import SubmissionGenerator
from ledger.domain.catalogue import load_catalogue


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=1, help="off/on pairs, alternating their order")
    args = parser.parse_args()

    _harness.start()
    catalogue = load_catalogue()
    generator = SubmissionGenerator(catalogue.latest, subjects=args.subjects, seed=args.seed)
    # Encoded up front: the intake receives bytes, and generating them is not the ledger's cost.
    messages = [orjson.dumps(s) for s in generator.take(args.submissions)]

    print(f"submissions: {args.submissions} over {args.subjects} subjects, batches of {args.batch}")
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        # Fresh files in the same process each time: the difference is encryption's alone.
        for encrypted in (False, True) if round_ % 2 == 0 else (True, False):
            label = "encryption on " if encrypted else "encryption off"
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "ledger.sqlite"
                ledger = _harness.open_ledger(path, catalogue, encrypted=encrypted)
                outcomes = Counter[str]()
                started, cpu = time.perf_counter(), _cpu_seconds()
                for i in range(0, len(messages), args.batch):
                    for outcome in ledger.submit(messages[i : i + args.batch]):
                        outcomes[outcome.status] += 1
                elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
                events = ledger.reader.head()
                size_mb = path.stat().st_size / 1e6
                ledger.close()
            rate = args.submissions / elapsed
            rates[encrypted].append(rate)
            cpus[encrypted].append(cpu / args.submissions * 1e6)
            print(f"{label}: outcomes {dict(outcomes)}; events stored: {events}; database: {size_mb:.1f} MB")
            print(
                f"{label}: {elapsed:.2f} s, {rate:,.0f} submissions/s ({events / elapsed:,.0f} events/s); "
                f"CPU {cpu:.2f} s ({cpus[encrypted][-1]:.0f} µs a submission)"
            )
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    cpu_off, cpu_on = statistics.median(cpus[False]), statistics.median(cpus[True])
    loss, cpu_loss = 1 - on / off, 1 - cpu_off / cpu_on
    print(f"peak RSS: {_harness.peak_rss_mb():.0f} MB")
    if args.rounds > 1:
        print(
            f"medians of {args.rounds} rounds: off {off:,.0f}/s ({cpu_off:.0f} µs CPU), on {on:,.0f}/s ({cpu_on:.0f} µs CPU)"
        )
    print(f"encryption costs {loss:.1%} of throughput (bound: 15%): {'met' if loss <= 0.15 else 'NOT met'}")
    print(f"encryption costs {cpu_loss:.1%} of throughput in CPU terms (off CPU / on CPU)")
    print(f"target >= 10,000 submissions/s with encryption: {'met' if on >= 10_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
