"""Ports of the application: the read port into the ledger's log, the key store, the read models.

Code outside the application reads the ledger only through ``LedgerLog`` (``CreditLedger.reader``);
the recorders in ``ledger.store`` implement it, and one contract test suite holds every
recorder to it. The query service reads views through ``ReadModels``, which the projections
implement: the application never imports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from ledger.domain.inbox import InboxEntry, InboxItem, InboxSealer
from ledger.domain.outcomes import LoggedOutcome, Receipt
from ledger.domain.personal import DataKeyRow
from ledger.store.rows import EventRow


@runtime_checkable
class SubmissionRegister(Protocol):
    """The write side's own reads: receipts to answer re-sends, and which files exist already.

    Receipts are written by the recorder in the transaction that writes the events they name
    (``Application.save`` passes them through), so a receipt exists exactly when its events do.
    """

    def select_receipts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Receipt]: ...

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]: ...


@runtime_checkable
class StandaloneEvents(Protocol):
    """A recorder that writes the first events of new one-event streams (query records) in one
    statement: atomic and durable like a transaction, with one round trip into the database
    instead of three (BEGIN, the inserts, COMMIT). Optional: a recorder without it writes them
    through ``insert_events``."""

    def insert_standalone_events(self, stored_events: Sequence[Any]) -> None: ...


@runtime_checkable
class LedgerLog(Protocol):
    """The ledger's log, read by position: events, receipts, outcomes and the relay's saved positions."""

    def event_rows(self, after: int, limit: int, *, stop: int | None = None) -> list[EventRow]:
        """Events after position ``after`` (and at most ``stop``), in ledger order, at most ``limit``."""
        ...

    def stream_rows(self, stream_id: UUID) -> list[EventRow]:
        """Every event of one stream (a subject's file, a query record), in version order."""
        ...

    def head(self) -> int:
        """The position of the newest event (0 while there is none)."""
        ...

    def receipts_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        """Receipts after ``position`` in register order, optionally one department's."""
        ...

    def last_receipt_position(self) -> int:
        """The position of the newest receipt (0 while there is none)."""
        ...

    def receipt_head(self) -> tuple[int, str]:
        """(position, chain link) of the newest receipt: what a checkpoint anchors."""
        ...

    def outcomes_after(
        self, position: int, *, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, LoggedOutcome]]:
        """The outcomes log after ``position``: one entry per submission received, each with the
        receipt it rests on. What ``credit.outcomes`` publishes, followed by the relay's cursor."""
        ...

    def last_outcome_position(self) -> int:
        """The position of the newest outcomes-log entry (0 while there is none)."""
        ...

    def relay_position(self, name: str) -> int:
        """How far the relay's cursor ``name`` has published (0 before it starts)."""
        ...

    def save_relay_position(self, name: str, position: int) -> None: ...


@runtime_checkable
class Inbox(Protocol):
    """Submissions a door recorded before answering for them (``ledger.domain.inbox``), read back
    by position with whether each is decided yet: what the relay drains to ``credit.submissions``."""

    def append_inbox(
        self,
        items: Sequence[InboxItem],
        received_at: str,
        seal: InboxSealer | None = None,
        data_keys: Sequence[DataKeyRow] = (),
    ) -> list[int]:
        """Record ``items`` in one transaction; their positions, in order. Positions only grow,
        and a reader after position ``p`` never misses a row committed later with a smaller one.

        With ``seal``, what is stored of each item is ``seal(position, item)``, called once its
        position is drawn and before anything of it is written (the application seals the row
        bound to its position); ``data_keys``, the keys it seals under that are new, are saved in
        the same transaction."""
        ...

    def inbox_page(self, after: int, limit: int) -> list[InboxEntry]:
        """Rows after position ``after``, in position order, at most ``limit``, each marked
        ``decided`` when the outcomes log holds an entry read from its source (``inbox/<position>``)."""
        ...

    def last_inbox_position(self) -> int:
        """The position of the newest row (0 while there is none)."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """API keys, kept hashed in the ledger's database (authoritative: no rebuild touches them)."""

    def add_key(self, row: Mapping[str, Any]) -> None: ...

    def key(self, key_id: str) -> dict[str, Any] | None: ...

    def api_keys(self) -> list[dict[str, Any]]: ...

    def revoke_key(self, key_id: str, at: str) -> bool: ...


@runtime_checkable
class DataKeyStore(Protocol):
    """Data keys, wrapped by the master key, in the ledger's database (written with the events that
    use them: ``Application.save`` passes ``data_keys`` and ``shred_keys`` through to the recorder)."""

    def data_keys(self, key_ids: Iterable[str]) -> dict[str, DataKeyRow]:
        """The rows of these keys that exist (shredded ones too, with no wrapped key)."""
        ...

    def live_data_keys(
        self, *, stream: str | None = None, after: str = "", limit: int = 1000
    ) -> list[DataKeyRow]:
        """Keys not shredded, in key id order after ``after`` (one stream's, or every stream's)."""
        ...

    def master_key_ids(self) -> set[str]:
        """The master keys the live data keys are wrapped by (one, except during a rotation)."""
        ...

    def rewrap_data_keys(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        """Replace (key id, master key id, wrapped key) of live keys: a master-key rotation."""
        ...

    def shred_data_keys(self, key_ids: Sequence[str], at: str) -> None:
        """Destroy these keys' bytes (outside an event's transaction: rejected originals)."""


@runtime_checkable
class SessionStore(Protocol):
    """The portal's sessions, kept in the ledger's database beside the API keys, so that every
    worker on that database knows them and a restart keeps them. A row is found by the SHA-256 of
    the session's token; the token itself (the cookie) is never stored. Times are seconds since the
    epoch; ``data`` is the session's own JSON (what was sent from it, a message to show once)."""

    def add_session(self, row: Mapping[str, Any]) -> None: ...

    def session(self, token_hash: str) -> dict[str, Any] | None: ...

    def touch_session(self, token_hash: str, last_used_at: float, data: str) -> bool:
        """Record a use (and the session's data); False when the session is gone."""
        ...

    def delete_session(self, token_hash: str) -> bool: ...

    def delete_sessions(self, *, used_before: float, created_before: float) -> int:
        """Remove sessions idle since ``used_before`` or opened before ``created_before``."""
        ...


class ReadModels(Protocol):
    """What the query service reads of the projections: views of a subject, lists, the register."""

    def subject(self, key: str) -> Mapping[str, Any] | None:
        """The subject's folded state (kind, authorisations, records, ...), or None if unknown."""
        ...

    def status(
        self, key: str, today: date, *, state: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The subject's status view as of ``today`` (from ``state`` when the caller has just read
        it with ``subject``), or None if there is no file."""
        ...

    def status_as_of(self, key: str, moment: datetime) -> dict[str, Any] | None:
        """The status the ledger had recorded by ``moment`` (folded from the ledger itself)."""
        ...

    def shredded(self, key: str) -> list[dict[str, Any]]:
        """What of the subject's file was shredded, when and on what basis (no content)."""
        ...

    def memberships(self, key: str, today: date) -> dict[str, bool]:
        """The lists the subject is on as of ``today``."""
        ...

    def members(self, list_name: str, **filters: str | None) -> list[dict[str, Any]]: ...

    def check_view(self, key: str, today: date, department: str) -> dict[str, Any] | None:
        """What a check before approval reads of a subject: ``subject`` (masked), ``ledger_version``,
        ``notices`` (one row per measure notice addressed to ``department``), ``lists`` and
        ``clean_record``; None if there is no file."""
        ...

    def measure_stats(
        self, today: date, *, department: str | None, since: str | None, until: str | None
    ) -> dict[str, Any]:
        """Supervision figures of the measure notices (``projections.supervision.measure_stats``)."""
        ...

    def queries(self, **filters: Any) -> list[dict[str, Any]]: ...

    def anomaly_hints(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...
