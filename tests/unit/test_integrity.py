"""Hash chains, canonical bytes and deterministic replay."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.domain.creditfile import CreditFile
from ledger.domain.integrity import GENESIS, StoredEventView, canonical_bytes, event_hash, verify_streams
from ledger.store.transcoder import OrjsonTranscoder
from tests.conftest import SECRET

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8))
def test_canonical_bytes_do_not_depend_on_key_order(value: dict[str, object]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_bytes(value) == canonical_bytes(reordered)


def test_canonical_bytes_use_utc_times_and_strings_for_decimals_and_uuids() -> None:
    ident = UUID("12345678-1234-5678-1234-567812345678")
    value = {"b": Decimal("1.50"), "a": datetime(2026, 1, 1, tzinfo=UTC), "c": ident}
    assert canonical_bytes(value) == (
        b'{"a":"2026-01-01T00:00:00Z","b":"1.50","c":"12345678-1234-5678-1234-567812345678"}'
    )


@given(
    json_values,
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.decimals(allow_nan=False, allow_infinity=False),
)
def test_the_transcoder_round_trips_uuids_datetimes_and_decimals(
    value: object, ident: UUID, moment: datetime, amount: Decimal
) -> None:
    transcoder = OrjsonTranscoder()
    state = {"v": value, "id": ident, "at": moment, "amount": amount, "nested": [{"id": ident}]}
    assert transcoder.decode(transcoder.encode(state)) == state


def _chain(stream: str, n: int) -> list[StoredEventView]:
    events, prev = [], GENESIS
    for version in range(1, n + 1):
        state = {"prev_hash": prev, "body": f"event {version}"}
        state["event_hash"] = prev = event_hash(stream, version, "t", state)
        events.append(StoredEventView(stream, version, "t", state))
    return events


def test_an_intact_chain_verifies_and_interleaved_streams_are_checked_separately() -> None:
    a, b = _chain("a", 5), _chain("b", 3)
    interleaved = [e for pair in zip(a, b, strict=False) for e in pair] + a[3:]
    assert verify_streams(interleaved) == []


def test_altered_content_is_located_at_its_version() -> None:
    events = _chain("a", 5)
    events[2] = StoredEventView("a", 3, "t", {**events[2].state, "body": "forged"})  # type: ignore[dict-item]
    (brk,) = verify_streams(events)
    assert (brk.stream_id, brk.version) == ("a", 3)
    assert "content altered" in brk.problem


def test_a_missing_event_is_located_where_the_gap_starts() -> None:
    events = _chain("a", 5)
    del events[1]
    (brk,) = verify_streams(events)
    assert (brk.version, brk.problem) == (2, "missing: version 3 follows 1")


def test_a_recomputed_hash_cannot_hide_a_forgery_because_the_next_link_breaks() -> None:
    events = _chain("a", 3)
    forged = {**events[1].state, "body": "forged"}  # type: ignore[dict-item]
    forged["event_hash"] = event_hash("a", 2, "t", forged)
    events[1] = StoredEventView("a", 2, "t", forged)
    (brk,) = verify_streams(events)
    assert brk.version == 3
    assert "prev_hash" in brk.problem


def _ledger(catalogue: Catalogue) -> CreditLedger:
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    return CreditLedger(
        catalogue=catalogue,
        secret=SECRET,
        clock=lambda: now,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 200))
def test_folding_the_same_events_twice_gives_the_same_state(catalogue: Catalogue, seed: int, n: int) -> None:
    ledger = _ledger(catalogue)
    generator = SubmissionGenerator(catalogue.latest, subjects=8, seed=seed, bad_ratio=0.1)
    ledger.submit(generator.take(n))
    for key in _keys(ledger):
        events = list(ledger.events.get(key))
        once, twice = _fold(events), _fold(events)
        assert _state(once) == _state(twice) == _state(ledger.file(key))
    assert ledger.verify() == []


def _keys(ledger: CreditLedger) -> set[UUID]:
    return {UUID(str(n.originator_id)) for n in ledger.recorder.select_notifications(1, 100_000)}


def _fold(events: list[object]) -> CreditFile:
    file = None
    for event in events:
        file = event.mutate(file)  # type: ignore[attr-defined]
    assert isinstance(file, CreditFile)
    return file


def _state(file: CreditFile | None) -> object:
    assert file is not None
    return (file.version, file.head_hash, repr(file.records), repr(file.designations), repr(file.statements))


def test_sealed_hashes_match_what_verification_recomputes_from_storage(catalogue: Catalogue) -> None:
    ledger = _ledger(catalogue)
    generator = SubmissionGenerator(catalogue.latest, subjects=20, seed=7, bad_ratio=0.05)
    ledger.submit(generator.take(500))
    views = list(ledger.stored_events())
    assert len(views) > 500
    assert verify_streams(views) == []
    rng = random.Random(1)
    victim = rng.choice(views)
    tampered = [
        v
        if v is not victim
        else StoredEventView(v.stream_id, v.version, v.topic, {**v.state, "submission": "x"})  # type: ignore[dict-item]
        for v in views
    ]
    (brk,) = verify_streams(tampered)
    assert (brk.stream_id, brk.version) == (victim.stream_id, victim.version)


def test_event_ids_are_rfc_9562_name_based_uuids_of_stream_and_version() -> None:
    from uuid import uuid5  # noqa: PLC0415

    from ledger.domain.integrity import _EVENT_ID_NAMESPACE, event_id  # noqa: PLC0415

    stream = UUID("e2872ba3-95e6-828e-9447-c23b6d8a8478")
    assert event_id(stream, 7) == str(uuid5(_EVENT_ID_NAMESPACE, f"{stream}:7"))
    assert UUID(event_id(stream, 7)).version == 5
