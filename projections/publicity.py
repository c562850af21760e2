"""Record rows: every record of every file as one SQL row, for publicity, public search and dashboards.

The projection store writes a subject's rows with its state (``record_rows``, in the same
transaction), so they are exactly as fresh as the state. Three readers share the table:

- 双公示 publicity: licences and penalties whose status is active and whose publicity period
  has not ended (``publicity``). Expired, repaired or revoked records leave; the ledger keeps them.
- the public search by name or by a code's subject key (``search``), with each subject's public
  items; a person's licences are not public, only penalties (``PUBLIC_CATEGORIES``). The ``name``
  column holds an organisation's name (public, searched by prefix); a person's name is sealed
  and searched through the blind index (``name_index``: a digest of the full name).
- a department's dashboard: its own filings, ended ones too (``filings``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from projections.fold import State

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS record_rows (subject_key TEXT NOT NULL, record TEXT NOT NULL, "
    "provider TEXT NOT NULL, category TEXT NOT NULL, kind TEXT NOT NULL, domain TEXT NOT NULL, "
    "decision_date TEXT NOT NULL, display_until TEXT, status TEXT NOT NULL, subject_kind TEXT, "
    "name TEXT, row {blob} NOT NULL, PRIMARY KEY (subject_key, record))",
    "CREATE INDEX IF NOT EXISTS record_rows_by_name ON record_rows (name)",
    "CREATE INDEX IF NOT EXISTS record_rows_by_category ON record_rows (category, decision_date)",
    "CREATE INDEX IF NOT EXISTS record_rows_by_provider ON record_rows (provider, decision_date)",
    # The blind index of persons' names (ledger.application.privacy.NameIndex): a digest, never a name.
    "CREATE TABLE IF NOT EXISTS name_index (digest TEXT NOT NULL, subject_key TEXT NOT NULL, "
    "PRIMARY KEY (digest, subject_key))",
    "CREATE INDEX IF NOT EXISTS name_index_by_subject ON name_index (subject_key)",
]

PUBLICITY_CATEGORIES = ("administrative_licence", "administrative_penalty")
"""What 双公示 publishes: administrative licence and penalty decisions."""

PUBLIC_CATEGORIES = {"organisation": PUBLICITY_CATEGORIES, "person": ("administrative_penalty",)}
"""What of a subject's records is public, by kind: a person's licences are personal data, not
published; penalties are, with the identity number masked (as Credit China shows them)."""

INSERT = (
    "INSERT INTO record_rows (subject_key, record, provider, category, kind, domain, decision_date, "
    "display_until, status, subject_kind, name, row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record_rows(state: State) -> list[tuple[Any, ...]]:
    """The rows of one subject's records, in ``INSERT``'s column order."""
    rows = []
    for key, r in state["records"].items():
        row = {
            "record": key,
            "subject_key": state["subject_key"],
            "subject_kind": state["kind"],
            "masked_code": state["masked_code"],
            "name": state["name"],
            **{k: r.get(k) for k in _ROW_FIELDS},
            "disputed": r.get("open_objection") is not None,
        }
        rows.append(
            (
                state["subject_key"],
                key,
                r["provider"],
                r["category"],
                r["kind"],
                r["domain"],
                r["decision_date"],
                r["display_until"],
                r["status"],
                state["kind"],
                state["name"] if state["kind"] == "organisation" else None,  # a person's: the index
                orjson.dumps(row),
            )
        )
    return rows


_ROW_FIELDS = (
    "provider",
    "record_id",
    "category",
    "kind",
    "domain",
    "severity",
    "title",
    "decision_document",
    "decision_date",
    "legal_basis",
    "display_until",
    "status",
    "filed_at",
    "objections",
)


@dataclass(frozen=True)
class Filters:
    """The public pages' filters: all optional; dates are ISO days of the decision."""

    domain: str | None = None
    department: str | None = None
    since: str | None = None
    until: str | None = None
    category: str | None = None


class RecordRows:
    """Reads of ``record_rows`` on the projection store's connection (SQLite or PostgreSQL)."""

    def __init__(self, conn: Any, mark: str) -> None:
        self.conn = conn
        self.mark = mark

    def _rows(self, sql: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("?", self.mark), list(params))
        return [orjson.loads(row) for (row,) in cursor.fetchall()]

    def publicity(
        self, today: str, filters: Filters = Filters(), *, limit: int = 20, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(how many, one page) of licences and penalties in their publicity period, newest first."""
        categories = (filters.category,) if filters.category in PUBLICITY_CATEGORIES else PUBLICITY_CATEGORIES
        where, params = _public_where(today, categories, filters)
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM record_rows WHERE {where}".replace("?", self.mark), params)
        total = int(cursor.fetchone()[0])
        page = self._rows(
            f"SELECT row FROM record_rows WHERE {where} "
            "ORDER BY decision_date DESC, subject_key, record LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return total, page

    def subjects_named(self, name: str, *, limit: int, digest: str | None = None) -> list[str]:
        """Subject keys of organisations whose name is ``name`` or begins with it (an index range),
        and of persons whose name's blind-index ``digest`` it is (their full name)."""
        sql = "SELECT DISTINCT subject_key FROM record_rows WHERE name >= ? AND name < ?"
        params: list[Any] = [name, name + "\U0010ffff"]
        if digest is not None:
            sql += " UNION SELECT subject_key FROM name_index WHERE digest = ?"
            params.append(digest)
        cursor = self.conn.cursor()
        cursor.execute(f"{sql} ORDER BY subject_key LIMIT ?".replace("?", self.mark), [*params, limit])
        return [key for (key,) in cursor.fetchall()]

    def public_items(
        self, subject_key: str, today: str, filters: Filters = Filters()
    ) -> list[dict[str, Any]]:
        """One subject's records that are public today (by its kind), newest first."""
        rows = self._rows(
            "SELECT row FROM record_rows WHERE subject_key=? ORDER BY decision_date DESC", [subject_key]
        )
        return [r for r in rows if _is_public(r, today, filters)]

    def list_rows(self, subject_key: str) -> list[dict[str, Any]]:
        """One subject's black- and red-list entries, without the subject key (the public form)."""
        rows = self._rows(
            "SELECT row FROM list_members WHERE subject_key=? ORDER BY list, entry_date", [subject_key]
        )
        return [{k: v for k, v in row.items() if k != "subject_key"} for row in rows]

    def filings(self, provider: str) -> list[dict[str, Any]]:
        """Every record a department filed, ended ones too (its dashboard)."""
        return self._rows("SELECT row FROM record_rows WHERE provider=? ORDER BY decision_date", [provider])


def _public_where(today: str, categories: Iterable[str], f: Filters) -> tuple[str, list[Any]]:
    wanted = list(categories)
    where = (
        f"category IN ({','.join('?' * len(wanted))}) AND status='active' "
        "AND (display_until IS NULL OR display_until >= ?) "
        "AND (subject_kind='organisation' OR category='administrative_penalty')"
    )
    params: list[Any] = [*wanted, today]
    for column, op, value in (
        ("domain", "=", f.domain),
        ("provider", "=", f.department),
        ("decision_date", ">=", f.since),
        ("decision_date", "<=", f.until),
    ):
        if value:
            where += f" AND {column}{op}?"
            params.append(value)
    return where, params


def _is_public(row: Mapping[str, Any], today: str, f: Filters) -> bool:
    categories = PUBLIC_CATEGORIES.get(row.get("subject_kind") or "person", ())
    return (
        row["category"] in categories
        and row["status"] == "active"
        and (row["display_until"] is None or row["display_until"] >= today)
        and (not f.domain or row["domain"] == f.domain)
        and (not f.department or row["provider"] == f.department)
        and (not f.since or row["decision_date"] >= f.since)
        and (not f.until or row["decision_date"] <= f.until)
        and (not f.category or row["category"] == f.category)
    )
