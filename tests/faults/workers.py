"""The processes under fault: `serve` workers sharing one ledger, and what the brokers say about them.

Group membership is read from the group coordinator (DescribeGroups), not from the workers, so a
takeover is timed from the cluster's point of view: when the killed member's partitions (or the
relay's lease, partition 0 of credit.submissions in ``credit-ledger.relay``) are assigned to a
live member again. The relay's lease consumer names itself ``credit-ledger.relay-<host>-<pid>``,
which maps the lease to a process; the scheduler's leader is the worker whose /v1/health says
``scheduler.leader``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from contract import topics
from tests.faults.harness import WORKER_ENV
from tests.integration.serving import Served

INTAKE_GROUP = "credit-ledger.intake"
RELAY_GROUP = "credit-ledger.relay"
OFFSETS_PARTITIONS = 50  # Kafka's offsets.topic.num.partitions (not changed by the test cluster)


class Workers:
    """``count`` `serve` processes (HTTP, relay and projector each) on one ledger database.

    They share one data dir, as `serve --workers N` on one host does: one checkpoint log (so
    `verify` checks one chain), logs side by side (``serve-<ns>.log`` each; the children's logs
    interleave). With ``database_url`` the ledger and the read models are on PostgreSQL.
    """

    def __init__(
        self,
        data_dir: Path,
        bootstrap: str,
        count: int,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        http: bool = True,
    ) -> None:
        self.data_dir, self.bootstrap = data_dir, bootstrap
        self.env = {
            **WORKER_ENV,  # one master key for every worker: they share the ledger's data keys
            **(env or {}),
            **({"CREDIT_DATABASE_URL": database_url} if database_url else {}),
        }
        self.extra_args, self.http = extra_args, http
        self.served: list[Served] = [self._new() for _ in range(count)]

    def _new(self) -> Served:
        return Served(
            self.data_dir, bootstrap=self.bootstrap, http=self.http, extra_args=self.extra_args, env=self.env
        )

    def start(self, timeout: float = 60.0) -> Workers:
        """Start every worker; if one cannot start, stop those that did (no process outlives a
        failed test) and fail with its log.

        The first starts alone: it creates the topics and the database's tables, which the others
        then find. The others start side by side, as a deployment's workers do (measured: three
        one after another took 35 s on the loaded 2-core machine, about 10 s each)."""
        first, *others = self.served
        try:
            first.start(timeout)
            for served in others:
                served.launch()
            for served in others:
                served.ready(timeout)
        except BaseException:
            for served in self.served:
                if served.process is not None and served.process.poll() is None:
                    served.kill()
            raise
        return self

    def kill(self, index: int) -> float:
        """kill -9 one worker (its relay and projector die with it); returns when, monotonic."""
        self.served[index].kill()
        return time.monotonic()

    def restart(self, index: int, timeout: float = 60.0) -> None:
        self.served[index] = self._new().start(timeout)

    def alive(self) -> list[int]:
        return [i for i, s in enumerate(self.served) if s.process is not None and s.process.poll() is None]

    def stop(self) -> list[int]:
        """Stop every live worker (SIGTERM); their exit codes."""
        return [self.served[i].stop() for i in self.alive()]

    def describe(self) -> str:
        return "\n".join(s.describe() for s in self.served)

    def health(self, index: int) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.served[index].http_port}/v1/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                document: dict[str, Any] = json.loads(response.read())
                return document
        except urllib.error.HTTPError as error:  # 503 still carries the document
            answer: dict[str, Any] = json.loads(error.read())
            return answer
        except OSError:
            return None

    def scheduler(self, index: int) -> dict[str, Any]:
        """The worker's scheduler as /v1/health shows it ({} while it does not answer in full)."""
        view: dict[str, Any] = (self.health(index) or {}).get("scheduler") or {}
        return view

    def scheduler_leader(self, among: list[int] | None = None) -> int | None:
        """The worker whose scheduler leads now (None while no answering worker says so)."""
        for i in among if among is not None else self.alive():
            if self.scheduler(i).get("leader"):
                return i
        return None

    def owner_of(self, pid: int) -> int | None:
        """The worker whose child process ``pid`` is (the relay and projector are serve's children)."""
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return None
        for i, served in enumerate(self.served):
            if served.process is not None and served.process.pid in (pid, parent):
                return i
        return None


def members(bootstrap: str, group: str) -> list[dict[str, Any]]:
    """The group's members as its coordinator describes them: client id and assigned partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fault-probe", request_timeout_ms=5000)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    found = []
    for member in described.get("members") or []:
        assignment = member.get("member_assignment") or {}
        held = [(a["topic"], p) for a in assignment.get("assigned_partitions", []) for p in a["partitions"]]
        found.append({"client_id": member["client_id"], "member_id": member["member_id"], "partitions": held})
    return found


def intake_spread(bootstrap: str, partitions: int = topics.DEFAULT_PARTITIONS) -> list[int] | None:
    """How many partitions of credit.submissions each intake member holds, when every partition is
    held exactly once (None while the group is rebalancing or a partition is unassigned)."""
    found = members(bootstrap, INTAKE_GROUP)
    held = [p for m in found for topic, p in m["partitions"] if topic == topics.SUBMISSIONS]
    if sorted(held) != list(range(partitions)):
        return None
    return sorted(len(m["partitions"]) for m in found)


def relay_holder(bootstrap: str) -> int | None:
    """The pid of the relay holding the lease (partition 0 of credit.submissions in the relay's group)."""
    for member in members(bootstrap, RELAY_GROUP):
        if (topics.SUBMISSIONS, 0) in member["partitions"]:
            return int(member["client_id"].rsplit("-", 1)[1])
    return None


def coordinator_node(bootstrap: str, group: str) -> int:
    """The node coordinating ``group``: the leader of its partition of __consumer_offsets."""
    code = 0
    for char in group:  # Java's String.hashCode, as Kafka's GroupCoordinator partitions groups
        code = (31 * code + ord(char)) & 0xFFFFFFFF
    partition = (code & 0x7FFFFFFF) % OFFSETS_PARTITIONS
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fault-probe", request_timeout_ms=5000)
    try:
        (offsets,) = admin.describe_topics(["__consumer_offsets"])
    finally:
        admin.close()
    (leader,) = [p["leader_id"] for p in offsets["partitions"] if p["partition_index"] == partition]
    return int(leader)


def timed(
    probe: Callable[[], Any], since: float, timeout: float, describe: Callable[[], str], *, every: float = 0.1
) -> tuple[Any, float]:
    """Poll ``probe`` every ``every`` seconds until truthy, failing with ``describe()`` at the
    deadline; its answer and the seconds since ``since`` (to ``every``'s resolution)."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s. {describe()}")
        time.sleep(every)
    return answer, time.monotonic() - since
