"""The read models and the query register on PostgreSQL: the same store, the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract.messages import messages_from_store
from credit_ledger.compose import build_reader
from ledger.application.keys import issue_key
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue
from projections.projector import Projector
from projections.store import ProjectionStore
from tests.conftest import SECRET, example
from tests.integration.pg_server import PgServer, running_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


def test_projections_and_queries_work_the_same_on_postgresql(postgres: PgServer, tmp_path: Path) -> None:
    database = postgres.create_database("read_side")
    url = f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:{postgres.port}/{database}"
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    ledger = CreditLedger(
        catalogue=load_catalogue(),
        secret=SECRET,
        clock=lambda: now,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )
    subs = [example(n) for n in ("file_record", "file_record_organisation", "designate", "file_record_minor")]
    assert all(o.accepted for o in ledger.submit(subs))
    messages = messages_from_store(ledger.reader)

    on_pg = ProjectionStore(url)
    on_sqlite = ProjectionStore(tmp_path / "projections.sqlite")
    for store in (on_pg, on_sqlite):
        Projector(store, ledger.catalogue).apply(messages)
        Projector(store, ledger.catalogue).apply(messages)  # again: changes nothing
    assert list(on_pg.states()) == list(on_sqlite.states())
    assert on_pg.members("black") == on_sqlite.members("black")
    assert on_pg.due_on_or_before("2027-01-01") == on_sqlite.due_on_or_before("2027-01-01")
    # The scheduler's query for clean-record announcements (its LIKE pattern once broke psycopg).
    assert on_pg.clean_due("2040-01-01") == on_sqlite.clean_due("2040-01-01")
    assert on_pg.counts() == on_sqlite.counts()
    # The measure notices and their outbox, written twice, kept once.
    assert on_pg.notice_rows() == on_sqlite.notice_rows()
    assert len(on_pg.notice_rows(department="court")) == 5
    assert list(on_pg.notice_messages()) == list(on_sqlite.notice_messages())
    assert len(on_pg.unpublished_notices(limit=1000)) == 85

    service = QueryService(ledger, build_reader(ledger, on_pg), clock=lambda: now)
    _, key = issue_key(
        ledger.keys,
        role="department",
        organisation="tax_bureau",
        label="x",
        subject_key=None,
        now=now,
        departments=ledger.catalogue.latest.departments,
    )
    tax = service.authenticate(key)
    assert tax is not None
    answer = service.status(
        tax, "11010519491231002X", purpose="administrative_licensing", basis="《行政许可法》"
    )
    assert answer.ok
    on_pg.close()
    on_sqlite.close()
