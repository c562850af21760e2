"""A real Apache Kafka cluster for the integration suite: started once a session, emptied per test."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from scripts.kafka_cluster import Cluster, ClusterError

CLUSTER_START_TIMEOUT = 120.0
RESET_TIMEOUT = 30.0


def start_cluster(directory: object, nodes: int = 3) -> Cluster:
    """Three KRaft nodes on loopback (scripts/kafka_cluster.py), ready to serve."""
    from pathlib import Path  # noqa: PLC0415

    cluster = Cluster.create(Path(str(directory)), nodes)
    try:
        cluster.start(CLUSTER_START_TIMEOUT)
    except ClusterError:
        cluster.stop()
        raise
    return cluster


def reset(bootstrap: str, timeout: float = RESET_TIMEOUT) -> None:
    """Delete every topic and consumer group the previous test made, so the next starts empty.

    The contract's topic and group names are fixed, so tests on one cluster must not share them.
    A group is deletable only once empty: a worker killed with SIGKILL stays a member until its
    session times out, so deletion is retried until the deadline.
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
    return all(answer == "OK" for answer in _values(answers))


def _values(answers: object) -> Iterable[object]:
    return answers.values() if isinstance(answers, dict) else [answers]


def _until(done: object, deadline: float, what: str) -> None:
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"the Kafka cluster was not reset in time: {what}")
        time.sleep(0.1)
