"""`serve`: broker (embedded unless configured), topics, intake worker, HTTP, and the relay and projector."""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from contract import topics
from credit_ledger import discovery
from credit_ledger.compose import (
    build_ledger,
    build_projector,
    build_query_service,
    build_store,
    tune_gc,
)
from credit_ledger.config import ConfigError, Settings, ledger_env, redacted
from credit_ledger.output import note
from credit_ledger.signals import run_until_signalled
from credit_ledger.supervisor import ChildSupervisor
from ledger.application.keys import KEY_CACHE_SECONDS
from ledger.application.service import CreditLedger
from ledger.verification.checkpoints import CheckpointLog, checkpoint_json
from ledger.verification.policy import parse_witness_list
from streams import admin
from streams.app import FAUST_LEADER_TOPIC, StreamSettings, create_app, quiet_client_noise, run_worker
from streams.broker import EmbeddedBroker, group_timing
from streams.clients import send_records
from streams.drain import INBOX_CURSOR
from streams.relay import LEDGER_CURSOR, OUTCOMES_CURSOR, run_relay_process
from streams.stopping import StopDeadline


@dataclass
class Running:
    """What `start` brought up on this host: the ledger, the broker if embedded, the app, the children."""

    settings: Settings
    bootstrap: str
    ledger: CreditLedger
    broker: EmbeddedBroker | None
    app: Any
    children: list[ChildSupervisor] = field(default_factory=list)

    def start_children(self, *commands: str) -> None:
        for command in commands:
            self.start_child(ChildSupervisor(command, self.settings, self.bootstrap))

    def start_intake_workers(self, count: int) -> None:
        """``count`` more intake workers: a `serve` each, with nothing but the intake, in its group."""
        for number in range(2, count + 2):
            args = ("--no-http", "--no-relay", "--no-project")
            name = f"intake-{number}"
            self.start_child(ChildSupervisor("serve", self.settings, self.bootstrap, args=args, name=name))

    def start_child(self, child: ChildSupervisor) -> None:
        child.start()
        self.children.append(child)

    def close(self) -> None:
        for child in self.children:  # all at once: each takes a moment to stop
            child.request_stop()
        for child in self.children:
            child.wait_stopped()
        self.ledger.close()
        if self.broker is not None:
            self.broker.stop()


def check_port_free(host: str, port: int) -> None:
    """Fail before starting anything if the HTTP port is taken: the web server binds it only
    after the broker, the ledger and the banner, and its error would come as a traceback."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            msg = (
                f"CREDIT_HTTP_PORT={port}: cannot listen on {host}:{port} ({exc.strerror}); "
                "choose another port with --http-port, or run without HTTP with --no-http"
            )
            raise ConfigError(msg) from None


def check_no_serve_here(settings: Settings) -> None:
    """Refuse a second serve with an embedded broker of its own on a data dir that a running serve
    announces: the two would share the ledger but not the broker, and the clients would follow
    whichever wrote ``serving.json`` last. More workers on one data dir join one Kafka (given
    with CREDIT_KAFKA_BOOTSTRAP), as ``serve --workers N`` does."""
    running = discovery.read(settings.data_dir)
    if running is not None and running.pid != os.getpid() and not settings.kafka_bootstrap:
        where = f"kafka {running.kafka}" + (f", http {running.http}" if running.http else "")
        raise ConfigError(
            f"a serve is already running in {settings.data_dir} (pid {running.pid}; {where}), and the "
            "clients run here use it. Stop it first (Ctrl-C in its terminal, or kill -INT "
            f"{running.pid}), or give this one another --data-dir"
        )


def start(settings: Settings, *, http: bool = True) -> Running:
    """Everything up to (not including) running the worker: ledger, broker, topics, app."""
    if http:  # the serve that announces itself (serve --workers N's intake children serve no HTTP)
        check_no_serve_here(settings)
        check_port_free(settings.http_host, settings.http_port)
    tune_gc()
    ledger = build_ledger(settings)
    broker = None
    try:
        if settings.kafka_bootstrap:
            bootstrap = settings.kafka_bootstrap
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
            bootstrap = broker.start()
        created = admin.ensure_topics(
            bootstrap, partitions=settings.partitions, replication_factor=settings.replication_factor
        )
        leader = topics.TopicSpec(
            FAUST_LEADER_TOPIC, 1, {}, "Faust's assignor leader topic", settings.replication_factor
        )
        admin.ensure_topics(bootstrap, specs=[leader], replication_factor=settings.replication_factor)
        # A topic that had to be created is empty. The ledger is the durable record, so the relay
        # publishes it again from the start (the embedded broker keeps topics only in memory).
        for topic, cursor in ((topics.LEDGER, LEDGER_CURSOR), (topics.OUTCOMES, OUTCOMES_CURSOR)):
            if topic in created and ledger.reader.relay_position(cursor):
                note(f"{topic} was empty: the relay re-publishes it from the ledger")
                ledger.reader.save_relay_position(cursor, 0)
        # What the doors recorded and the relay had published may have been lost with the topic
        # before the intake read it: the drain reads the inbox again and publishes what is undecided.
        if topics.SUBMISSIONS in created and ledger.reader.relay_position(INBOX_CURSOR):
            note(f"{topics.SUBMISSIONS} was empty: the relay drains the inbox again (what has no outcome)")
            ledger.reader.save_relay_position(INBOX_CURSOR, 0)
        if topics.DIGESTS in created and (republished := republish_checkpoints(bootstrap, settings)):
            note(f"{topics.DIGESTS} was empty: re-published {republished} signed checkpoint(s) from the data")
        if {topics.LIST_CHANGES, topics.MEASURES} & set(created):
            store = build_store(settings)
            if topics.LIST_CHANGES in created:
                store.republish_all()
            if topics.MEASURES in created:
                store.republish_notices()
            store.close()
        stream_settings = StreamSettings(
            bootstrap=bootstrap,
            data_dir=settings.data_dir,
            http_host=settings.http_host,
            http_port=settings.http_port,
            http_enabled=http,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            batch_size=settings.batch_size,
            session_timeout=settings.kafka_session_timeout,
            heartbeat_interval=group_timing(settings.kafka_session_timeout)["heartbeat_interval_ms"] / 1000,
            health_stall_seconds=settings.health_stall_seconds,
            scheduler_interval=settings.scheduler_interval,
            log_origin=settings.log_origin,
            checkpoint_key=settings.checkpoint_key,
        )
        read_store = build_store(settings) if http else None
        # A key found valid is accepted for a second without reading it again: a revoked key is
        # refused within KEY_CACHE_SECONDS of `keys revoke` (ledger.application.keys.KeyCache).
        queries = (
            build_query_service(ledger, read_store, key_cache_seconds=KEY_CACHE_SECONDS)
            if read_store is not None
            else None
        )
        # Every worker can lead the Faust app's group, and the leader runs the scheduler.
        scheduling = build_projector(ledger, build_store(settings))
        app = create_app(
            stream_settings, ledger, read_store=read_store, queries=queries, projector=scheduling
        )
    except BaseException:
        ledger.close()
        if broker is not None:
            broker.stop()
        raise
    return Running(settings, bootstrap, ledger, broker, app)


def republish_checkpoints(bootstrap: str, settings: Settings) -> int:
    """Put the checkpoints this data dir has signed back on an empty credit.digests, in order.

    They are the operator's signed statements of the ledger's size and root; auditors compare
    them over time, so a broker that lost its topics must not make them vanish.
    """
    checkpoints = CheckpointLog.in_dir(settings.data_dir).checkpoints()
    return send_records(
        bootstrap, topics.DIGESTS, [(cp.key_id.encode(), checkpoint_json(cp)) for cp in checkpoints]
    )


def serving_of(running: Running) -> discovery.Serving:
    """What clients run beside this serve need to reach it (``credit_ledger.discovery``)."""
    s = running.settings
    http = f"http://{s.http_host}:{s.http_port}/v1/" if running.app.conf.web_enabled else None
    return discovery.Serving(os.getpid(), running.bootstrap, running.broker is not None, http)


def banner(running: Running) -> None:
    s = running.settings
    database = ledger_env(s).get("SQLITE_DBNAME") or redacted(s.database_url or "")
    kafka = f"{running.bootstrap} (embedded broker, in memory)" if running.broker else running.bootstrap
    lines = [
        "credit-ledger is serving",
        f"  kafka:     {kafka}",
        f"  topics:    {', '.join(topics.ALL_TOPICS)}",
        f"  ledger:    {database}",
        f"  data dir:  {s.data_dir.resolve()}",
    ]
    for child in running.children:
        lines.append(f"  {child.command + ':':<10} a process of its own (log: {child.log_path})")
    if running.app.conf.web_enabled:
        lines.append(f"  http:      http://{s.http_host}:{s.http_port}/v1/  (OpenAPI: /v1/openapi.json)")
        lines.append(
            f"  portal:    http://{s.http_host}:{s.http_port}/  (信用门户: search, 双公示, lists, sign-in)"
        )
    lines.append("  stop with Ctrl-C")
    note("\n".join(lines))


def serve(
    settings: Settings,
    *,
    http: bool = True,
    relay: bool = True,
    project: bool = True,
    loglevel: str = "warning",
    workers: int = 1,
) -> int:
    # Several threads share the GIL here (event loop, Faust's consumer thread, the ledger thread);
    # a shorter switch interval keeps a query from waiting up to 5 ms for its turn.
    sys.setswitchinterval(0.0005)
    deadline = StopDeadline()
    deadline.arm_on_ctrl_c()
    running = start(settings, http=http)
    try:
        running.start_children(*[name for name, on in (("relay", relay), ("project", project)) if on])
        if workers > settings.partitions:
            note(
                f"--workers {workers} with {settings.partitions} partitions: a worker applies whole "
                f"partitions, so {workers - settings.partitions} of them will wait idle"
            )
        running.start_intake_workers(workers - 1)
        banner(running)
        # An intake-only worker (serve --workers N's children) is not the one clients should find,
        # nor is a further worker beside a serve that announced itself first (it keeps its file).
        announced = (http or relay) and discovery.read(settings.data_dir) is None
        if announced:
            discovery.announce(settings.data_dir, serving_of(running))
        run_worker(
            running.app,
            loglevel=loglevel if loglevel != "warning" else settings.log_level.lower(),
            deadline=deadline,
        )
    finally:
        discovery.withdraw(settings.data_dir)
        running.close()
        deadline.cancel()
    note("credit-ledger stopped cleanly")
    return 0


def _log_to_stderr(settings: Settings) -> None:
    """Child processes log with timestamps to stderr, which serve sends to DATA_DIR/<name>.log."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_client_noise()


def _start_child(settings: Settings, command: str) -> str | None:
    """Log setup and GC tuning for a child process; the Kafka address it needs (None: said why not)."""
    _log_to_stderr(settings)
    if not settings.kafka_bootstrap:
        note(f"credit-ledger {command} needs CREDIT_KAFKA_BOOTSTRAP (serve starts it with the right address)")
        return None
    tune_gc()
    return settings.kafka_bootstrap


def relay(settings: Settings) -> int:
    """`credit-ledger relay`: publish the ledger's outbox to Kafka until SIGTERM/SIGINT."""
    bootstrap = _start_child(settings, "relay")
    if bootstrap is None:
        return 2
    with closing(build_ledger(settings)) as ledger:
        run_until_signalled(
            lambda stop: run_relay_process(
                ledger,
                bootstrap,
                session_timeout=settings.kafka_session_timeout,
                stop=stop,
                data_dir=settings.data_dir,
                origin=settings.log_origin,
                witnesses=parse_witness_list(settings.witnesses or ""),
                checkpoint_key=settings.checkpoint_key,
            )
        )
    return 0


def project(settings: Settings) -> int:
    """`credit-ledger project`: keep the read models current from credit.ledger until SIGTERM/SIGINT."""
    from streams.projecting import run_projector_process  # noqa: PLC0415 - only this command needs it

    bootstrap = _start_child(settings, "project")
    if bootstrap is None:
        return 2
    with closing(build_ledger(settings)) as ledger, closing(build_store(settings)) as store:
        projector = build_projector(ledger, store)
        run_until_signalled(
            lambda stop: run_projector_process(
                projector,
                bootstrap,
                session_timeout=settings.kafka_session_timeout,
                stop=stop,
            )
        )
    return 0
