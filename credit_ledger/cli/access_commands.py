"""Access commands: API keys, and the query register (who queried what) with anomaly hints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from credit_ledger.cli.shared import (
    LEDGER,
    SUBJECT_CODE,
    UserError,
    api_key_option,
    command,
    group,
    principal_for,
    with_settings,
)
from credit_ledger.config import Settings
from credit_ledger.output import json_line, note
from ledger.domain.access import ROLES

if TYPE_CHECKING:
    from ledger.domain.subjects import SubjectCode


@group(
    "keys",
    "issue, list and revoke API keys (stored hashed) bound to a principal",
    "credit-ledger keys issue --role department --organisation tax_bureau --label 稽查科",
    "credit-ledger keys list",
)
def keys() -> None:
    """API keys for the query API, stored hashed in the ledger's database. Callers send the key as
    'Authorization: Bearer KEY' (or X-API-Key); without one they are the public.
    """


@command(
    "issue",
    "issue a key and print it (only its hash is kept)",
    "credit-ledger keys issue --role department --organisation tax_bureau --label 稽查科",
    "credit-ledger keys issue --role authorised_org --organisation bank-fz-001",
    "credit-ledger keys issue --role subject --subject 11010519491231002X",
)
@click.option(
    "--role",
    type=click.Choice([role for role in ROLES if role != "public"]),
    default="department",
    show_default=True,
    help="department; authorised_org (bank, employer, licensing office); subject (a person seeing "
    "their own file: give --subject); auditor; administrator",
)
@click.option(
    "--organisation",
    default="",
    metavar="NAME",
    help="the holder's organisation (a department's catalogue name)",
)
@click.option("--label", help="who holds it (kept with the key, never logged)")
@click.option("--subject", type=SUBJECT_CODE, help="for role subject: whose file")
@with_settings(*LEDGER)
def issue(
    settings: Settings, role: str, organisation: str, label: str | None, subject: SubjectCode | None
) -> int:
    """Issue an API key bound to a principal (role and organisation) and print it once."""
    from credit_ledger.compose import open_query_service  # noqa: PLC0415 - keep --help fast
    from ledger.application.keys import KeyRefused, issue_key  # noqa: PLC0415

    service = open_query_service(settings)
    try:
        key_id, key = issue_key(
            service.ledger.keys,
            role=role,
            organisation=organisation,
            label=label or organisation,
            subject_key=str(service.ledger.key_of(subject)) if subject else None,
            now=datetime.now(UTC),
            departments=service.catalogue.latest.departments,
        )
    except KeyRefused as exc:
        raise UserError(str(exc)) from None
    json_line({"key_id": key_id, "key": key, "role": role, "organisation": organisation})
    note("store the key now: only its hash is kept, it cannot be shown again")
    return 0


@command("list", "list every key (ids, roles, organisations; never the keys)", "credit-ledger keys list")
@with_settings(*LEDGER)
def list_keys(settings: Settings) -> int:
    """Print every key issued here as JSON lines: id, role, organisation, label, when made and revoked."""
    from credit_ledger.compose import open_query_service  # noqa: PLC0415

    service = open_query_service(settings)  # held: the ledger closes its database when dropped
    rows = list(service.ledger.keys.api_keys())
    for row in rows:
        json_line(row)
    if not rows:
        note("no API keys issued here yet ('credit-ledger keys issue' makes one)")
    return 0


@command("revoke", "revoke a key: it stops working within a second", "credit-ledger keys revoke KEY_ID")
@click.argument("key_id", metavar="KEY_ID")
@with_settings(*LEDGER)
def revoke(settings: Settings, key_id: str) -> int:
    """Revoke the key KEY_ID (as 'keys list' shows it); a running server refuses it within a second."""
    from credit_ledger.compose import open_query_service  # noqa: PLC0415

    service = open_query_service(settings)  # held: the ledger closes its database when dropped
    if not service.ledger.keys.revoke_key(key_id, datetime.now(UTC).isoformat()):
        raise UserError(f"no active key {key_id!r}")
    note(f"key {key_id} revoked")
    return 0


for keys_command in (issue, list_keys, revoke):
    keys.add_command(keys_command)


@group(
    "audit",
    "search the query register (who queried what, when, why) with anomaly hints",
    "credit-ledger audit queries --subject 11010519491231002X",
)
def audit() -> None:
    """The query register: every status query, allowed or refused, with who asked and why."""


@command(
    "queries",
    "search the query register (who queried what, when, why) with anomaly hints",
    "credit-ledger audit queries --subject 11010519491231002X",
    "credit-ledger audit queries --organisation bank-fz-001 --since 2026-11-01T00:00:00+08:00",
)
@click.option("--requester", metavar="ID", help="only this requester's queries (a key id, or cli:USER)")
@click.option("--organisation", metavar="NAME", help="only this organisation's queries")
@click.option("--subject", type=SUBJECT_CODE, help="only queries about this subject")
@click.option("--purpose", metavar="NAME", help="only queries for this purpose")
@click.option("--since", metavar="TIME", help="recorded at or after this time")
@click.option("--until", metavar="TIME", help="recorded at or before this time")
@api_key_option
@with_settings(*LEDGER)
def queries(
    settings: Settings,
    requester: str | None,
    organisation: str | None,
    subject: SubjectCode | None,
    purpose: str | None,
    since: str | None,
    until: str | None,
    api_key: str | None,
) -> int:
    """Print query records as JSON lines; anomaly hints (unusual volume, queries with no filing
    after, repeated refusals) go to stderr. Needs an auditor's key (--api-key or CREDIT_API_KEY),
    or runs as this host's operator.
    """
    from credit_ledger.compose import open_query_service  # noqa: PLC0415
    from ledger.domain.access import Principal  # noqa: PLC0415

    service = open_query_service(settings)
    principal = principal_for(service, api_key)
    if principal.role == "administrator" and principal.principal_id.startswith("cli:"):
        # The host's operator audits (an administrator's key would not be allowed to).
        principal = Principal(principal.principal_id, "auditor", "credit_platform", host=principal.host)
    answer = service.audit(
        principal,
        {
            "requester": requester,
            "organisation": organisation,
            "subject_key": str(service.ledger.key_of(subject)) if subject else None,
            "purpose": purpose,
            "since": since,
            "until": until,
        },
        channel="cli",
    )
    if not answer.ok:
        raise UserError(answer.body["error"]["message"])
    for row in answer.body["queries"]:
        json_line(row)
    if not answer.body["queries"]:
        filtered = any((requester, organisation, subject, purpose, since, until))
        note(f"no queries recorded{' matching these filters' if filtered else ''}")
    for hint in answer.body["hints"]:
        note(hint_line(hint))
    return 0


audit.add_command(queries)

COMMANDS = (keys, audit)


def hint_line(hint: dict[str, object]) -> str:
    """One anomaly hint as a person reads it: what, who, the figures, the rule (JSON is on stdout)."""
    kind, rule = hint.get("hint"), hint.get("rule")
    figures = ", ".join(f"{k} {v}" for k, v in hint.items() if k not in ("hint", "rule"))
    return f"hint ({kind}): {figures}; rule: {rule}"


@command(
    "rotate-master",
    "re-wrap every data key under a new master key (no event is touched)",
    "credit-ledger keys rotate-master",
    "credit-ledger keys rotate-master --new-key-file new-master.key",
)
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a file holding the new key (64 hex digits); else CREDIT_NEW_MASTER_KEY, else the key a "
    "rotation cut short left staged, else a fresh random key",
)
@with_settings(*LEDGER, "master_key", "new_master_key")
def rotate_master(settings: Settings, new_key_file: Path | None) -> int:
    """Re-wrap every live data key under a new master key, then make it the key: DATA_DIR/master.key
    is replaced once the re-wrap is committed (the old key is kept as master.key.old until then).
    With CREDIT_MASTER_KEY the new key is left in DATA_DIR/master.key.new: put it in the secret
    store, delete the file, restart. Refused while a serve runs on the data dir. Running it again
    after an interruption finishes the rotation. Events are never touched (docs/privacy.md).
    """
    from credit_ledger.masterkey import rotate_master_key  # noqa: PLC0415 - keep --help fast

    try:
        new_key = new_key_file.read_text() if new_key_file is not None else settings.new_master_key
    except OSError as exc:
        raise UserError(f"--new-key-file: {exc.strerror}: {new_key_file}") from None
    done = rotate_master_key(settings, new_key)
    json_line(
        {
            "rewrapped": done.rewrapped,
            "previous_master_key": done.previous,
            "master_key": done.current,
            "key_file": str(done.key_file),
            "installed": done.installed,
        }
    )
    where = (
        f"installed in {done.key_file}"
        if done.installed
        else f"staged in {done.key_file}: set CREDIT_MASTER_KEY to it, delete the file, restart"
    )
    note(
        f"{done.rewrapped} data keys re-wrapped from master key {done.previous} to {done.current}; "
        f"the new key is {where}. Back it up now: database backups taken from now on need it"
    )
    return 0


keys.add_command(rotate_master)
