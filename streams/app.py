"""The Faust app: the intake service, the scheduler's timer on the leader, and the HTTP API."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import faust

from contract import topics
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.verification.tlog_checkpoint import DEFAULT_ORIGIN
from projections.projector import Projector
from projections.store import ProjectionStore
from streams.deadletters import DeadLetterWatch
from streams.intake import Intake
from streams.producing import WorkerProducer
from streams.scheduling import Scheduler, register_scheduler
from streams.stopping import BoundedStopWorker, StopDeadline
from streams.storelock import StoreLock

log = logging.getLogger(__name__)

GROUP_ID = "credit-ledger"
FAUST_LEADER_TOPIC = f"{GROUP_ID}-__assignor-__leader"
"""Faust's own coordination topic; created with the others (clusters may forbid auto-creation)."""


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
    session_timeout: float = 6.0  # Tansu joins a group after half of it (measured); Kafka's minimum
    heartbeat_interval: float = 1.0
    # Behind and not moving this long, /v1/health calls the relay, projector or intake stalled.
    # Routine pauses are shorter: the relay polls every 50 ms, the projector every 200 ms, and a
    # lease or partition moving to another worker after an unclean stop was measured at about
    # 15 s (session timeout, then the group's join). Past 30 s it is not a hand-over but a stall.
    health_stall_seconds: float = 30.0
    scheduler_interval: float = 60.0  # seconds between the scheduler's rounds on the leader
    log_origin: str = DEFAULT_ORIGIN  # the ledger's name in its checkpoints, for the public key's vkey
    checkpoint_key: str | None = None  # CREDIT_CHECKPOINT_KEY (None: the data dir's seed file)
    extra: dict[str, Any] = field(default_factory=dict)


def create_app(
    settings: StreamSettings,
    ledger: CreditLedger,
    *,
    read_store: ProjectionStore | None = None,
    queries: QueryService | None = None,
    projector: Projector | None = None,
) -> faust.App:
    """One worker's app. Every worker joins one consumer group; partitions spread subjects across them.

    ``read_store`` and ``queries`` come from the composition root (``credit_ledger.compose``);
    without them the HTTP API serves submissions, outcomes, health and proofs only. ``projector``
    (a projector over a store connection of its own) lets this worker run the scheduler while it
    is the leader of the Faust app's group; give every worker one, so any of them can lead.

    Faust agents for the flows whose rates allow per-event processing (list-change fan-out,
    measure feedback) belong here too: ``platform_topic(app, name)`` and ``@app.agent``, with
    their state in SQL (never in Faust tables: they lose state on the embedded broker).
    """
    app = faust.App(
        GROUP_ID,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",  # no state lives in Faust tables (they lose state on the embedded broker)
        datadir=str(settings.data_dir / "faust"),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=False,  # topics are created with their retention by streams.admin
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.http_enabled,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_host=settings.http_host,
        **settings.extra,
    )
    # One thread owns every ledger transaction: the event loop stays free for heartbeats and HTTP.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
    submissions = platform_topic(app, topics.SUBMISSIONS)
    producer = WorkerProducer(settings.bootstrap)
    app.service(producer)  # type: ignore[arg-type]  # faust also takes an instance (App._prepare_subservice)
    intake = Intake(
        ledger,
        executor,
        bootstrap=settings.bootstrap,
        batch_size=settings.batch_size,
        session_timeout=settings.session_timeout,
        heartbeat_interval=settings.heartbeat_interval,
        send=producer.send,
    )
    app.service(intake)  # type: ignore[arg-type]  # as above
    scheduler = None
    if projector is not None:

        async def expire(today: date, now: str) -> int:  # on the thread that owns ledger transactions
            return await asyncio.get_running_loop().run_in_executor(
                executor, ledger.expire_originals, today, now
            )

        scheduler = Scheduler(
            projector,
            producer.send_all,
            interval=settings.scheduler_interval,
            lock=StoreLock(projector.store.target),
            expire=expire,
        )
        register_scheduler(app, scheduler)

    if settings.http_enabled:
        from streams.http import register_views  # noqa: PLC0415 - the web layer only when serving HTTP
        from streams.parts import WorkerParts  # noqa: PLC0415

        dead_letters = DeadLetterWatch(settings.bootstrap)
        app.service(dead_letters)  # type: ignore[arg-type]  # as above
        parts = WorkerParts(
            ledger,
            intake,
            executor,
            submissions,
            settings.data_dir,
            read_store=read_store,
            queries=queries,
            health_stall_seconds=settings.health_stall_seconds,
            dead_letters=dead_letters,
            scheduler=scheduler,
            log_origin=settings.log_origin,
            checkpoint_key=settings.checkpoint_key,
        )
        register_views(app, parts)
        if queries is not None and read_store is not None:  # the portal reads what the API reads
            from streams.portal.routes import register_portal  # noqa: PLC0415

            register_portal(app, parts)
    return app


def platform_topic(app: faust.App, name: str) -> Any:
    """A contract topic as the Faust app sends to (and an agent would consume) it: raw bytes.

    Topics are created by ``streams.admin`` with their retention (``topic_allow_declare=False``).
    """
    return app.topic(name, key_type=bytes, value_type=bytes)


def quiet_client_noise() -> None:
    """kafka-python warns whenever one of its network tasks waited over 0.1 s for its turn. In a
    process that also applies submissions (serve, demo) the GIL makes that routine and the warning
    is nothing anyone can act on; its real errors still show."""
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


def run_worker(app: faust.App, *, loglevel: str = "warning", deadline: StopDeadline | None = None) -> None:
    """Run the worker in this thread until SIGINT/SIGTERM; returns after a clean shutdown.

    The first signal arms ``deadline``: the process exits by then even if the shutdown hangs.
    It stays armed after this returns, so the caller's own clean-up is bounded too; a caller
    that lives on cancels it.
    """
    quiet_client_noise()
    worker = BoundedStopWorker(
        app, loglevel=loglevel, quiet=True, redirect_stdouts=False, deadline=deadline or StopDeadline()
    )
    worker.spinner = None  # its terminal escape codes would mangle our own output
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
