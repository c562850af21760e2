"""The ledger application: applies batches of submissions in one transaction, one outcome each.

One module over 400 lines because it is one class: ``CreditLedger`` is the eventsourcing
``Application``, whose commands (submit, decide, save) and reads (files, receipts, outcomes,
chains) share its repository, aggregate cache and register. What is a second thing has its own
module: reception (``reception.py``), the batch's unit of work (``unit_of_work.py``), the
handlers, the parser and the limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.popo import POPOFactory
from eventsourcing.sqlite import SQLiteFactory

from ledger.application.handlers import handle
from ledger.application.ports import (
    DataKeyStore,
    Inbox,
    KeyStore,
    LedgerLog,
    SessionStore,
    StandaloneEvents,
    SubmissionRegister,
)
from ledger.application.privacy import (
    BatchSealer,
    KeyRing,
    MasterKeyMismatch,
    NameIndex,
    SealedValueAltered,
    key_id,
)
from ledger.application.reception import Item, internal_error, receive
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.catalogue import Catalogue
from ledger.domain.commands import Command
from ledger.domain.creditfile import Context, CreditFile
from ledger.domain.errors import LedgerError, SubmissionConflict
from ledger.domain.inbox import SOURCE_DEPARTMENT, InboxEntry, InboxItem, InboxSeal
from ledger.domain.integrity import ChainBreak, StoredEventView, event_id, verify_streams
from ledger.domain.outcomes import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    REJECTED,
    UNREGISTERED,
    LoggedOutcome,
    Outcome,
    OutcomeEntry,
    Receipt,
)
from ledger.domain.queries import QueryRecord, new_query_id
from ledger.domain.redaction import shown_id
from ledger.domain.subjects import SubjectCode, subject_key
from ledger.store.memory import POPOLedgerRecorder
from ledger.store.rows import EventRow
from ledger.store.sqlite import SQLiteLedgerRecorder
from ledger.store.transcoder import OrjsonTranscoder

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
"""Database errors that mean "not now" (unreachable, locked): worth retrying the same batch."""
MISCONFIGURED = (MasterKeyMismatch,)
"""Errors of this process's configuration, not of a submission: raised, never a rejection (another
worker's data keys under another master key would otherwise turn its subjects' submissions into
``internal_error`` one by one)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class BatchAborted(RuntimeError):
    """A command failed after it had already changed a file: the batch is abandoned, nothing of it
    is saved, and the files it touched are evicted from the cache."""


class CreditLedger(Application[UUID]):
    """Event-sourced credit files, the submission register and chain verification."""

    name = "CreditLedger"
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "200000",
        # Trusts the cache, as one writer per subject (the partitioned intake) usually allows; the
        # save checks it: a stale file, changed or only read, aborts, evicts and retries (submit_safely).
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        secret: bytes,
        clock: Callable[[], datetime] = utc_now,
        env: Mapping[str, str] | None = None,
        master_key: bytes | None = None,
    ) -> None:
        """``master_key`` wraps the data keys personal fields are sealed under (``ledger.application.
        privacy``); without one, events are stored in clear (the benchmarks' comparison run)."""
        self.catalogue = catalogue
        self.secret = secret
        self.clock = clock
        self._keys: dict[SubjectCode, UUID] = {}
        super().__init__(env)
        self.register: SubmissionRegister = _port(self.recorder, SubmissionRegister)
        self.reader: LedgerLog = _port(self.recorder, LedgerLog)
        """The read port: the only way code outside the application reads the ledger's log."""
        self.keys: KeyStore = _port(self.recorder, KeyStore)
        self.inbox: Inbox = _port(self.recorder, Inbox)
        """Submissions a door recorded before answering for them; the relay drains them."""
        self.inbox_seal = InboxSeal(secret)
        self.sessions: SessionStore = _port(self.recorder, SessionStore)
        """The portal's sessions, in the same database as the keys (shared by every worker on it)."""
        self.data_keys: DataKeyStore = _port(self.recorder, DataKeyStore)
        self._standalone = self.recorder if isinstance(self.recorder, StandaloneEvents) else None
        """The recorder, if it writes query records in one statement (checked once: a Protocol's
        isinstance is slow for a path taken hundreds of times a second)."""
        self.privacy: KeyRing | None = None
        self.name_index = NameIndex(secret, lambda: self.privacy)
        """The blind index of names the public search looks persons up by (``NameIndex``)."""
        if master_key is not None:
            self.use_master_key(master_key)

    def use_master_key(self, master_key: bytes) -> None:
        """Seal personal fields from now on under data keys wrapped by ``master_key``.

        Raises MasterKeyMismatch if the stored data keys are wrapped by another master key."""
        ring = KeyRing(self.data_keys, master_key)
        ring.check()
        self.privacy = ring

    def rotate_master_key(self, current: bytes, new: bytes) -> int:
        """Re-wrap every live data key from ``current`` to ``new``; how many were re-wrapped.

        No event is touched. Each page of keys is committed as it is re-wrapped, so a rotation cut
        short leaves keys wrapped by either key (each row names its own); run again with the same
        two keys, it finishes. Raises MasterKeyMismatch if some key is wrapped by neither."""
        ring = KeyRing(self.data_keys, current)
        ring.check(also=KeyRing(self.data_keys, new).master_key_id)
        count = ring.rotate(new)
        self.privacy = ring
        return count

    # -- infrastructure -----------------------------------------------------------------

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def construct_recorder(self) -> ApplicationRecorder:
        factory = self.factory
        if isinstance(factory, SQLiteFactory):
            recorder = SQLiteLedgerRecorder(datastore=factory.datastore)
            if factory.env_create_table():
                recorder.create_table()
            return recorder
        if isinstance(factory, POPOFactory):
            return POPOLedgerRecorder()
        try:
            from ledger.store.postgres import PostgresLedgerRecorder, construct  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - only without the postgres extra
            msg = f"persistence module {type(factory).__module__} needs the 'postgres' extra: {exc}"
            raise RuntimeError(msg) from exc
        recorder_pg: PostgresLedgerRecorder = construct(factory)
        return recorder_pg

    def key_of(self, subject: SubjectCode) -> UUID:
        key = self._keys.get(subject)
        if key is None:
            if len(self._keys) >= 1_000_000:  # bounded: a memo, not a directory of subjects
                self._keys.clear()
            key = self._keys[subject] = subject_key(subject, self.secret)
        return key

    def command_key(self, command: Command) -> UUID:
        """The key of the file a command is about (given directly by the platform's own commands)."""
        env = command.envelope
        if env.subject is not None:
            return self.key_of(env.subject)
        assert env.subject_key is not None  # the parser sets one or the other
        return env.subject_key

    def is_cached(self, key: UUID) -> bool:
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(key)
        except KeyError:
            return False
        return True

    # -- commands ------------------------------------------------------------------------

    def submit(
        self,
        batch: Sequence[bytes | str | Mapping[str, Any]],
        *,
        sources: Sequence[str] | None = None,
    ) -> list[Outcome]:
        """Apply a batch of submissions in one transaction; return one outcome per submission, in order.

        Bad input never raises: it becomes a rejected outcome with a reason. A re-sent submission
        (same department, id and content) gets its first outcome back, marked ``duplicate``.
        ``sources`` name where each message came from (``topic/partition/offset``): a message
        without a usable department and id is then receipted under its source, so a redelivery
        of even an undecodable message gets the same single outcome; and a redelivered message
        (same source, same content) adds nothing to the outcomes log, which holds one entry per
        submission received (``outcomes_after``).
        """
        now = self.clock()
        now_iso = now.isoformat()
        items = [receive(raw, now) for raw in batch]
        if sources is not None:
            for item, source in zip(items, sources, strict=True):
                item.source = source
                if item.key is None:
                    item.key = (SOURCE_DEPARTMENT, source)
        uow = UnitOfWork(self, self._sealer(now_iso))
        try:
            outcomes = self._decide_all(items, uow, now, now_iso)
        except BaseException:
            # Cached files are handed out without a copy: whatever this batch did to them must go.
            self._evict(uow.files)
            raise
        return outcomes

    def revealed(self, value: Any) -> Any:
        """``value`` with every sealed field in it opened (``SHREDDED`` where its key is gone), or
        as it is when this ledger seals nothing. Raises SealedValueAltered on a forged ciphertext."""
        return value if self.privacy is None else self.privacy.reveal(value)

    def _sealer(self, now_iso: str) -> BatchSealer | None:
        if self.privacy is None:
            return None
        sealer = self.privacy.batch()
        sealer.now = now_iso
        return sealer

    def _save_batch(
        self,
        files: list[CreditFile],
        logged: list[OutcomeEntry | Receipt],
        read: Mapping[UUID, int] | None = None,
        sealer: BatchSealer | None = None,
    ) -> None:
        """``Application.save`` for files we know are aggregates, skipping its per-object Protocol
        ``isinstance`` checks (slow on Python 3.11): one transaction for events and the outcomes log
        in batch order (a ``Receipt`` in it is a first decision, written as the receipt), which also
        checks that the files in ``read`` are still at the versions given."""
        processing = ProcessingEvent[UUID]()
        for file in files:
            processing.events.extend(file.collect_events())
            processing.aggregates[file.id] = file
        processing.saved_kwargs["outcomes"] = logged
        if read:
            processing.saved_kwargs["read_versions"] = read
        shredded: list[str] = []
        for e in processing.events:
            if type(e).__name__ == "RecordShredded":
                file = cast("CreditFile", processing.aggregates[e.originator_id])
                shredded.extend(_unit_key_ids(file, e.unit))  # type: ignore[attr-defined]  # a RecordShredded names its unit
        if sealer is not None and sealer.created:
            processing.saved_kwargs["data_keys"] = sealer.rows()
        if shredded:
            processing.saved_kwargs["shred_keys"] = (shredded, self.clock().isoformat())
        recordings = self._record(processing)
        if sealer is not None:
            sealer.committed()
        if shredded and self.privacy is not None:
            self.privacy.forget(shredded)
        self._notify(recordings)

    def _decide_all(self, items: list[Item], uow: UnitOfWork, now: datetime, now_iso: str) -> list[Outcome]:
        known = self.register.select_receipts([i.key for i in items if i.key is not None])
        uow.prefetch({self.command_key(i.command) for i in items if i.command is not None})
        seal = cast("BatchSealer | None", uow.sealer)  # the one submit gave it
        logged: list[OutcomeEntry | Receipt] = []
        outcomes: list[Outcome] = []
        for item in items:
            if item.key is None:
                assert item.error is not None
                reason = item.error.as_reason()
                outcomes.append(Outcome(REJECTED, None, None, reason=reason, recorded_at=now_iso))
                logged.append(_entry(UNREGISTERED, item, now_iso, reason=reason, seal=seal))
                continue
            prior = known.get(item.key)
            if prior is not None:
                outcome = self._answer_resend(prior, item, now_iso)
                outcomes.append(outcome)
                if not outcome.duplicate:
                    logged.append(_entry(CONFLICT, item, now_iso, reason=outcome.reason, seal=seal))
                elif not _redelivered(prior, item):
                    logged.append(_entry(DUPLICATE, item, now_iso, original=False))
                continue
            receipt = self._decide(item, uow, now, now_iso)
            known[item.key] = receipt
            logged.append(receipt)
            outcomes.append(Outcome.from_receipt(receipt, duplicate=False))
        self._save_batch(list(uow.files.values()), logged, uow.unchanged_reads(), seal)
        return outcomes

    def submit_safely(
        self,
        batch: Sequence[bytes | str | Mapping[str, Any]],
        *,
        sources: Sequence[str] | None = None,
        attempts: int = 3,
    ) -> list[Outcome]:
        """``submit`` for a stream: never lets one bad submission or a stale cache block the rest.

        A version conflict (another writer touched a subject) is retried with fresh files. If the
        batch is abandoned because one command failed after changing a file (a bug), each
        submission is applied alone and the one that still fails is rejected as
        ``internal_error``, so the stream moves on and the submission still gets its outcome.
        """
        for attempt in range(attempts):
            try:
                return self.submit(batch, sources=sources)
            except IntegrityError:
                log.warning(
                    "version conflict applying a batch (attempt %d); retrying with fresh files", attempt + 1
                )
            except TRANSIENT:
                raise  # the database is unavailable: the caller retries the batch later
            except MISCONFIGURED:
                raise
            except Exception:
                log.exception(
                    "a batch of %d could not be applied; applying its submissions one by one", len(batch)
                )
                break
        outcomes: list[Outcome] = []
        for i, raw in enumerate(batch):
            source = None if sources is None else [sources[i]]
            for attempt in range(attempts):
                try:
                    outcomes.extend(self.submit([raw], sources=source))
                    break
                except (*TRANSIENT, *MISCONFIGURED):
                    raise
                except IntegrityError:
                    # Another writer changed the file meanwhile (the platform's own commands for a
                    # subject can reach another worker): not this submission's fault, so again.
                    if attempt + 1 < attempts:
                        continue
                    reason = internal_error("submission %d of a batch cannot be applied; rejected", i)
                    outcomes.append(self.reject_unapplicable(raw, source[0] if source else None, reason))
                except Exception:
                    reason = internal_error("submission %d of a batch cannot be applied; rejected", i)
                    outcomes.append(self.reject_unapplicable(raw, source[0] if source else None, reason))
                    break
        return outcomes

    def reject_unapplicable(
        self, raw: bytes | str | Mapping[str, Any], source: str | None, reason: dict[str, str] | None = None
    ) -> Outcome:
        """Record a rejection for a submission the ledger failed to apply, without applying it."""
        now = self.clock()
        item = receive(raw, now)
        item.source = source
        item.key = item.key or ((SOURCE_DEPARTMENT, source) if source else None)
        if reason is None:
            reason = internal_error("submission from %s rejected as internal_error", source or "a caller")
        seal = self._sealer(now.isoformat())
        if item.key is None:
            self._save_batch(
                [], [_entry(UNREGISTERED, item, now.isoformat(), reason=reason, seal=seal)], None, seal
            )
            return Outcome(REJECTED, None, None, reason=reason, recorded_at=now.isoformat())
        known = self.register.select_receipts([item.key]).get(item.key)
        if known is not None:
            if not _redelivered(known, item):
                self._save_batch([], [_entry(DUPLICATE, item, now.isoformat(), original=False)])
            return Outcome.from_receipt(known, duplicate=True)
        receipt = Receipt(
            item.key[0],
            item.key[1],
            item.digest or "",
            REJECTED,
            None,
            (),
            reason,
            now.isoformat(),
            sealed_original(seal, item),
            source=item.source,
        )
        self._save_batch([], [receipt], None, seal)
        return Outcome.from_receipt(receipt, duplicate=False)

    def _answer_resend(self, prior: Receipt, item: Item, now_iso: str) -> Outcome:
        if prior.digest == item.digest:
            return Outcome.from_receipt(prior, duplicate=True)
        assert item.key is not None
        conflict = SubmissionConflict(
            f"submission {shown_id(item.key[1])} was already used by {shown_id(prior.department)} "
            f"on {prior.recorded_at} with different content; use a new submission_id",
            field="submission_id",
        )
        return Outcome(REJECTED, item.key[1], item.key[0], reason=conflict.as_reason(), recorded_at=now_iso)

    def _decide(self, item: Item, uow: UnitOfWork, now: datetime, now_iso: str) -> Receipt:
        assert item.key is not None
        assert item.digest is not None
        department, submission_id = item.key

        def receipt(
            status: str, subject: str | None, events: tuple[str, ...], reason: dict[str, str] | None
        ) -> Receipt:
            original = (
                sealed_original(cast("BatchSealer | None", uow.sealer), item) if status == REJECTED else None
            )
            return Receipt(
                department,
                submission_id,
                item.digest or "",
                status,
                subject,
                events,
                reason,
                now_iso,
                original,
                source=item.source,
            )

        if item.error is not None or item.command is None:
            assert item.error is not None
            return receipt(REJECTED, None, (), item.error.as_reason())
        env = item.command.envelope
        ctx = Context(
            at=now, occurred_at=env.occurred_at, department=department, submission=env.key, sealer=uow.sealer
        )
        sealer = cast("BatchSealer | None", uow.sealer)
        keys_before = sealer.mark() if sealer is not None else 0

        def discard() -> None:  # a rejected command leaves no file and no data key behind
            uow.discard_opened()
            if sealer is not None:
                sealer.discard_since(keys_before)

        uow.begin()
        try:
            file = handle(item.command, uow, self.catalogue, ctx)
        except LedgerError as exc:
            discard()
            self._check_unchanged(uow, exc)
            return receipt(REJECTED, str(self.command_key(item.command)), (), exc.as_reason())
        except (*TRANSIENT, *MISCONFIGURED):
            # The database unavailable (or closed under a stopping worker) is "not now", never a
            # decision: the batch is tried again later, not rejected as internal_error one by one.
            discard()
            raise
        except Exception as exc:
            discard()
            self._check_unchanged(uow, exc)
            reason = internal_error("submission %s/%s could not be applied", department, submission_id)
            return receipt(REJECTED, str(self.command_key(item.command)), (), reason)
        file_key = file.stream_key  # formatted once: str(UUID) costs more than the event id's hash
        events = tuple(
            event_id(file_key if e.originator_id == file.id else e.originator_id, e.originator_version)
            for e in uow.new_events()
        )
        return receipt(ACCEPTED, file_key, events, None)

    @staticmethod
    def _check_unchanged(uow: UnitOfWork, exc: BaseException) -> None:
        if uow.new_events():
            msg = f"a command raised after changing a file; batch abandoned: {exc!r}"
            raise BatchAborted(msg) from exc

    def _evict(self, files: Mapping[UUID, CreditFile]) -> None:
        cache = self.repository.cache
        if cache is None:
            return
        for key in files:
            with contextlib.suppress(KeyError):
                cache.get(key, evict=True)

    def record_in_inbox(self, items: Sequence[InboxItem]) -> list[int]:
        """Record what a door received, in one transaction, before it answers; the positions.

        Nothing is decided here: the relay publishes the rows to the intake (``ledger.domain.inbox``).
        """
        now = self.clock().isoformat()
        if self.privacy is None or not items:
            return self.inbox.append_inbox(items, now)
        try:
            return self._record_sealed(items, now)
        except IntegrityError:  # another worker saved the month's key first: seal under the one it saved
            return self._record_sealed(items, now)

    def _record_sealed(self, items: Sequence[InboxItem], now: str) -> list[int]:
        """Each row sealed under its department's inbox key of the month, bound to its position
        (``BatchSealer.seal_inbox``); the keys made for it saved in the same transaction."""
        sealer = self._sealer(now)
        assert sealer is not None
        month = now[:7]
        for department in {item.department for item in items}:  # the keys, before any position
            sealer.seal_inbox(department, month, 0, InboxItem(b"", b"", None, None))

        def seal(position: int, item: InboxItem) -> InboxItem:
            return sealer.seal_inbox(item.department, month, position, item)

        positions = self.inbox.append_inbox(items, now, seal, sealer.rows())
        sealer.committed()
        return positions

    def inbox_page(self, after: int, limit: int) -> list[InboxEntry]:
        """The inbox's rows after ``after`` as the relay publishes them: each opened (its Kafka key
        and value as received), with whether it is decided (``Inbox.inbox_page``). A row that does
        not open comes back as stored, with why (``InboxEntry.altered``): one altered row must not
        stop the rows after it."""
        entries = self.inbox.inbox_page(after, limit)
        ring = self.privacy
        if ring is None:
            return entries
        opened = []
        for entry in entries:
            try:
                opened.append(dataclasses.replace(entry, item=ring.open_inbox(entry.position, entry.item)))
            except SealedValueAltered as exc:
                opened.append(dataclasses.replace(entry, altered=str(exc)))
        return opened

    # -- the query register ----------------------------------------------------------------

    def record_query(self, record: dict[str, Any]) -> str:
        """Write one query record (allowed or refused) as a sealed ledger event; return its id.

        Raises whatever the store raises: a query whose record cannot be written must fail.
        """
        stored = self.query_events([record])
        self.write_query_events(stored)
        return str(stored[0].originator_id)

    def query_events(self, records: Sequence[dict[str, Any]]) -> list[StoredEvent]:
        """Query records as the events to store (each its own one-event stream), hashed and
        serialised on the caller's thread: the query register's group commit (``streams.register``)
        builds them on the event loop, so the thread that writes them runs little more than SQL."""
        events: list[Any] = []
        for record in records:
            at = self.clock()
            query_id = new_query_id(at)
            made = QueryRecord.make(query_id, {**record, "query_id": str(query_id)}, at)
            events.extend(made.collect_events())
        return [self.mapper.to_stored_event(event) for event in events]

    def write_query_events(self, stored: Sequence[StoredEvent]) -> None:
        """Write query records' events (``query_events``) in one transaction: one commit, all or none.

        Raises whatever the store raises. Not through ``save``: a query record is never read back as
        an aggregate, and putting each in the aggregate cache (at hundreds a second) would evict
        the credit files the intake keeps there; nothing subscribes in-process (the relay reads the
        notification log). A recorder that can write them in one statement does
        (``StandaloneEvents``)."""
        if self._standalone is not None:
            self._standalone.insert_standalone_events(list(stored))
        else:
            self.recorder.insert_events(list(stored))

    # -- queries -------------------------------------------------------------------------

    def file(self, key: UUID) -> CreditFile | None:
        try:
            file: CreditFile = self.repository.get(key)
        except AggregateNotFoundError:
            return None
        return file

    def file_of(self, subject: SubjectCode) -> CreditFile | None:
        return self.file(self.key_of(subject))

    def receipts_after(
        self, position: int, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, Receipt]]:
        """The register: one receipt per (department, submission id) decided, in position order."""
        return self.reader.receipts_after(position, department=department, limit=limit)

    def outcomes_after(
        self, position: int, department: str | None = None, limit: int = 1000
    ) -> list[tuple[int, LoggedOutcome]]:
        """The outcomes log: one entry per submission received (first decisions, duplicates and
        conflicts), in position order; what credit.outcomes and /v1/outcomes publish."""
        return self.reader.outcomes_after(position, department=department, limit=limit)

    def original_at(self, position: int) -> tuple[str | None, bytes | None] | None:
        """The department and the bytes as received of the rejected outcome at ``position`` (None if
        it was accepted, or there is none): how a department gets back an original that was too
        large for its outcome message (``contract.messages.ORIGINAL_PATH``). The bytes are None
        once the original's retention ended and its key was destroyed (``expire_originals``). The
        caller checks that the department asking is the one returned."""
        found = self.reader.outcomes_after(position - 1, limit=1)
        if not found or found[0][0] != position:
            return None
        logged = found[0][1]
        if logged.entry.kind in (CONFLICT, UNREGISTERED):
            original = logged.entry.original
        else:
            original = logged.receipt.original if logged.receipt is not None else None
        if original is None:
            return None
        return logged.entry.department, self.open_original(original)

    def expire_originals(self, today: date, at: str) -> int:
        """Destroy the keys of rejected originals past their retention (90 days after the end of
        the month they were rejected in); how many. The scheduler's, once a round."""
        return 0 if self.privacy is None else self.privacy.shred_rejections(today, at)

    def open_original(self, original: bytes) -> bytes | None:
        """A stored original in clear; None once its retention ended and its key was destroyed."""
        if self.privacy is None:
            return original
        return self.privacy.open_original(original)

    # -- integrity -----------------------------------------------------------------------

    def stored_events(self, start: int = 1, *, page: int = 5000) -> Iterator[StoredEventView]:
        """Every stored event in ledger order, decoded for verification (never upcast)."""
        transcoder = self.mapper.transcoder
        position = start - 1
        while rows := self.reader.event_rows(position, page):
            for row in rows:
                yield _view(transcoder, row)
            position = rows[-1][0]

    def verify(self, key: UUID | None = None) -> list[ChainBreak]:
        """Recompute hash chains (one subject's, or every subject's); return the first break of each."""
        if key is None:
            return verify_streams(self.stored_events())
        transcoder = self.mapper.transcoder
        return verify_streams(_view(transcoder, row) for row in self.reader.stream_rows(key))


def _unit_key_ids(file: CreditFile, unit: str) -> list[str]:
    """Every data key a file's unit may be sealed under, for shredding: the one its events name,
    and the one named after the unit (``key_id``), which a release before time-ordered key ids made
    and a worker of that release may still make. Destroying an id no key has changes nothing."""
    derived = key_id(file.id, unit)
    named = file.unit_keys.get(unit)
    return [derived] if named is None or named == derived else [named, derived]


def _redelivered(prior: Receipt, item: Item) -> bool:
    """Whether ``item`` is the very message ``prior`` was decided on, read again (same source)."""
    return prior.source is not None and prior.source == item.source and prior.digest == item.digest


def sealed_original(seal: BatchSealer | None, item: Item) -> bytes:
    """A rejected submission's bytes as received, sealed under its department's key of the month
    (kept for the sender, for a bounded time: ``ledger.application.privacy.REJECTION_RETENTION_DAYS``)."""
    if seal is None or not item.original:
        return item.original
    department = item.key[0] if item.key is not None else "unregistered"
    return seal.seal_original(department, seal.now[:7], item.original)


def _entry(
    kind: str,
    item: Item,
    now_iso: str,
    *,
    reason: dict[str, str] | None = None,
    original: bool = True,
    seal: BatchSealer | None = None,
) -> OutcomeEntry:
    """The outcomes-log entry of ``item``; its own original only when no receipt will hold one."""
    department, submission_id = item.key if item.key is not None else (None, None)
    return OutcomeEntry(
        kind,
        department,
        submission_id,
        item.digest or "",
        now_iso,
        item.source,
        reason,
        sealed_original(seal, item) if original else None,
    )


def _port(recorder: Any, port: type[Any]) -> Any:
    """The recorder as one of the application's ports, refused at start-up if it lacks it."""
    if not isinstance(recorder, port):
        msg = f"{type(recorder).__name__} does not implement {port.__name__}"
        raise TypeError(msg)
    return recorder


def _view(transcoder: Transcoder, row: EventRow) -> StoredEventView:
    _position, stream, version, topic, state = row
    try:
        decoded = transcoder.decode(state)
    except Exception as exc:  # any corruption of the stored bytes is reported, not raised
        return StoredEventView(str(stream), version, topic, None, decode_error=str(exc)[:200])
    return StoredEventView(str(stream), version, topic, decoded)
