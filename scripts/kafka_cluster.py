"""A real Apache Kafka cluster on loopback: 3 KRaft nodes from Maven Central, for tests and for people.

    scripts/kafka start [--dir DIR] [--nodes 3]   # prints the bootstrap address to export
    scripts/kafka status [--dir DIR]
    scripts/kafka stop [--dir DIR]

The broker jars are fetched once with Maven (``mvn dependency:copy-dependencies`` over
scripts/kafka-broker/pom.xml) into a cache outside the work tree (``CREDIT_KAFKA_CACHE``, default
``~/.cache/credit-ledger/kafka-<version>``) and reused. Each node is broker and controller at
once (combined KRaft mode, a static quorum of all nodes), with its own ports, log directory and
heap. Standard library only, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka-broker" / "pom.xml"
LOG4J = HERE / "kafka-broker" / "log4j2.properties"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]
DEFAULT_DIR = Path(os.environ.get("CREDIT_KAFKA_DIR", "/tmp/credit-ledger-kafka"))
STATE = "cluster.json"
HEAP = os.environ.get("CREDIT_KAFKA_HEAP", "384m")


class ClusterError(RuntimeError):
    """The cluster cannot be fetched, started or reached; the message says why and what to check."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "credit-ledger" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("CREDIT_KAFKA_CACHE", default))


def fetch(quiet: bool = True) -> Path:
    """The directory of the broker's jars, fetched with Maven the first time (from Maven Central)."""
    libs = cache_dir() / "libs"
    done = cache_dir() / "complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ClusterError("mvn is not on PATH: Maven fetches the Kafka broker from Maven Central")
    if libs.exists():
        shutil.rmtree(libs)  # a fetch that stopped half-way
    command = [
        "mvn", "-B", *(["-q"] if quiet else []), "-f", str(POM),
        "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"fetching Kafka {KAFKA_VERSION} with Maven failed:\n{result.stdout[-3000:]}")
    done.write_text(KAFKA_VERSION)
    return libs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """The cluster in ``directory``: its nodes, their ports and processes (saved in cluster.json)."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = ""

    # -- state ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        path = directory / STATE
        if not path.exists():
            raise ClusterError(f"no cluster in {directory} (start one with: scripts/kafka start)")
        raw = json.loads(path.read_text())
        return cls(directory, [Node(**n) for n in raw["nodes"]], raw["cluster_id"])

    def save(self) -> None:
        data = {"cluster_id": self.cluster_id, "nodes": [asdict(n) for n in self.nodes]}
        (self.directory / STATE).write_text(json.dumps(data, indent=2))

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def node_dir(self, node: Node) -> Path:
        return self.directory / f"node-{node.node_id}"

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, nodes: int = 3) -> Cluster:
        """A new cluster's configuration and formatted storage (nothing started yet)."""
        if (directory / STATE).exists():
            raise ClusterError(f"{directory} already holds a cluster: stop it first (scripts/kafka stop)")
        directory.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cluster = cls(directory, [Node(i, free_port(), free_port()) for i in range(1, nodes + 1)], cluster_id)
        libs = fetch()
        for node in cluster.nodes:
            home = cluster.node_dir(node)
            home.mkdir(parents=True, exist_ok=True)
            (home / "server.properties").write_text(cluster.properties(node))
            result = subprocess.run(
                [*cluster.java(libs, node), "kafka.tools.StorageTool", "format", "-t", cluster_id,
                 "-c", str(home / "server.properties"), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise ClusterError(f"formatting node {node.node_id} failed: {result.stdout}{result.stderr}")
        cluster.save()
        return cluster

    def properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = min(3, len(self.nodes))
        settings = {
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
            "auto.create.topics.enable": "false",  # the ledger creates its topics with their settings
            "group.initial.rebalance.delay.ms": 0,  # tests and one-machine runs: join groups at once
            "num.partitions": 6,
            "log.segment.bytes": 64 * 1024 * 1024,  # small segments: a test cluster's disk stays small
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def java(self, libs: Path, node: Node) -> list[str]:
        return [
            "java", f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
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

    def kill(self, node: Node) -> None:
        """kill -9 one node, as a crash would."""
        if node.pid is not None and self.running(node):
            os.kill(node.pid, signal.SIGKILL)
            _wait_gone(node.pid, 10)

    def restart(self, node: Node, timeout: float = 120.0) -> None:
        self.kill(node)
        self.start_node(node)
        self.wait_ready(timeout, [node])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node cleanly (SIGTERM, then SIGKILL after ``timeout``) and forget the cluster."""
        for node in self.nodes:
            if node.pid is not None and self.running(node):
                os.kill(node.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.pid is not None and not _wait_gone(node.pid, timeout):
                os.kill(node.pid, signal.SIGKILL)
                _wait_gone(node.pid, 10)
        (self.directory / STATE).unlink(missing_ok=True)


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
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            print(fetch(quiet=False))
        elif args.action == "start":
            exists = (args.dir / STATE).exists()
            cluster = Cluster.load(args.dir) if exists else Cluster.create(args.dir, args.nodes)
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
