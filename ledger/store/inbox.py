"""The inbox table (``ledger.domain.inbox``) in SQLite, and what the SQL recorders share of it.

A row is decided when the outcomes log holds an entry read from its source ``inbox/<position>``:
its first decision (a receipt, found by the key the ledger registers it under: its department and
submission id, or ``("", source)`` when it has none) or any other entry (found by source in the
outcomes table's ``(source, digest)`` index). Both lookups are indexed, so a page costs two probes
a row, on the relay's side: the intake writes nothing for the inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

from ledger.domain.inbox import (
    INBOX_SOURCE_PREFIX,
    SOURCE_DEPARTMENT,
    InboxEntry,
    InboxItem,
    InboxSealer,
)
from ledger.domain.personal import DataKeyRow
from ledger.store.rows import DATA_KEY_COLUMNS, DATA_KEYS_TABLE, OUTCOMES_TABLE, RECEIPTS_TABLE

INBOX_TABLE = "submission_inbox"
INBOX_COLUMNS = "key, value, department, submission_id, received_at"
"""The ``submission_inbox`` columns after ``position``, in the order of ``inbox_row``."""

SQLITE_CREATE_INBOX = (
    f"CREATE TABLE IF NOT EXISTS {INBOX_TABLE} (position INTEGER PRIMARY KEY AUTOINCREMENT, "
    "key BLOB NOT NULL, value BLOB NOT NULL, department TEXT, submission_id TEXT, received_at TEXT NOT NULL)"
)


def decided_sql(source: str, receipts: str = RECEIPTS_TABLE, outcomes: str = OUTCOMES_TABLE) -> str:
    """An SQL condition: the inbox row aliased ``i``, whose source is the expression ``source``,
    has an entry in the outcomes log (``SOURCE_DEPARTMENT`` is the empty string)."""
    assert SOURCE_DEPARTMENT == ""
    return (
        f"(EXISTS (SELECT 1 FROM {receipts} r WHERE r.department = coalesce(i.department, '') "
        f"AND r.submission_id = coalesce(i.submission_id, {source}) AND r.source = {source}) "
        f"OR EXISTS (SELECT 1 FROM {outcomes} o WHERE o.source = {source}))"
    )


def inbox_row(item: InboxItem, received_at: str) -> tuple[Any, ...]:
    return (item.key, item.value, item.department, item.submission_id, received_at)


def entry_from_row(row: Sequence[Any]) -> InboxEntry:
    """An entry from ``position, INBOX_COLUMNS, decided``."""
    item = InboxItem(bytes(row[1]), bytes(row[2]), row[3], row[4])
    return InboxEntry(int(row[0]), item, row[5], bool(row[6]))


_SQLITE_SOURCE = f"'{INBOX_SOURCE_PREFIX}' || i.position"
_SQLITE_PAGE = (
    f"SELECT i.position, {', '.join('i.' + c for c in INBOX_COLUMNS.split(', '))}, "
    f"{decided_sql(_SQLITE_SOURCE)} FROM {INBOX_TABLE} i WHERE i.position > ? ORDER BY i.position LIMIT ?"
)


class SQLiteInbox:
    """The ``Inbox`` port for the SQLite recorder (a mixin: it uses the recorder's datastore)."""

    datastore: SQLiteDatastore

    def append_inbox(
        self,
        items: Sequence[InboxItem],
        received_at: str,
        seal: InboxSealer | None = None,
        data_keys: Sequence[DataKeyRow] = (),
    ) -> list[int]:
        """One transaction; SQLite's write lock, held from the first insert to the commit, keeps
        positions in commit order. A sealed row is first inserted empty (no byte of the item), for
        its position, then given its sealed bytes: the seal is bound to the position."""
        if not items:
            return []
        with self.datastore.transaction(commit=True) as c:
            if data_keys:
                c.executemany(
                    f"INSERT INTO {DATA_KEYS_TABLE} ({', '.join(DATA_KEY_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(DATA_KEY_COLUMNS))})",
                    data_keys,
                )
            positions = []
            for item in items:  # one statement each: lastrowid is the position of each row
                placeholder = item if seal is None else InboxItem(b"", b"", None, None)
                c.execute(
                    f"INSERT INTO {INBOX_TABLE} ({INBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    inbox_row(placeholder, received_at),
                )
                position = c.sqlite_cursor.lastrowid
                assert position is not None  # an INSERT always has one
                if seal is not None:
                    c.execute(
                        f"UPDATE {INBOX_TABLE} SET key=?, value=?, department=?, submission_id=? "
                        "WHERE position=?",
                        (*inbox_row(seal(position, item), received_at)[:4], position),
                    )
                positions.append(position)
        return positions

    def inbox_page(self, after: int, limit: int) -> list[InboxEntry]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_PAGE, (after, limit))
            return [entry_from_row(tuple(row)) for row in c.fetchall()]

    def last_inbox_position(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT max(position) FROM {INBOX_TABLE}")
            row = c.fetchone()
        return int(row[0] or 0)
