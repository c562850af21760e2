"""The projections' SQL store: folded states, list rows, due items, notices and the outboxes.

One module of just over 400 lines because it is one class: ``save`` writes every table of a
batch in one transaction (states, list rows, due items, the outboxes), and the reads beside it
use the same schema and the same SQLite/PostgreSQL statement rewriting (``_sql``); the notice
tables, which have their own reads, are in ``notice_store.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from projections import publicity
from projections.fold import State
from projections.notice_store import NOTICE_SCHEMA, NoticeTables
from projections.views import list_entries

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS subjects (subject_key TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "position INTEGER NOT NULL, state {blob} NOT NULL, announced TEXT NOT NULL, clean_on TEXT)",
    "CREATE INDEX IF NOT EXISTS subjects_clean_on ON subjects (clean_on)",
    "CREATE TABLE IF NOT EXISTS list_members (list TEXT NOT NULL, designation_id TEXT NOT NULL, "
    "subject_key TEXT NOT NULL, row {blob} NOT NULL, department TEXT, entry_date TEXT, valid_until TEXT, "
    "domains TEXT, PRIMARY KEY (subject_key, list, designation_id))",
    # The key leads with the subject (every batch replaces a subject's rows); lists read by date.
    "CREATE INDEX IF NOT EXISTS list_members_by_list ON list_members (list, entry_date)",
    "CREATE TABLE IF NOT EXISTS due (kind TEXT NOT NULL, subject_key TEXT NOT NULL, ref TEXT NOT NULL, "
    "due_on TEXT NOT NULL, PRIMARY KEY (subject_key, kind, ref))",
    "CREATE INDEX IF NOT EXISTS due_on ON due (due_on)",
    "CREATE TABLE IF NOT EXISTS list_changes (position {serial} PRIMARY KEY, subject_key TEXT NOT NULL, "
    "message {blob} NOT NULL, published INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS list_changes_unpublished ON list_changes (published, position)",
    # The query register as auditors and subjects read it (the records themselves are ledger events).
    "CREATE TABLE IF NOT EXISTS queries (query_id TEXT PRIMARY KEY, at TEXT NOT NULL, subject_key TEXT, "
    "requester TEXT NOT NULL, organisation TEXT NOT NULL, role TEXT NOT NULL, purpose TEXT, "
    "endpoint TEXT NOT NULL, outcome TEXT NOT NULL, record {blob} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS queries_subject ON queries (subject_key, at)",
    "CREATE INDEX IF NOT EXISTS queries_organisation ON queries (organisation, at)",
    "CREATE INDEX IF NOT EXISTS queries_requester ON queries (requester, at)",
    *NOTICE_SCHEMA,
]


_UPSERT_SUBJECT = """
INSERT INTO subjects (subject_key, version, position, state, announced, clean_on) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (subject_key) DO UPDATE SET version=excluded.version, position=excluded.position,
    state=excluded.state, announced=excluded.announced, clean_on=excluded.clean_on
"""


MEMBERS_ORDER = "ORDER BY entry_date, subject_key, designation_id"
"""The order of a list's entries: oldest entry first, then by subject and designation."""


@dataclass(frozen=True)
class Saved:
    """One subject's new state and what goes with it, written together."""

    state: State
    announced: Mapping[str, bool]
    clean_on: str | None
    due: Sequence[tuple[str, str, str]]
    notices: Sequence[Mapping[str, Any]] = ()  # its measure notices' rows (projections.notices)


class ProjectionStore(NoticeTables):
    """SQLite file by default; a PostgreSQL URL selects psycopg with the same tables."""

    def __init__(self, target: Path | str, *, names: Callable[[Any], str | None] | None = None) -> None:
        """``names``: a file's name (clear, sealed or shredded) to its blind-index digest, or None
        (``CreditLedger.name_index.of``); without it no person is found by name."""
        self.target = str(target)
        self.names = names
        self.postgres = self.target.startswith(("postgres://", "postgresql://"))
        if self.postgres:
            import psycopg  # noqa: PLC0415 - only with the postgres extra

            self.conn: Any = psycopg.connect(self.target, autocommit=True)
            self.mark = "%s"
            types = {"blob": "BYTEA", "serial": "BIGSERIAL"}
        else:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.target, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.mark = "?"
            types = {"blob": "BLOB", "serial": "INTEGER"}
        for statement in [*_SCHEMA, *publicity.SCHEMA]:
            self.conn.execute(statement.format(**types))
        self.records = publicity.RecordRows(self.conn, self.mark)

    def close(self) -> None:
        self.conn.close()

    def _sql(self, statement: str) -> str:
        return statement if self.mark == "?" else statement.replace("?", "%s")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self.conn.cursor()
        cursor.execute("BEGIN")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------

    def save(
        self,
        saved: Iterable[Saved],
        changes: Iterable[Mapping[str, Any]] = (),
        *,
        fresh: bool = False,
        queries: Iterable[Mapping[str, Any]] = (),
        notices: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Write states, their list rows, due items and notice rows, new list changes and notice
        messages (``notices``), in one transaction.

        ``fresh``: these subjects have no rows yet (a rebuild into a new store), so none are deleted.
        """
        rows = list(saved)
        keys = [] if fresh else [s.state["subject_key"] for s in rows]
        with self._transaction() as c:
            c.executemany(
                self._sql(_UPSERT_SUBJECT),
                [
                    (
                        s.state["subject_key"],
                        s.state["version"],
                        s.state["position"],
                        orjson.dumps(s.state),
                        orjson.dumps(dict(s.announced)).decode(),
                        s.clean_on,
                    )
                    for s in rows
                ],
            )
            c.executemany(self._sql("DELETE FROM list_members WHERE subject_key=?"), [(k,) for k in keys])
            c.executemany(
                self._sql(
                    "INSERT INTO list_members (list, designation_id, subject_key, row, department, "
                    "entry_date, valid_until, domains) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    (
                        e["list"],
                        e["designation_id"],
                        e["subject_key"],
                        orjson.dumps(e),
                        e["department"],
                        e["entry_date"],
                        e["valid_until"],
                        ",".join(e["domains"]),
                    )
                    for s in rows
                    for e in list_entries(s.state)
                ],
            )
            c.executemany(self._sql("DELETE FROM record_rows WHERE subject_key=?"), [(k,) for k in keys])
            c.executemany(
                self._sql(publicity.INSERT), [row for s in rows for row in publicity.record_rows(s.state)]
            )
            c.executemany(self._sql("DELETE FROM name_index WHERE subject_key=?"), [(k,) for k in keys])
            c.executemany(
                self._sql("INSERT INTO name_index (digest, subject_key) VALUES (?, ?)"),
                [(digest, key) for key, digest in self._name_digests(rows) if digest is not None],
            )
            c.executemany(self._sql("DELETE FROM due WHERE subject_key=?"), [(k,) for k in keys])
            c.executemany(
                self._sql("INSERT INTO due (kind, subject_key, ref, due_on) VALUES (?, ?, ?, ?)"),
                [(kind, s.state["subject_key"], ref, on) for s in rows for kind, ref, on in s.due],
            )
            c.executemany(
                self._sql("INSERT INTO list_changes (subject_key, message) VALUES (?, ?)"),
                [(ch["subject_key"], orjson.dumps(ch)) for ch in changes],
            )
            self._write_notices(c, [(s.state["subject_key"], s.notices) for s in rows], notices, fresh=fresh)
            c.executemany(
                self._sql(
                    "INSERT INTO queries (query_id, at, subject_key, requester, organisation, role, purpose, "
                    "endpoint, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (query_id) DO NOTHING"
                ),
                [
                    (
                        q["query_id"],
                        q["at"],
                        q.get("subject_key"),
                        q["requester"],
                        q["organisation"],
                        q["role"],
                        q.get("purpose"),
                        q["endpoint"],
                        q["outcome"],
                        orjson.dumps(q),
                    )
                    for q in queries
                ],
            )

    def _name_digests(self, rows: Sequence[Saved]) -> Iterator[tuple[str, str | None]]:
        """(subject key, digest) of every person's file: a shredded name has none, so its row goes."""
        if self.names is None:
            return
        for s in rows:
            if s.state.get("kind") == "person":
                yield s.state["subject_key"], self.names(s.state.get("name"))

    def republish_all(self) -> None:
        """The list-change topic was created empty: publish every change again, in order."""
        with self._transaction() as c:
            c.execute("UPDATE list_changes SET published=0")

    def mark_published(self, positions: Sequence[int]) -> None:
        with self._transaction() as c:
            c.executemany(
                self._sql("UPDATE list_changes SET published=1 WHERE position=?"), [(p,) for p in positions]
            )

    # -- reading --------------------------------------------------------------------------

    def load(self, keys: Iterable[str]) -> dict[str, tuple[State, dict[str, bool]]]:
        """Folded state and the memberships last announced, for each known subject among ``keys``."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, tuple[State, dict[str, bool]]] = {}
        cursor = self.conn.cursor()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            cursor.execute(
                self._sql(
                    f"SELECT subject_key, state, announced FROM subjects WHERE subject_key IN "
                    f"({','.join('?' * len(chunk))})"
                ),
                chunk,
            )
            for key, state, announced in cursor.fetchall():
                found[key] = (orjson.loads(state), orjson.loads(announced))
        return found

    def state_bytes(self, key: str) -> bytes | None:
        """A subject's folded state as stored (JSON bytes), or None: what views derived from it are
        remembered by (``ProjectionReader.check_view``)."""
        cursor = self.conn.cursor()
        cursor.execute(self._sql("SELECT state FROM subjects WHERE subject_key = ?"), (key,))
        row = cursor.fetchone()
        return bytes(row[0]) if row else None

    def state(self, key: str) -> State | None:
        loaded = self.load([key]).get(key)
        return loaded[0] if loaded else None

    def states(self) -> Iterator[State]:
        cursor = self.conn.cursor()
        cursor.execute("SELECT state FROM subjects ORDER BY subject_key")
        for (state,) in cursor:
            yield orjson.loads(state)

    def members(
        self,
        list_name: str,
        *,
        domain: str | None = None,
        department: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        where, params = self._members_where(list_name, domain, department, since, until)
        cursor = self.conn.cursor()
        cursor.execute(self._sql(f"SELECT row FROM list_members WHERE {where} {MEMBERS_ORDER}"), params)
        return [orjson.loads(row) for (row,) in cursor.fetchall()]

    def members_page(
        self,
        list_name: str,
        *,
        limit: int,
        offset: int = 0,
        domain: str | None = None,
        department: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(how many entries match, one page of them) in the order of ``members``."""
        where, params = self._members_where(list_name, domain, department, since, until)
        cursor = self.conn.cursor()
        cursor.execute(self._sql(f"SELECT count(*) FROM list_members WHERE {where}"), params)
        (total,) = cursor.fetchone()
        cursor.execute(
            self._sql(f"SELECT row FROM list_members WHERE {where} {MEMBERS_ORDER} LIMIT ? OFFSET ?"),
            [*params, limit, offset],
        )
        return int(total), [orjson.loads(row) for (row,) in cursor.fetchall()]

    @staticmethod
    def _members_where(
        list_name: str, domain: str | None, department: str | None, since: str | None, until: str | None
    ) -> tuple[str, list[Any]]:
        sql = "list=?"
        params: list[Any] = [list_name]
        if department:
            sql += " AND department=?"
            params.append(department)
        if since:
            sql += " AND entry_date>=?"
            params.append(since)
        if until:
            sql += " AND entry_date<=?"
            params.append(until)
        if domain:
            sql += " AND (',' || domains || ',') LIKE ?"
            params.append(f"%,{domain},%")
        return sql, params

    def subject_version(self, key: str) -> int:
        """The version of a subject's file that the read models hold (0 for an unknown subject)."""
        cursor = self.conn.cursor()
        cursor.execute(self._sql("SELECT version FROM subjects WHERE subject_key=?"), (key,))
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def has_query(self, query_id: str) -> bool:
        """Whether the query register holds this query record."""
        cursor = self.conn.cursor()
        cursor.execute(self._sql("SELECT 1 FROM queries WHERE query_id=?"), (query_id,))
        return cursor.fetchone() is not None

    def due_on_or_before(self, day: str, limit: int = 10_000) -> list[tuple[str, str, str, str]]:
        cursor = self.conn.cursor()
        cursor.execute(
            self._sql(
                "SELECT kind, subject_key, ref, due_on FROM due WHERE due_on<=? ORDER BY due_on LIMIT ?"
            ),
            (day, limit),
        )
        return [tuple(row) for row in cursor.fetchall()]

    def clean_due(self, day: str, limit: int = 10_000) -> list[str]:
        """Subjects whose clean-record eligibility begins on or before ``day`` and was not announced."""
        cursor = self.conn.cursor()
        cursor.execute(
            self._sql(
                # The pattern is a parameter: a literal % would be a placeholder to psycopg.
                "SELECT subject_key FROM subjects WHERE clean_on<=? AND announced NOT LIKE ? LIMIT ?"
            ),
            (day, '%"clean":true%', limit),
        )
        return [row[0] for row in cursor.fetchall()]

    def list_changes(self) -> Iterator[dict[str, Any]]:
        """Every list change in the outbox, published or not, in the order they were derived."""
        cursor = self.conn.cursor()
        cursor.execute("SELECT message FROM list_changes ORDER BY position")
        for (message,) in cursor:
            yield orjson.loads(message)

    def unpublished(self, limit: int = 1000) -> list[tuple[int, bytes]]:
        cursor = self.conn.cursor()
        cursor.execute(
            self._sql(
                "SELECT position, message FROM list_changes WHERE published=0 ORDER BY position LIMIT ?"
            ),
            (limit,),
        )
        return [(int(p), bytes(m)) for p, m in cursor.fetchall()]

    # -- the query register ----------------------------------------------------------

    def queries(
        self,
        *,
        subject_key: str | None = None,
        requester: str | None = None,
        organisation: str | None = None,
        purpose: str | None = None,
        since: str | None = None,
        until: str | None = None,
        endpoint: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        sql, params = "SELECT record FROM queries WHERE 1=1", list[Any]()
        for column, value in (
            ("subject_key", subject_key),
            ("requester", requester),
            ("organisation", organisation),
            ("purpose", purpose),
            ("endpoint", endpoint),
        ):
            if value:
                sql += f" AND {column}=?"
                params.append(value)
        if since:
            sql += " AND at>=?"
            params.append(since)
        if until:
            sql += " AND at<=?"
            params.append(until)
        sql += " ORDER BY at LIMIT ?"
        params.append(limit)
        cursor = self.conn.cursor()
        cursor.execute(self._sql(sql), params)
        return [orjson.loads(row) for (row,) in cursor.fetchall()]

    def name_index(self) -> Iterator[dict[str, Any]]:
        """The blind index's rows (digest, subject key), in key order: what a rebuild compares."""
        cursor = self.conn.cursor()
        cursor.execute("SELECT subject_key, digest FROM name_index ORDER BY subject_key, digest")
        for subject_key, digest in cursor.fetchall():
            yield {"subject_key": subject_key, "digest": digest}

    def counts(self) -> dict[str, int]:
        cursor = self.conn.cursor()
        out = {}
        for table in (
            "subjects",
            "list_members",
            "record_rows",
            "name_index",
            "due",
            "list_changes",
            "notices",
            "notice_outbox",
        ):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            out[table] = int(cursor.fetchone()[0])
        return out
