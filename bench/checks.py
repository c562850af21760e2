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

It prints the CPU seconds each process used during the load. ``--trace`` serves through
bench/_traced.py and prints where each check's time went inside the server (stage by stage, the
event loop's lag, slow callbacks, collections); ``--code DIR`` serves another checkout's code, to
run two versions alternately in one session (docs/benchmarks.md, issue 13). ``--floor`` serves
through bench/_floor.py, whose checks answer a constant with no work at all: the cost of
everything but the check (HTTP, Faust, the other processes), which no faster check can save.
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument(
        "--trace",
        action="store_true",
        help="serve through bench/_traced.py and print where each check's time went",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="serve through bench/_floor.py: checks answered with no work, to show what the rest costs",
    )
    parser.add_argument(
        "--code", type=Path, help="serve another checkout's code (compare two versions in one session)"
    )
    parser.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="the load's HTTP client: bench/_http.py (default), or aiohttp's (what runs before session 13 used)",
    )
    args = parser.parse_args()
    if args.alone:
        alone(args.alone)
    bodies = [
        json.dumps({"subject": {"id": code}, "business": business, "reference": f"BENCH-{i}"}).encode()
        for i, (code, business) in enumerate(CHECKS)
    ]
    trace = Path(tempfile.mkdtemp()) / "trace.json"
    launcher = ("-m", "credit_ledger.cli")
    if args.trace or args.floor:
        launcher = (str(_harness.BENCH / ("_floor.py" if args.floor else "_traced.py")),)
    with _harness.served(launcher, args.code, CREDIT_TRACE_FILE=str(trace)) as (port, env):
        _harness.publish_examples(env, ["01_", "02_", "09_"])
        key = json.loads(
            _harness.cli(env, "keys", "issue", "--role", "department", "--organisation", "court")
        )["key"]
        url = f"http://127.0.0.1:{port}/v1/checks"
        _harness.until_answered(url, key, bodies)
        asyncio.run(_harness.load(url, key, bodies, args.rate, args.warmup, client=args.client))
        pids = {pid: _harness.command_of(pid) for pid in _harness.process_tree(os.getpid())}
        pids[os.getpid()] = "bench client (load)"
        cpu_before = {pid: _harness.cpu_seconds(pid) for pid in pids}
        latencies, errors, elapsed = asyncio.run(
            _harness.load(url, key, bodies, args.rate, args.seconds, client=args.client)
        )
        cpu_used = {pid: _harness.cpu_seconds(pid) - cpu_before[pid] for pid in pids}
    _harness.report_latency("checks", latencies, errors, elapsed, args.rate, args.seconds, floor=args.floor)
    print(f"CPU seconds in the {elapsed:.1f} s of load (2 cores: {2 * elapsed:.1f} s available):")
    for pid, used in sorted(cpu_used.items(), key=lambda kv: -kv[1]):
        if used >= 0.05:
            print(f"  {used:6.2f} s  {used / len(latencies) * 1e6:6.0f} us/check  {pids[pid]}")
    if args.trace:
        report_trace(json.loads(trace.read_text()), args.seconds)
    return 0


def report_trace(trace: dict[str, list[Any]], seconds: float) -> None:
    """Each stage's p50, p99 and max over the measured checks, the stages of the slowest 1%, the
    event loop's lag, the slow callbacks and the collections (bench/_traced.py wrote them)."""
    requests = [r for r in trace["requests"] if r.get("check")]
    measured = requests[-int(len(requests) * seconds / (seconds + 3.0)) :]  # after the warm-up
    since = measured[0]["at"] if measured else 0.0
    stages = (
        "dispatch",
        "auth",
        "parse",
        "check",
        "record",
        "prepare",
        "register",
        "queued",
        "transaction",
        "wake-up",
        "save",
        "pool",
        "commit",
    )

    def ms(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    print(f"trace of {len(measured):,} checks in the server (ms):   p50     p99     max")
    for stage in stages:
        values = [r.get(stage, 0.0) for r in measured]
        print(f"  {stage:<10} {ms(values, 0.5):>28.2f} {ms(values, 0.99):>7.2f} {ms(values, 1.0):>7.2f}")
    slowest = sorted(measured, key=lambda r: r["dispatch"])[-max(1, len(measured) // 100) :]
    mean = {stage: statistics.fmean(r.get(stage, 0.0) for r in slowest) * 1000 for stage in stages}
    print("  slowest 1% in dispatch, mean ms: " + "  ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    lags = [lag for at, lag in trace["lags"] if at >= since]
    print(
        f"event loop lag (a 1 ms sleep's overshoot), {len(lags):,} samples: p50 {ms(lags, 0.5):.2f}  "
        f"p99 {ms(lags, 0.99):.2f}  max {ms(lags, 1.0):.2f}; over 5 ms: {sum(lag > 0.005 for lag in lags)}"
    )
    slow = [s for s in trace["slow"] if s[0] >= since]
    kinds: dict[str, list[float]] = {}
    for _, took, _, what in slow:
        kinds.setdefault(what.split(" at ")[0].split("(")[0][:90], []).append(took)
    print(
        f"callbacks over 2 ms on the web loop: {len(slow):,}, {sum(s[1] for s in slow) * 1000:.0f} ms in all"
    )
    for what, took in sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:8]:
        print(f"  {len(took):>5} x, {sum(took) * 1000:>7.0f} ms, max {max(took) * 1000:6.1f}  {what}")
    batches = [b for b in trace.get("batches", []) if b[0] >= since]
    if batches:
        sizes = [float(b[1]) for b in batches]
        took = [b[2] for b in batches]
        print(
            f"group commit: {len(batches):,} transactions for {sum(sizes):,.0f} records (mean {statistics.fmean(sizes):.1f}, "
            f"max {max(sizes):.0f} a transaction); a transaction p50 {ms(took, 0.5):.2f}  p99 {ms(took, 0.99):.2f}  "
            f"max {ms(took, 1.0):.2f} ms"
        )
    for stage, took in sorted(trace.get("elsewhere", {}).items()):
        print(
            f"  on another thread, {stage}: {len(took):,} x, p50 {ms(took, 0.5):.2f}  p99 {ms(took, 0.99):.2f}  max {ms(took, 1.0):.2f} ms"
        )
    collections = [c for c in trace["gc"] if c[0] >= since]
    for generation in (0, 1, 2):
        took = [c[2] for c in collections if c[1] == generation]
        if took:
            print(
                f"gc generation {generation}: {len(took)} collections, max {max(took) * 1000:.2f} ms, {sum(took) * 1000:.1f} ms in all"
            )


if __name__ == "__main__":
    sys.exit(main())
