"""Access subcommands: API keys and the query register (with anomaly hints)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from credit_ledger.config import Settings
from credit_ledger.output import json_line, note
from credit_ledger.read_commands import _cli, _service, principal_for


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.application.keys import KeyRefused, issue_key  # noqa: PLC0415

    service = _service(settings)
    if args.action == "issue":
        subject_key = None
        if args.subject:
            subject_key = str(service.ledger.key_of(_cli()._code(args.subject, service.ledger)))
        try:
            key_id, key = issue_key(
                service.ledger.keys,
                role=args.role,
                organisation=args.organisation,
                label=args.label or args.organisation,
                subject_key=subject_key,
                now=datetime.now(UTC),
                departments=service.catalogue.latest.departments,
            )
        except KeyRefused as exc:
            raise _cli().UserError(str(exc)) from None
        json_line({"key_id": key_id, "key": key, "role": args.role, "organisation": args.organisation})
        note("store the key now: only its hash is kept, it cannot be shown again")
    elif args.action == "list":
        for row in service.ledger.keys.api_keys():
            json_line(row)
    else:
        if not args.key_id or not service.ledger.keys.revoke_key(args.key_id, datetime.now(UTC).isoformat()):
            raise _cli().UserError(f"no active key {args.key_id!r}")
        note(f"key {args.key_id} revoked")
    return 0


def register_keys(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "keys",
        "issue, list and revoke API keys (stored hashed) bound to a principal",
        cmd_keys,
        "Roles: department, authorised_org (bank, employer, licensing office), subject (a person\n"
        "seeing their own file: give --subject CODE), auditor, administrator. Callers send the key\n"
        "as 'Authorization: Bearer KEY' (or X-API-Key); without one they are the public.",
    )
    p.add_argument("action", choices=["issue", "list", "revoke"])
    p.add_argument("key_id", nargs="?", help="for revoke: the key id")
    p.add_argument("--role", default="department")
    p.add_argument("--organisation", default="")
    p.add_argument("--label", help="who holds it (kept with the key, never logged)")
    p.add_argument("--subject", metavar="CODE", help="for role subject: whose file")


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    service = _service(settings)
    principal = principal_for(service, args.api_key or os.environ.get("CREDIT_API_KEY"))
    if principal.role == "administrator" and principal.principal_id.startswith("cli:"):
        from ledger.domain.access import Principal  # noqa: PLC0415

        principal = Principal(
            principal.principal_id, "auditor", "credit_platform"
        )  # the host's operator audits
    subject_key = None
    if args.subject:
        subject_key = str(service.ledger.key_of(_cli()._code(args.subject, service.ledger)))
    answer = service.audit(
        principal,
        {
            "requester": args.requester,
            "organisation": args.organisation,
            "subject_key": subject_key,
            "purpose": args.purpose,
            "since": args.since,
            "until": args.until,
        },
    )
    if not answer.ok:
        raise _cli().UserError(answer.body["error"]["message"])
    for row in answer.body["queries"]:
        json_line(row)
    for hint in answer.body["hints"]:
        note(f"hint: {hint}")
    return 0


def register_audit(sub: Any) -> None:
    p = _cli()._command(
        sub,
        "audit",
        "search the query register (who queried what, when, why) with anomaly hints",
        cmd_audit,
        "Print query records as JSON lines; anomaly hints (unusual volume, queries with no filing\n"
        "after, repeated refusals) go to stderr. Needs an auditor's key (CREDIT_API_KEY), or runs as\n"
        "this host's operator.",
    )
    p.add_argument("what", choices=["queries"])
    p.add_argument("--requester")
    p.add_argument("--organisation")
    p.add_argument("--subject", metavar="CODE")
    p.add_argument("--purpose")
    p.add_argument("--since", metavar="TIME")
    p.add_argument("--until", metavar="TIME")
    p.add_argument("--api-key", help="default: CREDIT_API_KEY")


COMMANDS: list[Callable[[Any], None]] = [register_keys, register_audit]
