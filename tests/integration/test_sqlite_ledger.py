"""The ledger on a SQLite file: durable across restarts, and tampering is found and located."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.store.rows import StaleRead
from tests.conftest import PERSON, SECRET, example, file_of


def open_ledger(catalogue: Catalogue, path: Path) -> CreditLedger:
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    return CreditLedger(catalogue=catalogue, secret=SECRET, clock=lambda: now, env=env)


def test_files_and_receipts_survive_a_restart(catalogue: Catalogue, tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    submissions = SubmissionGenerator(catalogue.latest, subjects=30, seed=3).take(300)
    first = open_ledger(catalogue, path)
    outcomes = first.submit(submissions)
    first.close()
    second = open_ledger(catalogue, path)
    again = second.submit(submissions)
    assert all(o.duplicate for o in again)
    assert [o.events for o in again] == [o.events for o in outcomes]
    assert [r.submission_id for _, r in second.receipts_after(0, limit=1000)] == [
        s["submission_id"] for s in submissions
    ]
    assert second.verify() == []


def test_altering_one_byte_of_one_stored_event_is_reported_with_its_subject_and_version(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = open_ledger(catalogue, path)
    ledger.submit(SubmissionGenerator(catalogue.latest, subjects=20, seed=5).take(200))
    assert ledger.verify() == []
    with sqlite3.connect(path) as db:
        stream, version, state = db.execute(
            "SELECT originator_id, originator_version, state FROM stored_events "
            "WHERE originator_version = 2 ORDER BY rowid LIMIT 1 OFFSET 7"
        ).fetchone()
        at = state.index(b"occurred_at") + len(b'occurred_at":"2')  # a digit of the year
        forged = state[:at] + bytes([state[at] ^ 0x01]) + state[at + 1 :]
        db.execute(
            "UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?",
            (forged, stream, version),
        )
    (brk,) = ledger.verify()
    assert (brk.stream_id.replace("-", ""), brk.version) == (stream, 2)
    assert "content altered" in brk.problem
    assert ledger.verify(key=UUID(stream)) == [brk]


def test_a_stored_event_that_no_longer_decodes_is_reported_not_raised(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = open_ledger(catalogue, path)
    ledger.submit(SubmissionGenerator(catalogue.latest, subjects=5, seed=9).take(30))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_events SET state = X'7B7B' WHERE rowid = 3")
    (brk,) = ledger.verify()
    assert "cannot be decoded" in brk.problem


def two_writers(catalogue: Catalogue, path: Path) -> tuple[CreditLedger, CreditLedger]:
    """The departments' worker and the platform's (the desk, the scheduler) on one ledger file,
    the departments' having filed, and so cached, the person's record."""
    departments, platform = open_ledger(catalogue, path), open_ledger(catalogue, path)
    assert departments.submit([example("file_record")])[0].accepted
    return departments, platform


def test_a_decision_taken_on_a_file_another_writer_has_since_changed_is_retried_on_the_fresh_file(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    # Once the platform appends, the departments' copy is stale. Judged on it, the provider's
    # answer to the objection would be rejected as "unknown objection".
    departments, platform = two_writers(catalogue, tmp_path / "ledger.sqlite")
    assert platform.submit([example("raise_objection")])[0].accepted

    with pytest.raises(StaleRead):
        departments.submit([example("resolve_objection")])
    (outcome,) = departments.submit_safely([example("resolve_objection")])

    assert outcome.accepted, outcome.reason
    file = file_of(departments, PERSON)
    assert file.records["tax_bureau:SW-2026-0101"].objections["YY-2026-0301"].outcome == "rejected"
    assert departments.verify() == []


def test_a_rejection_stands_when_the_file_it_was_judged_on_is_still_current(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    departments, platform = two_writers(catalogue, tmp_path / "ledger.sqlite")
    assert platform.submit([example("file_record_organisation")])[0].accepted  # another subject
    (outcome,) = departments.submit([example("resolve_objection")])
    assert outcome.reason is not None
    assert outcome.reason["field"] == "objection_id"
