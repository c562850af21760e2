"""Commands on the ledger itself, without Kafka: apply, file, schema, purposes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from credit_ledger.cli.shared import (
    LEDGER,
    SUBJECT_CODE,
    UserError,
    answered,
    command,
    host_operator,
    json_option,
    operator_purpose_option,
    read_jsonl,
    with_settings,
)
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note, table

if TYPE_CHECKING:
    from ledger.application.service import CreditLedger
    from ledger.domain.subjects import SubjectCode


@command(
    "apply",
    "apply submissions from a JSON-lines file straight to the ledger (no Kafka)",
    "credit-ledger apply examples.jsonl",
    "credit-ledger apply bulk.jsonl --quiet --batch-size 2000",
)
@click.argument("file", metavar="FILE")
@click.option("--quiet", is_flag=True, help="print only the summary")
@with_settings(*LEDGER, "batch_size")
def apply(settings: Settings, file: str, quiet: bool) -> int:
    """Apply submissions (one JSON object per line of FILE, - for standard input) directly to the
    ledger, in batches, and print one outcome per submission as JSON lines. Useful for bulk loads
    and for trying the format.
    """
    from credit_ledger.compose import build_ledger, tune_gc  # noqa: PLC0415 - keep --help fast

    tune_gc()
    ledger = build_ledger(settings)
    counts = {"accepted": 0, "rejected": 0, "duplicate": 0}
    batch: list[bytes] = []

    def flush() -> None:
        for outcome in ledger.submit_safely(batch):  # a bug in one line never ends the run
            counts["duplicate" if outcome.duplicate else outcome.status] += 1
            if not quiet:
                json_line(outcome.to_dict())
        batch.clear()

    for line in read_jsonl(file):
        batch.append(line)
        if len(batch) >= settings.batch_size:
            flush()
    flush()
    note(
        f"applied: {counts['accepted']} accepted, {counts['rejected']} rejected, "
        f"{counts['duplicate']} duplicates"
    )
    return 0


@command(
    "file",
    "show one subject's credit file (identity numbers masked; the read is recorded)",
    "credit-ledger file 11010519491231002X",
    "credit-ledger file 91350100M000100Y43 --json",
    "credit-ledger file 11010519491231002X --purpose 'objection review OB-2026-0007'",
)
@click.argument("code", metavar="CODE", type=SUBJECT_CODE)
@operator_purpose_option("the file")
@json_option()
@with_settings(*LEDGER)
def file(settings: Settings, code: SubjectCode, purpose: str, as_json: bool) -> int:
    """Show the credit file of CODE (a citizen identity number or unified social credit code):
    every record with its category, kind, severity, status and display period, and the joint
    measures notified against it: each measure's state and each implementing department's feedback.

    This is the host's operator reading the file with the host's master key, so the read is
    recorded in the query register before anything is shown (docs/queries.md#the-operators-reads):
    you (the OS user, cli:USER, and this host), as the platform's administrator, channel cli,
    endpoint file, the --purpose, the subject, the outcome and the answer's digest. The subject
    sees it among their queries. If the record cannot be written, nothing is shown (exit status 1).
    """
    from credit_ledger.compose import open_query_service  # noqa: PLC0415 - keep --help fast
    from ledger.application.queries import NOT_FOUND  # noqa: PLC0415

    service = open_query_service(settings)
    answer = service.file(host_operator(), code, lambda: _file_body(service.ledger, code), purpose=purpose)
    if answer.outcome == NOT_FOUND:
        raise UserError(f"no credit file for {code.masked}")
    shown = answered(answer)
    if as_json:
        json_line({k: v for k, v in shown.items() if k != "kind"})
        return 0
    print(f"{shown['subject']}  {shown['name']}  ({shown['kind']}, {shown['version']} events)")
    columns = ["record", "category", "kind", "severity", "status", "disputed", "display_until", "title"]
    table(shown["records"], columns)
    measures = shown["measures"]
    if measures:
        print(f"measures notified: {len(measures)}")
        rows = [
            {**m, "feedback": " ".join(f"{d}:{f or '-'}" for d, f in m["departments"].items())}
            for m in measures
        ]
        table(rows, ["designation_id", "measure", "kind", "state", "state_version", "feedback"])
    return 0


def _file_body(ledger: CreditLedger, code: SubjectCode) -> dict[str, Any] | None:
    """The file of ``code`` as the ledger holds it (sealed fields sealed), None if there is none."""
    from ledger.application.measures import file_measures  # noqa: PLC0415

    try:
        found = ledger.file_of(code)
    except Exception as exc:  # a stored stream that no longer replays (tampered, truncated)
        raise UserError(
            f"the file of {code.masked} cannot be replayed ({type(exc).__name__}); "
            "run 'credit-ledger verify --subject CODE' to locate the damage"
        ) from None
    if found is None:
        return None
    records = [
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
        for r in found.records.values()
    ]
    return {
        "subject": found.masked_code,
        "name": found.name,
        "kind": found.subject_kind,
        "version": found.version,
        "records": records,
        "measures": file_measures(found, ledger.catalogue),
    }


@command(
    "schema",
    "print the submission JSON Schema, or the shipped example submissions",
    "credit-ledger schema > submission.schema.json",
    "credit-ledger schema --examples > examples.jsonl   # one example per action, JSON lines",
)
@click.option(
    "--examples",
    "print_examples",
    is_flag=True,
    help="print the example submissions (one per action) as JSON lines instead",
)
def schema(print_examples: bool) -> int:
    """Print the JSON Schema every submission is validated against, as one JSON line; with
    --examples, the example submissions shipped with it (ledger/schema/examples), one per line,
    ready for publish, apply or POST /v1/submissions."""
    from ledger.application.submissions import example_submissions, submission_schema  # noqa: PLC0415

    if print_examples:
        for example in example_submissions():
            json_line(example)
        return 0
    json_line(submission_schema())
    return 0


@command(
    "purposes",
    "list the query purposes a status query may state, and what each needs",
    "credit-ledger purposes",
    "credit-ledger purposes --json",
)
@with_settings("catalogue")
@json_option()
def purposes(settings: Settings, as_json: bool) -> int:
    """The catalogue's query purposes (the edition in force today): the name a status query gives
    with --purpose, what it needs (a legal basis, the subject's authorisation, or either), its title."""
    from credit_ledger.compose import build_catalogue  # noqa: PLC0415

    rows = [
        {
            "purpose": name,
            "needs": rule.get("needs", "basis_or_authorisation"),
            "title": rule.get("title", ""),
        }
        for name, rule in sorted(build_catalogue(settings).latest.query_purposes.items())
    ]
    if as_json:
        for row in rows:
            json_line(row)
        return 0
    table(rows, ["purpose", "needs", "title"])
    return 0


COMMANDS = (apply, file, schema, purposes)
