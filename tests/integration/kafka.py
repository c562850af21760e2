"""A real Apache Kafka cluster for the integration suite: started once a session, emptied per test.

The cluster is scripts/kafka_cluster.py's: 3 KRaft nodes on loopback, each broker and controller,
the jars from Maven Central (cached). Three settings differ from a production cluster, on purpose:

- ``group.min.session.timeout.ms`` is 1 s instead of Kafka's 6 s, so the suite's processes use the
  same 2 s session timeout on both brokers (``serving.SESSION_TIMEOUT``). A member killed with
  SIGKILL keeps its partitions for a session timeout; at 6 s every takeover and every group
  deletion between tests would wait 4 s longer, about a minute over the suite. The value is a
  broker setting: production clusters keep their minimum (docker/compose.yaml uses 10 s).
- ``broker.session.timeout.ms`` is 4 s instead of 9 s (heartbeats every 1 s instead of 2 s): a
  node killed with SIGKILL is fenced by the controllers, and its partitions get new leaders, that
  much sooner. Measured in the broker kill: every outcome stopped for 10 s after the kill, then
  flowed again. Four heartbeats a session, as Kafka's defaults have, on loopback.
- Nodes are killed, not stopped, at the end of the session: the data is thrown away anyway, and a
  controlled shutdown of all three nodes takes about 8 s.

Everything else is as a deployment has it: replication factor 3 and ``min.insync.replicas=2`` on
every topic (``CREDIT_REPLICATION_FACTOR=3``), producers with ``acks=all`` and idempotence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from scripts.kafka_cluster import Cluster, ClusterError

CLUSTER_START_TIMEOUT = 180.0
RESET_TIMEOUT = 30.0
REPLICATION_FACTOR = 3
TEST_SETTINGS = {
    "group.min.session.timeout.ms": 1000,
    "broker.session.timeout.ms": 4000,
    "broker.heartbeat.interval.ms": 1000,
}
"""Broker settings of the test cluster that differ from Kafka's defaults (see the module docstring)."""


@dataclass(frozen=True)
class BrokerUnderTest:
    """The broker a test runs against: ``embedded`` (a Tansu of its own) or ``kafka`` (the cluster)."""

    kind: str
    bootstrap: str
    replication_factor: int
    cluster: Cluster | None = None

    @property
    def is_kafka(self) -> bool:
        return self.kind == "kafka"


def start_cluster(directory: Path, nodes: int = 3) -> Cluster:
    """Three KRaft nodes on loopback, ready to serve; they die with this process if it dies."""
    cluster = Cluster.create(directory, nodes, overrides=TEST_SETTINGS, die_with_parent=True)
    try:
        cluster.start(CLUSTER_START_TIMEOUT)
    except ClusterError:
        cluster.stop(graceful=False)
        raise
    return cluster


def ensure_whole(cluster: Cluster) -> None:
    """Every node running (a fault test restarts what it killed; this makes sure of it)."""
    for node in cluster.nodes:
        if not cluster.running(node):
            cluster.restart(node)


def reset(bootstrap: str, timeout: float = RESET_TIMEOUT) -> None:
    """Delete every topic and consumer group the previous test made, so the next starts empty.

    The contract's topic and group names are fixed, so tests on one cluster must not share them.
    A group is deletable only once empty: a worker killed with SIGKILL stays a member until its
    session times out, so deletion is retried until the deadline. Measured: deleting the topics
    takes about 0.1 s on KRaft.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-reset")
    try:
        deadline = time.monotonic() + timeout
        topics = [t for t in admin.list_topics() if not t.startswith("__")]
        if topics:
            admin.delete_topics(topics)
        _until(lambda: not set(admin.list_topics()) & set(topics), deadline, f"topics {topics} deleted")
        _until(lambda: _delete_groups(admin), deadline, "consumer groups deleted")
    finally:
        admin.close()


def _delete_groups(admin: KafkaAdminClient) -> bool:
    groups = [g["group_id"] for g in admin.list_groups()]
    if not groups:
        return True
    try:
        answers = admin.delete_groups(groups)
    except KafkaError:
        return False
    return all(answer in ("OK", "GroupIdNotFoundError") for answer in _values(answers))


def _values(answers: object) -> Iterable[object]:
    return answers.values() if isinstance(answers, dict) else [answers]


def _until(done: Callable[[], bool], deadline: float, what: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"the Kafka cluster was not reset in time: {what}")
        time.sleep(0.1)
