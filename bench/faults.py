"""Benchmark: the fault scenarios of tests/faults/ at full size, with their exact counts and times.

Run: python bench/faults.py [--only NAME ...] [--broker-kill 50000] [--campaign 100000 --kills 20]
Starts a 3-node Apache Kafka cluster (scripts/kafka_cluster.py, the test suite's settings: RF 3,
min.insync.replicas=2, a 1 s minimum session so the 2 s session of the tests applies) and, for
the worker and lease scenarios, a throw-away PostgreSQL; then runs, each on the emptied cluster:

- ``broker``: kill -9 of the intake group's coordinator node a third of the way through a load;
- ``worker``: three `serve` workers on PostgreSQL, kill -9 one mid-load, restart it;
- ``lease``: kill -9 the relay's lease holder and the scheduler's leader;
- ``campaign``: ``--kills`` kill -9 of intake workers (in turn) during a ``--campaign`` load, on the cluster;
- ``embedded``: `serve` with its embedded broker killed a third of the way through; what the broker
  alone held is counted as vanished and sent again by the harness, as a department's
  ``credit-ledger publish --until-outcome`` does.

Prints each scenario's report (tests/faults/scenarios.Report) and its wall time. The tests run the
same functions at CI sizes and assert the counts; this only prints them (docs/benchmarks.md).
"""

from __future__ import annotations

import _harness  # first: the import path (see bench/_harness.py)

# isort: split
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from scripts.kafka_cluster import Cluster
from tests.faults import campaign, scenarios
from tests.faults.scenarios import Report
from tests.integration.kafka import REPLICATION_FACTOR, ensure_whole, reset, start_cluster
from tests.integration.pg_server import PgServer, running_postgres

NAMES = ("broker", "worker", "lease", "campaign", "embedded")


def database(server: PgServer, name: str) -> str:
    created = server.create_database(name)
    return f"postgresql://{server.user}:{server.password}@{server.host}:{server.port}/{created}"


def main() -> int:
    parser = _harness.parser(__doc__)
    parser.add_argument("--only", nargs="*", choices=NAMES, default=list(NAMES))
    parser.add_argument("--broker-kill", type=int, default=50_000, help="submissions (default 50,000)")
    parser.add_argument("--workers-load", type=int, default=30_000, help="worker and lease scenarios' load")
    parser.add_argument("--campaign", type=int, default=100_000, help="the kill campaign's load")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--embedded", type=int, default=30_000, help="the embedded restart's load")
    args = parser.parse_args()
    print(_harness.machine())
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; scenarios: {' '.join(args.only)}")
    os.environ["CREDIT_REPLICATION_FACTOR"] = str(REPLICATION_FACTOR)  # inherited by every serve
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        work = Path(tmp)
        began = time.monotonic()
        cluster: Cluster = start_cluster(work / "kafka")
        stack.callback(cluster.stop, graceful=False)
        print(
            f"cluster of {len(cluster.nodes)} nodes up in {time.monotonic() - began:.1f} s: {cluster.bootstrap}"
        )
        postgres: PgServer | None = None
        if {"worker", "lease"} & set(args.only):
            postgres = stack.enter_context(running_postgres())

        def on_cluster(name: str) -> Path:
            ensure_whole(cluster)
            reset(cluster.bootstrap)
            return work / name

        runs: dict[str, Callable[[], Report]] = {
            "broker": lambda: scenarios.broker_kill(
                cluster, on_cluster("broker"), submissions=args.broker_kill, rate=4_000
            ),
            "worker": lambda: scenarios.worker_kill(
                cluster,
                database(postgres, "bench_worker"),  # type: ignore[arg-type]
                on_cluster("worker"),
                submissions=args.workers_load,
                rate=1_500,
            ),
            "lease": lambda: scenarios.lease_kill(
                cluster,
                database(postgres, "bench_lease"),  # type: ignore[arg-type]
                on_cluster("lease"),
                submissions=args.workers_load,
                rate=1_500,
            ),
            "campaign": lambda: campaign.kill_campaign(
                cluster.bootstrap, on_cluster("campaign"), submissions=args.campaign, kills=args.kills
            ),
            "embedded": lambda: campaign.embedded_restart(
                work / "embedded", submissions=args.embedded, rate=2_000
            ),
        }
        failed = 0
        for name in args.only:
            started = time.monotonic()
            report = runs[name]()
            print("\n".join(report.lines()))
            clean = (
                report.counts.clean and not report.ledger.problems and report.rebuild.get("differences") == 0
            )
            failed += not clean
            print(
                f"scenario wall time {time.monotonic() - started:.1f} s; {'clean' if clean else 'NOT CLEAN'}\n"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
