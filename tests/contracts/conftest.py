"""The three stores the recorder contract is held to: in memory, a SQLite file, PostgreSQL.

Each ``Backend`` opens any number of ``CreditLedger`` applications on one store (so two writers,
a writer and a reader, or a restart can be played), and reaches under the application to alter
what is stored, as someone with write access to the database could. PostgreSQL is a throw-away
cluster started once for the session (``postgres_server`` in ``tests/conftest.py``), never skipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import ApplicationRecorder

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue, load_catalogue
from ledger.store.memory import POPOLedgerRecorder
from tests.conftest import SECRET
from tests.integration.pg_server import PgServer

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)


class Backend:
    """One store, and every application opened on it (closed at the end of the test)."""

    name = ""
    durable = True

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.opened: list[CreditLedger] = []

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def open(self, clock: Callable[[], datetime] = lambda: NOW) -> CreditLedger:
        ledger = CreditLedger(catalogue=self.catalogue, secret=SECRET, clock=clock, env=self.env())
        self.opened.append(ledger)
        return ledger

    def close(self) -> None:
        for ledger in self.opened:
            ledger.close()

    # -- what someone with write access to the database can do -----------------------------------

    def replace_event_state(self, stream: str, version: int, state: bytes) -> None:
        raise NotImplementedError

    def set_receipt_status(self, position: int, status: str) -> None:
        raise NotImplementedError

    def count(self, table: str) -> int:
        raise NotImplementedError


class MemoryBackend(Backend):
    """The in-memory recorder, shared by every application opened (one process's store)."""

    name = "memory"
    durable = False

    def __init__(self, catalogue: Catalogue) -> None:
        super().__init__(catalogue)
        self.recorder = POPOLedgerRecorder()

    def env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}

    def open(self, clock: Callable[[], datetime] = lambda: NOW) -> CreditLedger:
        shared = self.recorder

        class OnSharedMemory(CreditLedger):
            def construct_recorder(self) -> ApplicationRecorder:
                return shared

        ledger = OnSharedMemory(catalogue=self.catalogue, secret=SECRET, clock=clock, env=self.env())
        self.opened.append(ledger)
        return ledger

    def replace_event_state(self, stream: str, version: int, state: bytes) -> None:
        r = self.recorder
        index = r._stored_events_index[stream][version]
        r._stored_events[index] = dataclasses.replace(r._stored_events[index], state=state)

    def set_receipt_status(self, position: int, status: str) -> None:
        for key, (at, receipt) in self.recorder._receipts.items():
            if at == position:
                self.recorder._receipts[key] = (at, dataclasses.replace(receipt, status=status))

    def count(self, table: str) -> int:
        r = self.recorder
        return {
            "events": len(r._stored_events),
            "receipts": len(r._receipts),
            "outcomes": len(r._outcomes),
        }[table]


_TABLES = {"receipts": "submission_receipts"}


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, catalogue: Catalogue, path: Path) -> None:
        super().__init__(catalogue)
        self.path = path

    def env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.path)}

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(statement, params).fetchall()

    def replace_event_state(self, stream: str, version: int, state: bytes) -> None:
        self.sql(
            "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?",
            state,
            UUID(stream).hex,
            version,
        )

    def set_receipt_status(self, position: int, status: str) -> None:
        self.sql("UPDATE submission_receipts SET status=? WHERE position=?", status, position)

    def count(self, table: str) -> int:
        if table == "outcomes":  # the log: receipts (first decisions) and the other entries
            return self.count("receipts") + int(self.sql("SELECT count(*) FROM submission_outcomes")[0][0])
        name = _TABLES.get(table, "stored_events")
        return int(self.sql(f"SELECT count(*) FROM {name}")[0][0])


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, catalogue: Catalogue, server: PgServer, database: str) -> None:
        super().__init__(catalogue)
        self.server = server
        self.database = database

    def env(self) -> dict[str, str]:
        return self.server.env(self.database)

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.server.connect(self.database) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def replace_event_state(self, stream: str, version: int, state: bytes) -> None:
        self.sql(
            "UPDATE creditledger_events SET state=%s WHERE originator_id=%s AND originator_version=%s",
            state,
            UUID(stream),
            version,
        )

    def set_receipt_status(self, position: int, status: str) -> None:
        self.sql("UPDATE submission_receipts SET status=%s WHERE position=%s", status, position)

    def count(self, table: str) -> int:
        if table == "outcomes":  # the log: receipts (first decisions) and the other entries
            return self.count("receipts") + int(self.sql("SELECT count(*) FROM submission_outcomes")[0][0])
        name = _TABLES.get(table, "creditledger_events")
        return int(self.sql(f"SELECT count(*) FROM {name}")[0][0])


_databases = itertools.count(1)


def _make(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    catalogue = load_catalogue()
    if name == "memory":
        return MemoryBackend(catalogue)
    if name == "sqlite":
        return SQLiteBackend(catalogue, tmp_path / "ledger.sqlite")
    server: PgServer = request.getfixturevalue("postgres_server")
    return PostgresBackend(catalogue, server, server.create_database(f"contract_{next(_databases)}"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = _make(request.param, request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgres"])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The stores that outlive the process: a restart must find everything where it was."""
    made = _make(request.param, request, tmp_path)
    yield made
    made.close()
