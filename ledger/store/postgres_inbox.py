"""The inbox table (``ledger.domain.inbox``) in PostgreSQL, for ``PostgresLedgerRecorder``.

Positions come from a sequence, which concurrent transactions draw from in one order and may
commit in another: a reader could then move past a row that commits later with a smaller
position, and that row would never be drained. So an append holds the table's EXCLUSIVE lock
(readers are not blocked by it) from drawing its positions to its commit, as eventsourcing does
for notification ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from ledger.domain.inbox import INBOX_SOURCE_PREFIX, InboxEntry, InboxItem, InboxSealer
from ledger.domain.personal import DataKeyRow
from ledger.store.inbox import INBOX_COLUMNS, INBOX_TABLE, decided_sql, entry_from_row, inbox_row
from ledger.store.rows import DATA_KEY_COLUMNS, DATA_KEYS_TABLE, OUTCOMES_TABLE, RECEIPTS_TABLE


def create_statements(schema: str) -> list[Composed]:
    """What ``create_table`` runs for the inbox (a database made before it gains the table)."""
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} (position bigserial PRIMARY KEY, "
            "key bytea NOT NULL, value bytea NOT NULL, department text, submission_id text, "
            "received_at text NOT NULL)"
        ).format(schema=Identifier(schema), table=Identifier(INBOX_TABLE))
    ]


class PostgresInbox:
    """The ``Inbox`` port for the PostgreSQL recorder (a mixin: it uses the recorder's datastore)."""

    datastore: PostgresDatastore

    def _inbox(self) -> Identifier:
        return Identifier(self.datastore.schema, INBOX_TABLE)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def append_inbox(
        self,
        items: Sequence[InboxItem],
        received_at: str,
        seal: InboxSealer | None = None,
        data_keys: Sequence[DataKeyRow] = (),
    ) -> list[int]:
        if not items:
            return []
        table = self._inbox()
        with self.datastore.transaction(commit=True) as c:
            if data_keys:
                c.executemany(
                    SQL("INSERT INTO {table} (" + ", ".join(DATA_KEY_COLUMNS) + ") VALUES (").format(
                        table=Identifier(self.datastore.schema, DATA_KEYS_TABLE)
                    )
                    + SQL(", ").join([SQL("%s")] * len(DATA_KEY_COLUMNS))
                    + SQL(")"),
                    list(data_keys),
                )
            c.execute(SQL("LOCK TABLE {table} IN EXCLUSIVE MODE").format(table=table))
            c.execute(
                SQL(
                    "SELECT nextval(pg_get_serial_sequence({name}, 'position')) AS p "
                    "FROM generate_series(1, %s) ORDER BY p"
                ).format(name=f"{self.datastore.schema}.{INBOX_TABLE}"),
                (len(items),),
            )
            positions = [int(row["p"]) for row in c.fetchall()]
            c.executemany(
                SQL(
                    "INSERT INTO {table} (position, " + INBOX_COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s)"
                ).format(table=table),
                [
                    (p, *inbox_row(item if seal is None else seal(p, item), received_at))
                    for p, item in zip(positions, items, strict=True)
                ],
            )
        return positions

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def inbox_page(self, after: int, limit: int) -> list[InboxEntry]:
        source = f"('{INBOX_SOURCE_PREFIX}' || i.position)"
        columns = ", ".join("i." + c for c in INBOX_COLUMNS.split(", "))
        decided = decided_sql(source, "{receipts}", "{outcomes}")
        schema = self.datastore.schema
        statement = SQL(
            "SELECT i.position, " + columns + ", " + decided + " FROM {table} i "
            "WHERE i.position > %s ORDER BY i.position LIMIT %s"
        ).format(
            table=self._inbox(),
            receipts=Identifier(schema, RECEIPTS_TABLE),
            outcomes=Identifier(schema, OUTCOMES_TABLE),
        )
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(statement, (after, limit))
            return [entry_from_row(row) for row in c.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def last_inbox_position(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(SQL("SELECT max(position) FROM {table}").format(table=self._inbox()))
            row = c.fetchone()
        return int(row[0] or 0) if row else 0
