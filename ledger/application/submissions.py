"""Parse a department's submission (JSON) into a typed command, naming the field at fault when it is bad."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from uuid import UUID

import jsonschema_rs
import orjson

from ledger.domain import commands as c
from ledger.domain.errors import InvalidInput
from ledger.domain.integrity import canonical_bytes
from ledger.domain.subjects import SubjectKind, parse_subject_code
from ledger.domain.workdays import local_date

CLOCK_SKEW = timedelta(minutes=5)
"""How far ``occurred_at`` may lie ahead of the ledger's clock before it is rejected as future."""


@cache
def submission_schema() -> dict[str, Any]:
    """The published JSON Schema of a submission (``ledger/schema/submission.schema.json``)."""
    text = (resources.files("ledger") / "schema" / "submission.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(submission_schema())


def decode(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Bytes or text to a JSON object; anything else is rejected with a reason."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the message is not valid JSON: {exc}", code="undecodable") from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"a submission must be a JSON object, got {type(value).__name__}", code="undecodable"
        )
    return value


def digest(submission: Mapping[str, Any]) -> str:
    """Content fingerprint: the same submission re-sent has the same digest, whatever its key order."""
    return hashlib.sha256(canonical_bytes(dict(submission))).hexdigest()


# Subjects recur across submissions (a department files many records about one person), and a
# parse is pure given its arguments, so parses are memoised; errors are not cached and re-raise.
_parse_code = lru_cache(maxsize=200_000)(parse_subject_code)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_shape(submission: Mapping[str, Any]) -> None:
    """Validate against the published schema; the first error names its field."""
    validator = _validator()
    if validator.is_valid(submission):
        return
    errors = sorted(validator.iter_errors(submission), key=lambda e: (-len(e.instance_path), str(e.message)))
    # The deepest error is the most specific ("record.decision.date" rather than "record").
    error = errors[0]
    field = _path(error.instance_path)
    if error.kind.__class__.__name__ == "Required" or "is a required property" in error.message:
        missing = error.message.split('"')[1] if '"' in error.message else ""
        field = f"{field}.{missing}" if field and missing else (missing or field)
        raise InvalidInput(f"{field} is required", field=field, code="missing_field")
    if "Additional properties" in error.message or "propertyNames" in str(error.schema_path):
        raise InvalidInput(f"{field or 'submission'}: {error.message}", field=field, code="unexpected_field")
    raise InvalidInput(f"{field}: {error.message}", field=field, code="invalid_field")


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: expected a real date YYYY-MM-DD, got {value!r}", field=field) from None


def _datetime(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(
            f"{field}: expected an RFC 3339 time with a zone offset, got {value!r}", field=field
        )
    return parsed.astimezone(UTC)


def _ref(raw: Mapping[str, Any], department: str) -> c.RecordRef:
    return c.RecordRef(provider=raw.get("provider", department), record_id=raw["record_id"])


def _changes(raw: Mapping[str, Any], field: str) -> dict[str, Any]:
    changes = dict(raw)
    if "decision_date" in changes:
        changes["decision_date"] = _date(changes["decision_date"], f"{field}.decision_date").isoformat()
    return changes


def parse(
    raw: bytes | str | Mapping[str, Any], *, now: datetime, content_digest: str | None = None
) -> c.Command:
    """Decode, validate and type one submission. ``now`` is the ledger's time (never read here).

    ``content_digest`` is the submission's ``digest`` when the caller has already computed it.
    """
    data: dict[str, Any] = raw if type(raw) is dict else decode(raw)
    check_shape(data)
    fingerprint = content_digest or digest(data)
    department = data["department"]
    occurred_at = _datetime(data["occurred_at"], "occurred_at")
    if occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(
            f"occurred_at {data['occurred_at']} is in the future (ledger time {now.isoformat()})",
            field="occurred_at",
        )
    subject_raw = data["subject"]
    if "key" in subject_raw:
        envelope = c.Envelope(
            submission_id=data["submission_id"],
            department=department,
            action=data["action"],
            subject=None,
            subject_name="",
            occurred_at=occurred_at,
            digest=fingerprint,
            subject_key=UUID(subject_raw["key"]),
        )
        return c.Command(envelope, _action(data, department, now))
    override = subject_raw.get("checksum_override")
    kind = subject_raw.get("kind")
    subject = _parse_code(
        subject_raw["id"],
        today=local_date(now),
        kind=SubjectKind(kind) if kind else None,
        allow_checksum_override=override is not None,
        field="subject.id",
    )
    envelope = c.Envelope(
        submission_id=data["submission_id"],
        department=department,
        action=data["action"],
        subject=subject,
        subject_name=subject_raw["name"],
        occurred_at=occurred_at,
        digest=digest(data),
        checksum_override=dict(override) if override and subject.checksum_overridden else None,
    )
    return c.Command(envelope, _action(data, department, now))


def _action(data: Mapping[str, Any], department: str, now: datetime) -> c.Action:
    action = data["action"]
    if action == "file_record":
        r = data["record"]
        persons = tuple(
            c.ResponsiblePerson(
                subject=_parse_code(
                    p["id"],
                    today=local_date(now),
                    kind=SubjectKind.PERSON,
                    field=f"record.responsible_persons[{i}].id",
                ),
                name=p["name"],
                role=p["role"],
            )
            for i, p in enumerate(r.get("responsible_persons", []))
        )
        return c.FileRecord(
            record_id=r["record_id"],
            category=r["category"],
            domain=r["domain"],
            severity=r.get("severity"),
            title=r["title"],
            decision_document=r["decision"]["document_number"],
            decision_date=_date(r["decision"]["date"], "record.decision.date"),
            legal_basis=r.get("legal_basis", ""),
            display_months=r.get("display_months"),
            responsible_persons=persons,
        )
    if action == "correct_record":
        return c.CorrectRecord(
            _ref(data["record"], department), _changes(data["changes"], "changes"), data["reason"]
        )
    if action == "raise_objection":
        return c.RaiseObjection(_ref(data["record"], department), data["objection_id"], data["grounds"])
    if action == "resolve_objection":
        return c.ResolveObjection(
            record=_ref(data["record"], department),
            objection_id=data["objection_id"],
            outcome=data["outcome"],
            explanation=data["explanation"],
            remedy=data.get("remedy"),
            changes=_changes(data.get("changes", {}), "changes"),
        )
    if action == "add_statement":
        record = data.get("record")
        return c.AddStatement(
            data["statement_id"], data["text"], _ref(record, department) if record else None
        )
    if action == "request_repair":
        return c.RequestRepair(
            _ref(data["record"], department), data["application_id"], data["measures_taken"]
        )
    if action == "decide_repair":
        return c.DecideRepair(
            _ref(data["record"], department), data["application_id"], data["decision"], data["reason"]
        )
    if action == "grant_authorisation":
        a = data["authorisation"]
        return c.GrantAuthorisation(
            authorisation_id=a["authorisation_id"],
            organisation=a["organisation"],
            purpose=a["purpose"],
            valid_from=_date(a["valid_from"], "authorisation.valid_from"),
            valid_until=_date(a["valid_until"], "authorisation.valid_until"),
        )
    if action == "revoke_authorisation":
        return c.RevokeAuthorisation(data["authorisation_id"])
    if action == "mark_objection_overdue":
        return c.MarkObjectionOverdue(_ref(data["record"], department), data["objection_id"])
    if action == "expire_record":
        return c.ExpireRecord(_ref(data["record"], department))
    if action == "revoke_record":
        return c.RevokeRecord(_ref(data["record"], department), data["reason"], data.get("document", ""))
    if action == "designate":
        d = data["designation"]
        return c.Designate(
            designation_id=d["designation_id"],
            list=d["list"],
            basis=d["basis"],
            document_number=d["document_number"],
            valid_from=_date(d["valid_from"], "designation.valid_from"),
            valid_until=_date(d["valid_until"], "designation.valid_until"),
            records=tuple(_ref(r, department) for r in d.get("records", [])),
        )
    if action == "end_designation":
        return c.EndDesignation(data["designation_id"], data["reason"])
    raise InvalidInput(f"action {action!r} is not supported", field="action")  # schema forbids it
