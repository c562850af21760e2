"""Joint measures from the command line: check a subject before approving, report feedback, the figures."""

from __future__ import annotations

import click

from credit_ledger.cli.shared import (
    DAY,
    KAFKA,
    LEDGER,
    answered,
    api_key_option,
    command,
    group,
    json_option,
    kafka_address,
    principal_for,
    read_jsonl,
    with_settings,
)
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note, table

MEASURE_COLUMNS = ["measure", "kind", "list", "designation_id", "state", "notice_id", "why"]
FIGURES = [
    "received",
    "applied",
    "not_applicable",
    "failed",
    "stopped",
    "overdue",
    "late",
    "median_delay_working_days",
    "on_time_rate",
]


@command(
    "check",
    "check a subject before approving: the measures a department must or may apply (recorded)",
    "credit-ledger check 91350100M000100Y43 --department court --business travel_and_consumption "
    "--reference '(2026)闽01执123号'",
    "credit-ledger check 11010519491231002X --department market_regulator --business administrative_licence "
    "--reference XK-2026-0042 --json",
)
@click.argument("code", metavar="CODE")
@click.option("--department", required=True, metavar="NAME", help="the department about to approve")
@click.option("--business", required=True, metavar="TYPE", help="a business type from the catalogue")
@click.option("--reference", required=True, metavar="REF", help="your case or application number")
@api_key_option
@json_option()
@with_settings(*LEDGER)
def check(
    settings: Settings,
    code: str,
    department: str,
    business: str,
    reference: str,
    api_key: str | None,
    as_json: bool,
) -> int:
    """Ask which measures DEPARTMENT must or may apply to CODE for BUSINESS (应查必查): the notices in
    force addressed to it for the measures that bear on that business, mandatory first; the red-list
    incentives and the green channel (容缺受理) of a three-year clean record; or none. Each comes with
    its catalogue basis. The check is recorded in the query register before it is answered
    (docs/measures.md#check-before-approve); the subject sees it among their queries.
    """
    from credit_ledger.compose import open_measures_service  # noqa: PLC0415 - keep --help fast

    service = open_measures_service(settings)
    answer = service.check(
        principal_for(service.queries, api_key),
        code,
        business=business,
        reference=reference,
        department=department,
        channel="cli",
    )
    body = answered(answer)
    if as_json:
        json_line(body)
        return 0
    subject = body["subject"]
    print(
        f"{subject['masked_code']}  {subject.get('name') or ''}  checked by {body['department']} for "
        f"{body['business']['code']} ({body['business']['title']}), reference {body['reference']}"
    )
    if body["result"] == "none":
        print("none: no measure to apply for this business")
    for title in ("sanctions", "incentives"):
        if body[title]:
            print(f"{title}:")
            table(body[title], MEASURE_COLUMNS)
    others = body["other_notices_in_force"]
    if others:
        note(f"{others} other notices in force for {body['department']} (for other business)")
    return 0


@group(
    "measures",
    "joint measures: supervision figures of the notices and their feedback",
    "credit-ledger measures stats --department court --since 2026-01-01",
)
def measures() -> None:
    """Joint rewards and sanctions: notices issued to implementing departments and their feedback."""


@command(
    "stats",
    "per department and measure: received, applied, overdue, delay, on-time rate (recorded)",
    "credit-ledger measures stats",
    "credit-ledger measures stats --department court --since 2026-07-01 --until 2026-12-31 --json",
)
@click.option("--department", metavar="NAME", help="only this implementing department's notices")
@click.option("--since", type=DAY, help="notices issued on or after this date (YYYY-MM-DD)")
@click.option("--until", type=DAY, help="notices issued on or before this date (YYYY-MM-DD)")
@api_key_option
@json_option("one JSON object instead of tables")
@with_settings(*LEDGER)
def stats(
    settings: Settings,
    department: str | None,
    since: str | None,
    until: str | None,
    api_key: str | None,
    as_json: bool,
) -> int:
    """Supervision of joint measures (跟踪问效): per implementing department and per measure, the
    notices received, applied, not applicable, failed, stopped, overdue and late, the median
    feedback delay in working days and the share of mandatory notices applied on time (奖惩到位率).
    Read from the read models and recorded in the query register (docs/measures.md#supervision).
    """
    from credit_ledger.compose import open_measures_service  # noqa: PLC0415

    service = open_measures_service(settings)
    answer = service.stats(
        principal_for(service.queries, api_key),
        department=department,
        since=since,
        until=until,
        channel="cli",
    )
    body = answered(answer)
    if as_json:
        json_line(body)
        return 0
    totals = body["totals"]
    print(
        f"as of {body['as_of']}: "
        + "  ".join(f"{k} {'-' if totals[k] is None else totals[k]}" for k in FIGURES)
    )
    if not body["by_department"] and not body["by_measure"]:
        note(f"no measure notices yet{' matching these filters' if department or since or until else ''}")
        return 0
    table(body["by_department"], ["department", *FIGURES])
    print()
    table(body["by_measure"], ["measure", "kind", *FIGURES])
    return 0


@command(
    "feedback",
    "report feedback on measure notices (JSON lines of report_feedback) to credit.submissions",
    "credit-ledger feedback court-feedback.jsonl --department court",
    "echo '{...}' | credit-ledger feedback - --kafka-bootstrap 127.0.0.1:46955",
)
@click.argument("file", metavar="FILE")
@click.option(
    "--department", metavar="NAME", help="fill in this department where missing; refuse lines of another"
)
@with_settings(*KAFKA)
def feedback(settings: Settings, file: str, department: str | None) -> int:
    """Publish one report_feedback submission per line of FILE (- for standard input), as the
    implementing department a notice was addressed to (docs/measures.md#feedback): applied,
    not_applicable, failed, or stopped after a withdrawal. A line without an action is taken as
    report_feedback; a line with another action is refused here and not sent. Read the outcomes
    back with 'credit-ledger outcomes --department NAME'.
    """
    from contract import topics  # noqa: PLC0415 - keep --help fast
    from streams.clients import publish  # noqa: PLC0415

    report = publish(
        kafka_address(settings),
        read_jsonl(file),
        topics.SUBMISSIONS,
        department=department,
        action="report_feedback",
        on_refusal=lambda why: note(f"not sent: {why}"),
    )
    json_line({"sent": report.sent, "refused": report.refused, "failed": report.failed})
    return 0 if report.failed == 0 and report.refused == 0 else 1


measures.add_command(stats)

COMMANDS = (check, measures, feedback)
