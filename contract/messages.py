"""Wire formats: how submissions are keyed and what the relay puts on the ledger and outcome topics.

Every outcome message fits :data:`OUTCOME_MESSAGE_LIMIT` (well under the brokers' 1 MB): a rejected
original too large to carry whole is replaced by its first bytes, its SHA-256 and its length, and
a reference to fetch it whole (:data:`ORIGINAL_PATH`; the register keeps every original).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import orjson

from ledger.application.ports import LedgerLog
from ledger.domain.inbox import InboxItem
from ledger.domain.integrity import event_id
from ledger.domain.outcomes import CONFLICT, DECIDED, DUPLICATE, REJECTED, LoggedOutcome, Receipt
from ledger.domain.personal import ENVELOPE_PREFIX

SEALED_PREFIX = ENVELOPE_PREFIX.encode()

OUTCOME_MESSAGE_LIMIT = 256 * 1024
"""Largest outcome (and rejection) message the platform produces, in bytes of its JSON value."""

ORIGINAL_PREVIEW_BYTES = 4096
"""How much of an original too large to carry whole an outcome still shows (its first bytes)."""

ORIGINAL_PATH = "/v1/outcomes/{position}/original"
"""Where a department fetches the original of a rejection whose message carries only a preview
(the HTTP API, with the department's key; ``CreditLedger.original_at(position)`` reads it)."""

LEDGER_MESSAGE_VERSION = 1
# Event state fields lifted into the message envelope (the rest is the event's body).
_ENVELOPE_FIELDS = ("timestamp", "prev_hash", "event_hash", "submission", "occurred_at", "originator_topic")


def submission_key(submission: Mapping[str, Any]) -> bytes:
    """Kafka key of a submission: its subject's normalised code, so one subject is one partition.

    Departments cannot compute the pseudonymous subject key (it needs the platform's secret),
    and the code is already in the message body, so the key reveals nothing more.
    A submission without a readable subject id gets an empty key (any partition will do:
    it can only be rejected).
    """
    subject = submission.get("subject")
    raw = subject.get("id") if isinstance(subject, Mapping) else None
    if raw is None and isinstance(subject, Mapping) and isinstance(subject.get("key"), str):
        return str(subject["key"]).encode()  # the platform's own commands name the file's key
    if not isinstance(raw, str):
        return b""
    return raw.strip().upper().encode()


def inbox_item(submission: Mapping[str, Any], value: bytes) -> InboxItem:
    """What a door records in the inbox for one submission (``value``, its bytes as published):
    keyed as on Kafka, with the department and id the ledger will register it under, if any."""
    department, submission_id = submission.get("department"), submission.get("submission_id")
    if isinstance(department, str) and isinstance(submission_id, str):
        return InboxItem(submission_key(submission), value, department, submission_id)
    return InboxItem(submission_key(submission), value, None, None)


def event_type(topic: str) -> str:
    """``ledger.domain.creditfile:CreditFile.RecordFiled`` -> ``RecordFiled``."""
    return topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def ledger_message(
    position: int, stream_id: Any, version: int, topic: str, state: Mapping[str, Any]
) -> tuple[bytes, bytes]:
    """(key, value) of one ledger event on ``credit.ledger``: keyed by subject key, in ledger order."""
    subject_key = str(stream_id)
    submission = state.get("submission") or ""
    department, _, submission_id = submission.partition("/")
    timestamp: Any = state.get("timestamp")
    if isinstance(timestamp, dict):  # the transcoder's tagged form {"_type_": ..., "_data_": iso}
        timestamp = timestamp.get("_data_")
    value = {
        "v": LEDGER_MESSAGE_VERSION,
        "position": position,
        "event_id": event_id(stream_id, version),
        "type": event_type(topic),
        "subject_key": subject_key,
        "version": version,
        "prev_hash": state.get("prev_hash"),
        "hash": state.get("event_hash"),
        "recorded_at": timestamp.isoformat() if hasattr(timestamp, "isoformat") else timestamp,
        "occurred_at": state.get("occurred_at"),
        "department": department or None,
        "submission_id": submission_id or None,
        "body": {k: v for k, v in state.items() if k not in _ENVELOPE_FIELDS},
    }
    return subject_key.encode(), orjson.dumps(value)


def outcome_message(
    position: int,
    outcome: Receipt | LoggedOutcome,
    open_original: Callable[[bytes], bytes | None] | None = None,
) -> tuple[bytes, bytes]:
    """(key, value) of one submission's outcome: keyed by subject key when it has one.

    A rejected original is stored sealed (it holds whatever the department typed): on a topic it
    is given as ``original: null`` with ``original_sealed: true`` and ``original_ref``, where its
    department reads it with its key; ``open_original`` (the HTTP API's, for the caller who may
    see it) puts it back in clear. Once its retention has ended ``original_expired`` is true.

    ``outcome`` is an outcomes-log entry (what the relay publishes: one per submission received)
    or, as before the log, a receipt. Fields added by the log, all optional to a reader of the
    earlier format: ``duplicate``, and for a duplicate ``first_position`` (the first outcome's
    position, whose ``recorded_at`` it repeats) and ``answered_at``; for a conflict
    ``conflicts_with`` (the position of the decision that stands).
    """
    logged = outcome if isinstance(outcome, LoggedOutcome) else None
    # The receipt whose content this outcome repeats: its own, or the first one for a duplicate.
    receipt = outcome if isinstance(outcome, Receipt) else None
    extra: dict[str, Any] = {}
    if logged is not None:
        if logged.entry.kind in (DECIDED, DUPLICATE):
            receipt = logged.receipt
        if logged.entry.kind == DUPLICATE:
            extra = {"first_position": logged.receipt_position, "answered_at": logged.entry.recorded_at}
        elif logged.entry.kind == CONFLICT:
            extra = {"conflicts_with": logged.receipt_position}
    department: str | None
    submission_id: str | None
    if receipt is not None:
        department, submission_id, recorded_at = (
            receipt.department,
            receipt.submission_id,
            receipt.recorded_at,
        )
        status, reason, original = receipt.status, receipt.reason, receipt.original
    else:  # a conflict, or a message registered under no id: rejected here, by the entry itself
        assert logged is not None
        entry = logged.entry
        department, submission_id, recorded_at = entry.department, entry.submission_id, entry.recorded_at
        status, reason, original = REJECTED, entry.reason, entry.original
    value: dict[str, Any] = {
        "position": position,
        "status": status,
        "department": department or None,
        "submission_id": submission_id,
        "subject_key": receipt.subject_key if receipt is not None else None,
        "recorded_at": recorded_at,
        "duplicate": logged is not None and logged.duplicate,
        "source": logged.entry.source if logged is not None else (receipt.source if receipt else None),
        **extra,
    }
    if status == REJECTED:
        value["reason"] = reason
        head = len(orjson.dumps(value))
        if original is not None and original.startswith(SEALED_PREFIX):
            opened = open_original(original) if open_original is not None else None
            if opened is None:
                value.update(
                    original=None, original_sealed=True, original_ref=ORIGINAL_PATH.format(position=position)
                )
                if open_original is not None:
                    value["original_expired"] = True
                return (value["subject_key"] or submission_id or "").encode(), orjson.dumps(value)
            original = opened
        value.update(original_fields(original, budget=OUTCOME_MESSAGE_LIMIT - head, position=position))
    else:
        value["events"] = list(receipt.events) if receipt is not None else []
    key = (value["subject_key"] or submission_id or "").encode()
    return key, orjson.dumps(value)


def original_fields(
    original: bytes | None, *, budget: int = OUTCOME_MESSAGE_LIMIT - 2048, position: int | None = None
) -> dict[str, Any]:
    """The submission as received: as text when it is UTF-8, else base64 (so nothing is lost).

    When that would take more than ``budget`` bytes of JSON, only its first
    :data:`ORIGINAL_PREVIEW_BYTES` are given, with ``original_truncated``, ``original_bytes``,
    ``original_sha256`` and (knowing the outcome's position) ``original_ref``, where it is whole.
    """
    if original is None:
        return {"original": None}
    fields = _encoded(original)
    if len(orjson.dumps(fields)) <= budget:
        return fields
    preview = _encoded(original[:ORIGINAL_PREVIEW_BYTES], cut=True)
    preview.update(
        original_truncated=True,
        original_bytes=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
    )
    if position is not None:
        preview["original_ref"] = ORIGINAL_PATH.format(position=position)
    return preview


def _encoded(original: bytes, *, cut: bool = False) -> dict[str, Any]:
    """As UTF-8 text, or base64 when it is not UTF-8. A ``cut`` prefix may end inside a
    character: up to 3 incomplete bytes at its end are dropped, nothing else."""
    text: str | None
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = original[: exc.start].decode("utf-8") if cut and exc.start >= len(original) - 3 else None
    if text is None:
        return {"original": base64.b64encode(original).decode(), "original_encoding": "base64"}
    return {"original": text, "original_encoding": "utf-8"}


def messages_from_store(log: LedgerLog, subject_key: UUID | None = None) -> list[dict[str, Any]]:
    """Ledger messages read straight from the event store: the whole ledger, or one subject's file."""
    if subject_key is not None:
        return [_message(*row) for row in log.stream_rows(subject_key)]
    out: list[dict[str, Any]] = []
    position = 0
    while page := log.event_rows(position, 5000):
        out.extend(_message(*row) for row in page)
        position = page[-1][0]
    return out


def _message(position: int, stream_id: Any, version: int, topic: str, state: bytes) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(
        ledger_message(position, stream_id, version, topic, orjson.loads(state))[1]
    )
    return message
