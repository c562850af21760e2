"""The dead-letter format: what a flow parks on credit.dead-letters when it cannot decide a message."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

DEAD_LETTER_VERSION = 1

INTAKE = "intake"
RELAY = "relay"
PROJECTOR = "projector"
FLOWS = (INTAKE, RELAY, PROJECTOR)
"""The flows that park: the intake (credit.submissions into the ledger), the relay (the ledger out
to Kafka) and the projector (credit.ledger into the read models)."""

PAYLOAD_LIMIT = 64 * 1024
"""A payload up to this size travels in the dead letter, so it can be read and replayed from there;
a larger one is named by its size and SHA-256 only (the original stays where it was: on its topic,
or in the ledger at its position). This keeps every dead letter far below any topic's limit."""

REASON_LIMIT = 300
"""Reasons are the platform's own sentences; the cap only keeps a letter small whatever they say."""


@dataclass(frozen=True)
class Source:
    """Where the message stood: a record of a topic (consumed flows), or a ledger position (the relay)."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    position: int | None = None  # the relay's: notification id (credit.ledger) or receipt position

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "position": self.position,
        }


def dead_letter(
    flow: str,
    source: Source,
    *,
    key: bytes | None,
    payload: bytes | None,
    error: str,
    reason: str,
    correlation_id: str,
    parked_at: str,
    receipt: Mapping[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    """(key, value) of one dead letter on ``credit.dead-letters``, keyed as the original was.

    ``error`` is the exception's class name only: the message and traceback are in the flow's log
    under ``correlation_id``, never on a topic a sender might read. ``receipt`` is the outcome the
    ledger recorded for a parked submission (``department``, ``submission_id``, ``status``).
    """
    value: dict[str, Any] = {
        "v": DEAD_LETTER_VERSION,
        "flow": flow,
        "correlation_id": correlation_id,
        "parked_at": parked_at,
        "source": source.as_dict(),
        "error": error,
        "reason": reason[:REASON_LIMIT],
        "receipt": dict(receipt) if receipt is not None else None,
        **payload_fields(payload),
    }
    return key or b"", orjson.dumps(value)


def payload_fields(payload: bytes | None) -> dict[str, Any]:
    """The payload as text (UTF-8) or base64 when small enough, and always its size and digest."""
    if payload is None:
        return {"payload": None, "payload_encoding": None, "payload_bytes": 0, "payload_sha256": None}
    fields: dict[str, Any] = {
        "payload": None,
        "payload_encoding": None,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    if len(payload) <= PAYLOAD_LIMIT:
        try:
            fields.update(payload=payload.decode("utf-8"), payload_encoding="utf-8")
        except UnicodeDecodeError:
            fields.update(payload=base64.b64encode(payload).decode(), payload_encoding="base64")
    return fields


def payload_of(letter: Mapping[str, Any]) -> bytes | None:
    """The original bytes a dead letter carries, or None when it carries only their digest."""
    text = letter.get("payload")
    if text is None:
        return None
    if letter.get("payload_encoding") == "base64":
        return base64.b64decode(text)
    return str(text).encode("utf-8")
