"""docker/compose.yaml describes the cluster the suite tests: same Kafka, same topic and producer settings.

The integration and fault suites run on a 3-node Apache Kafka cluster fetched from Maven Central
(scripts/kafka-broker/pom.xml) with topics replicated 3 times and ``min.insync.replicas=2``; a
deployment that drifted from it would run what no test ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from contract.topics import topic_specs
from scripts.kafka_cluster import KAFKA_VERSION, Cluster, Node
from streams.producing import producer_settings
from tests.integration.kafka import REPLICATION_FACTOR

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return document


def test_compose_runs_the_kafka_version_the_suite_fetches_from_maven_central() -> None:
    services = compose()["services"]
    images = {name: s["image"] for name, s in services.items() if "kafka" in str(s.get("image", ""))}
    assert set(images) == {"kafka-1", "kafka-2", "kafka-3", "kafka-init"}
    assert set(images.values()) == {f"apache/kafka:{KAFKA_VERSION}"}


def broker_settings_of_the_tested_cluster() -> dict[str, str]:
    """The server.properties of a node of the suite's 3-node cluster (no process, no fetch)."""
    cluster = Cluster(Path("/nonexistent"), [Node(i, 9092 + i, 9192 + i) for i in (1, 2, 3)])
    lines = cluster.properties(cluster.nodes[0]).splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_compose_replicates_and_elects_as_the_tested_cluster_does() -> None:
    tested = broker_settings_of_the_tested_cluster()
    same = {
        "KAFKA_DEFAULT_REPLICATION_FACTOR": "default.replication.factor",
        "KAFKA_MIN_INSYNC_REPLICAS": "min.insync.replicas",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "offsets.topic.replication.factor",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "transaction.state.log.replication.factor",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "transaction.state.log.min.isr",
        "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE": "unclean.leader.election.enable",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "auto.create.topics.enable",
    }
    services = compose()["services"]
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[name]["environment"]
        assert {k: str(env[k]) for k in same} == {k: tested[p] for k, p in same.items()}, name
    assert (tested["default.replication.factor"], tested["min.insync.replicas"]) == ("3", "2")
    for name in ("api", "worker"):
        assert services[name]["environment"]["CREDIT_REPLICATION_FACTOR"] == str(REPLICATION_FACTOR)
    # The topics credit-ledger creates with that replication factor, on the cluster and in compose.
    assert {s.configs.get("min.insync.replicas") for s in topic_specs(24, REPLICATION_FACTOR)} == {"2"}


def test_every_producer_of_the_platform_waits_for_all_replicas_and_is_idempotent() -> None:
    settings = producer_settings("kafka-1:9092", idempotent=True)
    assert (settings["acks"], settings["enable_idempotence"]) == ("all", True)
