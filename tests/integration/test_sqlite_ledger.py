"""What only the SQLite recorder has: bringing a ledger file made by an earlier version up to date.

Everything the recorders share (the register, the outcomes log, the read port, stale reads,
writers that race, durability) is held to one contract in ``tests/contracts/test_recorders.py``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from contract.messages import messages_from_store
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.domain.outcomes import DECIDED, RECEIPT_GENESIS, receipt_chain_hash
from tests.conftest import SECRET


def open_ledger(catalogue: Catalogue, path: Path) -> CreditLedger:
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return CreditLedger(catalogue=catalogue, secret=SECRET, clock=lambda: now, env=env)


def test_a_register_made_before_the_receipt_chain_and_the_outcomes_log_is_brought_up_to_date(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite"
    submissions = SubmissionGenerator(catalogue.latest, subjects=10, seed=4).take(60)
    first = open_ledger(catalogue, path)
    first.submit(submissions[:40])
    first.reader.save_relay_position("credit.outcomes", 25)
    first.close()
    with sqlite3.connect(path) as db:  # as the previous version left it
        db.execute("DROP TABLE submission_outcomes")
        db.execute("ALTER TABLE submission_receipts DROP COLUMN chain_hash")
        db.execute("ALTER TABLE submission_receipts DROP COLUMN source")
        receipt_positions = [
            row[0] for row in db.execute("SELECT position FROM submission_receipts ORDER BY position")
        ]

    ledger = open_ledger(catalogue, path)
    link = RECEIPT_GENESIS
    for position, receipt in ledger.receipts_after(0):
        link = receipt_chain_hash(link, position, receipt)
        assert receipt.chain_hash == link
    logged = ledger.outcomes_after(0)
    assert [p for p, _ in logged] == receipt_positions  # a relay's saved position keeps its meaning
    assert {o.entry.kind for _, o in logged} == {DECIDED}
    assert ledger.reader.relay_position("credit.outcomes") == 25
    ledger.submit(submissions[40:])
    after = [p for p, _ in ledger.outcomes_after(receipt_positions[-1])]
    assert after == list(range(receipt_positions[-1] + 1, receipt_positions[-1] + 21))
    assert ledger.receipts_after(0)[-1][1].chain_hash == ledger.reader.receipt_head()[1]
    open_ledger(catalogue, path).close()  # a second start finds nothing left to do


def _query_record(n: int) -> dict[str, object]:
    return {"requester": "key:test", "organisation": "court", "role": "department", "endpoint": "check",
            "outcome": "allowed", "reason": "test", "channel": "http", "recorded_at": "2026-11-01T09:00:00+00:00",
            "subject_key": None, "returned": [], "reference": f"R-{n}"}  # fmt: skip


def test_query_records_are_written_in_one_statement_all_or_none_and_read_back_in_order(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    ledger = open_ledger(catalogue, tmp_path / "ledger.sqlite")
    ledger.write_query_events(ledger.query_events([_query_record(n) for n in range(3)]))
    ledger.write_query_events(
        ledger.query_events([_query_record(n) for n in range(3, 253)])
    )  # > one statement's

    def references() -> list[object]:
        return [m["body"]["record"]["reference"] for m in messages_from_store(ledger.reader)]

    assert references() == [f"R-{n}" for n in range(253)]
    fresh = ledger.query_events([_query_record(253)])
    with pytest.raises(IntegrityError):  # the same stream twice in one batch: its last row fails
        ledger.write_query_events([*fresh, *ledger.query_events([_query_record(254)]), *fresh])
    assert len(references()) == 253, "a batch that fails writes none of its records"
    ledger.close()
