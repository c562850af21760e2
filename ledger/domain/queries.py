"""Query records: every read of credit data, allowed or refused, as an immutable, sealed ledger event."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, register_topic

from ledger.domain import integrity
from ledger.domain.creditfile import seal


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
