"""Reception: one message as received becomes an ``Item`` (its key, digest, command or reason).

Nothing a message holds can make reception raise: a value the parser cannot read is a reason,
and a fault in the parser itself is an ``internal_error`` with a correlation id in the log.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

import orjson

from ledger.application import submissions
from ledger.application.limits import check_limits
from ledger.domain.commands import Command
from ledger.domain.errors import InvalidInput, LedgerError, reason

log = logging.getLogger("ledger.application.service")


@dataclass
class Item:
    """One submission as received: what the batch decides on."""

    key: tuple[str, str] | None
    digest: str | None
    command: Command | None
    error: LedgerError | None
    original: bytes = b""
    source: str | None = None  # where it was read (topic/partition/offset), if the caller said


def internal_error(what: str, *args: object) -> dict[str, str]:
    """Log the exception being handled under a fresh correlation id; the reason that names it.

    The sender learns only that the ledger failed and which log entry says why (never a traceback).
    """
    correlation = uuid4().hex[:16]
    log.exception(f"[{correlation}] {what}", *args)
    return reason(
        "internal_error",
        "",
        "the ledger could not apply this submission; operators have the details in its log "
        f"under correlation id {correlation}",
    )


def as_bytes(raw: bytes | str | Mapping[str, Any]) -> bytes:
    """The message as received, as bytes (a mapping built in process as its JSON, if it has one)."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(dict(raw), default=str)
    except (TypeError, orjson.JSONEncodeError):  # nested too deep to encode: kept as its repr
        try:
            return repr(raw)[: 1024 * 1024].encode("utf-8", "backslashreplace")
        except RecursionError:
            return b""


def receive(raw: bytes | str | Mapping[str, Any], now: datetime) -> Item:
    """Decode, check the limits, key and type one submission; any failure becomes its reason.

    The limits come before anything else reads the value (its digest, its department): a value
    nested too deep for the canonical encoder, say, is refused rather than raised.
    """
    original = as_bytes(raw)
    key: tuple[str, str] | None = None
    try:
        data = submissions.decode(raw)
        department, submission_id = data.get("department"), data.get("submission_id")
        if isinstance(department, str) and isinstance(submission_id, str):
            key = (department, submission_id)
        canonical = check_limits(data, None if isinstance(raw, Mapping) else original)
    except LedgerError as exc:
        # Fingerprinted by its bytes: it may not decode, or its canonical form not exist (too deep).
        return Item(key, hashlib.sha256(original).hexdigest(), None, exc, original)
    except Exception:  # a bug in the decoder or the limits: as a parser bug below, rejected alone
        return _faulty(key, None, original, "a submission could not be decoded or checked")
    digest = hashlib.sha256(canonical).hexdigest()
    if key is None:
        missing = "department" if not isinstance(department, str) else "submission_id"
        error = InvalidInput(f"{missing} is required (a string)", field=missing, code="missing_field")
        return Item(None, digest, None, error, original)
    try:
        return Item(key, digest, submissions.parse(data, now=now, content_digest=digest), None, original)
    except LedgerError as exc:
        return Item(key, digest, None, exc, original)
    except Exception:  # a parser bug must not stop the batch: this submission is rejected
        return _faulty(key, digest, original, "submission %s/%s could not be parsed", *key)


def _faulty(
    key: tuple[str, str] | None, digest: str | None, original: bytes, what: str, *args: object
) -> Item:
    """The item of a submission reception failed on (a bug, logged): rejected as ``internal_error``,
    fingerprinted by its bytes when its canonical form is not known."""
    error = LedgerError(internal_error(what, *args)["message"], code="internal_error")
    return Item(key, digest or hashlib.sha256(original).hexdigest(), None, error, original)
