"""Issue 10's fault campaign: kill -9 of intake workers through a load, and an embedded-broker restart.

- ``kill_campaign``: one `serve` (intake, relay, projector) and ``workers - 1`` intake-only `serve`
  processes on one SQLite ledger and an external broker (the embedded Tansu as a process of its
  own, or the Kafka cluster, so a killed worker does not take the broker with it). ``kills`` times,
  at evenly spread points of the load's progress, the next worker in turn is killed with SIGKILL
  and started again at once; the counts must come out exact.
- ``embedded_restart``: `serve` with its own embedded broker is killed a third of the way through
  a load; its in-memory topics die with it. A new `serve` starts a new broker, and the relay
  re-publishes the ledger. What the old broker had acknowledged but the intake had not applied is
  gone: counted as **vanished**, the embedded broker's known limit (docs/streams.md), and then sent
  again, as a department does for submissions without an outcome; after that nothing may be lost.
"""

from __future__ import annotations

import time
from pathlib import Path

from contract import topics
from tests.faults import harness
from tests.faults.harness import Follower, LedgerCheck, Publisher
from tests.faults.scenarios import Report, Run, finish
from tests.integration.serving import Served, wait_for

INTAKE_ONLY = ("--no-relay", "--no-project")


def kill_campaign(
    bootstrap: str, work: Path, *, submissions: int, kills: int, workers: int = 3, rate: float | None = None
) -> Report:
    data = work / "data"
    pool = [
        Served(data, bootstrap=bootstrap, extra_args=() if i == 0 else INTAKE_ONLY, env=harness.WORKER_ENV)
        for i in range(workers)
    ]
    try:
        for served in pool:
            served.start(60)
    except BaseException:
        for served in pool:
            if served.process is not None:
                served.kill()
        raise

    def describe() -> str:
        return "\n".join(s.describe() for s in pool)

    load = harness.load(submissions, subjects=max(100, submissions // 10), seed=43, prefix="kc")
    run = Run(bootstrap, load, rate)
    restarts: list[float] = []
    try:
        for k in range(kills):
            run.until_decided((k + 1) / (kills + 1), describe)
            victim = k % workers
            pool[victim].kill()
            began = time.monotonic()
            pool[victim] = Served(
                data, bootstrap=bootstrap, extra_args=pool[victim].extra_args, env=harness.WORKER_ENV
            ).start(60)
            restarts.append(time.monotonic() - began)
        decided = run.until_acknowledged_decided(describe)
        report = Report(f"{kills} kill -9 of {workers} intake workers", run.counts(), LedgerCheck())
        report.seconds = {"load decided": decided, "slowest worker restart": max(restarts, default=0.0)}
        report.facts.append(
            f"victims in turn: serve (with relay and projector), then {workers - 1} intake-only"
        )
        return finish(report, bootstrap, data)
    finally:
        run.close()
        for served in pool:
            if served.process is not None and served.process.poll() is None:
                served.stop()


def embedded_restart(work: Path, *, submissions: int, rate: float) -> Report:
    data = work / "data"
    first = Served(data, env=harness.WORKER_ENV).start(60)  # no bootstrap: serve runs its own embedded broker
    load = harness.load(submissions, subjects=max(100, submissions // 10), seed=47, prefix="er")
    run = Run(first.bootstrap or "", load, rate)
    try:
        run.until_decided(1 / 3, first.describe)
    except BaseException:
        first.kill()
        run.close()
        raise
    first.kill()  # the broker is its child: it dies too, and every topic with it
    killed = time.monotonic()
    acknowledged = set(run.publisher.stop().acked)
    run.close()
    again = Served(data, env=harness.WORKER_ENV).start(60)
    try:
        bootstrap = again.bootstrap or ""
        outcomes = Follower(bootstrap, topics.OUTCOMES)
        try:
            head = harness.last_outcome_position(data)
            wait_for(lambda: len(harness.by_position(outcomes.records())[0]) >= head, 120, again.describe)
            republished = time.monotonic() - killed
            firsts = harness.first_outcomes(outcomes.records(), run.ids)
            vanished = sum(1 for i in acknowledged if not firsts[i])
            undecided = [s for s in load if not firsts[str(s["submission_id"])]]
            resend = Publisher(bootstrap, undecided).start_and_finish()

            def decided() -> bool:
                now = harness.first_outcomes(outcomes.records(), run.ids)
                return all(now[i] for i in run.ids)

            wait_for(decided, 300, again.describe)
            counts = harness.count(
                run.ids, acknowledged | resend.acked, outcomes.records(), None, vanished=vanished
            )
        finally:
            outcomes.close()
        report = Report("embedded broker restart", counts, LedgerCheck())
        report.seconds = {"outcomes re-published after the kill": republished}
        report.facts.append(
            f"{len(acknowledged):,} acknowledged before the kill; {vanished} of them vanished with the broker's "
            f"memory (acknowledged, not applied); {len(undecided):,} without an outcome sent again"
        )
        return finish(report, bootstrap, data)
    finally:
        again.stop()
