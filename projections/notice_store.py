"""The read models' measure-notice tables: one row per notice, and the ``credit.measures`` outbox.

A part of ``projections.store.ProjectionStore`` (a mixin of it): the rows and the outbox are
written in the same transaction as the states they come from (``ProjectionStore.save``).

- ``notices``: one row per notice (``projections.notices.notice_rows``), replaced with its
  subject's state; supervision and checks read it by department and by subject.
- ``notice_outbox``: the messages to publish, in the order they were derived, each once by
  ``(notice_id, state_version, kind)``: a subject refolded from the ledger (a gap repaired)
  derives its messages again, and the copy is not written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson

NOTICE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS notices (subject_key TEXT NOT NULL, notice_id TEXT NOT NULL, "
    "department TEXT NOT NULL, measure TEXT NOT NULL, issued_on TEXT NOT NULL, row {blob} NOT NULL, "
    "PRIMARY KEY (subject_key, notice_id))",
    "CREATE INDEX IF NOT EXISTS notices_by_department ON notices (department, issued_on)",
    "CREATE INDEX IF NOT EXISTS notices_by_issue ON notices (issued_on)",
    "CREATE TABLE IF NOT EXISTS notice_outbox (position {serial} PRIMARY KEY, subject_key TEXT NOT NULL, "
    "notice_id TEXT NOT NULL, state_version INTEGER NOT NULL, kind TEXT NOT NULL, message {blob} NOT NULL, "
    "published INTEGER NOT NULL DEFAULT 0, UNIQUE (notice_id, state_version, kind))",
    "CREATE INDEX IF NOT EXISTS notice_outbox_unpublished ON notice_outbox (published, position)",
]

_INSERT_ROW = (
    "INSERT INTO notices (subject_key, notice_id, department, measure, issued_on, row) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE = (
    "INSERT INTO notice_outbox (subject_key, notice_id, state_version, kind, message) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (notice_id, state_version, kind) DO NOTHING"
)


class NoticeTables:
    """The notice tables of a ``ProjectionStore`` (which provides the connection and the SQL dialect)."""

    conn: Any
    _sql: Callable[[str], str]
    _transaction: Callable[[], AbstractContextManager[Any]]

    def _write_notices(
        self,
        cursor: Any,
        rows: Iterable[tuple[str, Sequence[Mapping[str, Any]]]],
        messages: Iterable[Mapping[str, Any]],
        *,
        fresh: bool,
    ) -> None:
        """Replace each subject's notice rows, and add the new messages to the outbox."""
        per_subject = list(rows)
        if not fresh:
            cursor.executemany(
                self._sql("DELETE FROM notices WHERE subject_key=?"), [(key,) for key, _ in per_subject]
            )
        cursor.executemany(
            self._sql(_INSERT_ROW),
            [
                (key, r["notice_id"], r["department"], r["measure"], r["issued_on"], orjson.dumps(r))
                for key, notice_rows in per_subject
                for r in notice_rows
            ],
        )
        cursor.executemany(
            self._sql(_INSERT_MESSAGE),
            [
                (m["subject_key"], m["notice_id"], m["state_version"], m["type"], orjson.dumps(m))
                for m in messages
            ],
        )

    def notice_rows(
        self, *, department: str | None = None, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Notice rows, optionally one department's and issued within [since, until]."""
        sql, params = "SELECT row FROM notices WHERE 1=1", list[Any]()
        for clause, value in (("department=?", department), ("issued_on>=?", since), ("issued_on<=?", until)):
            if value:
                sql += f" AND {clause}"
                params.append(value)
        cursor = self.conn.cursor()
        cursor.execute(self._sql(sql + " ORDER BY issued_on, subject_key, notice_id"), params)
        return [orjson.loads(row) for (row,) in cursor.fetchall()]

    def subject_notices(self, subject_key: str) -> list[dict[str, Any]]:
        cursor = self.conn.cursor()
        cursor.execute(
            self._sql("SELECT row FROM notices WHERE subject_key=? ORDER BY notice_id"), (subject_key,)
        )
        return [orjson.loads(row) for (row,) in cursor.fetchall()]

    def notice_messages(self) -> Iterator[dict[str, Any]]:
        """Every message in the outbox, published or not, in the order they were derived."""
        cursor = self.conn.cursor()
        cursor.execute("SELECT message FROM notice_outbox ORDER BY position")
        for (message,) in cursor:
            yield orjson.loads(message)

    def unpublished_notices(self, limit: int = 1000) -> list[tuple[int, bytes]]:
        cursor = self.conn.cursor()
        cursor.execute(
            self._sql(
                "SELECT position, message FROM notice_outbox WHERE published=0 ORDER BY position LIMIT ?"
            ),
            (limit,),
        )
        return [(int(p), bytes(m)) for p, m in cursor.fetchall()]

    def mark_notices_published(self, positions: Sequence[int]) -> None:
        with self._transaction() as c:
            c.executemany(
                self._sql("UPDATE notice_outbox SET published=1 WHERE position=?"), [(p,) for p in positions]
            )

    def republish_notices(self) -> None:
        """``credit.measures`` was created empty: publish every notice again, in order."""
        with self._transaction() as c:
            c.execute("UPDATE notice_outbox SET published=0")
