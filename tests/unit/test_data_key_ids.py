"""Data key ids: ordered by the time they are made, found again through the file's own events, and
shredded whichever release made them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from credit_ledger.compose import build_ledger
from credit_ledger.config import Settings
from ledger.application.privacy import BatchSealer, key_id, ordered_key_id
from ledger.application.service import CreditLedger
from ledger.domain.personal import Envelope, record_unit
from tests.conftest import example, file_of

RECORD = "transport:JT-2026-0401"
UNIT = record_unit(RECORD)
SUBJECT = example("file_record_minor")["subject"]["id"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, master_key="a" * 64, subject_secret="s" * 32)


def submit(settings: Settings, *names: str) -> CreditLedger:
    """A ledger process started afresh (its key ring remembers nothing) that applies ``names``."""
    ledger = build_ledger(settings)
    for name in names:
        (outcome,) = ledger.submit_safely([example(name)])
        assert outcome.status == "accepted", (name, outcome.reason)
    return ledger


def unit_keys(ledger: CreditLedger) -> list[str]:
    return [row[0] for row in ledger.data_keys.live_data_keys() if row[2] == UNIT]


@contextmanager
def earlier_release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sealing as the release before ordered ids did: a unit's key named after its stream and unit,
    looked up by that name, made under it when not found."""

    def derived(self: BatchSealer, stream: str, unit: str, **_: Any) -> Any:
        return self._derived_key(stream, unit)

    with monkeypatch.context() as patch:
        patch.setattr(BatchSealer, "_key", derived)
        yield


def test_a_new_data_keys_id_sorts_by_the_time_it_was_made_and_is_as_wide_as_a_derived_one() -> None:
    earlier = ordered_key_id(1_764_633_600_000, bytes([0xFF] * 3), 0xFFFFFF)
    later = ordered_key_id(1_764_633_600_001, bytes(3), 1)
    assert earlier < later, "the key store's index takes new keys at its end"
    assert ordered_key_id(1_764_633_600_000, b"abc", 1) < ordered_key_id(1_764_633_600_000, b"abc", 2)
    assert len(earlier) == len(key_id("stream", "unit")) == 24
    assert int(earlier, 16) >= 0, "hex, like a derived id"


def test_a_records_later_events_are_sealed_under_the_key_its_filing_made_even_after_a_restart(
    settings: Settings,
) -> None:
    first = submit(settings, "file_record_minor")
    (made,) = unit_keys(first)
    first.close()
    later = submit(settings, "raise_objection_minor")  # a fresh process: the key is found through the file
    try:
        assert unit_keys(later) == [made], "no second key for the record"
        record = file_of(later, SUBJECT).records[RECORD]
        (objection,) = record.objections.values()
        assert Envelope.parse(record.title).key_id == Envelope.parse(objection.grounds).key_id == made
        assert made != key_id(file_of(later, SUBJECT).id, UNIT), "not derived from stream and unit"
        assert later.revealed(objection.grounds) == example("raise_objection_minor")["grounds"]
        assert later.revealed(record.title) == example("file_record_minor")["record"]["title"]
        assert later.verify() == []
    finally:
        later.close()


def test_a_file_sealed_by_the_earlier_release_goes_on_under_its_derived_key_and_shreds_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with earlier_release(monkeypatch):
        old = submit(settings, "file_record_minor")
        derived = key_id(file_of(old, SUBJECT).id, UNIT)
        assert unit_keys(old) == [derived]
        old.close()
    ledger = submit(settings, "raise_objection_minor")
    try:
        assert unit_keys(ledger) == [derived], "the file names the derived key: no new one"
        (objection,) = file_of(ledger, SUBJECT).records[RECORD].objections.values()
        assert Envelope.parse(objection.grounds).key_id == derived
    finally:
        ledger.close()
    ledger = submit(settings, "expire_record", "shred_record")
    try:
        assert unit_keys(ledger) == []
        assert ledger.revealed(file_of(ledger, SUBJECT).records[RECORD].title) == "[shredded]"
    finally:
        ledger.close()


@pytest.mark.parametrize("who_adds_the_objection", ["this release", "the earlier release"])
def test_shredding_destroys_every_key_a_unit_was_sealed_under_whichever_release_made_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, who_adds_the_objection: str
) -> None:
    """A rolling upgrade: one worker of each release on one ledger. The earlier release derives a
    unit's key id, so for a record this release filed it makes a second key; shredding the record
    must destroy both, or the earlier worker's ciphertexts stay readable."""
    submit(settings, "file_record_minor").close()
    if who_adds_the_objection == "the earlier release":
        with earlier_release(monkeypatch):
            submit(settings, "raise_objection_minor").close()
    else:
        submit(settings, "raise_objection_minor").close()
    ledger = submit(settings, "expire_record", "shred_record")
    try:
        record = file_of(ledger, SUBJECT).records[RECORD]
        (objection,) = record.objections.values()
        assert unit_keys(ledger) == []
        assert ledger.revealed(record.title) == ledger.revealed(objection.grounds) == "[shredded]"
        assert ledger.verify() == []
    finally:
        ledger.close()
