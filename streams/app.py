"""The Faust app: intake agent on credit.submissions, the relay on a leader-only timer, the HTTP API."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from ledger.application import CreditLedger
from streams import topics
from streams.intake import apply_batch, source_of
from streams.relay import Relay

log = logging.getLogger(__name__)

GROUP_ID = "credit-ledger"


@dataclass
class StreamSettings:
    """What the stream layer needs to know; built from credit_ledger's Settings by the caller."""

    bootstrap: str
    data_dir: Path
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_enabled: bool = True
    partitions: int = topics.DEFAULT_PARTITIONS
    replication_factor: int = 1
    batch_size: int = 1000
    batch_within: float = 0.1
    relay_interval: float = 0.1
    session_timeout: float = 6.0  # Tansu joins a group after half of it (measured); Kafka's minimum
    heartbeat_interval: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Counters:
    batches: int = 0
    submissions: int = 0


def create_app(settings: StreamSettings, ledger: CreditLedger) -> faust.App:
    """One worker's app. Every worker joins one consumer group; partitions spread subjects across them."""
    app = faust.App(
        GROUP_ID,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",  # no state lives in Faust tables (they lose state on the embedded broker)
        datadir=str(settings.data_dir / "faust"),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=False,  # topics are created with their retention by streams.topics
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        # At shutdown, cancel the intake rather than wait for it: a batch not yet in the ledger is
        # then never committed (see streams.intake.apply_batch) and is redelivered on restart.
        stream_wait_empty=False,
        web_enabled=settings.http_enabled,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_host=settings.http_host,
        **settings.extra,
    )
    # One thread owns every ledger transaction: the event loop stays free for heartbeats and HTTP.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
    submissions = app.topic(topics.SUBMISSIONS, key_type=bytes, value_type=bytes)
    counters = Counters()

    @app.agent(submissions)
    async def intake(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            values = [e.value for e in events]
            await apply_batch(ledger, executor, values, [source_of(e.message) for e in events])
            counters.batches += 1
            counters.submissions += len(values)

    async def send(topic: str, key: bytes, value: bytes) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    relay = Relay(ledger, send, executor)

    @app.task
    async def relay_outbox() -> None:
        # Only the group's leader relays, so several workers never publish the outbox twice.
        # Leadership can move at a rebalance, hence the check on every round.
        while True:
            sent = await relay.run_once() if app.is_leader() else 0
            await asyncio.sleep(0 if sent else settings.relay_interval)

    app.credit = {"ledger": ledger, "relay": relay, "counters": counters, "executor": executor,
                  "submissions": submissions, "settings": settings}  # type: ignore[attr-defined]
    if settings.http_enabled:
        from streams.http import register_views  # noqa: PLC0415 - the web layer only when serving HTTP

        register_views(app)
    return app


def run_worker(app: faust.App, *, loglevel: str = "warning") -> None:
    """Run the worker in this thread until SIGINT/SIGTERM; returns after a clean shutdown."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its terminal escape codes would mangle our own output
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
