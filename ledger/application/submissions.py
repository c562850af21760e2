"""Parse a department's submission (JSON) into a typed command, naming the field at fault when it is bad."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from uuid import UUID

import jsonschema_rs
import orjson

from ledger.application import limits
from ledger.application.limits import MAX_DECODED_BYTES
from ledger.application.values import check_integers, strict_date, strict_datetime
from ledger.domain import commands as c
from ledger.domain.errors import InvalidInput
from ledger.domain.integrity import canonical_bytes
from ledger.domain.redaction import MAX_ECHO, cap, echo
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


def example_submissions() -> list[dict[str, Any]]:
    """The example submissions shipped with the schema, one per action, in file-name order."""
    folder = resources.files("ledger") / "schema" / "examples"
    names = sorted(item.name for item in folder.iterdir() if item.name.endswith(".json"))
    return [json.loads((folder / name).read_text("utf-8")) for name in names]


@cache
def _validator() -> Any:
    return jsonschema_rs.validator_for(submission_schema())


def decode(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Bytes or text to a JSON object; anything else is rejected with a reason.

    A message over :data:`~ledger.application.limits.MAX_DECODED_BYTES` is refused undecoded
    (``too_large``); every other limit is checked by :func:`check_limits`.
    """
    if isinstance(raw, Mapping):
        return dict(raw)
    if len(raw) > MAX_DECODED_BYTES:
        limits.check_size(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the message is not valid JSON: {exc}", code="undecodable") from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"a submission must be a JSON object, got {type(value).__name__}", code="undecodable"
        )
    return value


def check_limits(data: Mapping[str, Any], original: bytes | None = None) -> bytes:
    """The documented limits (``ledger.application.limits``); the canonical bytes of ``data``."""
    return limits.check_limits(data, original)


def digest(submission: Mapping[str, Any]) -> str:
    """Content fingerprint: the same submission re-sent has the same digest, whatever its key order."""
    return hashlib.sha256(canonical_bytes(dict(submission))).hexdigest()


# Subjects recur across submissions (a department files many records about one person), and a
# parse is pure given its arguments, so parses are memoised; errors are not cached and re-raise.
_parse_code = lru_cache(maxsize=200_000)(parse_subject_code)

_PATTERNS = {
    "^[A-Za-z0-9][A-Za-z0-9._:/-]*$": "an id: letters, digits and . _ : / -, starting with a letter or digit",
    "^\\d{4}-\\d{2}-\\d{2}$": "a date YYYY-MM-DD",
    "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$": (
        "an RFC 3339 time with a zone offset, YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM"
    ),
}
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _shape_message(error: Any, field: str) -> str:
    """What the schema expected at ``field``, quoting the value only as a capped, masked echo.

    The validator's own messages quote whole values (a megabyte, a subject with its identity
    number), so each kind of failure is said here instead."""
    kind = error.kind
    name = kind.name
    details = kind.as_dict()
    got = echo(error.instance)
    where = field or "submission"
    if name == "type":
        wanted = " or ".join(f'"{t}"' for t in details.get("types", []))
        return f"{where}: {got} is not of type {wanted} (it is {_json_type(error.instance)})"
    if name == "enum":
        options = details.get("options", [])
        shown = ", ".join(echo(o, 40) for o in options[:20]) + (", ..." if len(options) > 20 else "")
        return f"{where}: expected one of {shown}; got {got}"
    if name == "const":
        return f"{where}: expected {echo(details.get('expected_value'))}; got {got}"
    if name == "pattern":
        form = _PATTERNS.get(details.get("pattern", ""), f"a value matching {details.get('pattern')}")
        return f"{where}: expected {form}; got {got}"
    if name in ("minLength", "maxLength"):
        bound = "at least" if name == "minLength" else "at most"
        return f"{where}: expected {bound} {details.get('limit')} characters; got {len(error.instance):,}"
    if name in ("minItems", "maxItems"):
        bound = "at least" if name == "minItems" else "at most"
        return f"{where}: expected {bound} {details.get('limit')} items; got {len(error.instance):,}"
    if name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "maximum": "at most"}.get(name, "beyond")
        return f"{where}: expected {bound} {details.get('limit')}; got {got}"
    if name in ("oneOf", "anyOf", "not"):
        return f"{where}: not one of the allowed forms (see the schema for {where})"
    return f"{where}: does not match the schema ({name})"


def _unexpected_key(error: Any) -> str | None:
    """The key a propertyNames or additionalProperties failure is about."""
    details = error.kind.as_dict()
    if error.kind.name == "additionalProperties":
        unexpected = details.get("unexpected") or []
        return str(unexpected[0]) if unexpected else None
    inner = details.get("error")
    instance = getattr(inner, "instance", None)
    return instance if isinstance(instance, str) else None


def check_shape(submission: Mapping[str, Any]) -> None:
    """Validate against the published schema; the first error names its field."""
    validator = _validator()
    if validator.is_valid(submission):
        # JSON Schema counts 6.0 (and nothing else non-int) as an integer: the schema's integer
        # fields are looked at only when they hold something that is not an int.
        record, changes = submission.get("record"), submission.get("changes")
        feedback = submission.get("feedback")
        if (
            type(submission.get("schema_version", 1)) is not int
            or (type(record) is dict and type(record.get("display_months", 0)) not in (int, type(None)))
            or (type(changes) is dict and type(changes.get("display_months", 0)) not in (int, type(None)))
            or type(submission.get("state_version", 1)) is not int
            or (type(feedback) is dict and type(feedback.get("state_version", 1)) is not int)
        ):
            check_integers(submission)
        return
    errors = sorted(validator.iter_errors(submission), key=lambda e: (-len(e.instance_path), str(e.message)))
    # The deepest error is the most specific ("record.decision.date" rather than "record").
    error = errors[0]
    field = limits.path_of(tuple(error.instance_path))
    if error.kind.name == "required":
        missing = error.message.split('"')[1] if '"' in error.message else ""
        field = f"{field}.{missing}" if field and missing else (missing or field)
        raise InvalidInput(f"{field} is required", field=field, code="missing_field")
    if error.kind.name in ("additionalProperties", "propertyNames"):
        key = _unexpected_key(error)
        shown = echo(key) if key is not None else "a field"
        raise InvalidInput(
            f"{field or 'submission'}: unexpected field {shown}; this action does not take it",
            field=field,
            code="unexpected_field",
        )
    raise InvalidInput(_shape_message(error, field), field=field, code="invalid_field")


def _ref(raw: Mapping[str, Any], department: str) -> c.RecordRef:
    return c.RecordRef(provider=raw.get("provider", department), record_id=raw["record_id"])


def _optional_date(raw: Mapping[str, Any], name: str, parent: str) -> date | None:
    value = raw.get(name)
    return None if value is None else strict_date(value, f"{parent}.{name}")


def _changes(raw: Mapping[str, Any], field: str) -> dict[str, Any]:
    changes = dict(raw)
    if "decision_date" in changes:
        changes["decision_date"] = strict_date(changes["decision_date"], f"{field}.decision_date").isoformat()
    return changes


def parse(
    raw: bytes | str | Mapping[str, Any], *, now: datetime, content_digest: str | None = None
) -> c.Command:
    """Decode, validate and type one submission. ``now`` is the ledger's time (never read here).

    ``content_digest`` is the submission's ``digest`` when the caller has already computed it
    (and so has checked its limits, as ``CreditLedger`` does); without it the limits are checked here.
    """
    data: dict[str, Any] = raw if type(raw) is dict else decode(raw)
    if content_digest is None:
        original = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        canonical = check_limits(data, original if isinstance(original, bytes) else None)
        content_digest = hashlib.sha256(canonical).hexdigest()
    check_shape(data)
    fingerprint = content_digest
    department = data["department"]
    occurred_at = strict_datetime(data["occurred_at"], "occurred_at")
    if occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(
            f"occurred_at {cap(data['occurred_at'], MAX_ECHO)} is in the future "
            f"(ledger time {now.isoformat()})",
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
        digest=fingerprint,
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
            decision_date=strict_date(r["decision"]["date"], "record.decision.date"),
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
            valid_from=strict_date(a["valid_from"], "authorisation.valid_from"),
            valid_until=strict_date(a["valid_until"], "authorisation.valid_until"),
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
            valid_from=strict_date(d["valid_from"], "designation.valid_from"),
            valid_until=strict_date(d["valid_until"], "designation.valid_until"),
            records=tuple(_ref(r, department) for r in d.get("records", [])),
        )
    if action == "shred_record":
        record = data.get("record")
        return c.ShredRecord(
            _ref(record, department) if record is not None else None, data["basis"], data["legal_basis"]
        )
    if action == "end_designation":
        return c.EndDesignation(data["designation_id"], data["reason"])
    if action == "report_feedback":
        f = data["feedback"]
        return c.ReportFeedback(
            notice_id=f["notice_id"],
            feedback_id=f["feedback_id"],
            outcome=f["outcome"],
            state_version=f.get("state_version"),
            business_reference=f.get("business_reference"),
            applied_on=_optional_date(f, "applied_on", "feedback"),
            stopped_on=_optional_date(f, "stopped_on", "feedback"),
            reason=f.get("reason"),
            supersedes=f.get("supersedes"),
        )
    if action == "remind_feedback":
        return c.RemindFeedback(data["notice_id"], data["state_version"])
    raise InvalidInput(f"action {action!r} is not supported", field="action")  # schema forbids it
