"""Topic administration on a Kafka cluster: create the contract's topics, describe partitions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from contract.topics import DEFAULT_PARTITIONS, TopicSpec, topic_specs


class TopicError(RuntimeError):
    """Topics cannot be created or do not match the contract; the message says why."""


def ensure_topics(
    bootstrap: str,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    replication_factor: int = 1,
    timeout: float = 15.0,
    apply_configs: bool = True,
    specs: Sequence[TopicSpec] | None = None,
) -> list[str]:
    """Create the topics that are missing and wait until the broker's metadata shows them all.

    Idempotent: topics that exist already (or that another process creates at the same time)
    are left as they are, configs included: this never alters a topic. Returns the names
    this call created, in contract order. Raises ``TopicError`` if the cluster cannot be
    reached or a topic cannot be created within ``timeout`` seconds, or if an existing topic
    has another partition count than the contract (partitions cannot change without moving
    subjects between partitions, which breaks per-subject order).

    ``apply_configs=False`` creates the topics with the broker's default configs. The default
    sends the contract's configs and lets a broker that rejects one fail loudly: silently
    dropping ``retention.ms=-1`` from ``credit.ledger`` on a real cluster would delete ledger
    history after a week. (Tansu 0.6, the embedded broker, accepts every config, stores it
    and echoes it in DescribeConfigs, but enforces none: its topics live in memory only.)
    """
    wanted = list(specs) if specs is not None else topic_specs(partitions, replication_factor)
    deadline = time.monotonic() + timeout
    admin = _admin_client(bootstrap, timeout)
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for spec in wanted:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [_new_topic(spec, apply_configs=apply_configs)],
                    timeout_ms=_remaining_ms(deadline),
                )
            except TopicAlreadyExistsError:
                continue  # created meanwhile by another process: fine
            except KafkaError as exc:
                raise TopicError(
                    f"Cannot create topic {spec.name!r} on {bootstrap} "
                    f"({spec.partitions} partitions, replication factor "
                    f"{spec.replication_factor}, configs {spec.configs if apply_configs else {}})"
                    f": {exc}"
                ) from exc
            created.append(spec.name)
        _wait_for_partitions(admin, wanted, deadline, timeout)
    except KafkaError as exc:
        raise TopicError(f"Kafka at {bootstrap} failed while ensuring topics: {exc}") from exc
    finally:
        admin.close()
    return created


def describe_partitions(bootstrap: str, names: Iterable[str], timeout: float = 10.0) -> dict[str, int]:
    """Partition count of each named topic that exists (missing topics are left out)."""
    admin = _admin_client(bootstrap, timeout)
    try:
        return {
            str(topic["name"]): len(topic["partitions"])
            for topic in admin.describe_topics(list(names))
            if topic.get("error_code", 0) == 0
        }
    finally:
        admin.close()


def _admin_client(bootstrap: str, timeout: float) -> Any:
    timeout_ms = max(1000, int(timeout * 1000))
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "credit-ledger-admin",
        "request_timeout_ms": timeout_ms,
    }
    # kafka-python 3 bounds the first connection with bootstrap_timeout_ms (default 30 s);
    # 2.x with api_version_auto_timeout_ms. Pass whichever this version knows.
    for key in ("bootstrap_timeout_ms", "api_version_auto_timeout_ms"):
        if key in KafkaAdminClient.DEFAULT_CONFIG:
            config[key] = timeout_ms
            break
    try:
        return KafkaAdminClient(**config)
    except KafkaError as exc:
        raise TopicError(
            f"Cannot reach Kafka at {bootstrap} within {timeout:g} s ({exc}). Check "
            "CREDIT_KAFKA_BOOTSTRAP, or leave it unset to start the embedded broker."
        ) from exc


def _new_topic(spec: TopicSpec, *, apply_configs: bool) -> Any:
    # NewTopic is the one form both kafka-python 2.x and 3.x accept (3.x also takes a dict).
    return NewTopic(
        name=spec.name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        topic_configs=dict(spec.configs) if apply_configs else {},
    )


def _remaining_ms(deadline: float) -> int:
    return max(100, int((deadline - time.monotonic()) * 1000))


def _wait_for_partitions(admin: Any, specs: Sequence[TopicSpec], deadline: float, timeout: float) -> None:
    """Poll the metadata until every topic is there with every partition led by a broker."""
    names = [spec.name for spec in specs]
    expected = {spec.name: spec.partitions for spec in specs}
    while True:
        described = {str(topic["name"]): topic for topic in admin.describe_topics(names)}
        pending: dict[str, str] = {}
        for name in names:
            reason = _not_ready(described.get(name), expected[name])
            if reason is not None:
                pending[name] = reason
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TopicError(f"Topics not ready after {timeout:g} s: {pending}")
        time.sleep(0.05)


def _not_ready(topic: dict[str, Any] | None, expected_partitions: int) -> str | None:
    """Why a described topic is not ready yet, or ``None`` when it is."""
    if topic is None:
        return "missing from metadata"
    partitions = topic.get("partitions") or []
    if topic.get("error_code", 0) != 0 or not partitions:
        return f"not in metadata yet (error code {topic.get('error_code')})"
    if len(partitions) != expected_partitions:
        raise TopicError(
            f"Topic {topic['name']!r} exists with {len(partitions)} partitions, but the "
            f"contract says {expected_partitions}. Partition counts cannot change without "
            "moving subjects between partitions (breaking per-subject order): recreate the "
            "topic, or configure the same partition count everywhere."
        )
    leaderless = [p["partition_index"] for p in partitions if p.get("leader_id", -1) < 0]
    if leaderless:
        return f"partitions without a leader: {leaderless}"
    return None
