"""A real Apache Kafka cluster on loopback: 3 KRaft nodes from Maven Central, for tests and for people.

    scripts/kafka start [--dir DIR] [--nodes 3]   # prints the bootstrap address to export
    scripts/kafka status [--dir DIR]
    scripts/kafka stop [--dir DIR]

The broker jars are fetched once with Maven (``mvn dependency:copy-dependencies`` over
scripts/kafka-broker/pom.xml) from Maven Central into a cache outside the work tree
(``CREDIT_KAFKA_CACHE``, default ``~/.cache/credit-ledger/kafka-<version>``) and reused. Maven's
own local repository for that fetch lives in the cache too and is removed afterwards, so an empty
cache means a fetch from Maven Central, whatever ``~/.m2`` holds. Each node is broker and
controller at once (combined KRaft mode, a static quorum of all nodes), with its own ports, log
directory and heap. The test suite starts its cluster through ``Cluster`` with a few settings of
its own (``overrides``; tests/integration/kafka.py). Standard library only, so it runs before any
virtualenv exists, and for that reason one file of just over 400 lines: ``scripts/kafka`` runs it
as a script, with no package around it to split it into.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka-broker" / "pom.xml"
LOG4J = HERE / "kafka-broker" / "log4j2.properties"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]
DEFAULT_DIR = Path(os.environ.get("CREDIT_KAFKA_DIR", "/tmp/credit-ledger-kafka"))
STATE = "cluster.json"
HEAP = os.environ.get("CREDIT_KAFKA_HEAP", "384m")
_PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    """The cluster cannot be fetched, started or reached; the message says why and what to check."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "credit-ledger" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("CREDIT_KAFKA_CACHE", default))


def fetch(quiet: bool = True) -> Path:
    """The directory of the broker's jars, fetched with Maven the first time (from Maven Central)."""
    cache = cache_dir()
    libs, done, repository = cache / "libs", cache / "complete", cache / "maven-repository"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ClusterError("mvn is not on PATH: Maven fetches the Kafka broker from Maven Central")
    for partial in (libs, repository):  # a fetch that stopped half-way
        shutil.rmtree(partial, ignore_errors=True)
    command = [
        "mvn", "-B", *(["-q"] if quiet else []), "-f", str(POM), f"-Dmaven.repo.local={repository}",
        "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]  # fmt: skip
    began = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"fetching Kafka {KAFKA_VERSION} with Maven failed:\n{result.stdout[-3000:]}")
    shutil.rmtree(repository, ignore_errors=True)  # the jars are in libs now: one copy is enough
    jars = len(list(libs.glob("*.jar")))
    done.write_text(f"{KAFKA_VERSION}: {jars} jars fetched in {time.monotonic() - began:.1f} s\n")
    return libs


_LISTEN_PORTS = range(20000, 32768)
"""Where the nodes listen: below Linux's ephemeral range (32768-60999). A port the kernel hands out
as free is free only until the JVM binds it, seconds later; an outgoing connection of any process
on the machine may take it in between (seen: "BindException: Address already in use" while other
test suites ran). Outgoing connections never take a port outside the ephemeral range."""


def free_port() -> int:
    """A port in ``_LISTEN_PORTS`` nothing listens on now."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(_LISTEN_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free port in {_LISTEN_PORTS.start}-{_LISTEN_PORTS.stop - 1} after 200 tries")


@dataclass
class Node:
    node_id: int
    port: int  # the broker listener clients use
    controller_port: int
    pid: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """The cluster in ``directory``: its nodes, their ports and processes (saved in cluster.json).

    ``overrides`` are broker settings on top of ``properties``' own (the test suite lowers
    ``group.min.session.timeout.ms``). ``die_with_parent`` makes every node die with the thread that
    started it (Linux), so a test run killed outright leaves no JVM behind; ``scripts/kafka start``
    leaves it off, as its cluster outlives the command.
    """

    directory: Path
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    die_with_parent: bool = False

    # -- state ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        path = directory / STATE
        if not path.exists():
            raise ClusterError(f"no cluster in {directory} (start one with: scripts/kafka start)")
        raw = json.loads(path.read_text())
        return cls(directory, [Node(**n) for n in raw["nodes"]], raw["cluster_id"], raw.get("overrides", {}))

    def save(self) -> None:
        data = {
            "cluster_id": self.cluster_id,
            "nodes": [asdict(n) for n in self.nodes],
            "overrides": self.overrides,
        }
        (self.directory / STATE).write_text(json.dumps(data, indent=2))

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def node_dir(self, node: Node) -> Path:
        return self.directory / f"node-{node.node_id}"

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        nodes: int = 3,
        *,
        overrides: dict[str, Any] | None = None,
        die_with_parent: bool = False,
    ) -> Cluster:
        """A new cluster's configuration and formatted storage (nothing started yet)."""
        if (directory / STATE).exists():
            raise ClusterError(f"{directory} already holds a cluster: stop it first (scripts/kafka stop)")
        directory.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        ports = [Node(i, free_port(), free_port()) for i in range(1, nodes + 1)]
        cluster = cls(directory, ports, cluster_id, dict(overrides or {}), die_with_parent)
        libs = fetch()
        formatting = []
        for node in cluster.nodes:  # one JVM each, side by side: about a second instead of three
            home = cluster.node_dir(node)
            home.mkdir(parents=True, exist_ok=True)
            (home / "server.properties").write_text(cluster.properties(node))
            command = [
                *cluster.java(libs, node, tool=True), "kafka.tools.StorageTool", "format",
                "-t", cluster_id, "-c", str(home / "server.properties"), "--ignore-formatted",
            ]  # fmt: skip
            formatting.append(
                (node, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            )
        for node, process in formatting:
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise ClusterError(
                    f"formatting node {node.node_id} failed: {output.decode(errors='replace')}"
                )
        cluster.save()
        return cluster

    def properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = min(3, len(self.nodes))
        settings: dict[str, Any] = {
            "node.id": node.node_id,
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": voters,
            "log.dirs": str(self.node_dir(node) / "data"),
            # The cluster's own topics are replicated like the ledger's: a dead node loses nothing.
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min(2, replicas),
            "default.replication.factor": replicas,
            "min.insync.replicas": min(2, replicas),
            "unclean.leader.election.enable": "false",  # Kafka's default, stated: the ledger relies on it
            "auto.create.topics.enable": "false",  # the ledger creates its topics with their settings
            "group.initial.rebalance.delay.ms": 0,  # tests and one-machine runs: join groups at once
            "num.partitions": 6,
            "log.segment.bytes": 64 * 1024 * 1024,  # small segments: a test cluster's disk stays small
            # Three nodes share two cores with the platform: fewer threads than Kafka's defaults
            # (3 network, 8 I/O, 10 background), ample for one machine's load.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            **self.overrides,
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def java(self, libs: Path, node: Node, *, tool: bool = False) -> list[str]:
        """The JVM's command line for a node, or for a short-lived tool (small heap, quick start)."""
        memory = ["-Xmx128m"] if tool else [f"-Xms{HEAP}", f"-Xmx{HEAP}"]
        # C1 only and the serial collector: less CPU on compiling and on collector threads, for a
        # loopback cluster whose load is small and whose three nodes share a few cores with the rest.
        return [
            "java", *memory, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={self.node_dir(node)}",
            "-cp", f"{libs}/*",
        ]  # fmt: skip

    def start_node(self, node: Node) -> None:
        home = self.node_dir(node)
        with open(home / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                [*self.java(fetch(), node), "kafka.Kafka", str(home / "server.properties")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal that started it does not stop it
                preexec_fn=_die_with_parent_hook() if self.die_with_parent else None,  # noqa: PLW1509 - resolved before the fork, see the hook
            )
        node.pid = process.pid
        self.save()

    def start(self, timeout: float = 120.0) -> str:
        for node in self.nodes:
            if not self.running(node):
                self.start_node(node)
        self.wait_ready(timeout)
        return self.bootstrap

    def running(self, node: Node) -> bool:
        if node.pid is None:
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitpid(node.pid, os.WNOHANG)  # a node that exited is our zombie until reaped
        try:
            os.kill(node.pid, 0)
        except ProcessLookupError:
            return False
        # A reused pid would not be a java process with this node's config on its command line.
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes()
            return str(self.node_dir(node)).encode() in cmdline
        return True

    def wait_ready(self, timeout: float, nodes: list[Node] | None = None) -> None:
        """Until every node logs that it started and accepts connections on its broker port."""
        deadline = time.monotonic() + timeout
        pending = list(nodes or self.nodes)
        while pending:
            node = pending[0]
            if not self.running(node):
                raise ClusterError(f"node {node.node_id} exited; its log:\n{self.log_tail(node)}")
            if self.started(node) and _accepts(node.port):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                why = f"node {node.node_id} not ready after {timeout:.0f} s:\n{self.log_tail(node)}"
                raise ClusterError(why)
            time.sleep(0.2)

    def started(self, node: Node) -> bool:
        log = self.node_dir(node) / "server.log"
        try:
            text = log.read_text(errors="replace")
        except FileNotFoundError:
            return False
        # The last start in the log must be followed by "started" (a restarted node appends).
        return text.rfind("Kafka Server started") > text.rfind("starting (kafka.server.KafkaRaftServer)")

    def log_tail(self, node: Node, lines: int = 30) -> str:
        text = ""
        for name in ("server.log", "stdout.log"):
            path = self.node_dir(node) / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def logs_tail(self, lines: int = 30) -> str:
        """Every node's log tail, for a failure message."""
        return "".join(f"--- node {n.node_id}:\n{self.log_tail(n, lines)}" for n in self.nodes)

    def kill(self, node: Node) -> None:
        """kill -9 one node, as a crash would."""
        if node.pid is not None and self.running(node):
            os.kill(node.pid, signal.SIGKILL)
            _wait_gone(node.pid, 10)

    def restart(self, node: Node, timeout: float = 120.0) -> None:
        """Start a node again (killing it first if it still runs), on its ports and its log dir."""
        self.kill(node)
        self.start_node(node)
        self.wait_ready(timeout, [node])

    def stop(self, timeout: float = 30.0, *, graceful: bool = True) -> None:
        """Stop every node and forget the cluster: SIGTERM (controlled shutdown), SIGKILL after
        ``timeout``; ``graceful=False`` kills at once (a throw-away test cluster, 8 s sooner)."""
        for node in self.nodes:
            if node.pid is not None and self.running(node):
                os.kill(node.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        for node in self.nodes:
            if node.pid is not None and not _wait_gone(node.pid, timeout if graceful else 10):
                os.kill(node.pid, signal.SIGKILL)
                _wait_gone(node.pid, 10)
        (self.directory / STATE).unlink(missing_ok=True)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the node when the thread that started it dies.

    ``prctl`` is looked up here, in the parent, so the child between fork and exec only calls a
    resolved C function (as streams/broker.py does for the embedded broker).
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return hook


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description=f"A {KAFKA_VERSION} Apache Kafka cluster (KRaft) on loopback, from Maven Central.",
        epilog="example: export CREDIT_KAFKA_BOOTSTRAP=$(scripts/kafka start)",
    )
    parser.add_argument("action", choices=["start", "stop", "status", "fetch"])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"where the nodes live (default {DEFAULT_DIR})"
    )
    parser.add_argument("--nodes", type=int, default=3, help="nodes, each broker and controller (default 3)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a broker setting for a new cluster, e.g. group.min.session.timeout.ms=1000 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set if "=" in item)
    if len(overrides) != len(args.set):
        parser.error("--set takes KEY=VALUE")
    try:
        if args.action == "fetch":
            libs = fetch(quiet=False)
            print(libs)
            print((libs.parent / "complete").read_text().strip(), file=sys.stderr)
        elif args.action == "start":
            exists = (args.dir / STATE).exists()
            cluster = (
                Cluster.load(args.dir)
                if exists
                else Cluster.create(args.dir, args.nodes, overrides=overrides)
            )
            print(cluster.start())
            print(f"kafka {KAFKA_VERSION}: {len(cluster.nodes)} nodes in {args.dir}; "
                  f"export CREDIT_KAFKA_BOOTSTRAP={cluster.bootstrap} CREDIT_REPLICATION_FACTOR=3",
                  file=sys.stderr)  # fmt: skip
        elif args.action == "status":
            cluster = Cluster.load(args.dir)
            for node in cluster.nodes:
                state = "running" if cluster.running(node) else "stopped"
                print(f"node {node.node_id}: {node.address} {state} (pid {node.pid})", file=sys.stderr)
            print(cluster.bootstrap)
            return 0 if all(cluster.running(n) for n in cluster.nodes) else 1
        else:
            Cluster.load(args.dir).stop()
            shutil.rmtree(args.dir, ignore_errors=True)
            print(f"stopped and removed {args.dir}", file=sys.stderr)
    except ClusterError as exc:
        print(f"scripts/kafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
