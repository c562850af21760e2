"""What the recorders share: the register's columns, row conversions, positions and the receipt
chain, the stale-read check."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError

from ledger.domain.outcomes import (
    DECIDED,
    RECEIPT_GENESIS,
    LoggedOutcome,
    OutcomeEntry,
    Receipt,
    receipt_chain_hash,
)

EventRow = tuple[int, str, int, str, bytes]
"""One stored event as plain values: (position, stream id as a dashed UUID, version, topic, state),
what the read port (``ledger.application.ports.LedgerLog``) gives.

Plain tuples, not eventsourcing's Notification objects: a full verification or a relay page
reads every event, and the objects cost more than the work done with them."""

RECEIPT_COLUMNS = (
    "department, submission_id, digest, status, subject_key, events, reason, recorded_at, original, "
    "chain_hash, source"
)
"""The ``submission_receipts`` columns after ``position``, in the order of ``receipt_row``."""

OUTCOME_COLUMNS = "kind, department, submission_id, source, digest, recorded_at, reason, original"
"""The ``submission_outcomes`` columns after ``position``, in the order of ``outcome_row``."""

OUTCOMES_TABLE = "submission_outcomes"
"""The outcomes log's entries that are not first decisions (duplicates, conflicts, unregistered
messages). A first decision's entry is its receipt: the log is the two tables merged by position,
which one sequence numbers, so the common case writes one row."""
RECEIPTS_TABLE = "submission_receipts"


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


def receipt_row(r: Receipt, chain_hash: str) -> tuple[Any, ...]:
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
        chain_hash,
        r.source,
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
        chain_hash=row[9] or "",
        source=row[10],
    )


def outcome_row(e: OutcomeEntry) -> tuple[Any, ...]:
    return (
        e.kind,
        e.department,
        e.submission_id,
        e.source,
        e.digest,
        e.recorded_at,
        orjson.dumps(e.reason) if e.reason is not None else None,
        e.original,
    )


def outcome_from_row(row: Sequence[Any]) -> OutcomeEntry:
    return OutcomeEntry(
        kind=row[0],
        department=row[1],
        submission_id=row[2],
        source=row[3],
        digest=row[4],
        recorded_at=row[5],
        reason=orjson.loads(row[6]) if row[6] is not None else None,
        original=bytes(row[7]) if row[7] is not None else None,
    )


def decided_entry(receipt: Receipt) -> OutcomeEntry:
    """The outcomes-log entry a receipt stands for: the first decision on its submission."""
    return OutcomeEntry(
        DECIDED,
        receipt.department,
        receipt.submission_id,
        receipt.digest,
        receipt.recorded_at,
        receipt.source,
    )


def decided_from_row(row: Sequence[Any]) -> tuple[int, LoggedOutcome]:
    """(position, outcome) of a first decision, from ``position, RECEIPT_COLUMNS``."""
    receipt = receipt_from_row(row[1:])
    return row[0], LoggedOutcome(decided_entry(receipt), receipt, row[0])


def logged_from_row(row: Sequence[Any]) -> tuple[int, LoggedOutcome]:
    """(position, outcome) from ``position, OUTCOME_COLUMNS, receipt position, RECEIPT_COLUMNS``."""
    entry = outcome_from_row(row[1:9])
    receipt = receipt_from_row(row[10:]) if row[9] is not None else None
    return row[0], LoggedOutcome(entry, receipt, row[9])


def merged(
    decided: Sequence[tuple[int, LoggedOutcome]], others: Sequence[tuple[int, LoggedOutcome]], limit: int
) -> list[tuple[int, LoggedOutcome]]:
    """The first ``limit`` outcomes of both tables, by position (each page is ``limit`` long, so
    the first ``limit`` of their union are among them)."""
    return list(heapq.merge(decided, others, key=lambda pair: pair[0]))[:limit]


Logged = OutcomeEntry | Receipt
"""One entry of a batch's outcomes log as the application hands it over: a ``Receipt`` is a first
decision (written as the receipt, at its entry's position), anything else an ``OutcomeEntry``."""


def positioned(
    outcomes: Sequence[Logged], positions: Sequence[int]
) -> tuple[list[tuple[Any, ...]], list[tuple[int, Receipt]]]:
    """One position per entry, in order: the rows (position first) of the entries that are not
    first decisions, and each receipt with its position."""
    rows: list[tuple[Any, ...]] = []
    placed: list[tuple[int, Receipt]] = []
    for position, entry in zip(positions, outcomes, strict=True):
        if isinstance(entry, Receipt):
            placed.append((position, entry))
        else:
            rows.append((position, *outcome_row(entry)))
    return rows, placed


def chained(placed: Sequence[tuple[int, Receipt]], prev: str | None) -> list[tuple[Any, ...]]:
    """Receipt rows (position first), each linked to the one before it, from ``prev`` (the last
    committed receipt's link, None when there is none)."""
    link = prev or RECEIPT_GENESIS
    rows = []
    for position, receipt in sorted(placed, key=lambda pr: pr[0]):
        link = receipt_chain_hash(link, position, receipt)
        rows.append((position, *receipt_row(receipt, link)))
    return rows


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


DATA_KEYS_TABLE = "data_keys"
DATA_KEY_COLUMNS = ("key_id", "stream", "unit", "master_key_id", "wrapped", "created_at", "shredded_at")
"""The key ring's table: one data key per retention unit, wrapped by the master key (None once shredded)."""
SESSION_COLUMNS = ("session_hash", "key_id", "created_at", "last_used_at", "data")
"""The portal_sessions table, in both databases: the SHA-256 of the token, never the token."""
