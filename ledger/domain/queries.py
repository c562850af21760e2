"""Query records: every read of credit data, allowed or refused, as an immutable, sealed ledger event."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, register_topic

from ledger.domain import integrity
from ledger.domain.creditfile import seal


def new_query_id(at: datetime) -> UUID:
    """A query record's id: an RFC 9562 version-7 UUID, the record's millisecond (48 bits) before 74
    random bits.

    Ids that grow with time put each new record at the end of the ledger's stream index and of the
    read store's ``queries`` index, where random (version-4) ids put each on a page of its own: a
    commit of two records wrote 24-30 KB with random ids and 16 KB with these (docs/benchmarks.md,
    issue 13), and the gap widens as the register grows. An id names only its record, which says
    its time anyway; 74 random bits keep ids made in one millisecond apart."""
    millis = int(at.timestamp() * 1000) & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")
    return UUID(
        int=millis << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | (rand & (1 << 62) - 1)
    )


class QueryRecord(Aggregate):
    """One query: who asked, in what role and for what purpose, on what basis, about whom, what was
    returned, and the outcome. Its own one-event stream, so recording a query never contends
    with the intake for the subject's file; it is in the ledger's global order (and Merkle tree)."""

    class QueryRecorded(Aggregate.Created):
        prev_hash: str
        event_hash: str
        submission: str
        record: dict[str, Any]

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    @classmethod
    def make(cls, query_id: UUID, record: dict[str, Any], at: datetime) -> QueryRecord:
        fields: dict[str, Any] = {
            "originator_topic": get_topic(cls),
            "timestamp": at,
            "prev_hash": integrity.GENESIS,
            "submission": "",
            "record": record,
        }
        sealed = seal(cls.QueryRecorded, query_id, cls.INITIAL_VERSION, fields)
        del fields["originator_topic"]  # _create sets it
        return cls._create(cls.QueryRecorded, id=query_id, event_hash=sealed, **fields)


# Events stored before the domain moved into ledger.domain name this module by its old path
# (their topics are part of what each event's hash covers, so they are never rewritten).
register_topic("ledger.queries", sys.modules[__name__])
