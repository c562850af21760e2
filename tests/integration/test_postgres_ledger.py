"""The ledger on PostgreSQL: events and the submission register in one database, verified in place.

A throw-away cluster is started once for the module (see ``pg_server.py``); every test gets a
fresh database in it, so tests neither see nor disturb each other's files and receipts.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, ProgrammingError

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue
from ledger.domain.outcomes import ACCEPTED, REJECTED
from ledger.domain.subjects import parse_subject_code, person_check_character, subject_key
from ledger.store.postgres import PostgresLedgerRecorder
from ledger.store.rows import StaleRead
from tests.integration.pg_server import PgServer, running_postgres

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 9, tzinfo=UTC)
SECRET = b"s" * 32
PERSON = "11010519491231002X"
OTHER_PEOPLE = ("110105198001010016", "110105198001010024", "110105198001010032")
EVENTS_TABLE = "creditledger_events"

OpenLedger = Callable[..., CreditLedger]


def fixed() -> datetime:
    return NOW


def filing(submission_id: str, subject: str = PERSON, record_id: str = "R1") -> dict[str, Any]:
    """A tax bureau filing a tax-evasion record against ``subject``."""
    return {
        "submission_id": submission_id,
        "department": "tax_bureau",
        "action": "file_record",
        "subject": {"id": subject, "name": "张三"},
        "occurred_at": "2026-10-30T10:00:00+08:00",
        "record": {
            "record_id": record_id,
            "category": "tax_evasion",
            "domain": "taxation",
            "severity": "serious",
            "title": "逃税",
            "decision": {"document_number": f"税罚〔2026〕{record_id}号", "date": "2026-10-29"},
        },
    }


def objection(submission_id: str, subject: str = PERSON, record_id: str = "R1") -> dict[str, Any]:
    """The credit platform passing on the subject's objection to a record."""
    return {
        "submission_id": submission_id,
        "department": "credit_platform",
        "action": "raise_objection",
        "subject": {"id": subject, "name": "张三"},
        "occurred_at": "2026-10-31T10:00:00+08:00",
        "record": {"provider": "tax_bureau", "record_id": record_id},
        "objection_id": f"O-{submission_id}",
        "grounds": "not me",
    }


def with_bad_subject(submission_id: str) -> dict[str, Any]:
    """A filing whose identity number is one digit short."""
    return dict(filing(submission_id), subject={"id": PERSON[:-1], "name": "张三"})


def subject_key_of(code: str) -> UUID:
    return subject_key(parse_subject_code(code, today=NOW.date()), SECRET)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


_databases = itertools.count(1)


@pytest.fixture
def database(postgres: PgServer) -> str:
    return postgres.create_database(f"ledger_test_{next(_databases)}")


@pytest.fixture
def open_ledger(postgres: PgServer, database: str) -> Iterator[OpenLedger]:
    """Opens ledgers on this test's database (each with its own cache); closes them all after."""
    opened: list[CreditLedger] = []

    def open_(**extra: str) -> CreditLedger:
        ledger = CreditLedger(
            catalogue=load_catalogue(),
            secret=SECRET,
            clock=fixed,
            env=postgres.env(database, **extra),
        )
        opened.append(ledger)
        return ledger

    yield open_
    for ledger in opened:
        ledger.close()


def count(postgres: PgServer, database: str, query: str) -> int:
    with postgres.connect(database) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, int)
    return value


def test_the_ledger_keeps_its_events_and_register_in_postgresql(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    assert isinstance(ledger.recorder, PostgresLedgerRecorder)
    assert ledger.register is ledger.recorder


def test_an_accepted_submission_is_stored_and_its_file_reloads_from_postgresql(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    [outcome] = open_ledger().submit([filing("tax-1")])
    assert outcome.status == ACCEPTED
    assert outcome.subject_key == str(subject_key_of(PERSON))
    assert len(outcome.events) == 2

    reopened = open_ledger()  # a fresh application: nothing cached, everything read back
    file = reopened.file_of(parse_subject_code(PERSON, today=NOW.date()))
    assert file is not None
    assert file.version == 2
    assert list(file.records) == ["tax_bureau:R1"]
    assert file.records["tax_bureau:R1"].status == "active"
    assert count(postgres, database, f"SELECT count(*) FROM {EVENTS_TABLE}") == 2
    assert count(postgres, database, "SELECT count(*) FROM submission_receipts") == 1


def test_the_register_knows_which_subjects_already_have_a_file(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    ledger.submit([filing("tax-1")])
    filed, unfiled = subject_key_of(PERSON), subject_key_of(OTHER_PEOPLE[0])
    assert ledger.register.existing_streams([filed, unfiled]) == {filed}
    assert ledger.register.existing_streams([]) == set()


def test_the_same_submission_sent_again_is_a_duplicate_with_the_same_events(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    [first] = open_ledger().submit([filing("tax-1")])
    [again] = open_ledger().submit([filing("tax-1")])  # answered from the stored receipt
    assert again.duplicate
    assert not first.duplicate
    assert (again.status, again.subject_key, again.events) == (
        first.status,
        first.subject_key,
        first.events,
    )
    assert count(postgres, database, f"SELECT count(*) FROM {EVENTS_TABLE}") == 2


def test_a_different_submission_with_a_used_id_is_a_conflict_and_changes_nothing(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    open_ledger().submit([filing("tax-1")])
    changed = filing("tax-1", record_id="R2")
    [outcome] = open_ledger().submit([changed])
    assert outcome.status == REJECTED
    assert not outcome.duplicate
    assert outcome.reason is not None
    assert outcome.reason["code"] == "submission_conflict"
    assert count(postgres, database, f"SELECT count(*) FROM {EVENTS_TABLE}") == 2
    assert count(postgres, database, "SELECT count(*) FROM submission_receipts") == 1


def test_a_rejected_submissions_receipt_is_stored_and_a_resend_gets_the_same_rejection(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    [rejected] = open_ledger().submit([with_bad_subject("tax-9")])
    assert rejected.status == REJECTED
    assert rejected.reason is not None
    assert rejected.reason["code"] == "invalid_subject_code"

    reopened = open_ledger()
    stored = reopened.register.select_receipts([("tax_bureau", "tax-9")])
    assert stored[("tax_bureau", "tax-9")].reason == rejected.reason
    [again] = reopened.submit([with_bad_subject("tax-9")])
    assert again.duplicate
    assert (again.status, again.reason, again.recorded_at) == (
        REJECTED,
        rejected.reason,
        rejected.recorded_at,
    )
    assert count(postgres, database, f"SELECT count(*) FROM {EVENTS_TABLE}") == 0


def test_receipts_after_lists_a_departments_receipts_in_the_order_they_were_recorded(
    open_ledger: OpenLedger,
) -> None:
    ledger = open_ledger()
    ledger.submit([filing("tax-1"), objection("obj-1"), filing("tax-2", OTHER_PEOPLE[0])])
    ledger.submit([with_bad_subject("tax-3")])  # rejected: still a receipt
    ledger.submit([objection("obj-2", OTHER_PEOPLE[0]), filing("tax-4", OTHER_PEOPLE[1])])

    everything = ledger.receipts_after(0)
    positions = [p for p, _ in everything]
    assert positions == sorted(positions)
    assert len(set(positions)) == 6

    tax = ledger.receipts_after(0, department="tax_bureau")
    assert [r.submission_id for _, r in tax] == ["tax-1", "tax-2", "tax-3", "tax-4"]
    assert [r.status for _, r in tax] == [ACCEPTED, ACCEPTED, REJECTED, ACCEPTED]
    platform = ledger.receipts_after(0, department="credit_platform")
    assert [r.submission_id for _, r in platform] == ["obj-1", "obj-2"]

    first_two = ledger.receipts_after(0, department="tax_bureau", limit=2)
    rest = ledger.receipts_after(first_two[-1][0], department="tax_bureau")
    assert first_two + rest == tax
    assert ledger.receipts_after(tax[-1][0], department="tax_bureau") == []
    assert ledger.receipts_after(0, department="nobody") == []


def test_verify_reports_no_break_in_an_untouched_ledger(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    ledger.submit([filing("tax-1"), objection("obj-1"), filing("tax-2", OTHER_PEOPLE[0])])
    assert ledger.verify() == []
    assert ledger.verify(subject_key_of(PERSON)) == []


def test_verify_names_the_subject_and_version_of_an_event_altered_in_the_database(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    ledger = open_ledger()
    ledger.submit([filing("tax-1"), objection("obj-1"), filing("tax-2", OTHER_PEOPLE[0])])
    key = subject_key_of(PERSON)
    with postgres.connect(database) as conn:
        rows = conn.execute(
            f"SELECT originator_version, state FROM {EVENTS_TABLE} "
            "WHERE originator_id = %s ORDER BY originator_version",
            (key,),
        ).fetchall()
        version, state = next((v, bytes(s)) for v, s in rows if b'"serious"' in bytes(s))
        offset = state.index(b'"serious"') + 1  # the "s": "serious" becomes "Xerious"
        conn.execute(
            f"UPDATE {EVENTS_TABLE} SET state = set_byte(state, %s, %s) "
            "WHERE originator_id = %s AND originator_version = %s",
            (offset, ord("X"), key, version),
        )

    [chain_break] = open_ledger().verify()
    assert (chain_break.stream_id, chain_break.version) == (str(key), version)
    assert chain_break.problem.startswith("content altered")
    assert ledger.verify(key) == [chain_break]


def test_a_receipt_is_written_with_its_events_or_not_at_all(
    open_ledger: OpenLedger, postgres: PgServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers race with one submission id: the loser stores neither receipt nor events."""
    winner, loser = open_ledger(), open_ledger()
    winner.submit([filing("tax-1")])
    # The loser read the register before the winner committed, so it decides afresh.
    monkeypatch.setattr(loser.register, "select_receipts", lambda _keys: {})
    with pytest.raises(IntegrityError):
        loser.submit([filing("tax-1", OTHER_PEOPLE[2])])

    assert count(postgres, database, f"SELECT count(*) FROM {EVENTS_TABLE}") == 2
    assert count(postgres, database, "SELECT count(*) FROM submission_receipts") == 1
    assert loser.file_of(parse_subject_code(OTHER_PEOPLE[2], today=NOW.date())) is None


def test_a_reader_tailing_receipts_misses_none_while_writers_race(
    open_ledger: OpenLedger,
) -> None:
    """Receipt positions are drawn under the events table lock, so they commit in order.

    (Drawn before the lock, a tailing reader here misses some of them: positions committed
    after the reader had already moved past them.)
    """
    writers, batches = 4, 30
    ledgers = [open_ledger() for _ in range(writers)]
    reader = open_ledger()
    finished = threading.Event()
    seen: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def person(writer: int, batch: int) -> str:
        first17 = f"11010519800101{writer}{batch:02d}"
        return first17 + person_check_character(first17)

    def write(writer: int) -> None:
        try:
            for batch in range(batches):
                code = person(writer, batch)
                ledgers[writer].submit(
                    [filing(f"w{writer}-{batch}-{n}", code, record_id=f"R{n}") for n in range(3)]
                    + [with_bad_subject(f"w{writer}-{batch}-bad")]
                )
        except BaseException as exc:
            failures.append(exc)

    def tail() -> None:
        position = 0
        while True:
            last_look = finished.is_set()
            page = reader.receipts_after(position)
            seen.extend(receipt.key for _, receipt in page)
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
    recorded = [receipt.key for _, receipt in reader.receipts_after(0, limit=10_000)]
    assert len(recorded) == writers * batches * 4
    assert seen == recorded
    assert reader.verify() == []


def test_the_register_is_created_in_the_configured_schema(
    open_ledger: OpenLedger, postgres: PgServer, database: str
) -> None:
    with postgres.connect(database) as conn:
        conn.execute("CREATE SCHEMA ledger_a")
    ledger = open_ledger(POSTGRES_SCHEMA="ledger_a")
    [outcome] = ledger.submit([filing("tax-1")])
    assert outcome.status == ACCEPTED
    assert [r.submission_id for _, r in ledger.receipts_after(0)] == ["tax-1"]
    assert count(postgres, database, "SELECT count(*) FROM ledger_a.submission_receipts") == 1
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert count(postgres, database, tables) == 0


def test_database_functions_are_refused_because_they_would_skip_the_register(
    open_ledger: OpenLedger,
) -> None:
    with pytest.raises(ProgrammingError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
        open_ledger(POSTGRES_ENABLE_DB_FUNCTIONS="y")


def test_text_originator_ids_are_refused_because_files_are_keyed_by_uuid(
    open_ledger: OpenLedger,
) -> None:
    with pytest.raises(ProgrammingError, match="ORIGINATOR_ID_TYPE"):
        open_ledger(ORIGINATOR_ID_TYPE="text")


def test_a_rejection_judged_on_a_file_another_worker_has_since_changed_is_retried(
    open_ledger: OpenLedger,
) -> None:
    departments, platform = open_ledger(), open_ledger()
    assert departments.submit([filing("tax-1")])[0].accepted
    assert platform.submit([objection("desk-1")])[0].accepted  # the departments' copy is now stale
    answer = {
        "submission_id": "tax-2",
        "department": "tax_bureau",
        "action": "resolve_objection",
        "subject": {"id": PERSON, "name": "张三"},
        "occurred_at": "2026-10-31T12:00:00+08:00",
        "record": {"record_id": "R1"},
        "objection_id": "O-desk-1",
        "outcome": "rejected",
        "explanation": "checked",
    }
    with pytest.raises(StaleRead):
        departments.submit([answer])
    [outcome] = departments.submit_safely([answer])
    assert outcome.status == ACCEPTED, outcome.reason
    assert departments.verify() == []


def test_the_register_knows_its_last_receipt_position(open_ledger: OpenLedger) -> None:
    ledger = open_ledger()
    assert ledger.register.last_receipt_position() == 0
    ledger.submit([filing("tax-1"), with_bad_subject("tax-2"), filing("tax-3", record_id="R3")])
    assert ledger.register.last_receipt_position() == ledger.receipts_after(0)[-1][0]
    assert len(ledger.receipts_after(0)) == 3
