"""Benchmark: checks before approval (应查必查) over HTTP on loopback, each recorded in the ledger first.

Run: python bench/checks.py [--rate 500] [--seconds 20]
Starts `credit-ledger serve` (embedded broker, SQLite) in a temporary data dir, files the example
records and the black-list designation (85 measure notices), issues the court's key, then sends
POST /v1/checks at a fixed rate (open loop) for businesses with measures in force and without,
and prints the achieved throughput and latency percentiles. Every check writes its query record
(requester, purpose = business type, subject, reference, answer digest) to the ledger before
answering. Target (issue 13): p99 <= 10 ms at 500 checks/s.

It first times the check alone (``MeasuresService.check`` on a SQLite ledger and read store in
this process, one after another, each with its register write): what a check costs, without
HTTP, Faust or the other processes, so a run on a busy machine still says how much a check costs.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

CHECKS = (
    ("91350100M000100Y43", "travel_and_consumption"),  # two sanctions in force for the court
    ("91350100M000100Y43", "real_estate_registration"),  # one
    ("11010519491231002X", "travel_and_consumption"),  # none
)


def alone(count: int) -> None:
    """The check alone, ``count`` times: the service, the read store and the register write."""
    from contract.messages import messages_from_store  # noqa: PLC0415 - after the import path is fixed
    from credit_ledger.compose import build_query_service  # noqa: PLC0415
    from ledger.application.keys import issue_key  # noqa: PLC0415
    from ledger.application.measures import MeasuresService  # noqa: PLC0415
    from ledger.domain.catalogue import load_catalogue  # noqa: PLC0415
    from projections.projector import Projector  # noqa: PLC0415
    from projections.store import ProjectionStore  # noqa: PLC0415

    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = _harness.open_ledger(Path(tmp) / "ledger.sqlite", catalogue)
        examples = [
            json.loads((_harness.EXAMPLES / n).read_text("utf-8"))
            for n in ("02_file_record_organisation.json", "09_designate.json")
        ]
        ledger.submit(examples)
        store = ProjectionStore(Path(tmp) / "projections.sqlite")
        Projector(store, catalogue).apply(messages_from_store(ledger.reader))
        service = build_query_service(ledger, store)
        _, key = issue_key(
            ledger.keys,
            role="department",
            organisation="court",
            label="bench",
            subject_key=None,
            now=_harness.NOW,
            departments=catalogue.latest.departments,
        )
        court = service.authenticate(key)
        assert court is not None
        measures = MeasuresService(service)
        took = []
        for i in range(count):
            code, business = CHECKS[i % len(CHECKS)]
            began = time.perf_counter()
            answer = measures.check(court, code, business=business, reference=f"ALONE-{i}")
            took.append(time.perf_counter() - began)
            assert answer.ok, answer.body
        ledger.close()
    ordered = sorted(took)
    p50, p99 = ordered[len(ordered) // 2] * 1000, ordered[int(0.99 * len(ordered))] * 1000
    print(
        f"check alone (service + register write, SQLite), {count:,} in a row: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
        f"mean {statistics.fmean(ordered) * 1000:.2f} ms: {count / sum(took):,.0f} checks/s on one core"
    )


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--alone", type=int, default=5000, help="checks timed alone first (0: none)")
    args = parser.parse_args()
    if args.alone:
        alone(args.alone)
    bodies = [
        json.dumps({"subject": {"id": code}, "business": business, "reference": f"BENCH-{i}"}).encode()
        for i, (code, business) in enumerate(CHECKS)
    ]
    with _harness.served() as (port, env):
        _harness.publish_examples(env, ["01_", "02_", "09_"])
        key = json.loads(
            _harness.cli(env, "keys", "issue", "--role", "department", "--organisation", "court")
        )["key"]
        url = f"http://127.0.0.1:{port}/v1/checks"
        _harness.until_answered(url, key, bodies)
        asyncio.run(_harness.load(url, key, bodies, args.rate, args.warmup))
        latencies, errors, elapsed = asyncio.run(_harness.load(url, key, bodies, args.rate, args.seconds))
    _harness.report_latency("checks", latencies, errors, elapsed, args.rate, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
