"""Benchmark: what one group-commit transaction of the query register writes, by the ids it uses.

Run: python bench/register.py [--fill 10000 200000] [--commits 3000] [--per 2]
For each fill size it opens a fresh SQLite ledger, writes that many query records in big
transactions (the register a running ledger already holds), then times ``--commits`` transactions
of ``--per`` records each (what the HTTP server's group commit writes: about two records a
transaction at 500 checks/s, docs/benchmarks.md) and prints the bytes the process wrote per
transaction (``/proc/self/io`` wchar: the same every run), the wall time and the CPU.

It runs each size twice: with the time-ordered (version-7) ids query records get
(``ledger.domain.queries.new_query_id``), and with random version-4 ids, what they got before
session 14, so the two are compared in one run on one machine.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.application import service
from ledger.domain.catalogue import load_catalogue
from ledger.domain.queries import new_query_id

RECORD: dict[str, Any] = {
    "requester": "key:bench",
    "organisation": "court",
    "role": "department",
    "endpoint": "check",
    "outcome": "allowed",
    "reason": "check before approval by court",
    "channel": "http",
    "recorded_at": "2026-12-02T01:00:00+00:00",
    "subject_key": "0" * 32,
    "returned": ["check"],
    "purpose": "travel_and_consumption",
    "reference": "BENCH-1",
    "department": None,
    "department_checked": "court",
    "result": "measures",
    "ledger_version": 12,
    "answer_digest": "0" * 64,
}


def _random_id(at: datetime) -> uuid.UUID:
    return uuid.uuid4()


def _wchar() -> int:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"])


def run(fill: int, commits: int, per: int, ordered: bool) -> None:
    service.new_query_id = new_query_id if ordered else _random_id  # type: ignore[assignment] # the comparison
    with tempfile.TemporaryDirectory() as tmp:
        clock = lambda: datetime.now(UTC)  # noqa: E731 - a running register's: ids follow real time
        ledger = _harness.open_ledger(Path(tmp) / "ledger.sqlite", load_catalogue(), clock=clock)
        for _ in range(fill // 500):
            ledger.write_query_events(ledger.query_events([RECORD] * 500))
        batches = [ledger.query_events([RECORD] * per) for _ in range(commits)]
        wrote, began, usage = _wchar(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        for stored in batches:
            ledger.write_query_events(stored)
        elapsed, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
        wrote = _wchar() - wrote
        ledger.close()
    user, system = after.ru_utime - usage.ru_utime, after.ru_stime - usage.ru_stime
    print(
        f"{'ordered' if ordered else 'random '} ids, register of {fill:>7,}: "
        f"{wrote / commits / 1024:5.1f} KB written a transaction of {per}; "
        f"wall {elapsed / commits * 1e6:5.0f} us, CPU user {user / commits * 1e6:4.0f} "
        f"+ system {system / commits * 1e6:4.0f} us"
    )


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--fill", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--per", type=int, default=2)
    args = parser.parse_args()
    _harness.start()
    for fill in args.fill:
        for ordered in (True, False):
            run(fill, args.commits, args.per, ordered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
