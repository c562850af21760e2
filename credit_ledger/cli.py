"""The credit-ledger command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from credit_ledger import __version__
from credit_ledger.config import VARIABLES, ConfigError, Settings
from credit_ledger.output import json_line, note, table

DESCRIPTION = """\
credit-ledger: an event-sourced, verifiable ledger of personal public-credit records.

Departments publish credit events (records, corrections, objections, repairs, expiries,
list designations); the ledger keeps every event forever in hash-chained streams, one per
subject; stream processing turns them into status, red and black lists and an audit trail.
With no configuration it runs on one machine: SQLite files in ./data and an embedded
Kafka-compatible broker.
"""

EPILOG = (
    """\
configuration (environment variable = option):
"""
    + "\n".join(
        f"  {v.env:<28} " + (v.flag if v.option else "(environment only: keep secrets off the command line)")
        for v in VARIABLES
    )
    + """

Machine-readable output is JSON lines on stdout (--json where the default is a table);
diagnostics go to stderr; the exit status is non-zero on error.
"""
)

Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit status per kind of failure
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env(**{v.field: getattr(args, v.field, None) for v in VARIABLES})
        handler: Handler = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        note(f"credit-ledger: configuration error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except UserError as exc:
        note(f"credit-ledger: {exc}")
        return 1
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("kafka", "aiokafka", "streams") and not isinstance(
            exc, OSError
        ):
            raise
        # Infrastructure the user can act on (a broker not reachable, a port in use): one line, no trace.
        note(f"credit-ledger: {type(exc).__name__}: {exc}")
        return 1


class UserError(Exception):
    """Something the user can fix (a missing file, a bad code); printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credit-ledger",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"credit-ledger {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    from credit_ledger.access_commands import COMMANDS as ACCESS_COMMANDS  # noqa: PLC0415
    from credit_ledger.audit_commands import COMMANDS as AUDIT_COMMANDS  # noqa: PLC0415
    from credit_ledger.read_commands import COMMANDS as READ_COMMANDS  # noqa: PLC0415

    for register in [*_COMMANDS, *READ_COMMANDS, *ACCESS_COMMANDS, *AUDIT_COMMANDS]:
        register(sub)
    return parser


def common(parser: argparse.ArgumentParser) -> None:
    """Options every command shares; each mirrors a CREDIT_* variable."""
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--data-dir",
        type=Path,
        help="where SQLite files and the subject-key secret live (CREDIT_DATA_DIR, default ./data)",
    )
    group.add_argument(
        "--database-url",
        help="sqlite:///file or postgresql://user:pw@host/db "
        "(CREDIT_DATABASE_URL; default SQLite in the data dir)",
    )
    group.add_argument(
        "--kafka-bootstrap",
        help="host:port of a Kafka cluster (CREDIT_KAFKA_BOOTSTRAP; default: start the embedded broker)",
    )
    group.add_argument("--http-port", type=int, help="HTTP API port (CREDIT_HTTP_PORT, default 8080)")
    group.add_argument(
        "--catalogue", type=Path, help="catalogue JSON file (CREDIT_CATALOGUE; default the shipped one)"
    )
    group.add_argument("--http-host", help="HTTP API bind address (CREDIT_HTTP_HOST, default 127.0.0.1)")
    group.add_argument(
        "--partitions",
        type=int,
        help="partitions per topic when creating topics (CREDIT_PARTITIONS, default 6)",
    )
    group.add_argument(
        "--replication-factor",
        type=int,
        help="topic replication factor (CREDIT_REPLICATION_FACTOR, default 1)",
    )
    group.add_argument(
        "--batch-size", type=int, help="submissions per ledger transaction (CREDIT_BATCH_SIZE, default 1000)"
    )
    group.add_argument(
        "--scheduler-interval",
        type=float,
        help="seconds between the scheduler's rounds (CREDIT_SCHEDULER_INTERVAL, default 60)",
    )
    group.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING or ERROR (CREDIT_LOG_LEVEL, default WARNING)"
    )
    group.add_argument(
        "--health-stall-seconds",
        type=float,
        help="how long the relay, projector or intake may stay behind without moving before "
        "/v1/health reports it stalled (CREDIT_HEALTH_STALL_SECONDS, default 30)",
    )
    group.add_argument(
        "--kafka-session-timeout",
        type=float,
        help="consumer-group session timeout in seconds (CREDIT_KAFKA_SESSION_TIMEOUT, default 6): "
        "a crashed worker's partitions move after it",
    )


def _command(
    sub: Any, name: str, help_text: str, handler: Handler, description: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(parser)
    parser.set_defaults(handler=handler)
    return parser


# -- apply -------------------------------------------------------------------------------------


def _read_jsonl(path: str) -> Iterator[bytes]:
    stream = sys.stdin.buffer if path == "-" else _open(path)
    with stream:
        for line in stream:
            if line.strip():
                yield line.rstrip(b"\r\n")


def _open(path: str) -> Any:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.compose import build_ledger, tune_gc  # noqa: PLC0415 - keep --help fast

    tune_gc()
    ledger = build_ledger(settings)
    counts = {"accepted": 0, "rejected": 0, "duplicate": 0}
    batch: list[bytes] = []

    def flush() -> None:
        for outcome in ledger.submit(batch):
            counts["duplicate" if outcome.duplicate else outcome.status] += 1
            if not args.quiet:
                json_line(outcome.to_dict())
        batch.clear()

    for line in _read_jsonl(args.file):
        batch.append(line)
        if len(batch) >= settings.batch_size:
            flush()
    flush()
    note(
        f"applied: {counts['accepted']} accepted, {counts['rejected']} rejected, "
        f"{counts['duplicate']} duplicates"
    )
    return 0


def register_apply(sub: Any) -> None:
    p = _command(
        sub,
        "apply",
        "apply submissions from a JSON-lines file straight to the ledger (no Kafka)",
        cmd_apply,
        "Apply submissions (one JSON object per line) directly to the ledger, in batches, and print one\n"
        "outcome per submission as JSON lines. Useful for bulk loads and for trying the format.",
    )
    p.add_argument("file", help="JSON-lines file, or - for standard input")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


# -- file --------------------------------------------------------------------------------------


def _code(raw: str, ledger: Any) -> Any:
    from ledger.domain.errors import LedgerError  # noqa: PLC0415
    from ledger.domain.subjects import parse_subject_code  # noqa: PLC0415
    from ledger.domain.workdays import local_date  # noqa: PLC0415

    try:
        return parse_subject_code(raw, today=local_date(ledger.clock()), field="CODE")
    except LedgerError as exc:
        raise UserError(f"CODE: {exc.message}") from None


def cmd_file(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.compose import build_ledger  # noqa: PLC0415

    ledger = build_ledger(settings)
    code = _code(args.code, ledger)
    try:
        file = ledger.file_of(code)
    except Exception as exc:  # a stored stream that no longer replays (tampered, truncated)
        raise UserError(
            f"the file of {code.masked} cannot be replayed ({type(exc).__name__}); "
            "run 'credit-ledger verify --subject CODE' to locate the damage"
        ) from None
    if file is None:
        raise UserError(f"no credit file for {code.masked}")
    rows = [
        {
            "record": r.key,
            "category": r.category,
            "kind": r.kind,
            "severity": r.severity,
            "status": r.status,
            "disputed": r.disputed,
            "display_until": r.display_until,
            "title": r.title,
        }
        for r in file.records.values()
    ]
    if args.json:
        json_line({"subject": file.masked_code, "name": file.name, "version": file.version, "records": rows})
        return 0
    print(f"{file.masked_code}  {file.name}  ({file.subject_kind}, {file.version} events)")
    table(rows, ["record", "category", "kind", "severity", "status", "disputed", "display_until", "title"])
    return 0


def register_file(sub: Any) -> None:
    p = _command(sub, "file", "show one subject's credit file (identity numbers masked)", cmd_file)
    p.add_argument("code", metavar="CODE", help="citizen identity number or unified social credit code")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")


# -- schema ------------------------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.application.submissions import submission_schema  # noqa: PLC0415

    json_line(submission_schema())
    return 0


def register_schema(sub: Any) -> None:
    _command(sub, "schema", "print the submission JSON Schema", cmd_schema)


# -- serve, demo ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.serve import serve  # noqa: PLC0415 - Faust is slow to import

    return serve(
        settings,
        http=not args.no_http,
        relay=not args.no_relay,
        project=not args.no_project,
        loglevel="info" if args.verbose else "warning",
        workers=args.workers,
    )


def register_serve(sub: Any) -> None:
    p = _command(
        sub,
        "serve",
        "run the ledger: broker (embedded unless configured), intake worker, relay, HTTP API",
        cmd_serve,
        "Run the main job in one process: start the embedded Kafka-compatible broker unless\n"
        "CREDIT_KAFKA_BOOTSTRAP is set, create the topics, consume credit.submissions into the\n"
        "ledger, relay ledger events and outcomes to Kafka, and serve the HTTP API.\n"
        "Stops cleanly on Ctrl-C or SIGTERM. --workers N runs N intake processes on this host;\n"
        "run more serve processes with CREDIT_KAFKA_BOOTSTRAP and a shared CREDIT_DATABASE_URL\n"
        "to spread partitions (subjects) across hosts.",
    )
    p.add_argument("--no-http", action="store_true", help="do not serve HTTP (extra workers on one host)")
    p.add_argument("--no-relay", action="store_true", help="do not start a relay (one runs elsewhere)")
    p.add_argument(
        "--no-project", action="store_true", help="do not start a projector (the read side runs elsewhere)"
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="intake processes on this host (default 1): this one and N-1 children, all in the "
        "intake's consumer group, so partitions and their subjects spread across cores; at most "
        "one per core is useful (one process applies at most ~12k submissions/s)",
    )
    p.add_argument("--verbose", action="store_true", help="Faust's own log at INFO level")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.demo import demo  # noqa: PLC0415

    return demo(
        settings,
        rate=args.rate,
        duration=args.duration,
        subjects=args.subjects,
        seed=args.seed,
        as_json=args.json,
    )


def register_demo(sub: Any) -> None:
    p = _command(
        sub,
        "demo",
        "serve, and feed it realistic submissions from six departments with a live summary",
        cmd_demo,
        "Serve (as 'serve' does) and publish generated submissions from the tax bureau, court,\n"
        "market regulator, education, transport and volunteer federation: filings, corrections,\n"
        "objections, repairs and a few bad ones. Every 2 s it prints what was published, accepted\n"
        "and rejected (read back from credit.outcomes) and how many ledger events reached Kafka.",
    )
    p.add_argument("--rate", type=float, default=200.0, help="submissions per second (default 200)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument(
        "--subjects", type=int, default=2000, help="distinct people and organisations (default 2000)"
    )
    p.add_argument("--seed", type=int, help="generator seed (default: the clock)")
    p.add_argument("--json", action="store_true", help="summaries as JSON lines")


def cmd_relay(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.serve import relay  # noqa: PLC0415

    return relay(settings)


def register_relay(sub: Any) -> None:
    _command(
        sub,
        "relay",
        "publish the ledger's events and outcomes to Kafka (serve starts one for you)",
        cmd_relay,
        "Publish the ledger's notification log to credit.ledger and its submission register to\n"
        "credit.outcomes and credit.rejections, in order, from tracked positions. Any number may run;\n"
        "one holds the lease (partition 0 of credit.submissions in group credit-ledger.relay) and\n"
        "publishes, the others stand by. 'serve' starts one as a child process unless --no-relay.",
    )


# -- publish, outcomes -----------------------------------------------------------------------------


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise UserError(
            "no Kafka to talk to: set CREDIT_KAFKA_BOOTSTRAP or --kafka-bootstrap to the address "
            "'credit-ledger serve' printed (the embedded broker lives inside that process)"
        )
    return settings.kafka_bootstrap


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from contract import topics  # noqa: PLC0415
    from streams.clients import PublishReport, publish  # noqa: PLC0415

    bootstrap = _bootstrap(settings)
    started = time.monotonic()

    def progress(report: PublishReport) -> None:
        if sys.stderr.isatty():
            rate = report.sent / max(time.monotonic() - started, 1e-9)
            sys.stderr.write(f"\rpublished {report.sent:,} ({rate:,.0f}/s)")

    report = publish(
        bootstrap,
        _read_jsonl(args.file),
        topics.SUBMISSIONS,
        department=args.department,
        on_progress=progress,
        on_refusal=lambda why: note(f"not sent: {why}"),
    )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    json_line(
        {
            "sent": report.sent,
            "refused": report.refused,
            "failed": report.failed,
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    return 0 if report.failed == 0 and report.refused == 0 else 1


def register_publish(sub: Any) -> None:
    p = _command(
        sub,
        "publish",
        "publish submissions (JSON lines) to credit.submissions, as a department",
        cmd_publish,
        "Publish one submission per line to credit.submissions with acks=all, keyed by the subject's\n"
        "code so each subject stays in order. Lines that are not JSON objects are reported and not sent.\n"
        "Read the outcomes back with 'credit-ledger outcomes'.",
    )
    p.add_argument("file", help="JSON-lines file, or - for standard input")
    p.add_argument("--department", help="fill in this department where missing; refuse lines of another")


def cmd_outcomes(args: argparse.Namespace, settings: Settings) -> int:
    import orjson  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    for record in read_topic(_bootstrap(settings), topics.OUTCOMES, follow=args.follow, idle=args.idle):
        outcome = orjson.loads(record.value)
        if args.department and outcome.get("department") != args.department:
            continue
        if args.status and outcome.get("status") != args.status:
            continue
        json_line(outcome)
    return 0


def register_outcomes(sub: Any) -> None:
    p = _command(
        sub,
        "outcomes",
        "read back accepted and rejected outcomes (JSON lines) from credit.outcomes",
        cmd_outcomes,
        "Print every outcome (accepted with its event ids, rejected with code, field, message and the\n"
        "original submission) from the beginning of credit.outcomes. Without --follow it stops once\n"
        "the topic has been quiet for --idle seconds.",
    )
    p.add_argument("--department", help="only this department's submissions")
    p.add_argument("--status", choices=["accepted", "rejected"], help="only this outcome")
    p.add_argument("--follow", action="store_true", help="keep waiting for new outcomes")
    p.add_argument("--idle", type=float, default=2.0, help="seconds of quiet that mean the end (default 2)")


_COMMANDS: list[Callable[[Any], None]] = [
    register_serve,
    register_demo,
    register_relay,
    register_publish,
    register_outcomes,
    register_apply,
    register_file,
    register_schema,
]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
