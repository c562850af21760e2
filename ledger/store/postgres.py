"""PostgreSQL application recorder that also keeps the submission register, in one transaction.

One module of over 400 lines because it is one class: its statements, composed once against the
configured schema, and the transaction they share belong together.

Needs the ``postgres`` extra (psycopg 3). The register is the same as the SQLite one: a
``submission_receipts`` table, one row per decided submission, written in the transaction that
writes the events the submission produced, so a receipt exists exactly when its events do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InfrastructureFactory,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier

from ledger.domain.outcomes import RECEIPT_GENESIS, LoggedOutcome, Receipt, receipt_chain_hash
from ledger.domain.personal import DataKeyRow
from ledger.store import postgres_inbox
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
    decided_from_row,
    logged_from_row,
    merged,
    positioned,
    receipt_from_row,
)

CREATE_TABLES_LOCK = 0x63_72_65_64_69_74_00_01
"""The advisory lock key under which the ledger's tables are created (any constant of ours)."""


class PostgresLedgerRecorder(postgres_inbox.PostgresInbox, PostgresApplicationRecorder):
    """PostgreSQL events table plus ``submission_receipts``, both written in one transaction; the
    inbox (``ledger.store.postgres_inbox``) beside them.

    Receipt positions are issued while the events table's EXCLUSIVE lock is held (the lock
    eventsourcing takes to make notification ids commit in order), so receipts also become
    visible in position order and a reader tailing :meth:`receipts_after` never skips one.
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        if datastore.enable_db_functions:
            # That path inserts events with one function call and never calls _insert_events,
            # so receipts would silently not be written.
            msg = (
                "POSTGRES_ENABLE_DB_FUNCTIONS is not supported by the credit ledger: "
                "receipts must be written in the events' transaction"
            )
            raise ProgrammingError(msg)
        if datastore.originator_id_type != "uuid":
            # Files are keyed by UUID; eventsourcing cannot select UUID ids from a text column.
            msg = (
                f"ORIGINATOR_ID_TYPE={datastore.originator_id_type!r} is not supported by the "
                "credit ledger: its files are keyed by UUID, use 'uuid'"
            )
            raise ProgrammingError(msg)
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(RECEIPTS_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "position bigserial PRIMARY KEY, "
                "department text NOT NULL, submission_id text NOT NULL, digest text NOT NULL, "
                "status text NOT NULL, subject_key text, events bytea NOT NULL, reason bytea, "
                "recorded_at text NOT NULL, original bytea, chain_hash text, source text, "
                "UNIQUE (department, submission_id))"
            ).format(schema=schema, table=table)
        )
        # A register made before the receipt chain gains its columns here (and its links in _migrate).
        for column in ("chain_hash", "source"):
            self.sql_create_statements.append(
                SQL("ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS {column} text").format(
                    schema=schema, table=table, column=Identifier(column)
                )
            )
        outcomes = Identifier(OUTCOMES_TABLE)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (position bigserial PRIMARY KEY, "
                "kind text NOT NULL, department text, submission_id text, source text, digest text NOT NULL, "
                "recorded_at text NOT NULL, reason bytea, original bytea)"
            ).format(schema=schema, table=outcomes)
        )
        # Only messages with a source are checked for redelivery (see OutcomeEntry).
        self.sql_create_statements.append(
            SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {schema}.{table} (source, digest) "
                "WHERE source IS NOT NULL"
            ).format(index=Identifier(f"{OUTCOMES_TABLE}_received_idx"), schema=schema, table=outcomes)
        )
        self.sql_create_statements.append(
            SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (department, position)").format(
                index=Identifier(f"{OUTCOMES_TABLE}_department_idx"), schema=schema, table=outcomes
            )
        )
        sequence = f"{self.datastore.schema}.{OUTCOMES_TABLE}"
        self.outcome_positions_statement = SQL(
            "SELECT nextval(pg_get_serial_sequence({sequence}, 'position')) AS p "
            "FROM generate_series(1, %s) ORDER BY p"
        ).format(sequence=sequence)
        self.insert_outcomes_statement = SQL(
            "INSERT INTO {schema}.{table} (position, " + OUTCOME_COLUMNS + ") "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source, digest) WHERE source IS NOT NULL DO NOTHING"
        ).format(schema=schema, table=outcomes)
        self.receipt_head_statement = SQL(
            "SELECT position, chain_hash FROM {schema}.{table} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, table=table)
        self.last_outcome_statement = SQL(
            "SELECT greatest((SELECT max(position) FROM {schema}.{receipts}), "
            "(SELECT max(position) FROM {schema}.{outcomes}))"
        ).format(schema=schema, receipts=table, outcomes=outcomes)
        joined = SQL(", ").join(
            [SQL("o.position")]
            + [SQL("o.") + Identifier(c) for c in OUTCOME_COLUMNS.split(", ")]
            + [SQL("r.position")]
            + [SQL("r.") + Identifier(c) for c in RECEIPT_COLUMNS.split(", ")]
        )
        self.outcomes_after_statement = SQL(
            "SELECT {columns} FROM {schema}.{outcomes} o LEFT JOIN {schema}.{receipts} r "
            "ON r.department = o.department AND r.submission_id = o.submission_id WHERE o.position > %s"
        ).format(columns=joined, schema=schema, outcomes=outcomes, receipts=table)
        positions = Identifier("relay_positions")
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} "
                "(name text PRIMARY KEY, position bigint NOT NULL)"
            ).format(schema=schema, table=positions)
        )
        self.select_position_statement = SQL("SELECT position FROM {schema}.{table} WHERE name = %s").format(
            schema=schema, table=positions
        )
        self.save_position_statement = SQL(
            "INSERT INTO {schema}.{table} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        ).format(schema=schema, table=positions)
        self.sql_create_statements.append(
            SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (department, position)").format(
                index=Identifier(f"{RECEIPTS_TABLE}_department_idx"), schema=schema, table=table
            )
        )
        self.insert_receipts_statement = SQL(
            "INSERT INTO {schema}.{table} (position, " + RECEIPT_COLUMNS + ") "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(schema=schema, table=table)
        self.select_receipts_statement = SQL(
            "SELECT " + RECEIPT_COLUMNS + " FROM {schema}.{table} "
            "WHERE (department, submission_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))"
        ).format(schema=schema, table=table)
        self.existing_streams_statement = SQL(
            "SELECT originator_id FROM {schema}.{table} "
            "WHERE originator_version = 1 AND originator_id = ANY(%s)"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self.last_receipt_statement = SQL("SELECT max(position) FROM {schema}.{table}").format(
            schema=schema, table=table
        )
        self.current_versions_statement = SQL(
            "SELECT originator_id, max(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        keys = Identifier("api_keys")
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} (key_id text PRIMARY KEY, "
                "key_hash text NOT NULL, role text NOT NULL, organisation text NOT NULL, "
                "label text NOT NULL, subject_key text, "
                "created_at text NOT NULL, revoked_at text)"
            ).format(schema=schema, table=keys)
        )
        self.sql_create_statements.extend(postgres_inbox.create_statements(self.datastore.schema))
        columns = SQL(", ").join(Identifier(c) for c in API_KEY_COLUMNS)
        self.insert_key_statement = SQL("INSERT INTO {schema}.{table} ({columns}) VALUES ({marks})").format(
            schema=schema,
            table=keys,
            columns=columns,
            marks=SQL(", ").join([SQL("%s")] * len(API_KEY_COLUMNS)),
        )
        self.select_key_statement = SQL("SELECT {columns} FROM {schema}.{table}").format(
            schema=schema, table=keys, columns=columns
        )
        self.revoke_key_statement = SQL(
            "UPDATE {schema}.{table} SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL"
        ).format(schema=schema, table=keys)
        self._data_key_statements(schema)
        self._session_statements(schema)
        events = Identifier(self.events_table_name)
        self.event_rows_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, table=events)
        self.stream_rows_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = %s ORDER BY originator_version"
        ).format(schema=schema, table=events)
        self.receipts_after_statement = SQL(
            "SELECT position, " + RECEIPT_COLUMNS + " FROM {schema}.{table} r WHERE r.position > %s"
        ).format(schema=schema, table=table)

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        outcomes: Sequence[Logged] = (),
        read_versions: Mapping[UUID, int] | None = None,
        data_keys: Sequence[DataKeyRow] = (),
        shred_keys: tuple[Sequence[str], str] | None = None,
        **kwargs: Any,
    ) -> None:
        # Runs first in the transaction (pipelined), before the events are inserted.
        super()._insert_events(curs, stored_events, **kwargs)
        if data_keys:  # the keys a batch's events are sealed under: saved with them or not at all
            curs.executemany(self.insert_data_keys_statement, list(data_keys))
        if shred_keys is not None:
            curs.executemany(self.shred_data_keys_statement, [(shred_keys[1], k) for k in shred_keys[0]])
        if outcomes or read_versions:
            # Take the events table lock now (the events insert re-takes it, a no-op), so that
            # writers are serialised before any outcome position is drawn from the sequence or
            # the receipt chain's head is read, and the versions read below are every other
            # writer's last word.
            self._lock_table(curs)
        if read_versions:
            curs.execute(self.current_versions_statement, (list(read_versions),))
            check_read_versions(
                {row["originator_id"]: row["version"] for row in curs.fetchall()}, read_versions
            )
        if outcomes:
            curs.execute(self.outcome_positions_statement, (len(outcomes),))
            rows, placed = positioned(outcomes, [row["p"] for row in curs.fetchall()])
            if placed:
                curs.execute(self.receipt_head_statement)
                head = curs.fetchone()
                curs.executemany(
                    self.insert_receipts_statement, chained(placed, head["chain_hash"] if head else None)
                )
            curs.executemany(self.insert_outcomes_statement, rows)

    def create_table(self) -> None:
        super().create_table()
        self._migrate()

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Workers started together on a new database all run CREATE ... IF NOT EXISTS; PostgreSQL
        # lets two of them race on its catalogue ("tuple concurrently updated"), which crashed a
        # worker of three started at once. One transaction-scoped advisory lock takes them in turn.
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_TABLES_LOCK,))
        super()._create_table(curs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _migrate(self) -> None:
        """Link the receipts of a register made before the chain, and start the outcomes' sequence
        after them (see ``SQLiteLedgerRecorder._migrate``); a no-op once done."""
        schema = Identifier(self.datastore.schema)
        receipts = Identifier(RECEIPTS_TABLE)
        with self.datastore.transaction(commit=True) as c:
            self._lock_table(c)
            # An earlier version's register: its newest receipt has no link (every receipt of this
            # version is linked in the transaction that writes it).
            c.execute(
                SQL("SELECT chain_hash FROM {schema}.{receipts} ORDER BY position DESC LIMIT 1").format(
                    schema=schema, receipts=receipts
                )
            )
            row = c.fetchone()
            if row is None or row["chain_hash"] is not None:
                return
            c.execute(
                SQL(
                    "SELECT position, " + RECEIPT_COLUMNS + " FROM {schema}.{table} ORDER BY position"
                ).format(schema=schema, table=receipts)
            )
            link, updates = RECEIPT_GENESIS, []
            for row in c.fetchall():
                values = list(row.values())
                receipt = receipt_from_row(values[1:])
                link = receipt.chain_hash or receipt_chain_hash(link, values[0], receipt)
                updates.append((link, values[0]))
            c.executemany(
                SQL("UPDATE {schema}.{table} SET chain_hash = %s WHERE position = %s").format(
                    schema=schema, table=receipts
                ),
                updates,
            )
            # Receipts and outcomes are numbered by the outcomes' sequence from now on.
            c.execute(
                SQL(
                    "SELECT setval(pg_get_serial_sequence({sequence}, 'position'), "
                    "(SELECT coalesce(max(position), 0) + 1 FROM {schema}.{receipts}), false)"
                ).format(
                    sequence=f"{self.datastore.schema}.{OUTCOMES_TABLE}", schema=schema, receipts=receipts
                )
            )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def last_outcome_position(self) -> int:
        """The position of the newest outcome (0 while there is none): what credit.outcomes has to reach."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.last_outcome_statement)
            row = c.fetchone()
        return int(row[0] or 0) if row else 0

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def receipt_head(self) -> tuple[int, str]:
        """(position, chain link) of the newest receipt; (0, the genesis link) while there is none."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.receipt_head_statement)
            row = c.fetchone()
        return (int(row[0]), str(row[1] or RECEIPT_GENESIS)) if row else (0, RECEIPT_GENESIS)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def outcomes_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, LoggedOutcome]]:
        receipts = self._paged(self.receipts_after_statement, "r", position, department, limit)
        others = self._paged(self.outcomes_after_statement, "o", position, department, limit)
        # Both tables in one snapshot, so a tailing reader never moves past a receipt that another
        # writer committed between the two reads.
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as c,
        ):
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            c.execute(*receipts)
            decided = [decided_from_row(row) for row in c.fetchall()]
            c.execute(*others)
            logged = [logged_from_row(row) for row in c.fetchall()]
        return merged(decided, logged, limit)

    @staticmethod
    def _paged(
        statement: Composed, alias: str, position: int, department: str | None, limit: int
    ) -> tuple[Composed, list[Any]]:
        """``statement`` (which ends in a position condition on table ``alias``) for one page."""
        params: list[Any] = [position]
        if department is not None:
            statement += SQL(" AND ") + Identifier(alias, "department") + SQL(" = %s")
            params.append(department)
        statement += SQL(" ORDER BY ") + Identifier(alias, "position") + SQL(" LIMIT %s")
        params.append(limit)
        return statement, params

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _page(
        self, statement: Composed, alias: str, position: int, department: str | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Rows of ``statement`` for one page, by position."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(*self._paged(statement, alias, position, department, limit))
            return list(c.fetchall())

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def last_receipt_position(self) -> int:
        """The position of the newest receipt (0 while there is none)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.last_receipt_statement)
            row = c.fetchone()
        return int(row[0] or 0) if row else 0

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def relay_position(self, name: str) -> int:
        """How far the relay called ``name`` has published (0 before it starts)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_position_statement, (name,))
            row = c.fetchone()
        return int(row[0]) if row else 0

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def save_relay_position(self, name: str, position: int) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.save_position_statement, (name, position))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        """Which of these aggregates have events, in one query (served by the primary key)."""
        wanted = list(ids)
        if not wanted:
            return set()
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.existing_streams_statement, (wanted,))
            return {row[0] for row in c.fetchall()}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Receipt]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        departments = [k[0] for k in wanted]
        submission_ids = [k[1] for k in wanted]
        found: dict[tuple[str, str], Receipt] = {}
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_receipts_statement, (departments, submission_ids))
            for row in c.fetchall():
                receipt = receipt_from_row(row)
                found[receipt.key] = receipt
        return found

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        rows = self._page(self.receipts_after_statement, "r", position, department, limit)
        return [(row[0], receipt_from_row(row[1:])) for row in rows]

    # -- the read port ---------------------------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def event_rows(self, after: int, limit: int, *, stop: int | None = None) -> list[EventRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.event_rows_statement, (after, 2**62 if stop is None else stop, limit))
            return [(r[0], str(r[1]), r[2], r[3], bytes(r[4])) for r in c.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def stream_rows(self, stream_id: UUID) -> list[EventRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.stream_rows_statement, (stream_id,))
            return [(r[0], str(r[1]), r[2], r[3], bytes(r[4])) for r in c.fetchall()]

    def head(self) -> int:
        return self.max_notification_id() or 0  # None while the table is empty

    # -- API keys -------------------------------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def add_key(self, row: Mapping[str, Any]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.insert_key_statement, [row.get(column) for column in API_KEY_COLUMNS])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def key(self, key_id: str) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_key_statement + SQL(" WHERE key_id = %s"), (key_id,))
            row = c.fetchone()
        return dict(zip(API_KEY_COLUMNS, row, strict=True)) if row else None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def api_keys(self) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_key_statement + SQL(" ORDER BY created_at, key_id"))
            return [dict(zip(API_KEY_COLUMNS, row, strict=True)) for row in c.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def revoke_key(self, key_id: str, at: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.revoke_key_statement, (at, key_id))
            return bool(c.rowcount)

    # -- data keys ------------------------------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def data_keys(self, key_ids: Iterable[str]) -> dict[str, DataKeyRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_data_keys_statement + SQL("WHERE key_id = ANY(%s)"), (list(key_ids),))
            return {row[0]: _data_key(row) for row in c.fetchall()}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def live_data_keys(
        self, *, stream: str | None = None, after: str = "", limit: int = 1000
    ) -> list[DataKeyRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(
                self.select_data_keys_statement
                + SQL("WHERE wrapped IS NOT NULL AND key_id > %s AND (%s::text IS NULL OR stream = %s) ")
                + SQL("ORDER BY key_id LIMIT %s"),
                (after, stream, stream, limit),
            )
            return [_data_key(row) for row in c.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def master_key_ids(self) -> set[str]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(
                SQL("SELECT DISTINCT master_key_id FROM {schema}.{table} WHERE wrapped IS NOT NULL").format(
                    schema=Identifier(self.datastore.schema), table=Identifier(DATA_KEYS_TABLE)
                )
            )
            return {row[0] for row in c.fetchall()}

    def rewrap_data_keys(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self.rewrap_data_keys_statement, [(m, w, k) for k, m, w in rows])

    def shred_data_keys(self, key_ids: Sequence[str], at: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self.shred_data_keys_statement, [(at, k) for k in key_ids])

    def _append_create(self, schema: Identifier, table: Identifier, columns: str) -> None:
        """Append the CREATE TABLE of ``table`` (its ``columns``, a literal) to the create statements."""
        statement = SQL("CREATE TABLE IF NOT EXISTS {schema}.{table} ({columns})")
        self.sql_create_statements.append(statement.format(schema=schema, table=table, columns=SQL(columns)))

    def _data_key_statements(self, schema: Identifier) -> None:
        """The key ring's data_keys table and its statements."""
        data_keys = Identifier(DATA_KEYS_TABLE)
        self._append_create(
            schema,
            data_keys,
            "key_id text PRIMARY KEY, stream text NOT NULL, unit text NOT NULL, master_key_id text NOT NULL, "
            "wrapped bytea, created_at text NOT NULL, shredded_at text",
        )
        key_columns = SQL(", ").join(Identifier(c) for c in DATA_KEY_COLUMNS)
        self.insert_data_keys_statement = SQL(
            "INSERT INTO {schema}.{table} ({columns}) VALUES ({marks})"
        ).format(schema=schema, table=data_keys, columns=key_columns, marks=SQL(", ").join([SQL("%s")] * 7))
        self.select_data_keys_statement = SQL("SELECT {columns} FROM {schema}.{table} ").format(
            schema=schema, table=data_keys, columns=key_columns
        )
        # A destroyed key's row keeps its id and dates; its bytes go (VACUUM reclaims the old tuple,
        # see docs/privacy.md).
        live_key = "UPDATE {schema}.{table} SET %s WHERE key_id = %%s AND wrapped IS NOT NULL"
        self.shred_data_keys_statement = SQL(live_key % "wrapped = NULL, shredded_at = %s").format(
            schema=schema, table=data_keys
        )
        self.rewrap_data_keys_statement = SQL(live_key % "master_key_id = %s, wrapped = %s").format(
            schema=schema, table=data_keys
        )

    def _session_statements(self, schema: Identifier) -> None:
        """The portal_sessions table and its statements (portal sessions, beside the API keys)."""
        sessions = Identifier("portal_sessions")
        self._append_create(
            schema,
            sessions,
            "session_hash text PRIMARY KEY, key_id text NOT NULL, created_at double precision NOT NULL, "
            "last_used_at double precision NOT NULL, data text NOT NULL",
        )
        session_columns = SQL(", ").join(Identifier(c) for c in SESSION_COLUMNS)
        insert = SQL("INSERT INTO {schema}.{table} ({columns}) VALUES ({marks})")
        self.insert_session_statement = insert.format(
            schema=schema,
            table=sessions,
            columns=session_columns,
            marks=SQL(", ").join([SQL("%s")] * len(SESSION_COLUMNS)),
        )
        self.select_session_statement = SQL(
            "SELECT {columns} FROM {schema}.{table} WHERE session_hash = %s"
        ).format(schema=schema, table=sessions, columns=session_columns)
        self.touch_session_statement = SQL(
            "UPDATE {schema}.{table} SET last_used_at = %s, data = %s WHERE session_hash = %s"
        ).format(schema=schema, table=sessions)
        self.delete_session_statement = SQL("DELETE FROM {schema}.{table} WHERE session_hash = %s").format(
            schema=schema, table=sessions
        )
        self.delete_sessions_statement = SQL(
            "DELETE FROM {schema}.{table} WHERE last_used_at < %s OR created_at < %s"
        ).format(schema=schema, table=sessions)

    # -- portal sessions ------------------------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def add_session(self, row: Mapping[str, Any]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.insert_session_statement, [row[column] for column in SESSION_COLUMNS])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def session(self, token_hash: str) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(self.select_session_statement, (token_hash,))
            row = c.fetchone()
        return dict(zip(SESSION_COLUMNS, row, strict=True)) if row else None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def touch_session(self, token_hash: str, last_used_at: float, data: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.touch_session_statement, (last_used_at, data, token_hash))
            return bool(c.rowcount)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def delete_session(self, token_hash: str) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.delete_session_statement, (token_hash,))
            return bool(c.rowcount)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def delete_sessions(self, *, used_before: float, created_before: float) -> int:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self.delete_sessions_statement, (used_before, created_before))
            return int(c.rowcount)


def construct(factory: InfrastructureFactory[Any]) -> PostgresLedgerRecorder:
    """The ledger's recorder on the factory's datastore, named and created as the factory would.

    Takes any factory (the application only knows it has one) and refuses non-PostgreSQL ones.
    """
    if not isinstance(factory, PostgresFactory):
        msg = (
            f"persistence module {type(factory).__module__} is not supported by the credit ledger: "
            "use eventsourcing.postgres, eventsourcing.sqlite or eventsourcing.popo"
        )
        raise TypeError(msg)
    prefix = factory.env.name.lower() or "stored"
    recorder = PostgresLedgerRecorder(datastore=factory.datastore, events_table_name=prefix + "_events")
    if factory.env_create_table():
        recorder.create_table()
    return recorder


def _data_key(row: Sequence[Any]) -> DataKeyRow:
    wrapped = row[4]
    return (row[0], row[1], row[2], row[3], bytes(wrapped) if wrapped is not None else None, row[5], row[6])
