"""`serve` and `demo`: broker (embedded unless configured), topics, worker, relay and HTTP in one process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from contract import topics
from credit_ledger.compose import build_ledger, build_query_service, build_store, history_of, tune_gc
from credit_ledger.config import VARIABLES, ConfigError, Settings, ledger_env
from credit_ledger.generator import SubmissionGenerator
from credit_ledger.output import json_line, note
from ledger.application.service import CreditLedger
from ledger.verification.checkpoints import CheckpointLog, checkpoint_json
from projections.projector import Projector
from streams import admin
from streams.app import FAUST_LEADER_TOPIC, StreamSettings, create_app, run_worker
from streams.broker import EmbeddedBroker, die_with_parent_hook, group_timing
from streams.clients import publish, read_topic, send_records
from streams.relay import LEDGER_CURSOR, OUTCOMES_CURSOR, run_relay_process


class ChildSupervisor(threading.Thread):
    """Runs a `credit-ledger` subcommand beside the worker, restarting it if it dies, until stopped.

    The relay and the projector are processes of their own so their work runs on other cores
    than the intake's; each dies with this process (Linux parent-death signal).
    """

    def __init__(
        self,
        command: str,
        settings: Settings,
        bootstrap: str,
        *,
        args: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        self.command = name or command  # how the banner, the log file and messages call it
        super().__init__(name=f"{self.command}-supervisor", daemon=True)
        self.argv = [sys.executable, "-m", "credit_ledger.cli", command, *args]
        self.env = {**os.environ, **settings_env(settings), "CREDIT_KAFKA_BOOTSTRAP": bootstrap}
        self.log_path = settings.data_dir / f"{self.command}.log"
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent_hook(),  # noqa: PLW1509 - only prctl, resolved before fork
                )
            code = self.process.wait()
            if self.stopping.is_set() or code == 0:
                return  # asked to stop (Ctrl-C reaches the whole process group), not a crash
            note(
                f"the {self.command} process exited with status {code}; "
                f"restarting in {delay:.0f}s (log: {self.log_path})"
            )
            self.stopping.wait(delay)
            delay = min(delay * 2, 30.0)

    def stop(self) -> None:
        self.stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.join(timeout=5)


def settings_env(settings: Settings) -> dict[str, str]:
    """The CREDIT_* variables that reproduce these settings in a child process."""
    out = {}
    for name, var in VARIABLES.items():
        value = getattr(settings, name)
        if value is not None:
            out[var] = str(value)
    return out


@dataclass
class Running:
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
        for child in self.children:
            child.stop()
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


def start(settings: Settings, *, http: bool = True) -> Running:
    """Everything up to (not including) running the worker: ledger, broker, topics, app."""
    if http:
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
        if topics.DIGESTS in created and (republished := republish_checkpoints(bootstrap, settings)):
            note(f"{topics.DIGESTS} was empty: re-published {republished} signed checkpoint(s) from the data")
        if topics.LIST_CHANGES in created:
            store = build_store(settings)
            store.republish_all()
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
        )
        read_store = build_store(settings) if http else None
        queries = build_query_service(ledger, read_store) if read_store is not None else None
        # Every worker can lead the Faust app's group, and the leader runs the scheduler.
        scheduling = Projector(build_store(settings), ledger.catalogue, history=history_of(ledger))
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


def banner(running: Running) -> None:
    s = running.settings
    database = ledger_env(s).get("SQLITE_DBNAME") or _redacted(s.database_url)
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
    lines.append("  stop with Ctrl-C")
    note("\n".join(lines))


def _redacted(url: str | None) -> str:
    if not url or "@" not in url:
        return url or ""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


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
        run_worker(running.app, loglevel=loglevel if loglevel != "warning" else settings.log_level.lower())
    finally:
        running.close()
    note("credit-ledger stopped cleanly")
    return 0


# -- demo ------------------------------------------------------------------------------------


@dataclass
class DemoTally:
    published: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    ledger_events: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> dict[str, Any]:
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            "published": self.published,
            "accepted": self.outcomes["accepted"],
            "rejected": self.outcomes["rejected"],
            "ledger_events_on_kafka": self.ledger_events,
            "top_rejections": dict(self.reasons.most_common(3)),
        }


def demo(
    settings: Settings,
    *,
    rate: float = 200.0,
    duration: float | None = None,
    subjects: int = 2000,
    seed: int | None = None,
    as_json: bool = False,
) -> int:
    """Serve, and feed it realistic submissions from several departments, with a live summary."""
    running = start(settings, http=True)
    running.start_children("relay", "project")
    tally = DemoTally()
    stop = threading.Event()
    banner(running)
    threads = [
        threading.Thread(
            target=_feed,
            args=(running, tally, stop),
            kwargs={"rate": rate, "subjects": subjects, "seed": seed},
            daemon=True,
        ),
        threading.Thread(target=_count, args=(running.bootstrap, topics.OUTCOMES, tally, stop), daemon=True),
        threading.Thread(target=_count, args=(running.bootstrap, topics.LEDGER, tally, stop), daemon=True),
        threading.Thread(target=_report, args=(tally, stop, duration, as_json), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        run_worker(running.app)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        _print(tally, as_json, final=True)
        running.close()
    return 0


def _feed(
    running: Running, tally: DemoTally, stop: threading.Event, *, rate: float, subjects: int, seed: int | None
) -> None:
    edition = running.ledger.catalogue.edition_at(datetime.now(UTC).date())
    generator = SubmissionGenerator(
        edition,
        subjects=subjects,
        seed=seed if seed is not None else int(time.time()),
        now=datetime.now(UTC),
        bad_ratio=0.04,
        prefix=f"demo-{int(time.time())}",
    )
    chunk = max(1, int(rate / 4))
    from kafka import KafkaProducer  # noqa: PLC0415

    raw = KafkaProducer(bootstrap_servers=running.bootstrap, acks="all")
    while not stop.is_set():
        began = time.monotonic()
        lines = [orjson.dumps(s) for s in generator.take(chunk)]
        report = publish(running.bootstrap, lines, topics.SUBMISSIONS)
        tally.published += report.sent
        # A misbehaving client's bytes (the publisher would refuse them): rejected, never dropped.
        raw.send(topics.SUBMISSIONS, key=b"", value=b'{"submission_id": "garbled').get(timeout=10)
        tally.published += 1
        stop.wait(max(0.0, chunk / rate - (time.monotonic() - began)))


def _count(bootstrap: str, topic: str, tally: DemoTally, stop: threading.Event) -> None:
    for record in read_topic(bootstrap, topic, follow=True, stop=stop):
        if topic == topics.LEDGER:
            tally.ledger_events += 1
            continue
        outcome = orjson.loads(record.value)
        tally.outcomes[outcome["status"]] += 1
        if outcome["status"] == "rejected":
            tally.reasons[outcome["reason"]["code"]] += 1


def _report(tally: DemoTally, stop: threading.Event, duration: float | None, as_json: bool) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.wait(2.0):
        _print(tally, as_json)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(os.getpid(), signal.SIGTERM)  # the worker stops cleanly on SIGTERM
            return


def _print(tally: DemoTally, as_json: bool, *, final: bool = False) -> None:
    line = tally.line()
    if as_json:
        json_line({"final": final, **line})
        return
    reasons = ", ".join(f"{k} {v}" for k, v in line["top_rejections"].items()) or "-"
    print(
        f"{'final' if final else 'live '} {line['seconds']:>6.1f}s  published {line['published']:>6}  "
        f"accepted {line['accepted']:>6}  rejected {line['rejected']:>5}  "
        f"ledger events on kafka {line['ledger_events_on_kafka']:>6}  top rejections: {reasons}",
        flush=True,
    )


def _log_to_stderr(settings: Settings) -> None:
    """Child processes log with timestamps to stderr, which serve sends to DATA_DIR/<name>.log."""
    import logging  # noqa: PLC0415

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def relay(settings: Settings) -> int:
    """`credit-ledger relay`: publish the ledger's outbox to Kafka until SIGTERM/SIGINT."""
    _log_to_stderr(settings)
    if not settings.kafka_bootstrap:
        note("credit-ledger relay needs CREDIT_KAFKA_BOOTSTRAP (serve starts it with the right address)")
        return 2
    tune_gc()
    ledger = build_ledger(settings)

    async def main() -> None:
        import asyncio  # noqa: PLC0415

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_relay_process(
            ledger,
            settings.kafka_bootstrap or "",
            session_timeout=settings.kafka_session_timeout,
            stop=stop,
            data_dir=settings.data_dir,
        )

    import asyncio  # noqa: PLC0415

    try:
        asyncio.run(main())
    finally:
        ledger.close()
    return 0


def project(settings: Settings) -> int:
    """`credit-ledger project`: keep the read models current from credit.ledger until SIGTERM/SIGINT."""
    import asyncio  # noqa: PLC0415

    from streams.projecting import run_projector_process  # noqa: PLC0415

    if not settings.kafka_bootstrap:
        note("credit-ledger project needs CREDIT_KAFKA_BOOTSTRAP (serve starts it with the right address)")
        return 2
    tune_gc()
    ledger = build_ledger(settings)
    store = build_store(settings)
    projector = Projector(store, ledger.catalogue, history=history_of(ledger))
    _log_to_stderr(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_projector_process(
            projector,
            settings.kafka_bootstrap or "",
            session_timeout=settings.kafka_session_timeout,
            stop=stop,
        )

    try:
        asyncio.run(main())
    finally:
        store.close()
        ledger.close()
    return 0
