"""Application recorders that also keep the submission register, in the same transaction as events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from ledger.domain.outcomes import Receipt

RECEIPT_COLUMNS = (
    "department, submission_id, digest, status, subject_key, events, reason, recorded_at, original"
)


@runtime_checkable
class SubmissionRegister(Protocol):
    """Where receipts live: written with the events they produced, read to answer re-sends."""

    def select_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Receipt]: ...

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]: ...

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]: ...

    def last_receipt_position(self) -> int: ...

    def relay_position(self, name: str) -> int: ...

    def save_relay_position(self, name: str, position: int) -> None: ...


class StaleRead(IntegrityError):
    """A file a batch decided on without changing it had changed before the batch committed.

    Another writer appended to it (with several workers, the platform's own commands for a subject
    can reach a different worker than the departments' submissions about it). A file the batch
    *did* change is protected by the unique (stream, version) key; a rejection or a no-op decided
    on a stale copy is caught by this check instead. Like a version conflict, the batch is rolled
    back and retried with fresh files.
    """


def check_read_versions(current: Mapping[UUID, int], read: Mapping[UUID, int]) -> None:
    """Raise StaleRead unless every file is still at the version the batch read (0 = no file)."""
    stale = [
        (key, version, current.get(key, 0)) for key, version in read.items() if current.get(key, 0) != version
    ]
    if stale:
        key, was, now = stale[0]
        msg = (
            f"{len(stale)} file(s) changed after the batch read them "
            f"(first: {key}, read at version {was}, now at {now})"
        )
        raise StaleRead(msg)


def _dashed(hex_id: str) -> str:
    """A stored 32-hex-digit id in the canonical dashed form str(UUID) gives."""
    h = hex_id.replace("-", "")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _row(r: Receipt) -> tuple[Any, ...]:
    return (
        r.department,
        r.submission_id,
        r.digest,
        r.status,
        r.subject_key,
        orjson.dumps(list(r.events)),
        orjson.dumps(r.reason) if r.reason is not None else None,
        r.recorded_at,
        r.original,
    )


def _receipt(row: Sequence[Any]) -> Receipt:
    return Receipt(
        department=row[0],
        submission_id=row[1],
        digest=row[2],
        status=row[3],
        subject_key=row[4],
        events=tuple(orjson.loads(row[5])),
        reason=orjson.loads(row[6]) if row[6] is not None else None,
        recorded_at=row[7],
        original=bytes(row[8]) if row[8] is not None else None,
    )


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    """SQLite events table plus ``submission_receipts``, both written in one transaction."""

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            "CREATE TABLE IF NOT EXISTS submission_receipts ("
            "position INTEGER PRIMARY KEY AUTOINCREMENT, "
            "department TEXT NOT NULL, submission_id TEXT NOT NULL, digest TEXT NOT NULL, "
            "status TEXT NOT NULL, subject_key TEXT, events BLOB NOT NULL, reason BLOB, "
            "recorded_at TEXT NOT NULL, original BLOB, UNIQUE (department, submission_id))"
        )
        statements.append(
            "CREATE TABLE IF NOT EXISTS relay_positions (name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
        )
        return statements

    def last_receipt_position(self) -> int:
        """The position of the newest receipt (0 while there is none): the outcomes' head."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT max(position) FROM submission_receipts")
            row = c.fetchone()
        return int(row[0] or 0)

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

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        receipts: Sequence[Receipt] = (),
        read_versions: Mapping[UUID, int] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # One executemany instead of eventsourcing's execute per event (which it does only to
        # return notification ids). Nothing here consumes those ids: nothing subscribes in-process,
        # and the relay reads the notification log by position. So none are returned.
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if type(s.originator_id) is UUID else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        if receipts:
            c.executemany(
                f"INSERT INTO submission_receipts ({RECEIPT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                [_row(r) for r in receipts],
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

    def select_event_rows(self, after: int, limit: int) -> list[tuple[int, str, int, str, bytes]]:
        """(position, stream id, version, topic, state) in ledger order, as plain tuples: a full
        verification reads every event, and Notification and UUID objects cost more than the hash."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, limit),
            )
            return [(row[0], _dashed(row[1]), row[2], row[3], row[4]) for row in c.fetchall()]

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
                        receipt = _receipt(tuple(row))
                        found[receipt.key] = receipt
        return found

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        sql = f"SELECT position, {RECEIPT_COLUMNS} FROM submission_receipts WHERE position>?"
        params: list[Any] = [position]
        if department is not None:
            sql += " AND department=?"
            params.append(department)
        sql += " ORDER BY position LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [(row[0], _receipt(tuple(row)[1:])) for row in c.fetchall()]


class POPOLedgerRecorder(POPOApplicationRecorder):
    """In-memory recorder with the same register, for unit tests."""

    def __init__(self) -> None:
        super().__init__()
        self._receipts: dict[tuple[str, str], tuple[int, Receipt]] = {}
        self._relay_positions: dict[str, int] = {}

    def last_receipt_position(self) -> int:
        with self._database_lock:
            return len(self._receipts)

    def relay_position(self, name: str) -> int:
        return self._relay_positions.get(name, 0)

    def save_relay_position(self, name: str, position: int) -> None:
        self._relay_positions[name] = position

    def _update_table(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        receipts: Sequence[Receipt] = (),
        read_versions: Mapping[UUID, int] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if read_versions:
            index = self._stored_events_index
            current = {k: max(index[str(k)], default=0) for k in read_versions if str(k) in index}
            check_read_versions(current, read_versions)
        for r in receipts:
            if r.key in self._receipts:
                msg = f"submission {r.key} already has a receipt"
                raise ValueError(msg)
        ids = super()._update_table(stored_events, **kwargs)
        for r in receipts:
            self._receipts[r.key] = (len(self._receipts) + 1, r)
        return ids

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        with self._database_lock:
            return {i for i in ids if self._stored_events_index.get(str(i))}

    def select_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Receipt]:
        with self._database_lock:
            return {k: self._receipts[k][1] for k in keys if k in self._receipts}

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        with self._database_lock:
            rows = sorted(self._receipts.values(), key=lambda pr: pr[0])
        rows = [(p, r) for p, r in rows if p > position and department in (None, r.department)]
        return rows[:limit]


def register_of(recorder: ApplicationRecorder) -> SubmissionRegister:
    if not isinstance(recorder, SubmissionRegister):
        msg = f"{type(recorder).__name__} keeps no submission register"
        raise TypeError(msg)
    return recorder
