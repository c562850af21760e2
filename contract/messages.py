"""Wire formats: how submissions are keyed and what the relay puts on the ledger and outcome topics."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson

from ledger.application.ports import LedgerLog
from ledger.domain.integrity import event_id
from ledger.domain.outcomes import REJECTED, Receipt

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


def outcome_message(position: int, receipt: Receipt) -> tuple[bytes, bytes]:
    """(key, value) of one submission's outcome: keyed by subject key when it has one."""
    value: dict[str, Any] = {
        "position": position,
        "status": receipt.status,
        "department": receipt.department or None,
        "submission_id": receipt.submission_id,
        "subject_key": receipt.subject_key,
        "recorded_at": receipt.recorded_at,
    }
    if receipt.status == REJECTED:
        value["reason"] = receipt.reason
        value.update(original_fields(receipt.original))
    else:
        value["events"] = list(receipt.events)
    key = (receipt.subject_key or receipt.submission_id).encode()
    return key, orjson.dumps(value)


def original_fields(original: bytes | None) -> dict[str, Any]:
    """The submission as received: as text when it is UTF-8, else base64 (so nothing is lost)."""
    if original is None:
        return {"original": None}
    try:
        return {"original": original.decode("utf-8"), "original_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"original": base64.b64encode(original).decode(), "original_encoding": "base64"}


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
