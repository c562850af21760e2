"""One hierarchy of domain errors: each names a reason code, the field at fault and a sentence."""

from __future__ import annotations

from ledger.domain.redaction import safe_text


class LedgerError(Exception):
    """Base of every error the ledger raises for bad input or a broken rule.

    ``code`` is a stable machine-readable reason (used on ``credit.rejections``),
    ``field`` the JSON path of the offending input (``"subject.id"``) or ``""``,
    and the message a sentence a person can act on.
    """

    code = "invalid"

    def __init__(self, message: str, *, field: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def as_reason(self) -> dict[str, str]:
        """The reason as it leaves the ledger: message and field capped, identity numbers masked."""
        return reason(self.code, self.field, self.message)


class InvalidInput(LedgerError):
    """The submission is malformed: wrong shape, type or format."""

    code = "invalid_input"


class InvalidSubjectCode(InvalidInput):
    """An identity number or unified social credit code fails its standard."""

    code = "invalid_subject_code"


class CatalogueError(LedgerError):
    """The catalogue file itself is invalid (raised at start-up, not per submission)."""

    code = "invalid_catalogue"


class NotInCatalogue(LedgerError):
    """A category, domain, severity or department the catalogue does not list."""

    code = "not_in_catalogue"


class NotAuthorised(LedgerError):
    """The department may not do this (not registered for it, or not the provider)."""

    code = "not_authorised"


class RuleViolation(LedgerError):
    """A lifecycle rule forbids this command in the record's current state."""

    code = "rule_violation"


class UnknownRecord(RuleViolation):
    """A follow-up action names a record (or objection, application) that is not on file."""

    code = "unknown_record"


class RecordClosed(RuleViolation):
    """The record has ended (expired, revoked, repaired) and the action is not allowed on it."""

    code = "record_closed"


class TooLarge(InvalidInput):
    """The submission, or a value in it, is beyond a documented limit (size, depth, length, count)."""

    code = "too_large"


class SubmissionConflict(LedgerError):
    """The same submission id was used before with different content."""

    code = "submission_conflict"


def reason(code: str, field: str, message: str) -> dict[str, str]:
    """The one shape of a reason, in a rejection's receipt or an error body: message and field
    capped, identity numbers masked."""
    return {"code": code, "field": safe_text(field), "message": safe_text(message)}


def error_body(code: str, field: str, message: str) -> dict[str, dict[str, str]]:
    """The one shape of every refusal the platform answers with: ``{"error": {code, field, message}}``."""
    return {"error": reason(code, field, message)}
