"""The long-running commands: serve, demo, and the relay and projector processes serve starts."""

from __future__ import annotations

import click

from credit_ledger.cli.shared import (
    EVERY_SETTING,
    KAFKA,
    LEDGER,
    UserError,
    command,
    json_option,
    with_settings,
)
from credit_ledger.config import Settings


@command(
    "serve",
    "run the ledger: broker (embedded unless configured), intake worker, relay, HTTP API",
    "credit-ledger serve",
    "credit-ledger serve --workers 2 --http-port 8081",
    "credit-ledger serve --kafka-bootstrap kafka-1:9092 --database-url postgresql://ledger@db/ledger",
)
@click.option("--no-http", is_flag=True, help="do not serve HTTP (extra workers on one host)")
@click.option("--no-relay", is_flag=True, help="do not start a relay (one runs elsewhere)")
@click.option("--no-project", is_flag=True, help="do not start a projector (the read side runs elsewhere)")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="intake processes on this host: this one and N-1 children, all in the intake's consumer "
    "group, so partitions and their subjects spread across cores; at most one per core is useful "
    "(one process applies at most ~12k submissions/s)",
)
@click.option("--verbose", is_flag=True, help="Faust's own log at INFO level")
@with_settings(*EVERY_SETTING)
def serve(
    settings: Settings, no_http: bool, no_relay: bool, no_project: bool, workers: int, verbose: bool
) -> int:
    """Run the main job in one process: start the embedded Kafka-compatible broker unless
    CREDIT_KAFKA_BOOTSTRAP is set, create the topics, consume credit.submissions into the ledger,
    relay ledger events and outcomes to Kafka, and serve the HTTP API. Stops cleanly on Ctrl-C or
    SIGTERM.

    --workers N runs N intake processes on this host; run more serve processes with
    CREDIT_KAFKA_BOOTSTRAP and a shared CREDIT_DATABASE_URL to spread partitions (subjects)
    across hosts.
    """
    from credit_ledger.serve import serve as run  # noqa: PLC0415 - Faust is slow to import

    return run(
        settings,
        http=not no_http,
        relay=not no_relay,
        project=not no_project,
        loglevel="info" if verbose else "warning",
        workers=workers,
    )


@command(
    "demo",
    "serve, and feed it realistic submissions from six departments with a live summary",
    "credit-ledger demo",
    "credit-ledger demo --duration 30 --rate 500 --json",
)
@click.option("--rate", type=float, default=200.0, show_default=True, help="submissions per second")
@click.option("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
@click.option(
    "--subjects", type=int, default=2000, show_default=True, help="distinct people and organisations"
)
@click.option("--seed", type=int, help="generator seed (default: the clock)")
@json_option("summaries as JSON lines")
@with_settings(*EVERY_SETTING)
def demo(
    settings: Settings, rate: float, duration: float | None, subjects: int, seed: int | None, as_json: bool
) -> int:
    """Serve (as 'serve' does) and publish generated submissions from the tax bureau, court, market
    regulator, education, transport and volunteer federation: filings, corrections, objections,
    repairs and a few bad ones. Every 2 s it prints what was published, accepted and rejected (read
    back from credit.outcomes) and how many ledger events reached Kafka.
    """
    from credit_ledger.demo import demo as run  # noqa: PLC0415 - Faust is slow to import

    return run(settings, rate=rate, duration=duration, subjects=subjects, seed=seed, as_json=as_json)


@command(
    "relay",
    "publish the ledger's events and outcomes to Kafka (serve starts one for you)",
    "CREDIT_KAFKA_BOOTSTRAP=127.0.0.1:46955 credit-ledger relay",
)
@with_settings(*LEDGER, *KAFKA, "kafka_session_timeout", "log_level", "log_origin", "witnesses")
def relay(settings: Settings) -> int:
    """Publish the ledger's notification log to credit.ledger and its submission register to
    credit.outcomes and credit.rejections, in order, from tracked positions. Any number may run;
    one holds the lease (partition 0 of credit.submissions in group credit-ledger.relay) and
    publishes, the others stand by. 'serve' starts one as a child process unless --no-relay.
    The leader also signs a checkpoint of the log --log-origin every 10,000 events or 60 s, has
    the --witnesses cosign it, and publishes it to credit.digests.
    """
    from credit_ledger.serve import relay as run  # noqa: PLC0415 - Kafka clients are slow to import

    return run(settings)


@command(
    "project",
    "keep the read models current from credit.ledger (serve starts one for you)",
    "CREDIT_KAFKA_BOOTSTRAP=127.0.0.1:46955 credit-ledger project --scheduler-interval 10",
)
@with_settings(*LEDGER, *KAFKA, "kafka_session_timeout", "scheduler_interval", "log_level")
def project(settings: Settings) -> int:
    """Fold credit.ledger into the status, list and due-item tables, publish list changes to
    credit.list-changes, and (on the member owning partition 0) turn time into the platform's own
    ledger commands: record expiry, overdue objections, lapsed designations, clean-record entries.
    --scheduler-interval sets how often, in seconds.
    """
    from credit_ledger.serve import project as run  # noqa: PLC0415 - Kafka clients are slow to import

    return run(settings)


@command(
    "serving",
    "print where the serve running in the data dir answers: its Kafka and HTTP addresses",
    "credit-ledger serving",
    "credit-ledger serving --http",
    "credit-ledger serving --kafka",
)
@click.option("--http", "only_http", is_flag=True, help="print only the HTTP server's root URL")
@click.option("--kafka", "only_kafka", is_flag=True, help="print only the Kafka bootstrap address")
@with_settings("data_dir")
def serving(settings: Settings, only_http: bool, only_kafka: bool) -> int:
    """Print, as one JSON line, the running serve's process id, Kafka bootstrap address (and whether
    it is the embedded broker) and HTTP API URL, as it wrote them to DATA_DIR/serving.json. For
    scripts, --http prints only the HTTP server's root URL (the API is under /v1/) and --kafka only
    the broker's address. Exits 1 when no serve is running in the data dir."""
    from dataclasses import asdict  # noqa: PLC0415

    from credit_ledger import discovery  # noqa: PLC0415
    from credit_ledger.output import json_line  # noqa: PLC0415

    running = discovery.read(settings.data_dir)
    if running is None:
        raise UserError(
            f"no serve is running in {settings.data_dir} (--data-dir or CREDIT_DATA_DIR): start one "
            "with 'credit-ledger serve', or give the data dir it runs in"
        )
    if only_http:
        if running.http is None:
            raise UserError(f"the serve in {settings.data_dir} serves no HTTP (--no-http)")
        print(running.http.removesuffix("/").removesuffix("/v1"))
    elif only_kafka:
        print(running.kafka)
    else:
        json_line(asdict(running))
    return 0


COMMANDS = (serve, demo, relay, project, serving)
