"""The fault scenarios, each a function of its sizes: the tests run them small, bench/faults.py full.

Each starts the processes it needs, runs a load, injects its fault, waits (with deadlines) until
every acknowledged submission has its outcome, and returns a ``Report``: the exact counts
(harness.Counts), the check of credit.ledger against the store, the measured times, and, where the
ledger is left whole, `verify`'s summary and a rebuild that equals the live views. The caller
asserts; nothing here decides a scenario passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract import topics
from scripts.kafka_cluster import Cluster
from tests.faults import harness
from tests.faults.harness import Counts, Follower, LedgerCheck, Publisher
from tests.faults.workers import Workers, coordinator_node, intake_spread, relay_holder, timed
from tests.integration.serving import SESSION_TIMEOUT, Served, wait_for

SESSION = float(SESSION_TIMEOUT)
OUTCOMES_TIMEOUT = 600.0
WORKER_BATCH = {"CREDIT_BATCH_SIZE": "200"}
"""The three-worker scenarios' intake batch (serve's default is 1000). Three workers on one
PostgreSQL on two shared cores apply about 30 submissions a second each, so a 1000-record batch
stays on a worker's ledger thread for half a minute. Measured in the lease test's log at 1000: a
survivor's intake committed the batch it held when the rebalance began 35 s later, and only then
did its groups settle; the scheduler's leader moved 36.7 s after the kill. At 200 it moved 2.7 s
after. (Why a survivor's Faust group waits for the intake's batch is inferred, not traced.) The
faults and the counts are the same: every kill still lands on batches fetched and not committed."""


@dataclass
class Report:
    name: str
    counts: Counts
    ledger: LedgerCheck
    seconds: dict[str, float] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)
    verify: str = ""
    rebuild: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())
        ledger = (
            f"credit.ledger: {self.ledger.published:,} positions of {self.ledger.stored:,} stored, "
            f"re-sent {self.ledger.resent}, problems {len(self.ledger.problems)} {self.ledger.problems[:3]}"
        )
        rebuilt = f"rebuild: {self.rebuild.get('events', '-')} events, differences {self.rebuild.get('differences', '-')}"
        return [
            f"== {self.name}",
            self.counts.line(),
            ledger,
            f"times: {timings}",
            f"verify: {self.verify}",
            rebuilt,
            *self.facts,
        ]


class Run:
    """One load through the platform, followed on credit.outcomes (and credit.ledger at the end)."""

    def __init__(self, bootstrap: str, submissions: list[dict[str, Any]], rate: float | None) -> None:
        self.bootstrap = bootstrap
        self.submissions = submissions
        self.ids = {str(s["submission_id"]) for s in submissions}
        self.outcomes = Follower(bootstrap, topics.OUTCOMES)
        self.publisher = Publisher(bootstrap, submissions, rate=rate)
        self.firsts = harness.FirstOutcomes(self.ids)
        # credit.submissions, for ``counts``' copies: read along with the outcomes, by a follower
        # that, like theirs, exists before any fault (one created with a node down failed, seen:
        # its first metadata request met the dead node). Reading 50,000 copies after the load
        # took 6-14 s of the broker kill on the loaded machine.
        self.received = Follower(bootstrap, topics.SUBMISSIONS, decode=harness.submission_id)
        self.began = time.monotonic()
        self.publisher.start()

    def decided(self) -> int:
        self.publisher.check()  # a load that died mid-way fails the wait now, with its error
        return len(self.firsts.follow(self.outcomes))

    def until_decided(
        self, share: float, describe: Callable[[], str], timeout: float = OUTCOMES_TIMEOUT
    ) -> None:
        want = int(len(self.ids) * share)
        wait_for(
            lambda: self.decided() >= want,
            timeout,
            lambda: f"{self.decided()} of {want} decided. {describe()}",
        )

    def until_acknowledged_decided(
        self, describe: Callable[[], str], timeout: float = OUTCOMES_TIMEOUT
    ) -> float:
        """Once the load is sent: until every acknowledged submission has a first outcome; the seconds."""
        self.publisher.finish()
        acked = self.publisher.acked
        pending = set(acked)

        def done() -> bool:
            firsts = self.firsts.follow(self.outcomes)
            pending.difference_update([i for i in pending if firsts[i]])
            return not pending

        wait_for(done, timeout, lambda: f"{self.decided()} of {len(acked)} decided. {describe()}")
        return time.monotonic() - self.began

    def counts(self, received: bool = True, **extra: int) -> Counts:
        """The load's counts; ``received``: read credit.submissions to its end for the copies."""
        copies = None
        if received:
            distinct, _ = harness.by_position(self.outcomes.records())
            ours = sum(1 for o in distinct.values() if o["submission_id"] in self.ids)
            submissions = self.received
            # every copy gets its outcome: at least as many copies as outcomes, then quiet
            wait_for(lambda: submissions.settled(ours), 120, lambda: f"copies of {ours} outcomes")
            copies = harness.received_copies(submissions.records())
        refused = len(set(self.publisher.refused) - self.publisher.acked)
        return harness.count(
            self.ids, self.publisher.acked, self.outcomes.records(), copies, refused=refused, **extra
        )

    def resent(self) -> int:
        return harness.by_position(self.outcomes.records())[1]

    def close(self) -> None:
        self.outcomes.close()
        self.received.close()


def found(index: int | None) -> tuple[int] | None:
    """A probe's answer that is truthy for worker 0 too."""
    return None if index is None else (index,)


def ledger_check(bootstrap: str, data_dir: Path, database_url: str | None = None) -> LedgerCheck:
    """credit.ledger against the store, once the two agree on which positions exist (or the deadline).

    The scheduler may file events while the topic is read, so the store is read before and after
    the topic: the check runs on a topic read bracketed by two equal reads of the store. Reading
    the store takes seconds at 60,000 events, so between two reads only the topic is polled (its
    new records each time) until it holds every position the last read found."""
    ledger = Follower(bootstrap, topics.LEDGER)
    try:
        deadline = time.monotonic() + 120
        seen: set[int] = set()
        read = 0

        def holds(positions: set[int]) -> bool:
            nonlocal read
            new = ledger.records(read)
            read += len(new)
            seen.update(m["position"] for _, _, m in new)
            return positions <= seen

        def until_published(positions: set[int]) -> None:
            left = max(0.0, deadline - time.monotonic())
            wait_for(
                lambda: holds(positions),
                left,
                lambda: f"credit.ledger lacks {len(positions - seen)} stored positions",
            )

        stored = harness.stored_events(data_dir, database_url)
        while True:
            until_published(set(stored))
            published = ledger.records()
            again = harness.stored_events(data_dir, database_url)
            if again == stored:
                return harness.check_ledger_topic(published, stored)
            if time.monotonic() > deadline:
                raise AssertionError("the store kept changing: credit.ledger never caught up with it")
            stored = again
    finally:
        ledger.close()


def finish(report: Report, bootstrap: str, data_dir: Path, database_url: str | None = None) -> Report:
    report.ledger = ledger_check(bootstrap, data_dir, database_url)
    report.verify, report.rebuild = harness.verify_and_rebuild(data_dir, bootstrap, database_url=database_url)
    return report


def broker_kill(cluster: Cluster, work: Path, *, submissions: int, rate: float) -> Report:
    """kill -9 the broker coordinating the intake's group a third of the way through a load, and
    start it again once the load is decided (a node of a 3-node cluster: RF 3, min ISR 2)."""
    served = Served(work / "data", bootstrap=cluster.bootstrap, env=harness.WORKER_ENV).launch()
    try:  # the load is generated while serve starts (50,000 submissions: about 10 s of CPU each)
        load = harness.load(submissions, subjects=max(100, submissions // 10), seed=31, prefix="bk")
        served.ready(60)
    except BaseException:
        served.kill()
        raise
    run = Run(cluster.bootstrap, load, rate)
    try:
        run.until_decided(1 / 3, served.describe)
        victim = coordinator_node(cluster.bootstrap, "credit-ledger.intake")
        (node,) = [n for n in cluster.nodes if n.node_id == victim]
        killed = time.monotonic()
        cluster.kill(node)
        decided = run.until_acknowledged_decided(served.describe)
        since_kill = time.monotonic() - killed
        # Started again before the checks: a client created while a node of its bootstrap list is
        # down can fail at its first metadata request (seen with kafka-python), and the checks
        # start new ones (the ledger's follower, verify, the rebuild).
        cluster.restart(node)
        report = Report("kill -9 one broker", run.counts(), LedgerCheck())
        report.seconds = {"load decided": decided, "decided after the kill": since_kill}
        report.facts.append(
            f"killed node {victim} (the intake group's coordinator); restarted after the load"
        )
        return finish(report, cluster.bootstrap, served.data_dir)
    finally:
        run.close()
        served.stop()


def worker_kill(cluster: Cluster, database_url: str, work: Path, *, submissions: int, rate: float) -> Report:
    """Three workers on one PostgreSQL; kill -9 one mid-load: its partitions move to the others;
    start it again: it holds partitions again."""
    bootstrap = cluster.bootstrap
    workers = Workers(work / "data", bootstrap, 3, database_url=database_url, env=WORKER_BATCH).start()
    try:
        wait_for(lambda: (spread := intake_spread(bootstrap)) and len(spread) == 3, 60, workers.describe)
        run = Run(
            bootstrap,
            harness.load(submissions, subjects=max(100, submissions // 10), seed=37, prefix="wk"),
            rate,
        )
        try:
            run.until_decided(1 / 3, workers.describe)
            killed = workers.kill(1)
            spread, moved = timed(
                lambda: (s := intake_spread(bootstrap)) and len(s) == 2 and s, killed, 60, workers.describe
            )
            restarted = time.monotonic()
            workers.restart(1)
            _, rejoined = timed(
                lambda: (s := intake_spread(bootstrap)) and len(s) == 3 and min(s) > 0,
                restarted,
                60,
                workers.describe,
            )
            decided = run.until_acknowledged_decided(workers.describe)
            report = Report("kill -9 one of three workers", run.counts(), LedgerCheck())
            report.seconds = {
                "partitions moved": moved,
                "rejoined after restart": rejoined,
                "load decided": decided,
            }
            report.facts.append(f"after the kill the 6 partitions were held {spread} by the 2 survivors")
            return finish(report, bootstrap, workers.data_dir, database_url)
        finally:
            run.close()
    finally:
        workers.stop()


def lease_kill(cluster: Cluster, database_url: str, work: Path, *, submissions: int, rate: float) -> Report:
    """Three workers on one PostgreSQL; kill -9 the one whose relay holds the lease and the one whose
    scheduler leads (one worker or two): another relay publishes on, another scheduler runs."""
    bootstrap = cluster.bootstrap
    env = {"CREDIT_SCHEDULER_INTERVAL": "1", **WORKER_BATCH}
    workers = Workers(work / "data", bootstrap, 3, database_url=database_url, env=env).start()
    try:
        holder_pid = wait_for(lambda: relay_holder(bootstrap), 60, workers.describe)
        (leader,) = wait_for(lambda: found(workers.scheduler_leader()), 60, workers.describe)
        run = Run(
            bootstrap,
            harness.load(submissions, subjects=max(100, submissions // 10), seed=41, prefix="lk"),
            rate,
        )
        try:
            run.until_decided(1 / 3, workers.describe)
            holder_pid = relay_holder(bootstrap) or holder_pid
            holder = workers.owner_of(holder_pid)
            leader = now if (now := workers.scheduler_leader()) is not None else leader
            victims = sorted({i for i in (holder, leader) if i is not None})
            killed = time.monotonic()
            for victim in victims:
                workers.kill(victim)
            report_facts = [f"killed at {time.strftime('%H:%M:%S')}"]
            survivors = workers.alive()
            new_pid, relay_moved = timed(
                lambda: (p := relay_holder(bootstrap)) and workers.owner_of(p) in survivors and p,
                killed,
                60,
                workers.describe,
            )
            (new_leader,), scheduler_moved = timed(
                lambda: found(workers.scheduler_leader(survivors)), killed, 60, workers.describe, every=0.5
            )
            runs_before = workers.scheduler(new_leader).get("runs", 0)
            _, scheduler_ran = timed(
                lambda: (workers.health(new_leader) or {}).get("scheduler", {}).get("runs", 0) > runs_before,
                killed,
                60,
                workers.describe,
            )
            decided = run.until_acknowledged_decided(workers.describe)
            report = Report(
                "kill -9 the relay's lease holder and the scheduler's leader", run.counts(), LedgerCheck()
            )
            report.seconds = {
                "lease moved": relay_moved,
                "scheduler leader moved": scheduler_moved,
                "scheduler ran on the new leader": scheduler_ran,
                "load decided": decided,
            }
            report.facts += report_facts
            report.facts.append(
                f"killed worker(s) {victims} (relay holder {holder}, scheduler leader {leader}); "
                f"the lease went to worker {workers.owner_of(new_pid)}, the scheduler to worker {new_leader}"
            )
            return finish(report, bootstrap, workers.data_dir, database_url)
        finally:
            run.close()
    finally:
        workers.stop()
