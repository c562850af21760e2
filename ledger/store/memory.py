"""The in-memory recorder: the SQLite recorder's register, outcomes log and ports, without a database.

For unit tests and trials (``PERSISTENCE_MODULE=eventsourcing.popo``); held to the same contract
suite as the SQL recorders (``tests/contracts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from ledger.domain.inbox import SOURCE_DEPARTMENT, InboxEntry, InboxItem, InboxSealer, inbox_source
from ledger.domain.outcomes import (
    DECIDED,
    RECEIPT_GENESIS,
    LoggedOutcome,
    OutcomeEntry,
    Receipt,
)
from ledger.domain.personal import DataKeyRow
from ledger.store.rows import (
    API_KEY_COLUMNS,
    SESSION_COLUMNS,
    EventRow,
    Logged,
    chained,
    check_read_versions,
    decided_entry,
    positioned,
    receipt_from_row,
)


class POPOLedgerRecorder(POPOApplicationRecorder):
    """In-memory recorder with the same register, outcomes log and ports, for unit tests."""

    def __init__(self) -> None:
        super().__init__()
        self._receipts: dict[tuple[str, str], tuple[int, Receipt]] = {}
        self._outcomes: list[tuple[int, OutcomeEntry]] = []
        self._logged_sources: set[tuple[str, str]] = set()
        self._relay_positions: dict[str, int] = {}
        self._keys: dict[str, dict[str, Any]] = {}
        self._data_keys: dict[str, DataKeyRow] = {}
        self._inbox: list[tuple[int, InboxItem, str]] = []
        self._sessions: dict[str, dict[str, Any]] = {}

    def last_receipt_position(self) -> int:
        with self._database_lock:
            return max((p for p, _ in self._receipts.values()), default=0)

    def last_outcome_position(self) -> int:
        with self._database_lock:
            return self._outcomes[-1][0] if self._outcomes else 0

    def receipt_head(self) -> tuple[int, str]:
        with self._database_lock:
            if not self._receipts:
                return (0, RECEIPT_GENESIS)
            position, receipt = max(self._receipts.values(), key=lambda pr: pr[0])
            return (position, receipt.chain_hash)

    def relay_position(self, name: str) -> int:
        return self._relay_positions.get(name, 0)

    def save_relay_position(self, name: str, position: int) -> None:
        self._relay_positions[name] = position

    def _update_table(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        outcomes: Sequence[Logged] = (),
        read_versions: Mapping[UUID, int] | None = None,
        data_keys: Sequence[DataKeyRow] = (),
        shred_keys: tuple[Sequence[str], str] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if read_versions:
            index = self._stored_events_index
            current = {k: max(index[str(k)], default=0) for k in read_versions if str(k) in index}
            check_read_versions(current, read_versions)
        base = self._outcomes[-1][0] if self._outcomes else 0
        positions = range(base + 1, base + 1 + len(outcomes))
        _, placed = positioned(outcomes, positions)
        for _, r in placed:
            if r.key in self._receipts:
                msg = f"submission {r.key} already has a receipt"
                raise IntegrityError(msg)  # as the SQL recorders' unique key does
        head = self.receipt_head()[1] if placed else None
        for key_row in data_keys:
            if key_row[0] in self._data_keys:
                msg = f"data key {key_row[0]} exists"
                raise IntegrityError(msg)  # as the SQL recorders' primary key does
        ids = super()._update_table(stored_events, **kwargs)
        for key_row in data_keys:
            self._data_keys[key_row[0]] = key_row
        if shred_keys is not None:
            self._shred(*shred_keys)
        for row in chained(placed, head):
            receipt = receipt_from_row(row[1:])
            self._receipts[receipt.key] = (row[0], receipt)
        for position, logged in zip(positions, outcomes, strict=True):
            entry = decided_entry(logged) if isinstance(logged, Receipt) else logged
            seen = (
                (entry.source, entry.digest) if entry.source is not None and entry.kind != DECIDED else None
            )
            if seen is not None and seen in self._logged_sources:
                continue  # a redelivered message: logged the first time it came
            if seen is not None:
                self._logged_sources.add(seen)
            self._outcomes.append((position, entry))
        return ids

    def append_inbox(
        self,
        items: Sequence[InboxItem],
        received_at: str,
        seal: InboxSealer | None = None,
        data_keys: Sequence[DataKeyRow] = (),
    ) -> list[int]:
        with self._database_lock:
            for key_row in data_keys:
                if key_row[0] in self._data_keys:
                    msg = f"data key {key_row[0]} exists"
                    raise IntegrityError(msg)  # as the SQL recorders' primary key does
            base = self._inbox[-1][0] if self._inbox else 0
            rows = [
                (p, item if seal is None else seal(p, item), received_at)
                for p, item in enumerate(items, start=base + 1)
            ]
            for key_row in data_keys:
                self._data_keys[key_row[0]] = key_row
            self._inbox.extend(rows)
            return [row[0] for row in rows]

    def inbox_page(self, after: int, limit: int) -> list[InboxEntry]:
        with self._database_lock:
            rows = [row for row in self._inbox if row[0] > after][:limit]
            logged = {source for source, _ in self._logged_sources}
            return [
                InboxEntry(position, item, received_at, self._decided(position, item, logged))
                for position, item, received_at in rows
            ]

    def _decided(self, position: int, item: InboxItem, logged: set[str]) -> bool:
        """As the SQL recorders' ``decided_sql``: a receipt read from the row, or any other entry."""
        source = inbox_source(position)
        if source in logged:
            return True
        if item.department is None or item.submission_id is None:
            key = (SOURCE_DEPARTMENT, source)
        else:
            key = (item.department, item.submission_id)
        found = self._receipts.get(key)
        return found is not None and found[1].source == source

    def last_inbox_position(self) -> int:
        with self._database_lock:
            return self._inbox[-1][0] if self._inbox else 0

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

    def outcomes_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, LoggedOutcome]]:
        with self._database_lock:
            found = []
            for at, entry in self._outcomes:
                if at <= position or department not in (None, entry.department):
                    continue
                first = self._receipts.get(entry.key) if entry.key is not None else None
                found.append(
                    (at, LoggedOutcome(entry, first[1] if first else None, first[0] if first else None))
                )
                if len(found) == limit:
                    break
            return found

    def event_rows(self, after: int, limit: int, *, stop: int | None = None) -> list[EventRow]:
        return [
            (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in self.select_notifications(after + 1, limit, stop=stop)
        ]

    def stream_rows(self, stream_id: UUID) -> list[EventRow]:
        with self._database_lock:
            index = self._stored_events_index.get(str(stream_id), {})
            return [
                (i + 1, str(stream_id), version, self._stored_events[i].topic, self._stored_events[i].state)
                for version, i in sorted(index.items())
            ]

    def head(self) -> int:
        return self.max_notification_id() or 0

    def add_key(self, row: Mapping[str, Any]) -> None:
        with self._database_lock:
            if row["key_id"] in self._keys:
                msg = f"key {row['key_id']} exists"
                raise ValueError(msg)
            self._keys[row["key_id"]] = {column: row.get(column) for column in API_KEY_COLUMNS}

    def key(self, key_id: str) -> dict[str, Any] | None:
        found = self._keys.get(key_id)
        return dict(found) if found else None

    def api_keys(self) -> list[dict[str, Any]]:
        return sorted((dict(k) for k in self._keys.values()), key=lambda k: (k["created_at"], k["key_id"]))

    def revoke_key(self, key_id: str, at: str) -> bool:
        with self._database_lock:
            found = self._keys.get(key_id)
            if found is None or found["revoked_at"]:
                return False
            found["revoked_at"] = at
            return True

    # -- data keys ------------------------------------------------------------------------------

    def data_keys(self, key_ids: Iterable[str]) -> dict[str, DataKeyRow]:
        with self._database_lock:
            return {k: self._data_keys[k] for k in key_ids if k in self._data_keys}

    def live_data_keys(
        self, *, stream: str | None = None, after: str = "", limit: int = 1000
    ) -> list[DataKeyRow]:
        with self._database_lock:
            rows = sorted(
                r
                for r in self._data_keys.values()
                if r[4] is not None and r[0] > after and stream in (None, r[1])
            )
        return rows[:limit]

    def master_key_ids(self) -> set[str]:
        with self._database_lock:
            return {r[3] for r in self._data_keys.values() if r[4] is not None}

    def rewrap_data_keys(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        with self._database_lock:
            for kid, master_id, wrapped in rows:
                old = self._data_keys[kid]
                if old[4] is not None:
                    self._data_keys[kid] = (old[0], old[1], old[2], master_id, wrapped, old[5], old[6])

    def shred_data_keys(self, key_ids: Sequence[str], at: str) -> None:
        with self._database_lock:
            self._shred(key_ids, at)

    def _shred(self, key_ids: Sequence[str], at: str) -> None:
        for kid in key_ids:
            old = self._data_keys.get(kid)
            if old is not None and old[4] is not None:
                self._data_keys[kid] = (old[0], old[1], old[2], old[3], None, old[5], at)

    def add_session(self, row: Mapping[str, Any]) -> None:
        with self._database_lock:
            if row["session_hash"] in self._sessions:
                msg = "session exists"
                raise ValueError(msg)
            self._sessions[row["session_hash"]] = {column: row[column] for column in SESSION_COLUMNS}

    def session(self, token_hash: str) -> dict[str, Any] | None:
        found = self._sessions.get(token_hash)
        return dict(found) if found else None

    def touch_session(self, token_hash: str, last_used_at: float, data: str) -> bool:
        with self._database_lock:
            found = self._sessions.get(token_hash)
            if found is None:
                return False
            found.update(last_used_at=last_used_at, data=data)
            return True

    def delete_session(self, token_hash: str) -> bool:
        with self._database_lock:
            return self._sessions.pop(token_hash, None) is not None

    def delete_sessions(self, *, used_before: float, created_before: float) -> int:
        with self._database_lock:
            gone = [
                h
                for h, s in self._sessions.items()
                if s["last_used_at"] < used_before or s["created_at"] < created_before
            ]
            for h in gone:
                del self._sessions[h]
            return len(gone)
