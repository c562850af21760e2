"""What only the PostgreSQL recorder has: its schema setting, refused options, and migrating an
older register.

Everything the recorders share (the register, the outcomes log, the read port, stale reads,
writers that race, durability) is held to one contract in ``tests/contracts/test_recorders.py``.
The session's throw-away cluster (``postgres_server``) gives every test a fresh database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import ProgrammingError

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue
from ledger.domain.outcomes import ACCEPTED, RECEIPT_GENESIS, receipt_chain_hash
from ledger.store.postgres import PostgresLedgerRecorder
from tests.contracts.samples import OTHER_PEOPLE, filing, with_bad_subject
from tests.integration.pg_server import PgServer

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
SECRET = b"s" * 32

OpenLedger = Callable[..., CreditLedger]


def fixed() -> datetime:
    return NOW


@pytest.fixture
def postgres(postgres_server: PgServer) -> PgServer:
    return postgres_server


_databases = itertools.count(1)


@pytest.fixture
def database(postgres: PgServer) -> str:
    return postgres.create_database(f"ledger_test_{next(_databases)}")


@pytest.fixture
def open_ledger(postgres: PgServer, database: str) -> Iterator[OpenLedger]:
    """Opens ledgers on this test's database (each with its own cache); closes them all after."""
    opened: list[CreditLedger] = []

    def open_(**extra: str) -> CreditLedger:
        ledger = CreditLedger(
            catalogue=load_catalogue(),
            secret=SECRET,
            clock=fixed,
            env=postgres.env(database, **extra),
        )
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.close()


def count(postgres: PgServer, database: str, query: str) -> int:
    with postgres.connect(database) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, int)
    return value


def test_the_ledger_keeps_its_events_and_register_in_postgresql(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    assert isinstance(ledger.recorder, PostgresLedgerRecorder)
    assert ledger.register is ledger.recorder


def test_the_register_is_created_in_the_configured_schema(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    with postgres.connect(database) as conn:
        conn.execute("CREATE SCHEMA ledger_a")
    ledger = open_ledger(POSTGRES_SCHEMA="ledger_a")
    [outcome] = ledger.submit([filing("tax-1")])
    assert outcome.status == ACCEPTED
    assert [r.submission_id for _, r in ledger.receipts_after(0)] == ["tax-1"]
    assert count(postgres, database, "SELECT count(*) FROM ledger_a.submission_receipts") == 1
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert count(postgres, database, tables) == 0


def test_database_functions_are_refused_because_they_would_skip_the_register(
    open_ledger: OpenLedger,
) -> None:
    with pytest.raises(ProgrammingError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        open_ledger(POSTGRES_ENABLE_DB_FUNCTIONS="y")


def test_text_originator_ids_are_refused_because_files_are_keyed_by_uuid(
    open_ledger: OpenLedger,
) -> None:
    with pytest.raises(ProgrammingError, match="ORIGINATOR_ID_TYPE"):
        open_ledger(ORIGINATOR_ID_TYPE="text")


def test_a_register_made_before_the_receipt_chain_and_the_outcomes_log_is_brought_up_to_date(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    first = open_ledger()
    first.submit([filing("tax-1"), with_bad_subject("tax-2"), filing("tax-3", OTHER_PEOPLE[0])])
    with postgres.connect(database) as conn:  # as the previous version left it
        conn.execute("DROP TABLE submission_outcomes")
        conn.execute("ALTER TABLE submission_receipts DROP COLUMN chain_hash")
        conn.execute("ALTER TABLE submission_receipts DROP COLUMN source")
    ledger = open_ledger()
    link = RECEIPT_GENESIS
    for position, receipt in ledger.receipts_after(0):
        link = receipt_chain_hash(link, position, receipt)
        assert receipt.chain_hash == link
    assert [p for p, _ in ledger.outcomes_after(0)] == [p for p, _ in ledger.receipts_after(0)]
    ledger.submit([filing("tax-4", OTHER_PEOPLE[1])])
    positions = [p for p, _ in ledger.outcomes_after(0)]
    assert positions == sorted(set(positions))
    assert len(positions) == 4
