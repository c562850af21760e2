"""One contract for every recorder: the ports of ``ledger.application.ports`` behave the same on each.

Parametrised over the in-memory, SQLite and PostgreSQL recorders (``conftest.Backend``), in the
style of the eventsourcing library's own recorder test cases: the submission register and its
receipt chain, the outcomes log, the read port (events, receipts, outcomes, relay positions), the
key store, the data-key store (saved with events, destroyed, re-wrapped), stale reads and
concurrent writers. What only one store has (PostgreSQL's schema and
refused options, migrating an older file) stays with that store's own tests.

One module of about 520 lines: it is the one contract every store is held to, so splitting it
would let a store pass half of it.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import IntegrityError

from contract.messages import messages_from_store, outcome_message
from ledger.application.ports import KeyStore, LedgerLog, SessionStore, SubmissionRegister
from ledger.application.privacy import MasterKeyMismatch, master_key_id
from ledger.application.service import CreditLedger
from ledger.domain.outcomes import ACCEPTED, DECIDED, DUPLICATE, RECEIPT_GENESIS, REJECTED, receipt_chain_hash
from ledger.domain.personal import SHREDDED, Envelope
from ledger.domain.subjects import parse_subject_code, subject_key
from ledger.store.rows import StaleRead
from tests.conftest import MASTER_KEY, SECRET
from tests.contracts.conftest import NOW, Backend
from tests.contracts.samples import OTHER_PEOPLE, PERSON, answer, filing, objection, person, with_bad_subject


def key_of(code: str) -> UUID:
    return subject_key(parse_subject_code(code, today=NOW.date()), SECRET)


# -- the ports ---------------------------------------------------------------------------------


def test_the_recorder_implements_every_port(backend: Backend) -> None:
    ledger = backend.open()
    for port in (SubmissionRegister, LedgerLog, KeyStore, SessionStore):
        assert isinstance(ledger.recorder, port)
    assert ledger.register is ledger.reader is ledger.keys is ledger.sessions is ledger.recorder


def test_an_accepted_submission_is_stored_and_its_file_reloads_in_a_fresh_application(
    backend: Backend,
) -> None:
    (outcome,) = backend.open().submit([filing("tax-1")])
    assert (outcome.status, outcome.subject_key, len(outcome.events)) == (ACCEPTED, str(key_of(PERSON)), 2)
    file = backend.open().file(key_of(PERSON))  # nothing cached: everything read back
    assert file is not None
    assert (file.version, list(file.records)) == (2, ["tax_bureau:R1"])
    assert (backend.count("events"), backend.count("receipts"), backend.count("outcomes")) == (2, 1, 1)


def test_the_register_knows_which_subjects_already_have_a_file(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1")])
    filed, unfiled = key_of(PERSON), key_of(OTHER_PEOPLE[0])
    assert ledger.register.existing_streams([filed, unfiled]) == {filed}
    assert ledger.register.existing_streams([]) == set()


def test_the_same_submission_sent_again_is_a_duplicate_with_the_same_events(backend: Backend) -> None:
    (first,) = backend.open().submit([filing("tax-1")])
    (again,) = backend.open().submit([filing("tax-1")])  # answered from the stored receipt
    assert again.duplicate
    assert not first.duplicate
    assert (again.status, again.subject_key, again.events, again.recorded_at) == (
        first.status,
        first.subject_key,
        first.events,
        first.recorded_at,
    )
    assert backend.count("events") == 2


def test_a_different_submission_with_a_used_id_is_a_conflict_and_changes_nothing(backend: Backend) -> None:
    backend.open().submit([filing("tax-1")])
    (outcome,) = backend.open().submit([filing("tax-1", record_id="R2")])
    assert (outcome.status, outcome.duplicate) == (REJECTED, False)
    assert outcome.reason is not None
    assert outcome.reason["code"] == "submission_conflict"
    assert (backend.count("events"), backend.count("receipts")) == (2, 1)


def test_a_rejected_submissions_receipt_keeps_its_original_and_a_resend_gets_the_same_rejection(
    backend: Backend,
) -> None:
    raw = orjson.dumps(with_bad_subject("tax-9"))
    (rejected,) = backend.open().submit([raw])
    assert rejected.reason is not None
    assert rejected.reason["code"] == "invalid_subject_code"
    reopened = backend.open()
    stored = reopened.register.select_receipts([("tax_bureau", "tax-9")])[("tax_bureau", "tax-9")]
    assert (stored.reason, stored.original) == (rejected.reason, raw)
    (again,) = reopened.submit([raw])
    assert again.duplicate
    assert (again.status, again.reason, again.recorded_at) == (
        REJECTED,
        rejected.reason,
        rejected.recorded_at,
    )
    assert backend.count("events") == 0


def test_receipts_after_lists_a_departments_receipts_in_the_order_they_were_recorded(
    backend: Backend,
) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), objection("obj-1"), filing("tax-2", OTHER_PEOPLE[0])])
    ledger.submit([with_bad_subject("tax-3")])  # rejected: still a receipt
    ledger.submit([objection("obj-2", OTHER_PEOPLE[0]), filing("tax-4", OTHER_PEOPLE[1])])

    everything = ledger.receipts_after(0)
    positions = [p for p, _ in everything]
    assert positions == sorted(set(positions))
    assert len(positions) == 6
    tax = ledger.receipts_after(0, department="tax_bureau")
    assert [r.submission_id for _, r in tax] == ["tax-1", "tax-2", "tax-3", "tax-4"]
    assert [r.status for _, r in tax] == [ACCEPTED, ACCEPTED, REJECTED, ACCEPTED]
    platform = ledger.receipts_after(0, department="credit_platform")
    assert [r.submission_id for _, r in platform] == ["obj-1", "obj-2"]
    first_two = ledger.receipts_after(0, department="tax_bureau", limit=2)
    assert first_two + ledger.receipts_after(first_two[-1][0], department="tax_bureau") == tax
    assert ledger.receipts_after(tax[-1][0], department="tax_bureau") == []
    assert ledger.receipts_after(0, department="nobody") == []


def test_the_register_knows_its_last_receipt_and_outcome_positions(backend: Backend) -> None:
    ledger = backend.open()
    assert (ledger.reader.last_receipt_position(), ledger.reader.last_outcome_position()) == (0, 0)
    assert ledger.reader.receipt_head() == (0, RECEIPT_GENESIS)
    ledger.submit([filing("tax-1"), with_bad_subject("tax-2"), filing("tax-3", record_id="R3")])
    ledger.submit([filing("tax-1")])  # a duplicate: an outcome, no receipt
    receipts, outcomes = ledger.receipts_after(0), ledger.outcomes_after(0)
    assert (len(receipts), len(outcomes)) == (3, 4)
    assert ledger.reader.last_receipt_position() == receipts[-1][0]
    assert ledger.reader.last_outcome_position() == outcomes[-1][0]


def test_relay_positions_are_saved_per_cursor(backend: Backend) -> None:
    ledger = backend.open()
    assert ledger.reader.relay_position("credit.ledger") == 0
    ledger.reader.save_relay_position("credit.ledger", 7)
    ledger.reader.save_relay_position("credit.outcomes", 3)
    ledger.reader.save_relay_position("credit.ledger", 9)
    reader = backend.open().reader
    assert (reader.relay_position("credit.ledger"), reader.relay_position("credit.outcomes")) == (9, 3)


def test_api_keys_are_added_found_listed_and_revoked_once(backend: Backend) -> None:
    keys = backend.open().keys
    row = {
        "key_id": "k1",
        "key_hash": "h",
        "role": "department",
        "organisation": "tax_bureau",
        "label": "测试",
        "subject_key": None,
        "created_at": "2026-11-01T09:00:00+00:00",
        "revoked_at": None,
    }
    keys.add_key(row)
    keys.add_key({**row, "key_id": "k0", "created_at": "2026-11-01T08:00:00+00:00"})
    with pytest.raises(Exception):  # noqa: B017, PT011 - each store refuses a second k1 its own way
        keys.add_key(row)
    assert keys.key("k1") == row
    assert keys.key("nope") is None
    assert [k["key_id"] for k in keys.api_keys()] == ["k0", "k1"]
    assert keys.revoke_key("k1", "2026-11-02T00:00:00+00:00")
    assert not keys.revoke_key("k1", "2026-11-03T00:00:00+00:00")
    assert backend.open().keys.key("k1")["revoked_at"] == "2026-11-02T00:00:00+00:00"  # type: ignore[index]


def test_portal_sessions_are_added_found_touched_and_deleted_by_their_hash(backend: Backend) -> None:
    sessions = backend.open().sessions
    row = {"session_hash": "h1", "key_id": "k1", "created_at": 1000.0, "last_used_at": 1000.0, "data": "{}"}
    sessions.add_session(row)
    sessions.add_session({**row, "session_hash": "h-old", "created_at": 10.0, "last_used_at": 990.0})
    sessions.add_session({**row, "session_hash": "h-idle", "last_used_at": 20.0})
    with pytest.raises(Exception):  # noqa: B017, PT011 - each store refuses a second h1 its own way
        sessions.add_session(row)
    assert sessions.session("h1") == row
    assert sessions.session("nope") is None
    assert sessions.touch_session("h1", 1060.5, '{"flash":"ok"}')
    assert not sessions.touch_session("nope", 1060.5, "{}")
    other = backend.open().sessions  # another application on the same database
    assert other.session("h1") == {**row, "last_used_at": 1060.5, "data": '{"flash":"ok"}'}
    assert other.delete_sessions(used_before=500.0, created_before=100.0) == 2  # idle, and too old
    assert (sessions.session("h-old"), sessions.session("h-idle")) == (None, None)
    assert other.delete_session("h1")
    assert not sessions.delete_session("h1")
    assert sessions.session("h1") is None


def test_the_read_port_gives_events_in_ledger_order_and_a_stream_in_version_order(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), filing("tax-2", OTHER_PEOPLE[0]), objection("obj-1")])
    rows = ledger.reader.event_rows(0, 100)
    assert len(rows) == 5
    assert [r[0] for r in rows] == sorted({r[0] for r in rows})
    assert ledger.reader.head() == rows[-1][0]
    assert ledger.reader.event_rows(rows[1][0], 2) == rows[2:4]
    assert ledger.reader.event_rows(0, 100, stop=rows[2][0]) == rows[:3]
    stream = ledger.reader.stream_rows(key_of(PERSON))
    assert [r[2] for r in stream] == [1, 2, 3]
    assert {r[1] for r in stream} == {str(key_of(PERSON))}
    assert all(isinstance(r[4], bytes) for r in rows)


# -- one transaction, and writers that race -----------------------------------------------------


def test_a_receipt_is_written_with_its_events_or_not_at_all(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers race with one submission id: the loser stores neither receipt nor events."""
    winner, loser = backend.open(), backend.open()
    winner.submit([filing("tax-1")])
    # The loser read the register before the winner committed, so it decides afresh.
    monkeypatch.setattr(loser.register, "select_receipts", lambda _keys: {})
    with pytest.raises(IntegrityError):
        loser.submit([filing("tax-1", OTHER_PEOPLE[2])])
    assert (backend.count("events"), backend.count("receipts"), backend.count("outcomes")) == (2, 1, 1)
    assert backend.open().file(key_of(OTHER_PEOPLE[2])) is None


def test_a_rejection_judged_on_a_file_another_writer_has_since_changed_is_retried(backend: Backend) -> None:
    departments, platform = backend.open(), backend.open()
    assert departments.submit([filing("tax-1")])[0].accepted  # cached by the departments' writer
    assert platform.submit([objection("desk-1")])[0].accepted  # the departments' copy is now stale
    # Judged on the stale copy, the provider's answer would be rejected as "unknown objection".
    with pytest.raises(StaleRead):
        departments.submit([answer("tax-2", "O-desk-1")])
    (outcome,) = departments.submit_safely([answer("tax-2", "O-desk-1")])
    assert outcome.status == ACCEPTED, outcome.reason
    assert departments.verify() == []


def test_a_rejection_stands_when_the_file_it_was_judged_on_is_still_current(backend: Backend) -> None:
    departments, platform = backend.open(), backend.open()
    assert departments.submit([filing("tax-1")])[0].accepted
    assert platform.submit([filing("tax-x", OTHER_PEOPLE[0])])[0].accepted  # another subject
    (outcome,) = departments.submit([answer("tax-2", "O-none")])
    assert outcome.reason is not None
    assert outcome.reason["field"] == "objection_id"


def test_a_reader_tailing_outcomes_misses_none_while_writers_race(backend: Backend) -> None:
    """Outcome positions are drawn while the writer holds the store's write lock, so a reader
    tailing the log never passes over one that commits later."""
    writers, batches = 3, 12
    ledgers = [backend.open() for _ in range(writers)]
    reader = backend.open()
    finished = threading.Event()
    seen: list[Any] = []
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for batch in range(batches):
                code = person(writer * 100 + batch)
                ledgers[writer].submit(
                    [filing(f"w{writer}-{batch}-{n}", code, record_id=f"R{n}") for n in range(3)]
                    + [with_bad_subject(f"w{writer}-{batch}-bad"), filing(f"w{writer}-{batch}-0", code)]
                )
        except BaseException as exc:
            failures.append(exc)

    def tail() -> None:
        position = 0
        while True:
            last_look = finished.is_set()
            page = reader.outcomes_after(position)
            seen.extend(p for p, _ in page)
            position = page[-1][0] if page else position
            if last_look and not page:
                return

    tailer = threading.Thread(target=tail)
    tailer.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished.set()
    tailer.join()
    assert failures == []
    recorded = [p for p, _ in reader.outcomes_after(0, limit=10_000)]
    assert len(recorded) == writers * batches * 5
    assert seen == recorded
    assert reader.verify() == []


# -- item 8: one outcome per submission received ------------------------------------------------


def test_item_8_every_submission_received_has_exactly_one_outcome_and_a_duplicate_names_the_first(
    backend: Backend,
) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), filing("tax-1"), b"not json"])  # a copy inside the batch too
    ledger.submit([filing("tax-1"), filing("tax-1", record_id="R2"), with_bad_subject("tax-2")])
    logged = ledger.outcomes_after(0)
    assert [(o.entry.kind, o.entry.submission_id) for _, o in logged] == [
        (DECIDED, "tax-1"),
        (DUPLICATE, "tax-1"),
        ("unregistered", None),
        (DUPLICATE, "tax-1"),
        ("conflict", "tax-1"),
        (DECIDED, "tax-2"),
    ]
    messages = [orjson.loads(outcome_message(p, o)[1]) for p, o in logged]
    first = messages[0]
    for duplicate in (messages[1], messages[3]):
        assert duplicate["duplicate"] is True
        assert duplicate["first_position"] == first["position"]
        assert (duplicate["recorded_at"], duplicate["events"]) == (first["recorded_at"], first["events"])
    assert messages[2]["reason"]["code"] == "undecodable"
    assert messages[2]["original"] == "not json"
    assert messages[4]["reason"]["code"] == "submission_conflict"
    assert messages[4]["conflicts_with"] == first["position"]
    assert orjson.loads(messages[4]["original"])["record"]["record_id"] == "R2"  # the conflicting bytes
    assert [m["duplicate"] for m in messages] == [False, True, False, True, False, False]
    assert [p for p, _ in ledger.outcomes_after(0, department="tax_bureau")] == [
        m["position"] for m in messages if m["department"] == "tax_bureau"
    ]
    assert ledger.original_at(messages[2]["position"]) == (None, b"not json")
    assert ledger.original_at(first["position"]) is None  # accepted: no original kept


def test_item_8_a_redelivered_message_gets_no_second_outcome(backend: Backend) -> None:
    ledger = backend.open()
    batch = [orjson.dumps(filing("tax-1")), b"{broken", orjson.dumps(filing("tax-1"))]
    sources = ["credit.submissions/0/10", "credit.submissions/0/11", "credit.submissions/0/12"]
    first = ledger.submit(batch, sources=sources)
    again = ledger.submit(batch, sources=sources)  # the intake restarted before committing offsets
    assert [o.duplicate for o in first] == [False, False, True]
    assert all(o.duplicate for o in again)
    assert len(ledger.outcomes_after(0)) == 3
    ledger.submit([batch[0]], sources=["credit.submissions/0/40"])  # the department sent it again
    assert len(ledger.outcomes_after(0)) == 4


def test_item_8_each_receipt_is_linked_to_the_one_before_it(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), with_bad_subject("tax-2"), filing("tax-1")])
    backend.open().submit([objection("obj-1"), filing("tax-3", OTHER_PEOPLE[0])])
    link = RECEIPT_GENESIS
    for position, receipt in ledger.receipts_after(0):
        link = receipt_chain_hash(link, position, receipt)
        assert receipt.chain_hash == link
    assert ledger.reader.receipt_head() == (ledger.reader.last_receipt_position(), link)


def test_item_8_a_receipts_position_is_that_of_its_first_outcome(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), filing("tax-1"), filing("tax-2", OTHER_PEOPLE[0])])
    decided = {o.entry.key: p for p, o in ledger.outcomes_after(0) if o.entry.kind == DECIDED}
    assert {r.key: p for p, r in ledger.receipts_after(0)} == decided


# -- item 17: whatever partition a submission arrives on --------------------------------------


def test_item_17_two_writers_interleaving_submissions_for_the_same_subjects_each_get_one_outcome(
    backend: Backend,
) -> None:
    """Two intake workers (two partitioners sent one subject's submissions to both) interleave
    batches about the same subjects; per-subject versions and the stale-read check keep every
    decision on a current file, so each submission has exactly one outcome and every chain holds."""
    one, two = backend.open(), backend.open()
    subjects = [person(n) for n in range(4)]
    sent: list[str] = []
    for round_ in range(6):
        for writer, ledger in ((1, one), (2, two)):
            batch = []
            for n, code in enumerate(subjects):
                sid = f"r{round_}-w{writer}-s{n}"
                batch.append(filing(sid, code, record_id=f"R{round_}{writer}"))
                if round_:  # an objection to the other writer's filing of the round before
                    batch.append(
                        {
                            **objection(f"o{round_}-w{writer}-s{n}", code, f"R{round_ - 1}{3 - writer}"),
                            "grounds": "x",
                        }
                    )
            sent += [s["submission_id"] for s in batch]
            outcomes = ledger.submit_safely(batch)
            assert len(outcomes) == len(batch)
            assert all(o.accepted for o in outcomes), [o.reason for o in outcomes if not o.accepted]
    decided = [o.entry.submission_id for _, o in one.outcomes_after(0, limit=10_000)]
    assert sorted(decided) == sorted(sent)
    assert one.verify() == []
    assert two.verify() == []


# -- what verification finds in the store ---------------------------------------------------


def test_an_event_altered_in_the_store_is_reported_with_its_subject_and_version(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1"), objection("obj-1"), filing("tax-2", OTHER_PEOPLE[0])])
    stream = str(key_of(PERSON))
    version, state = next(
        (r[2], r[4]) for r in ledger.reader.stream_rows(key_of(PERSON)) if b'"serious"' in r[4]
    )
    backend.replace_event_state(stream, version, state.replace(b'"serious"', b'"Xerious"', 1))
    (chain_break,) = backend.open().verify()
    assert (chain_break.stream_id, chain_break.version) == (stream, version)
    assert chain_break.problem.startswith("content altered")
    assert backend.open().verify(key_of(PERSON)) == [chain_break]


def test_a_stored_event_that_no_longer_decodes_is_reported_not_raised(backend: Backend) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-1")])
    backend.replace_event_state(str(key_of(PERSON)), 2, b"{{")
    (chain_break,) = backend.open().verify()
    assert "cannot be decoded" in chain_break.problem


def test_files_and_receipts_survive_a_restart(durable_backend: Backend) -> None:
    submissions = [filing(f"tax-{n}", person(n % 5), record_id=f"R{n}") for n in range(40)]
    first = durable_backend.open()
    outcomes = first.submit(submissions)
    first.close()
    second = durable_backend.open()
    again = second.submit(submissions)
    assert all(o.duplicate for o in again)
    assert [o.events for o in again] == [o.events for o in outcomes]
    assert [r.submission_id for _, r in second.receipts_after(0, limit=1000)] == [
        s["submission_id"] for s in submissions
    ]
    assert second.verify() == []


# -- the data-key store (docs/privacy.md) ---------------------------------------------------------


def sealed(backend: Backend, master_key: bytes = MASTER_KEY) -> CreditLedger:
    ledger = backend.open()
    ledger.use_master_key(master_key)
    return ledger


def test_data_keys_are_saved_with_the_events_that_seal_under_them_and_open_in_a_fresh_application(
    backend: Backend,
) -> None:
    writer = sealed(backend)
    writer.submit([filing("tax-1"), filing("tax-2", record_id="R2")])
    assert writer.privacy is not None
    rows = writer.data_keys.live_data_keys()
    assert len(rows) == 3, "the file's own unit and one per record"
    assert {row[1] for row in rows} == {str(key_of(PERSON))}
    assert all(row[3] == writer.privacy.master_key_id and row[4] for row in rows)
    assert writer.data_keys.master_key_ids() == {writer.privacy.master_key_id}
    assert [r[0] for r in rows] == sorted(r[0] for r in rows), "in key id order"
    page = writer.data_keys.live_data_keys(after=rows[0][0], limit=1)
    assert [r[0] for r in page] == [rows[1][0]]
    assert writer.data_keys.live_data_keys(stream="rejections") == []
    assert writer.data_keys.data_keys([rows[0][0], "no-such-key"]) == {rows[0][0]: rows[0]}

    reader = sealed(backend)  # nothing cached: the keys are read back from the store
    file = reader.file(key_of(PERSON))
    assert file is not None
    assert reader.privacy is not None
    assert reader.privacy.open(file.name) == "张三"


def test_a_destroyed_data_key_keeps_its_row_without_its_bytes_and_its_values_read_as_shredded(
    backend: Backend,
) -> None:
    writer = sealed(backend)
    writer.submit([filing("tax-1")])
    name = writer.file(key_of(PERSON)).name  # type: ignore[union-attr]
    kid = Envelope.parse(name).key_id
    writer.data_keys.shred_data_keys([kid], "2031-07-03T01:00:00+00:00")
    row = writer.data_keys.data_keys([kid])[kid]
    assert (row[4], row[6]) == (None, "2031-07-03T01:00:00+00:00")
    assert kid not in {r[0] for r in writer.data_keys.live_data_keys()}
    reader = sealed(backend)
    assert reader.privacy is not None
    assert reader.privacy.open(name) == SHREDDED


def test_a_rewrap_replaces_every_live_keys_wrapping_and_master_key_id_and_nothing_else(
    backend: Backend,
) -> None:
    writer = sealed(backend)
    writer.submit([filing("tax-1")])
    before = backend.count("events")
    new = bytes(range(100, 132))
    assert writer.rotate_master_key(MASTER_KEY, new) == len(writer.data_keys.live_data_keys())
    assert writer.data_keys.master_key_ids() == {master_key_id(new)}
    assert backend.count("events") == before
    with pytest.raises(MasterKeyMismatch):
        sealed(backend)  # the retired key wraps nothing any more
    reader = sealed(backend, new)
    assert reader.privacy is not None
    assert reader.privacy.open(reader.file(key_of(PERSON)).name) == "张三"  # type: ignore[union-attr]


def test_query_records_written_together_are_one_transaction_in_the_log_in_order(backend: Backend) -> None:
    """The query register's group commit (``streams.register``) writes several checks' records
    with one ``write_query_events``; each store takes them as its own one-event streams."""
    ledger = backend.open()
    records = [{"endpoint": "check", "reference": f"R{i}", "outcome": "allowed"} for i in range(5)]
    stored = ledger.query_events(records)
    ledger.write_query_events(stored)
    ids = [ledger.record_query({"endpoint": "status", "reference": "after"})]
    logged = [m["body"]["record"] for m in messages_from_store(ledger.reader) if m["type"] == "QueryRecorded"]
    assert [r["reference"] for r in logged] == ["R0", "R1", "R2", "R3", "R4", "after"]
    assert logged[-1]["query_id"] == ids[0]
