"""The SQLite recorder: events, the submission register, the outcomes log, the inbox, API keys,
portal sessions and the key ring's data keys.

It implements the application's ports (``ledger.application.ports``): the submission register
written in the events' transaction, the read port ``LedgerLog``, the ``Inbox``, the ``KeyStore``,
the ``SessionStore`` and the ``DataKeyStore``. The in-memory (``ledger.store.memory``) and
PostgreSQL (``ledger.store.postgres``) recorders implement the same; ``tests/contracts`` holds
all three to one suite. One module of over 400 lines because it is one class whose SQL
statements and the transaction they share belong together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from ledger.domain.outcomes import (
    RECEIPT_GENESIS,
    LoggedOutcome,
    Receipt,
    receipt_chain_hash,
)
from ledger.domain.personal import DataKeyRow
from ledger.store.inbox import SQLITE_CREATE_INBOX, SQLiteInbox
from ledger.store.rows import (
    API_KEY_COLUMNS,
    DATA_KEY_COLUMNS,
    DATA_KEYS_TABLE,
    OUTCOME_COLUMNS,
    OUTCOMES_TABLE,
    RECEIPT_COLUMNS,
    RECEIPTS_TABLE,
    SESSION_COLUMNS,
    EventRow,
    Logged,
    chained,
    check_read_versions,
    dashed,
    decided_from_row,
    logged_from_row,
    merged,
    positioned,
    receipt_from_row,
)

_LOGGED = (
    f"SELECT o.position, {', '.join('o.' + c for c in OUTCOME_COLUMNS.split(', '))}, r.position, "
    f"{', '.join('r.' + c for c in RECEIPT_COLUMNS.split(', '))} FROM {OUTCOMES_TABLE} o "
    f"LEFT JOIN {RECEIPTS_TABLE} r ON r.department = o.department AND r.submission_id = o.submission_id "
)
"""An outcomes-log entry that is not a first decision, with the receipt it rests on."""

_RECEIPTS = f"SELECT position, {RECEIPT_COLUMNS} FROM {RECEIPTS_TABLE} r "
"""Receipts: the register, and the outcomes log's first decisions."""


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _event_row(s: StoredEvent) -> tuple[Any, ...]:
    """A stored event as the events table's row (originator id, version, topic, state)."""
    return (
        s.originator_id.hex if type(s.originator_id) is UUID else s.originator_id,
        s.originator_version,
        s.topic,
        s.state,
    )


_STATEMENT_ROWS = 200
"""Events one INSERT takes (4 values each: within the 999 variables of SQLite before 3.32)."""
_KEY_COLUMNS = ", ".join(DATA_KEY_COLUMNS)
_INSERT_DATA_KEY = f"INSERT INTO {DATA_KEYS_TABLE} ({_KEY_COLUMNS}) VALUES ({_marks(7)})"
_SELECT_DATA_KEYS = f"SELECT {_KEY_COLUMNS} FROM {DATA_KEYS_TABLE} WHERE "
_SELECT_KEY = f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys WHERE key_id=?"


class SQLiteLedgerRecorder(SQLiteInbox, SQLiteApplicationRecorder):
    """SQLite events table plus ``submission_receipts``, both written in one transaction; the
    inbox (``ledger.store.inbox``) beside them."""

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            "CREATE TABLE IF NOT EXISTS submission_receipts ("
            "position INTEGER PRIMARY KEY AUTOINCREMENT, "
            "department TEXT NOT NULL, submission_id TEXT NOT NULL, digest TEXT NOT NULL, "
            "status TEXT NOT NULL, subject_key TEXT, events BLOB NOT NULL, reason BLOB, "
            "recorded_at TEXT NOT NULL, original BLOB, chain_hash TEXT, source TEXT, "
            "UNIQUE (department, submission_id))"
        )
        # A department's outcomes are read after a position it has already reached, so the
        # primary key serves that scan; only messages with a source are checked for redelivery.
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {OUTCOMES_TABLE} (position INTEGER PRIMARY KEY, "
            "kind TEXT NOT NULL, department TEXT, submission_id TEXT, source TEXT, digest TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL, reason BLOB, original BLOB)"
        )
        statements.append(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {OUTCOMES_TABLE}_received "
            f"ON {OUTCOMES_TABLE} (source, digest) WHERE source IS NOT NULL"
        )
        statements.append(
            "CREATE TABLE IF NOT EXISTS relay_positions (name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
        )
        statements.append(
            "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, "
            "role TEXT NOT NULL, organisation TEXT NOT NULL, label TEXT NOT NULL, subject_key TEXT, "
            "created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {DATA_KEYS_TABLE} (key_id TEXT PRIMARY KEY, stream TEXT NOT NULL, "
            "unit TEXT NOT NULL, master_key_id TEXT NOT NULL, wrapped BLOB, created_at TEXT NOT NULL, "
            "shredded_at TEXT)"
        )
        statements.append(SQLITE_CREATE_INBOX)  # a data dir made before the inbox gains it at its next start
        statements.append(
            "CREATE TABLE IF NOT EXISTS portal_sessions (session_hash TEXT PRIMARY KEY, "
            "key_id TEXT NOT NULL, created_at REAL NOT NULL, last_used_at REAL NOT NULL, data TEXT NOT NULL)"
        )
        return statements

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            self._migrate(c)

    def _migrate(self, c: SQLiteCursor) -> None:
        """Bring a register made before the receipt chain and the outcomes log up to date: add
        their columns and link its receipts in position order. Its receipts are its first
        outcomes, at their positions, so a relay's saved position still means the same place."""
        c.execute(f"PRAGMA table_info({RECEIPTS_TABLE})")
        if "chain_hash" in {row[1] for row in c.fetchall()}:
            return  # made by this version (or migrated already)
        c.execute(f"ALTER TABLE {RECEIPTS_TABLE} ADD COLUMN chain_hash TEXT")
        c.execute(f"ALTER TABLE {RECEIPTS_TABLE} ADD COLUMN source TEXT")
        c.execute(f"SELECT position, {RECEIPT_COLUMNS} FROM {RECEIPTS_TABLE} ORDER BY position")
        link, updates = RECEIPT_GENESIS, []
        for row in c.fetchall():
            receipt = receipt_from_row(tuple(row)[1:])
            if receipt.chain_hash:
                link = receipt.chain_hash
                continue
            link = receipt_chain_hash(link, row[0], receipt)
            updates.append((link, row[0]))
        c.executemany(f"UPDATE {RECEIPTS_TABLE} SET chain_hash=? WHERE position=?", updates)

    def last_receipt_position(self) -> int:
        """The position of the newest receipt (0 while there is none)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT max(position) FROM submission_receipts")
            row = c.fetchone()
        return int(row[0] or 0)

    def last_outcome_position(self) -> int:
        """The position of the newest outcome (0 while there is none): what credit.outcomes has to reach."""
        with self.datastore.transaction(commit=False) as c:
            return self._last_outcome(c)

    @staticmethod
    def _last_outcome(c: SQLiteCursor) -> int:
        c.execute(
            f"SELECT max(coalesce((SELECT max(position) FROM {RECEIPTS_TABLE}), 0), "
            f"coalesce((SELECT max(position) FROM {OUTCOMES_TABLE}), 0))"
        )
        return int(c.fetchone()[0] or 0)

    def receipt_head(self) -> tuple[int, str]:
        """(position, chain link) of the newest receipt; (0, the genesis link) while there is none."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position, chain_hash FROM {RECEIPTS_TABLE} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
        return (int(row[0]), str(row[1] or RECEIPT_GENESIS)) if row else (0, RECEIPT_GENESIS)

    def relay_position(self, name: str) -> int:
        """How far the relay called ``name`` has published (0 before it starts)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT position FROM relay_positions WHERE name=?", (name,))
            row = c.fetchone()
        return int(row[0]) if row else 0

    def save_relay_position(self, name: str, position: int) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO relay_positions (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position=excluded.position",
                (name, position),
            )

    def insert_standalone_events(self, stored_events: Sequence[StoredEvent]) -> None:
        """Events each the first of its own stream (query records), in one multi-row INSERT in
        autocommit mode: one statement is one transaction, all rows or none, durable when it
        returns (``synchronous=FULL``). The query register's writer thread comes back to Python
        once, not three times (BEGIN, the inserts, COMMIT), each a wait for the GIL while the
        event loop is busy: a check's p50 at 500/s fell by a fifth to a third (docs/benchmarks.md,
        issue 13). A larger batch than one statement takes goes through
        ``insert_events``, still one transaction."""
        if not stored_events:
            return
        if len(stored_events) > _STATEMENT_ROWS:
            self.insert_events(stored_events)
            return
        values = [value for s in stored_events for value in _event_row(s)]
        rows = ",".join([f"({_marks(4)})"] * len(stored_events))
        statement = f"INSERT INTO {self.events_table_name} VALUES {rows}"
        with self.datastore.get_connection(commit=True) as conn:
            try:
                conn.cursor().execute(statement, values)
            except sqlite3.IntegrityError as exc:  # as eventsourcing's transactions raise them
                raise IntegrityError(exc) from exc
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        outcomes: Sequence[Logged] = (),
        read_versions: Mapping[UUID, int] | None = None,
        data_keys: Sequence[DataKeyRow] = (),
        shred_keys: tuple[Sequence[str], str] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if data_keys:  # the keys a batch's events are sealed under: saved with them or not at all
            c.executemany(
                f"INSERT INTO {DATA_KEYS_TABLE} ({', '.join(DATA_KEY_COLUMNS)}) VALUES ({_marks(7)})",
                data_keys,
            )
        if shred_keys is not None:
            self._shred(c, *shred_keys)
        # One executemany instead of eventsourcing's execute per event (which it does only to
        # return notification ids). Nothing here consumes those ids: nothing subscribes in-process,
        # and the relay reads the notification log by position. So none are returned.
        if outcomes and not stored_events:
            # A write first (one that changes nothing), so this transaction holds SQLite's write
            # lock before it reads the register's positions and chain head below.
            c.execute(f"DELETE FROM {OUTCOMES_TABLE} WHERE 0")
        c.executemany(self.insert_events_statement, [_event_row(s) for s in stored_events])
        if outcomes:
            base = self._last_outcome(c)
            rows, placed = positioned(outcomes, range(base + 1, base + 1 + len(outcomes)))
            if placed:
                c.execute(f"SELECT chain_hash FROM {RECEIPTS_TABLE} ORDER BY position DESC LIMIT 1")
                head = c.fetchone()
                c.executemany(
                    f"INSERT INTO {RECEIPTS_TABLE} (position, {RECEIPT_COLUMNS}) VALUES ({_marks(12)})",
                    chained(placed, head[0] if head else None),
                )
            # A redelivered message (same source, same digest) was logged the first time it came.
            c.executemany(
                f"INSERT OR IGNORE INTO {OUTCOMES_TABLE} (position, {OUTCOME_COLUMNS}) VALUES ({_marks(9)})",
                rows,
            )
        if read_versions:
            # After the inserts: this transaction now holds SQLite's write lock, so what it reads
            # is what every other writer has committed.
            check_read_versions(self._current_versions(c, list(read_versions)), read_versions)
        return None

    def _current_versions(self, c: SQLiteCursor, ids: list[UUID]) -> dict[UUID, int]:
        current: dict[UUID, int] = {}
        for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
            chunk = ids[start : start + 500]
            c.execute(
                f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
                f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id",
                [i.hex for i in chunk],
            )
            current.update((UUID(row[0]), row[1]) for row in c.fetchall())
        return current

    def event_rows(self, after: int, limit: int, *, stop: int | None = None) -> list[EventRow]:
        """(position, stream id, version, topic, state) in ledger order, as plain tuples: a full
        verification reads every event, and Notification and UUID objects cost more than the hash."""
        bound = "" if stop is None else " AND rowid <= ?"
        params = (after, limit) if stop is None else (after, stop, limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} "
                f"WHERE rowid > ?{bound} ORDER BY rowid LIMIT ?",
                params,
            )
            return [(row[0], dashed(row[1]), row[2], row[3], row[4]) for row in c.fetchall()]

    def stream_rows(self, stream_id: UUID) -> list[EventRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE originator_id = ? ORDER BY originator_version",
                (stream_id.hex,),
            )
            return [(row[0], dashed(row[1]), row[2], row[3], row[4]) for row in c.fetchall()]

    def head(self) -> int:
        return self.max_notification_id() or 0  # None while the table is empty

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        """Which of these aggregates have events: one query per 500 ids instead of one miss each."""
        wanted = list(ids)
        found: set[UUID] = set()
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                c.execute(
                    f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                    f"WHERE originator_version=1 AND originator_id IN ({','.join('?' * len(chunk))})",
                    [i.hex for i in chunk],
                )
                found.update(UUID(row[0]) for row in c.fetchall())
        return found

    def select_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Receipt]:
        by_department: dict[str, list[str]] = {}
        for department, submission_id in dict.fromkeys(keys):
            by_department.setdefault(department, []).append(submission_id)
        found: dict[tuple[str, str], Receipt] = {}
        with self.datastore.transaction(commit=False) as c:
            for department, ids in by_department.items():
                for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
                    chunk = ids[start : start + 500]
                    c.execute(
                        f"SELECT {RECEIPT_COLUMNS} FROM submission_receipts "
                        f"WHERE department=? AND submission_id IN ({','.join('?' * len(chunk))})",
                        [department, *chunk],
                    )
                    for row in c.fetchall():
                        receipt = receipt_from_row(tuple(row))
                        found[receipt.key] = receipt
        return found

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        with self.datastore.transaction(commit=False) as c:
            rows = self._page(c, _RECEIPTS, position, department, limit)
        return [(row[0], receipt_from_row(row[1:])) for row in rows]

    def outcomes_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, LoggedOutcome]]:
        # Both tables in one read transaction: one snapshot, so a tailing reader never moves past
        # a receipt that another writer committed between the two reads.
        with self.datastore.transaction(commit=False) as c:
            decided = [decided_from_row(row) for row in self._page(c, _RECEIPTS, position, department, limit)]
            others = [logged_from_row(row) for row in self._page(c, _LOGGED, position, department, limit)]
        return merged(decided, others, limit)

    @staticmethod
    def _page(
        c: SQLiteCursor, select: str, position: int, department: str | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows of ``select`` (whose first table is aliased ``r`` or ``o``) after ``position``."""
        alias = select.split(" FROM ", 1)[1].split()[1]
        sql = f"{select}WHERE {alias}.position>?"
        params: list[Any] = [position]
        if department is not None:
            sql += f" AND {alias}.department=?"
            params.append(department)
        sql += f" ORDER BY {alias}.position LIMIT ?"
        params.append(limit)
        c.execute(sql, params)
        return [tuple(row) for row in c.fetchall()]

    # -- data keys ------------------------------------------------------------------------------

    @staticmethod
    def _shred(c: SQLiteCursor, key_ids: Sequence[str], at: str) -> None:
        # secure_delete: SQLite overwrites the freed bytes of the wrapped key instead of leaving them
        # in a free page of the file, where a copy of the file would still hold them.
        c.execute("PRAGMA secure_delete=ON")
        c.executemany(
            f"UPDATE {DATA_KEYS_TABLE} SET wrapped=NULL, shredded_at=? "
            "WHERE key_id=? AND wrapped IS NOT NULL",
            [(at, kid) for kid in key_ids],
        )

    def data_keys(self, key_ids: Iterable[str]) -> dict[str, DataKeyRow]:
        ids = list(key_ids)
        out: dict[str, DataKeyRow] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                c.execute(
                    f"{_SELECT_DATA_KEYS}key_id IN ({_marks(len(chunk))})",
                    chunk,
                )
                out.update((row[0], tuple(row)) for row in c.fetchall())
        return out

    def live_data_keys(
        self, *, stream: str | None = None, after: str = "", limit: int = 1000
    ) -> list[DataKeyRow]:
        where = "wrapped IS NOT NULL AND key_id > ?" + (" AND stream = ?" if stream is not None else "")
        params: list[Any] = [after] + ([stream] if stream is not None else [])
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"{_SELECT_DATA_KEYS}{where} ORDER BY key_id LIMIT ?",
                [*params, limit],
            )
            return [tuple(row) for row in c.fetchall()]

    def master_key_ids(self) -> set[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT DISTINCT master_key_id FROM {DATA_KEYS_TABLE} WHERE wrapped IS NOT NULL")
            return {row[0] for row in c.fetchall()}

    def rewrap_data_keys(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute("PRAGMA secure_delete=ON")  # the old wrapping goes too
            c.executemany(
                f"UPDATE {DATA_KEYS_TABLE} SET master_key_id=?, wrapped=? "
                "WHERE key_id=? AND wrapped IS NOT NULL",
                [(master_id, wrapped, kid) for kid, master_id, wrapped in rows],
            )

    def shred_data_keys(self, key_ids: Sequence[str], at: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            self._shred(c, key_ids, at)

    # -- API keys -------------------------------------------------------------------------------

    def add_key(self, row: Mapping[str, Any]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [row.get(column) for column in API_KEY_COLUMNS],
            )

    def key(self, key_id: str) -> dict[str, Any] | None:
        # One statement, read in autocommit mode (the pool's connections are): as consistent as in
        # a transaction of its own, without the BEGIN and ROLLBACK around it. Every authenticated
        # request reads its key here, on the event loop, and each statement is a turn at the GIL.
        with self.datastore.get_connection(commit=False) as conn:
            c = conn.cursor()
            c.execute(_SELECT_KEY, (key_id,))
            row = c.fetchone()
        return dict(zip(API_KEY_COLUMNS, tuple(row), strict=True)) if row else None

    def api_keys(self) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys ORDER BY created_at, key_id")
            return [dict(zip(API_KEY_COLUMNS, tuple(row), strict=True)) for row in c.fetchall()]

    def revoke_key(self, key_id: str, at: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute("UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (at, key_id))
            return bool(c.sqlite_cursor.rowcount)  # SQLiteCursor wraps the sqlite3 cursor

    # -- portal sessions ------------------------------------------------------------------------

    def add_session(self, row: Mapping[str, Any]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO portal_sessions ({', '.join(SESSION_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                [row[column] for column in SESSION_COLUMNS],
            )

    def session(self, token_hash: str) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {', '.join(SESSION_COLUMNS)} FROM portal_sessions WHERE session_hash=?",
                (token_hash,),
            )
            row = c.fetchone()
        return dict(zip(SESSION_COLUMNS, tuple(row), strict=True)) if row else None

    def touch_session(self, token_hash: str, last_used_at: float, data: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE portal_sessions SET last_used_at=?, data=? WHERE session_hash=?",
                (last_used_at, data, token_hash),
            )
            return bool(c.sqlite_cursor.rowcount)

    def delete_session(self, token_hash: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute("DELETE FROM portal_sessions WHERE session_hash=?", (token_hash,))
            return bool(c.sqlite_cursor.rowcount)

    def delete_sessions(self, *, used_before: float, created_before: float) -> int:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "DELETE FROM portal_sessions WHERE last_used_at<? OR created_at<?",
                (used_before, created_before),
            )
            return int(c.sqlite_cursor.rowcount)
