"""Kafka clients for departments and downstream consumers: publish, outcomes, subscribe."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from credit_ledger.cli.shared import KAFKA, command, idle_option, kafka_address, read_jsonl, with_settings
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note
from credit_ledger.signals import stop_on_signal

if TYPE_CHECKING:
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    from streams.clients import PublishReport


@command(
    "publish",
    "publish submissions (JSON lines) to credit.submissions, as a department",
    "credit-ledger publish examples.jsonl --department tax_bureau",
    "cat today.jsonl | credit-ledger publish - --kafka-bootstrap 127.0.0.1:46955",
    "credit-ledger publish today.jsonl --until-outcome --wait 600",
)
@click.argument("file", metavar="FILE")
@click.option(
    "--department", metavar="NAME", help="fill in this department where missing; refuse lines of another"
)
@click.option(
    "--until-outcome",
    is_flag=True,
    help="after sending, follow credit.outcomes until every submission is answered; re-send the "
    "unanswered (same bytes: idempotent by department and submission_id)",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="with --until-outcome: how long to wait for answers after the last line is sent",
)
@click.option(
    "--resend-after",
    type=click.FloatRange(min=0.5),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="with --until-outcome: re-send what is unanswered once no answer came for this long",
)
@with_settings(*KAFKA)
def publish(
    settings: Settings,
    file: str,
    department: str | None,
    until_outcome: bool,
    wait: float,
    resend_after: float,
) -> int:
    """Publish one submission per line of FILE (- for standard input) to credit.submissions with
    acks=all, keyed by the subject's code so each subject stays in order. Lines that cannot be
    sent (not JSON objects, over the ledger's 262,144-byte limit, another department's) are
    reported by line number and not sent; the rest are. It always ends with a summary line (JSON).

    An acknowledgement means the broker has the message, not that the ledger has it: the embedded
    broker keeps topics in memory, and loses what it held if serve dies. With --until-outcome it
    waits for each submission's outcome instead, re-sending after a broker restart or a silence,
    and the summary counts accepted, rejected, duplicate (decided before this run) and unanswered;
    the exit status is 1 if any line was refused or failed, or stays unanswered. Without it, read
    the outcomes back with 'credit-ledger outcomes'.
    """
    from contract import topics  # noqa: PLC0415 - keep --help fast

    bootstrap = kafka_address(settings)
    started = time.monotonic()

    def progress(report: PublishReport) -> None:
        if sys.stderr.isatty():
            rate = report.sent / max(time.monotonic() - started, 1e-9)
            sys.stderr.write(f"\rpublished {report.sent:,} ({rate:,.0f}/s)")

    from streams.awaiting import AwaitReport, publish_until_outcome  # noqa: PLC0415
    from streams.clients import PublishReport as Report  # noqa: PLC0415
    from streams.clients import publish as send  # noqa: PLC0415

    lines = read_jsonl(file, keep_blank=True)  # numbered as in the file in every refusal

    def refused(why: str) -> None:
        note(f"not sent: {why}")

    report: PublishReport = AwaitReport() if until_outcome else Report()
    try:
        if isinstance(report, AwaitReport):
            publish_until_outcome(
                bootstrap,
                lines,
                topics.SUBMISSIONS,
                department=department,
                wait=wait,
                resend_after=resend_after,
                report=report,
                on_refusal=refused,
            )
        else:
            send(
                bootstrap,
                lines,
                topics.SUBMISSIONS,
                department=department,
                on_progress=progress,
                report=report,
                on_refusal=refused,
            )
    finally:  # the summary whatever happened: an error, if any, is reported after it
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        json_line({**_summary(report), "seconds": round(time.monotonic() - started, 2)})
    unanswered = report.unanswered if isinstance(report, AwaitReport) else 0
    return 0 if report.failed == 0 and report.refused == 0 and unanswered == 0 else 1


def _summary(report: PublishReport) -> dict[str, int]:
    from streams.awaiting import AwaitReport  # noqa: PLC0415

    if isinstance(report, AwaitReport):
        return report.summary()
    return {"sent": report.sent, "refused": report.refused, "failed": report.failed}


@command(
    "outcomes",
    "read back accepted and rejected outcomes (JSON lines) from credit.outcomes",
    "credit-ledger outcomes --department tax_bureau --status rejected",
    "credit-ledger outcomes --submission TAX-TUT-0001 --submission TAX-TUT-0002",
    "credit-ledger outcomes --follow",
)
@click.option("--department", metavar="NAME", help="only this department's submissions")
@click.option(
    "--submission",
    "submission_ids",
    metavar="ID",
    multiple=True,
    help="only the outcomes of this submission_id (repeat for several)",
)
@click.option("--status", type=click.Choice(["accepted", "rejected"]), help="only this outcome")
@click.option("--follow", is_flag=True, help="keep waiting for new outcomes")
@idle_option("reading (without --follow)")
@with_settings(*KAFKA)
def outcomes(
    settings: Settings,
    department: str | None,
    submission_ids: tuple[str, ...],
    status: str | None,
    follow: bool,
    idle: float,
) -> int:
    """Print every outcome (accepted with its event ids, rejected with code, field, message and the
    original submission) from the beginning of credit.outcomes. Without --follow it stops once the
    topic has been quiet for --idle seconds.
    """
    import orjson  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    for record in read_topic(kafka_address(settings), topics.OUTCOMES, follow=follow, idle=idle):
        outcome = orjson.loads(record.value)
        if department and outcome.get("department") != department:
            continue
        if status and outcome.get("status") != status:
            continue
        if submission_ids and outcome.get("submission_id") not in submission_ids:
            continue
        json_line(outcome)
    return 0


@command(
    "subscribe",
    "follow list changes, or a department's measure notices, as JSON lines",
    "credit-ledger subscribe list-changes --from-beginning --list black --group bank-fz-001",
    "credit-ledger subscribe measures --department court --from-beginning",
    "credit-ledger subscribe measures --department court --follow",
)
@click.argument("feed", metavar="FEED", type=click.Choice(["list-changes", "measures"]))
@click.option("--from-beginning", is_flag=True, help="start with the first message ever")
@click.option(
    "--list", "list_name", type=click.Choice(["black", "red", "clean"]), help="list-changes: only this list"
)
@click.option("--department", metavar="NAME", help="measures: the implementing department (required)")
@click.option(
    "--follow", is_flag=True, help="measures: keep waiting for new notices (list changes always follow)"
)
@idle_option("reading measures (without --follow)")
@click.option(
    "--group", metavar="NAME", help="consumer group (default subscriber.$USER, measures.DEPARTMENT)"
)
@with_settings(*KAFKA, "kafka_session_timeout")
def subscribe(
    settings: Settings,
    feed: str,
    from_beginning: bool,
    list_name: str | None,
    department: str | None,
    follow: bool,
    idle: float,
    group: str | None,
) -> int:
    """Print a feed as JSON lines. FEED list-changes: join a consumer group on credit.list-changes
    and print every change (list, entry/exit, subject key, masked code, reason, basis, the event
    that caused it) until Ctrl-C; --from-beginning starts at the first change ever, even for a
    group that has read before (without it a group resumes where it left off, a new one starts
    with the next change).

    FEED measures: the notices and reminders addressed to --department on credit.measures
    (docs/measures.md), picked by their Kafka header. By default through the department's consumer
    group, which remembers where it was (a new one starts at the first notice); --from-beginning
    reads every notice from the start and leaves the group's position alone. Without --follow it
    stops after --idle seconds of quiet.
    """
    if feed == "measures":
        if not department:
            raise click.UsageError(
                "subscribe measures needs --department NAME", ctx=click.get_current_context()
            )
        return _measures(
            settings, department, from_beginning=from_beginning, follow=follow, idle=idle, group=group
        )
    import getpass  # noqa: PLC0415

    import orjson  # noqa: PLC0415
    from kafka import KafkaConsumer  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from streams.broker import group_timing  # noqa: PLC0415

    bootstrap = kafka_address(settings)
    group = group or f"subscriber.{getpass.getuser()}"
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **group_timing(settings.kafka_session_timeout),
    )
    consumer.subscribe([topics.LIST_CHANGES], listener=_from_the_first(consumer) if from_beginning else None)
    note(f"subscribed to {topics.LIST_CHANGES} as group {group!r}; Ctrl-C to stop")
    with stop_on_signal() as stop:
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:  # a batch polled is printed whole: its offsets commit at close
                        change = orjson.loads(record.value)
                        if not list_name or change.get("list") == list_name:
                            json_line(change)
        finally:
            consumer.close(timeout_ms=CLOSE_SECONDS * 1000)
    return 0


CLOSE_SECONDS = 5
"""How long a stopping subscriber may take to commit what it printed and leave its group."""


def _from_the_first(consumer: KafkaConsumer) -> ConsumerRebalanceListener:
    """--from-beginning means the first change ever, even for a group that has read before: seek
    to the beginning at the group's first assignment (later rebalances resume where it was)."""
    from kafka import ConsumerRebalanceListener  # noqa: PLC0415 - keep --help fast

    # kafka-python ships no type information, so its base class is Any to mypy.
    class FromTheFirst(ConsumerRebalanceListener):  # type: ignore[misc]
        done = False

        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            if not self.done and assigned:
                consumer.seek_to_beginning(*assigned)
                self.done = True

    return FromTheFirst()


def _measures(
    settings: Settings, department: str, *, from_beginning: bool, follow: bool, idle: float, group: str | None
) -> int:
    import sys  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from streams.broker import group_timing  # noqa: PLC0415
    from streams.clients import read_measures  # noqa: PLC0415

    group = None if from_beginning else group or f"measures.{department}"
    how = "from the beginning" if from_beginning else f"as group {group!r}"
    note(f"{department}'s notices on {topics.MEASURES}, {how}" + ("; Ctrl-C to stop" if follow else ""))
    with stop_on_signal() as stop:
        for value in read_measures(
            kafka_address(settings),
            topics.MEASURES,
            department,
            group=group,
            from_beginning=from_beginning,
            follow=follow,
            idle=idle,
            consumer_options=group_timing(settings.kafka_session_timeout),
            stop=stop,
        ):
            sys.stdout.write(value.decode() + "\n")
            sys.stdout.flush()
    return 0


COMMANDS = (publish, outcomes, subscribe)
