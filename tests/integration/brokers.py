"""Broker fixtures (a plugin of tests/conftest.py, so tests/integration and tests/faults share one cluster).

The embedded broker and a real 3-node Apache Kafka cluster, never skipped.

``fresh_broker`` (and ``broker_under_test``) is parametrised: every test that takes it runs twice,
with the ids ``embedded`` (a Tansu broker of the test's own, topics in memory) and ``kafka`` (the
session's Apache Kafka cluster, emptied before the test, topics replicated 3 times with
``min.insync.replicas=2``). Tests about the embedded broker itself take ``broker``/``bootstrap``
(the session's embedded broker) instead; tests about the ledger alone take no broker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.kafka_cluster import Cluster, ClusterError
from streams.broker import BrokerError, EmbeddedBroker
from tests.integration.kafka import REPLICATION_FACTOR, BrokerUnderTest, ensure_whole, reset, start_cluster

BROKER_START_TIMEOUT = 20.0
BROKERS = ["embedded", "kafka"]
CLUSTER_GROUP = "kafka-cluster"
ON_CLUSTER = re.compile(r"\[(?:[^\]]*-)?kafka(?:-[^\]]*)?\]$")
"""The test ids of tests on the session's cluster: ``real_kafka`` and ``broker_under_test`` give
every one of them the parameter id ``kafka``."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N`` (``./scripts/test``): every test on the session's Kafka cluster in one
    unit of work, so one process starts the cluster and runs them in turn (they share its fixed
    topic and group names; ``real_kafka`` empties it between them); every other test with the rest
    of its module (some modules check, last, what their earlier tests left). xdist's own
    ``--dist loadgroup`` cannot do it under pytest 9: its group suffix on the test id is not kept
    (measured: a group's tests ran in both processes, and both started a cluster)."""
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under xdist

    class ClusterInOneProcess(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if ON_CLUSTER.search(nodeid):
                return CLUSTER_GROUP
            scope: str = super()._split_scope(nodeid)
            return scope

    return ClusterInOneProcess(config, log)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's embedded broker, its log under pytest's temporary directory.

    A broker that cannot start fails the tests that need it, loudly, with its log tail:
    integration tests never skip for want of a broker (it installs from PyPI).
    """
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    embedded = EmbeddedBroker(log_path=log_path)
    try:
        embedded.start(timeout=BROKER_START_TIMEOUT)
    except BrokerError as exc:
        pytest.fail(f"The embedded Kafka broker must start for integration tests: {exc}")
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def bootstrap(broker: EmbeddedBroker) -> str:
    """The bootstrap address of the session's embedded broker (which must still be running)."""
    if not broker.is_running():
        pytest.fail(f"The session's embedded broker died; its log ends:\n{broker.log_tail()}")
    return broker.bootstrap


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's Apache Kafka cluster (3 KRaft nodes), started by the first test that needs it.

    Its jars come from Maven Central through scripts/kafka_cluster.py's fetch (cached in
    CREDIT_KAFKA_CACHE). A cluster that cannot be fetched or started fails the tests that need it,
    with every node's log tail: never a skip.
    """
    directory = tmp_path_factory.mktemp("kafka")
    try:
        cluster = start_cluster(directory)
    except ClusterError as exc:
        pytest.fail(f"The Apache Kafka cluster must start for the kafka integration tests: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop(graceful=False)


@pytest.fixture(params=["kafka"])
def real_kafka(kafka_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> BrokerUnderTest:
    """The session's cluster, every node up, emptied of the previous test's topics and groups.

    Every process the test starts inherits CREDIT_REPLICATION_FACTOR=3, so `serve` creates the
    topics replicated 3 times with min.insync.replicas=2, as a deployment does. Its one parameter
    gives its tests the id ``[kafka]``, as ``broker_under_test``'s do (``ON_CLUSTER``).
    """
    return emptied(kafka_cluster, monkeypatch)


def emptied(kafka_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> BrokerUnderTest:
    """``real_kafka``'s work: the cluster whole, emptied, and the replication factor set."""
    try:
        ensure_whole(kafka_cluster)
    except ClusterError as exc:
        pytest.fail(f"A node of the session's Kafka cluster cannot be restarted: {exc}")
    reset(kafka_cluster.bootstrap)
    monkeypatch.setenv("CREDIT_REPLICATION_FACTOR", str(REPLICATION_FACTOR))
    return BrokerUnderTest("kafka", kafka_cluster.bootstrap, REPLICATION_FACTOR, kafka_cluster)


@pytest.fixture(params=BROKERS)
def broker_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerUnderTest]:
    """The test's broker: a new embedded one, or the session's Kafka cluster emptied."""
    if request.param == "kafka":
        yield emptied(request.getfixturevalue("kafka_cluster"), request.getfixturevalue("monkeypatch"))
        return
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as embedded:
        yield BrokerUnderTest("embedded", embedded.bootstrap, 1)


@pytest.fixture
def fresh_broker(broker_under_test: BrokerUnderTest) -> str:
    """The bootstrap address of the test's broker: the topics have fixed names, so tests must not
    share them (a new embedded broker, or the cluster emptied of the last test's topics)."""
    return broker_under_test.bootstrap
