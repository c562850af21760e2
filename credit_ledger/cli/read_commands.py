"""The read side: status, lists, and rebuilding the views (projections rebuild, replay) to compare."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from credit_ledger.cli.shared import (
    DAY,
    KAFKA,
    LEDGER,
    MOMENT,
    SUBJECT_CODE,
    answered,
    api_key_option,
    command,
    group,
    host_operator,
    idle_option,
    json_option,
    kafka_address,
    principal_for,
    with_settings,
)
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note, table

if TYPE_CHECKING:
    from ledger.domain.subjects import SubjectCode


@command(
    "status",
    "a subject's credit status now, or as of any past moment",
    "credit-ledger status 11010519491231002X --purpose judicial_enforcement --basis '(2026)京01执123号'",
    "credit-ledger status 91350100M000100Y43 --purpose supervision_inspection "
    "--as-of 2026-11-22T02:38:14+00:00 --json",
)
@click.argument("code", metavar="CODE")
@click.option("--as-of", type=MOMENT, help="RFC 3339 time, e.g. 2026-07-01T12:00:00+08:00")
@click.option(
    "--purpose", metavar="NAME", help="a query purpose from the catalogue (required but for your own file)"
)
@click.option("--basis", metavar="TEXT", help="the legal basis (departments)")
@click.option("--authorisation", metavar="ID", help="the subject's authorisation id")
@api_key_option
@json_option()
@with_settings(*LEDGER)
def status(
    settings: Settings,
    code: str,
    as_of: datetime | None,
    purpose: str | None,
    basis: str | None,
    authorisation: str | None,
    api_key: str | None,
    as_json: bool,
) -> int:
    """Show the status of CODE from the read models, or with --as-of T the status computed by
    folding the subject's events the ledger had recorded by T. Authorised and recorded as the HTTP
    API's queries are (docs/queries.md): the query register notes who asked, why and under what
    basis, even when the answer is a refusal. --purpose is one of the catalogue's query purposes:
    'credit-ledger purposes' lists them, with what each needs (--basis, --authorisation, or either).
    """
    from credit_ledger.compose import open_query_service  # noqa: PLC0415 - keep --help fast

    service = open_query_service(settings)
    answer = service.status(
        principal_for(service, api_key),
        code,  # the service parses it, so that a query for a bad code is recorded too
        purpose=purpose,
        basis=basis,
        authorisation_id=authorisation,
        channel="cli",
        as_of=as_of,
    )
    view = answered(answer)
    if as_json:
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


@command(
    "lists",
    "current black-list or red-list entries (identity numbers masked)",
    "credit-ledger lists black",
    "credit-ledger lists red --domain taxation --since 2026-01-01 --json",
)
@click.argument("list_name", metavar="LIST", type=click.Choice(["black", "red"]))
@click.option("--domain", metavar="NAME", help="only entries resting on records in this domain")
@click.option("--department", metavar="NAME", help="only entries made by this department")
@click.option("--since", type=DAY, help="entered on or after this date (YYYY-MM-DD)")
@click.option("--until", type=DAY, help="entered on or before this date (YYYY-MM-DD)")
@json_option("JSON lines instead of a table")
@with_settings(*LEDGER)
def lists(
    settings: Settings,
    list_name: str,
    domain: str | None,
    department: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> int:
    """Print the current entries of the black or red LIST from the read models. Read as this
    host's operator and recorded in the query register as the HTTP API's list reads are (endpoint
    lists, channel cli); if the record cannot be written, nothing is printed.
    """
    from credit_ledger.compose import open_query_service  # noqa: PLC0415

    service = open_query_service(settings)
    filters = {"domain": domain, "department": department, "since": since, "until": until}
    # A person's name is sealed in the read models too: the service opens it once recorded.
    rows = answered(service.lists(host_operator(), list_name, filters, channel="cli"))["entries"]
    if as_json:
        for row in rows:
            json_line(row)
        return 0
    if not rows:  # no header over nothing: say so once
        filtered = any((domain, department, since, until))
        note(f"no entries on the {list_name} list{' matching these filters' if filtered else ''}")
        return 0
    columns = ["designation_id", "masked_code", "name", "department", "document_number"]
    table(rows, [*columns, "entry_date", "valid_until", "domains"])
    note(f"{len(rows)} {'entry' if len(rows) == 1 else 'entries'} on the {list_name} list")
    return 0


@group(
    "projections",
    "rebuild every view from credit.ledger into a fresh store and compare",
    "credit-ledger projections rebuild --into /tmp/rebuilt",
)
def projections() -> None:
    """The read models (status, lists, due items): rebuild them from credit.ledger and compare."""


@command(
    "rebuild",
    "rebuild every view from credit.ledger into a fresh store and compare",
    "credit-ledger projections rebuild --into /tmp/rebuilt",
)
@click.option(
    "--into", metavar="DIR", type=Path, help="where the fresh store goes (default DATA_DIR/rebuild-<time>)"
)
@with_settings(*LEDGER, *KAFKA)
def rebuild(settings: Settings, into: Path | None) -> int:
    """Read credit.ledger from the beginning (the end is where fetches come back empty, never an
    end offset), fold it into a fresh store, report counts, and print every difference from the
    live views as JSON lines (subject, view, field, expected, found). Exit status 1 if any.
    """
    from credit_ledger.compose import build_ledger, build_store, fresh_store, index_names  # noqa: PLC0415
    from credit_ledger.progress import progress  # noqa: PLC0415
    from projections.compare import compare_stores  # noqa: PLC0415
    from streams.rebuild import rebuild_from_topic  # noqa: PLC0415

    bootstrap = kafka_address(settings)
    into = into or settings.data_dir / f"rebuild-{int(time.time())}"
    started = time.monotonic()
    ledger = build_ledger(settings)  # its key ring opens the names the blind index is built from
    with progress("events rebuilt") as advance:
        fresh, events = rebuild_from_topic(
            bootstrap, index_names(fresh_store(into), ledger), ledger.catalogue, progress=advance
        )
    seconds = time.monotonic() - started
    live = build_store(settings)
    diffs = compare_stores(live, fresh)  # states and every derived feed (list changes, ...)
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


projections.add_command(rebuild)


@command(
    "replay",
    "auditors: rebuild history from credit.ledger and compare; reproduce recorded answers",
    "credit-ledger replay",
    "credit-ledger replay --as-of 2026-07-01T00:00:00+08:00 --into /tmp/july",
    "credit-ledger replay --as-of 2026-07-01T00:00:00+08:00 --against /tmp/july",
)
@click.option("--as-of", type=MOMENT, help="RFC 3339 time with an offset")
@click.option("--subject", type=SUBJECT_CODE, help="one subject only")
@click.option(
    "--into", metavar="DIR", type=Path, help="where the replayed store goes (default DATA_DIR/replay-<time>)"
)
@click.option("--against", metavar="DIR", help="compare with the store of a previous replay instead of live")
@idle_option("each topic")
@with_settings(*LEDGER, *KAFKA)
def replay(
    settings: Settings,
    as_of: datetime | None,
    subject: SubjectCode | None,
    into: Path | None,
    against: str | None,
    idle: float,
) -> int:
    """Read credit.ledger from the beginning with kafka-python (assigned partitions; the end is
    where fetches come back empty for --idle seconds, never an end offset), fold it into a fresh
    store, and print every difference from the live views (or from a previous replay, --against) as
    JSON lines: subject, view, field, expected, found. Every recorded status answer in
    credit.query-audit is recomputed from the replayed events and compared with its digest.

    With --as-of T: the views as the ledger stood at T.
    """
    import orjson  # noqa: PLC0415

    from contract import topics  # noqa: PLC0415
    from credit_ledger.compose import (  # noqa: PLC0415
        build_ledger,
        build_store,
        fresh_store,
        index_names,
        store_in,
    )
    from credit_ledger.progress import progress  # noqa: PLC0415
    from projections.compare import diff_states  # noqa: PLC0415
    from projections.rebuild import write  # noqa: PLC0415
    from projections.replay import check_recorded_queries  # noqa: PLC0415
    from projections.replay import replay as fold  # noqa: PLC0415
    from streams.clients import read_topic  # noqa: PLC0415

    bootstrap = kafka_address(settings)
    ledger = build_ledger(settings)
    subject_key = str(ledger.key_of(subject)) if subject else None
    started = time.monotonic()

    # The query register first: the subjects whose answered statuses must be reproduced.
    queries = [
        orjson.loads(r.value)["body"]["record"] for r in read_topic(bootstrap, topics.QUERY_AUDIT, idle=idle)
    ]
    if as_of is not None:
        queries = [q for q in queries if datetime.fromisoformat(q["recorded_at"]) <= as_of]
    wanted = {q["subject_key"] for q in queries if q.get("view_digest")}
    with progress("events replayed") as advance:
        states, histories, events = fold(
            (orjson.loads(r.value) for r in read_topic(bootstrap, topics.LEDGER, idle=idle)),
            as_of=as_of,
            subject_key=subject_key,
            keep_history_for=wanted,
            progress=advance,
        )
    into = into or settings.data_dir / f"replay-{int(time.time())}"
    store = index_names(fresh_store(into), ledger)
    write(store, states, ledger.catalogue)
    if against:
        reference = list(store_in(Path(against)).states())
        compared_with = against
    elif as_of is None:
        live = build_store(settings).states()
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


COMMANDS = (status, lists, projections, replay)
