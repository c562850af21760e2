"""What both SQL recorders share: the receipt and API-key columns, row conversions, the stale-read check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError

from ledger.domain.outcomes import Receipt

EventRow = tuple[int, str, int, str, bytes]
"""(position, stream id as a dashed UUID, version, topic, state): ``ledger.application.ports.EventRow``."""

RECEIPT_COLUMNS = (
    "department, submission_id, digest, status, subject_key, events, reason, recorded_at, original"
)


class StaleRead(IntegrityError):
    """A file a batch decided on without changing it had changed before the batch committed.

    Another writer appended to it (with several workers, the platform's own commands for a subject
    can reach a different worker than the departments' submissions about it). A file the batch
    *did* change is protected by the unique (stream, version) key; a rejection or a no-op decided
    on a stale copy is caught by this check instead. Like a version conflict, the batch is rolled
    back and retried with fresh files.
    """


def check_read_versions(current: Mapping[UUID, int], read: Mapping[UUID, int]) -> None:
    """Raise StaleRead unless every file is still at the version the batch read (0 = no file)."""
    stale = [
        (key, version, current.get(key, 0)) for key, version in read.items() if current.get(key, 0) != version
    ]
    if stale:
        key, was, now = stale[0]
        msg = (
            f"{len(stale)} file(s) changed after the batch read them "
            f"(first: {key}, read at version {was}, now at {now})"
        )
        raise StaleRead(msg)


def dashed(hex_id: str) -> str:
    """A stored 32-hex-digit id in the canonical dashed form str(UUID) gives."""
    h = hex_id.replace("-", "")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def receipt_row(r: Receipt) -> tuple[Any, ...]:
    return (
        r.department,
        r.submission_id,
        r.digest,
        r.status,
        r.subject_key,
        orjson.dumps(list(r.events)),
        orjson.dumps(r.reason) if r.reason is not None else None,
        r.recorded_at,
        r.original,
    )


def receipt_from_row(row: Sequence[Any]) -> Receipt:
    return Receipt(
        department=row[0],
        submission_id=row[1],
        digest=row[2],
        status=row[3],
        subject_key=row[4],
        events=tuple(orjson.loads(row[5])),
        reason=orjson.loads(row[6]) if row[6] is not None else None,
        recorded_at=row[7],
        original=bytes(row[8]) if row[8] is not None else None,
    )


API_KEY_COLUMNS = (
    "key_id",
    "key_hash",
    "role",
    "organisation",
    "label",
    "subject_key",
    "created_at",
    "revoked_at",
)
"""The api_keys table, in both databases: one row per key, only the key's SHA-256 stored."""
