"""Benchmark: authorised status queries over HTTP on loopback, each recorded in the ledger first.

Run: python bench/queries.py [--rate 500] [--seconds 20]
Starts `credit-ledger serve` (embedded broker, SQLite) in a temporary data dir, files a few
records, issues a department key, then sends POST /v1/queries/status at a fixed rate (open
loop: requests go out on schedule whether or not earlier ones have answered) and prints the
achieved throughput and latency percentiles. Every query writes its QueryRecord to the ledger
before answering. Target (issue 5): p99 <= 10 ms at 500 queries/s.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import asyncio
import json
import sys

CODES = ("11010519491231002X", "440524188001010014", "91350100M000100Y43")


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    bodies = [
        json.dumps(
            {
                "subject": {"id": code},
                "purpose": "supervision_inspection",
                "basis": "《社会信用体系建设法》第二十条",
            }
        ).encode()
        for code in CODES
    ]
    with _harness.served() as (port, env):
        _harness.publish_examples(env, [f"{n:02d}_" for n in range(1, 12)])
        key = json.loads(
            _harness.cli(env, "keys", "issue", "--role", "department", "--organisation", "market_regulator")
        )["key"]
        url = f"http://127.0.0.1:{port}/v1/queries/status"
        _harness.until_answered(url, key, bodies)  # the read models have the files
        asyncio.run(_harness.load(url, key, bodies, args.rate, args.warmup))
        latencies, errors, elapsed = asyncio.run(_harness.load(url, key, bodies, args.rate, args.seconds))
    _harness.report_latency("queries", latencies, errors, elapsed, args.rate, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
