"""Read-side subcommands: project, status, lists, subscribe, projections rebuild."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from credit_ledger.config import Settings
from credit_ledger.output import json_line, note, table


def _cli() -> Any:
    from credit_ledger import cli  # noqa: PLC0415 - the CLI module imports this one

    return cli


def _fresh_store(into: Path) -> Path:
    """The store file of a rebuild or replay, emptied first: it is always written from nothing."""
    path = into / "projections.sqlite"
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return path


# -- project -----------------------------------------------------------------------------------


def cmd_project(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.serve import project  # noqa: PLC0415

    return project(settings)


def register_project(sub: Any) -> None:
    _cli()._command(
        sub,
        "project",
        "keep the read models current from credit.ledger (serve starts one for you)",
        cmd_project,
        "Fold credit.ledger into the status, list and due-item tables, publish list changes to\n"
        "credit.list-changes, and (on the member owning partition 0) turn time into the platform's\n"
        "own ledger commands: record expiry, overdue objections, lapsed designations, clean-record\n"
        "entries. CREDIT_SCHEDULER_INTERVAL sets how often, in seconds (default 60).",
    )


# -- status --------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Through the same authorised, recorded path as the HTTP API."""
    cli = _cli()
    service = _service(settings)
    principal = principal_for(service, args.api_key or os.environ.get("CREDIT_API_KEY"))
    moment = None
    if args.as_of:
        try:
            moment = datetime.fromisoformat(args.as_of)
        except ValueError:
            raise cli.UserError(f"--as-of: expected an RFC 3339 time, got {args.as_of!r}") from None
        if moment.tzinfo is None:
            raise cli.UserError("--as-of: give a time zone offset (e.g. +08:00)")
    answer = service.status(
        principal,
        args.code,
        purpose=args.purpose,
        basis=args.basis,
        authorisation_id=args.authorisation,
        channel="cli",
        as_of=moment,
    )
    if not answer.ok:
        raise cli.UserError(f"refused ({answer.body['error']['code']}): {answer.body['error']['message']}")
    view = answer.body
    if args.json:
        json_line(view)
        return 0
    subject = view["subject"]
    print(f"{subject['masked_code']}  {subject['name']}  ({subject['kind']}), as of {view['as_of']}")
    lists = ", ".join(k for k, v in view["lists"].items() if v) or "none"
    print(
        f"lists: {lists}   score: {view['score']['value']}   clean record: {view['clean_record']['eligible']}"
    )
    table(view["records"], ["record", "category", "severity", "domain", "display_until", "open_objection"])
    for bucket in ("in_force", "suspended"):
        if view["sanctions"][bucket]:
            print(f"sanctions {bucket.replace('_', ' ')}: {len(view['sanctions'][bucket])} measures")
    return 0


def register_status(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "status",
        "a subject's credit status now, or as of any past moment",
        cmd_status,
        "Show the subject's current status from the read models, or with --as-of T the status\n"
        "computed by folding the subject's events the ledger had recorded by T.",
    )
    p.add_argument("code", metavar="CODE", help="citizen identity number or unified social credit code")
    p.add_argument("--as-of", metavar="T", help="RFC 3339 time, e.g. 2026-07-01T12:00:00+08:00")
    p.add_argument("--purpose", help="a query purpose from the catalogue (required but for your own file)")
    p.add_argument("--basis", help="the legal basis (departments)")
    p.add_argument("--authorisation", metavar="ID", help="the subject's authorisation id")
    p.add_argument(
        "--api-key", help="the requester's key (default: CREDIT_API_KEY; none: this host's operator)"
    )
    p.add_argument("--json", action="store_true", help="JSON instead of a table")


# -- lists ---------------------------------------------------------------------------------------


def cmd_lists(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.compose import projections_target  # noqa: PLC0415
    from projections.store import ProjectionStore  # noqa: PLC0415

    store = ProjectionStore(projections_target(settings))
    rows = store.members(
        args.list, domain=args.domain, department=args.department, since=args.since, until=args.until
    )
    if args.json:
        for row in rows:
            json_line(row)
        return 0
    table(
        rows,
        [
            "designation_id",
            "masked_code",
            "name",
            "department",
            "document_number",
            "entry_date",
            "valid_until",
            "domains",
        ],
    )
    note(f"{len(rows)} entries on the {args.list} list")
    return 0


def register_lists(sub: Any) -> None:
    p = _cli()._command(
        sub, "lists", "current black-list or red-list entries (identity numbers masked)", cmd_lists
    )
    p.add_argument("list", choices=["black", "red"])
    p.add_argument("--domain", help="only entries resting on records in this domain")
    p.add_argument("--department", help="only entries made by this department")
    p.add_argument("--since", metavar="DATE", help="entered on or after this date (YYYY-MM-DD)")
    p.add_argument("--until", metavar="DATE", help="entered on or before this date (YYYY-MM-DD)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")


# -- subscribe -----------------------------------------------------------------------------------


def cmd_subscribe(args: argparse.Namespace, settings: Settings) -> int:
    import getpass  # noqa: PLC0415

    import orjson  # noqa: PLC0415
    from kafka import KafkaConsumer  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from streams.broker import group_timing  # noqa: PLC0415

    bootstrap = _cli()._bootstrap(settings)
    group = args.group or f"subscriber.{getpass.getuser()}"
    consumer = KafkaConsumer(
        topics.LIST_CHANGES,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **group_timing(settings.kafka_session_timeout),
    )
    note(f"subscribed to {topics.LIST_CHANGES} as group {group!r}; Ctrl-C to stop")
    try:
        for record in consumer:
            change = orjson.loads(record.value)
            if args.list and change.get("list") != args.list:
                continue
            json_line(change)
    finally:
        consumer.close()
    return 0


def register_subscribe(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "subscribe",
        "follow list changes (entries into and exits from the lists) as JSON lines",
        cmd_subscribe,
        "Join a consumer group on credit.list-changes and print every change as a JSON line:\n"
        "list (black, red, clean), change (entry/exit), subject key, masked code, reason, basis,\n"
        "effective time and the ledger event that caused it. The group remembers where you were.",
    )
    p.add_argument("feed", choices=["list-changes"], help="what to follow")
    p.add_argument(
        "--from-beginning", action="store_true", help="start with the first change ever (new groups)"
    )
    p.add_argument("--list", choices=["black", "red", "clean"], help="only this list")
    p.add_argument("--group", help="consumer group (default subscriber.$USER)")


# -- projections rebuild -------------------------------------------------------------------------


def cmd_projections(args: argparse.Namespace, settings: Settings) -> int:
    from credit_ledger.compose import projections_target  # noqa: PLC0415
    from ledger.domain.catalogue import load_catalogue  # noqa: PLC0415
    from projections.compare import diff_states  # noqa: PLC0415
    from projections.store import ProjectionStore  # noqa: PLC0415
    from streams.rebuild import rebuild_from_topic  # noqa: PLC0415

    bootstrap = _cli()._bootstrap(settings)
    into = Path(args.into) if args.into else settings.data_dir / f"rebuild-{int(time.time())}"
    into.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    catalogue = load_catalogue(settings.catalogue)
    fresh, events = rebuild_from_topic(bootstrap, ProjectionStore(_fresh_store(into)), catalogue)
    seconds = time.monotonic() - started
    live = ProjectionStore(projections_target(settings))
    diffs = diff_states(live.states(), fresh.states())
    for diff in diffs:
        json_line(diff)
    summary = {
        "events": events,
        "seconds": round(seconds, 2),
        "rebuilt": fresh.counts(),
        "live": live.counts(),
        "differences": len(diffs),
        "into": str(into),
    }
    json_line(summary)
    note(
        "rebuild equals the live views"
        if not diffs
        else f"rebuild differs from the live views in {len(diffs)} places"
    )
    return 1 if diffs else 0


def register_projections(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "projections",
        "rebuild every view from credit.ledger into a fresh store and compare",
        cmd_projections,
        "Read credit.ledger from the beginning (the end is where fetches come back empty, never an\n"
        "end offset), fold it into a fresh store, report counts, and print every difference from the\n"
        "live views as JSON lines (subject, view, field, expected, found). Exit 1 if any.",
    )
    p.add_argument("action", choices=["rebuild"])
    p.add_argument(
        "--into", metavar="DIR", help="where the fresh store goes (default DATA_DIR/rebuild-<time>)"
    )


COMMANDS: list[Callable[[Any], None]] = [
    register_project,
    register_status,
    register_lists,
    register_subscribe,
    register_projections,
]


# -- the authorised path (shared with access_commands) ----------------------------------------


def _service(settings: Settings) -> Any:
    from credit_ledger.compose import build_ledger, build_query_service, build_store  # noqa: PLC0415

    return build_query_service(build_ledger(settings), build_store(settings))


def principal_for(service: Any, api_key: str | None) -> Any:
    """The CLI caller: the holder of CREDIT_API_KEY / --api-key, or this host's operator."""
    import getpass  # noqa: PLC0415

    from ledger.domain.access import Principal  # noqa: PLC0415

    if api_key:
        principal = service.authenticate(api_key)
        if principal is None:
            raise _cli().UserError("the API key is not valid (revoked, or not issued here)")
        return principal
    return Principal(f"cli:{getpass.getuser()}", "administrator", "credit_platform")


# -- replay --------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    import sys  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from credit_ledger.compose import build_ledger, projections_target  # noqa: PLC0415
    from projections.compare import diff_states  # noqa: PLC0415
    from projections.rebuild import write  # noqa: PLC0415
    from projections.replay import check_recorded_queries, replay  # noqa: PLC0415
    from projections.store import ProjectionStore  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    cli = _cli()
    bootstrap = cli._bootstrap(settings)
    ledger = build_ledger(settings)
    subject_key = str(ledger.key_of(cli._code(args.subject, ledger))) if args.subject else None
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        raise cli.UserError("--as-of: give a time zone offset (e.g. +08:00)")
    started = time.monotonic()

    def progress(count: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rreplayed {count:,} events ({count / (time.monotonic() - started):,.0f}/s)")

    # The query register first: the subjects whose answered statuses must be reproduced.
    queries = [
        orjson.loads(r.value)["body"]["record"]
        for r in read_topic(bootstrap, topics.QUERY_AUDIT, idle=args.idle)
    ]
    if as_of is not None:
        queries = [q for q in queries if datetime.fromisoformat(q["recorded_at"]) <= as_of]
    wanted = {q["subject_key"] for q in queries if q.get("view_digest")}
    states, histories, events = replay(
        (orjson.loads(r.value) for r in read_topic(bootstrap, topics.LEDGER, idle=args.idle)),
        as_of=as_of,
        subject_key=subject_key,
        keep_history_for=wanted,
        progress=progress,
    )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    into = Path(args.into) if args.into else settings.data_dir / f"replay-{int(time.time())}"
    into.mkdir(parents=True, exist_ok=True)
    store = ProjectionStore(_fresh_store(into))
    write(store, states, ledger.catalogue)
    if args.against:
        reference = list(ProjectionStore(Path(args.against) / "projections.sqlite").states())
        compared_with = args.against
    elif as_of is None:
        live = ProjectionStore(projections_target(settings)).states()
        reference = [s for s in live if subject_key is None or s["subject_key"] == subject_key]
        compared_with = "live views"
    else:
        reference, compared_with = (
            list(store.states()),
            "nothing (give --against a replay made --as-of the same time)",
        )
    diffs = diff_states(reference, store.states())
    mismatched = check_recorded_queries(
        queries if subject_key is None else [q for q in queries if q.get("subject_key") == subject_key],
        histories,
        ledger.catalogue,
    )
    for diff in [*diffs, *mismatched]:
        json_line(diff)
    json_line(
        {
            "events": events,
            "subjects": len(states),
            "seconds": round(time.monotonic() - started, 2),
            "compared_with": compared_with,
            "differences": len(diffs),
            "recorded_status_queries_checked": sum(1 for q in queries if q.get("view_digest")),
            "recorded_status_queries_not_reproduced": len(mismatched),
            "into": str(into),
        }
    )
    ok = not diffs and not mismatched
    note(
        "replay equals " + compared_with + "; every recorded answer reproduced"
        if ok
        else "replay found differences"
    )
    return 0 if ok else 1


def register_replay(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "replay",
        "auditors: rebuild history from credit.ledger and compare; reproduce recorded answers",
        cmd_replay,
        "Read credit.ledger from the beginning with kafka-python (assigned partitions; the end is\n"
        "where fetches come back empty for --idle seconds, never an end offset), fold it into a fresh\n"
        "store, and print every difference from the live views (or from a previous replay, --against)\n"
        "as JSON lines: subject, view, field, expected, found. Every recorded status answer in\n"
        "credit.query-audit is recomputed from the replayed events and compared with its digest.\n"
        "With --as-of T: the views as the ledger stood at T.",
    )
    p.add_argument("--as-of", metavar="T", help="RFC 3339 time with an offset")
    p.add_argument("--subject", metavar="CODE", help="one subject only")
    p.add_argument(
        "--into", metavar="DIR", help="where the replayed store goes (default DATA_DIR/replay-<time>)"
    )
    p.add_argument(
        "--against", metavar="DIR", help="compare with the store of a previous replay instead of live"
    )
    p.add_argument(
        "--idle", type=float, default=2.0, help="seconds of empty fetches that mean the end (default 2)"
    )


COMMANDS += [register_replay]
