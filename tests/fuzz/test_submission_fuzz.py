"""Issue 10: a hypothesis fuzz of the submission parser, as the intake meets it.

Every message (``tests/fuzz/hostile.py``: arbitrary JSON and bytes, deep nesting, huge strings,
odd Unicode, duplicate keys, numbers of every kind, mutated examples) is decided by a ledger as
the intake decides a message from Kafka (``submit_safely`` with its source). Each must get exactly
one outcome, never an exception; a rejection has a reason whose ``field`` names the field at fault
(empty only where no single field is: the whole message), a message a person can read within the
documented bound, never an ``internal_error`` (a fault in the parser, caught), and never a full
identity number, planted ones included. Bounded for CI by ``FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import event, given

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue
from ledger.domain.outcomes import Outcome
from ledger.domain.redaction import MAX_MESSAGE
from tests.conftest import SECRET
from tests.fuzz.hostile import FULL_IDENTITY_NUMBER, FUZZ, json_values, messages, mutated_examples

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
WHOLE_MESSAGE = {"undecodable", "too_large", "unexpected_field"}
"""Codes that may leave ``field`` empty: the message as a whole is at fault (not JSON, not an
object, too large in all), or, for ``unexpected_field``, the field is the enclosing object and that
is the submission itself (docs/submissions.md: its message names the key). Every other rejection
names the field."""

_offsets = itertools.count()


@pytest.fixture(scope="module")
def ledger() -> Iterator[CreditLedger]:
    app = CreditLedger(
        catalogue=load_catalogue(),
        secret=SECRET,
        clock=lambda: NOW,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )
    yield app
    assert app.verify() == [], "whatever was accepted, every chain holds"
    app.close()


def decide(ledger: CreditLedger, message: bytes | str | dict[str, object]) -> Outcome:
    source = f"credit.submissions/0/{next(_offsets)}@1"
    (outcome,) = ledger.submit_safely([message], sources=[source])  # exactly one, or this raises
    return outcome


def check(outcome: Outcome) -> None:
    if outcome.accepted:
        event("accepted")
        assert outcome.events
        return
    reason = outcome.reason
    assert reason is not None
    event(f"rejected: {reason['code']}")  # --hypothesis-show-statistics shows what was reached
    assert set(reason) == {"code", "field", "message"}
    code, field, message = reason["code"], reason["field"], reason["message"]
    assert code != "internal_error", message
    assert isinstance(field, str)
    assert field or code in WHOLE_MESSAGE, reason
    assert isinstance(message, str)
    assert message.strip()
    assert len(message) <= MAX_MESSAGE
    assert len(field) <= 200
    assert not FULL_IDENTITY_NUMBER.search(message), reason
    assert not FULL_IDENTITY_NUMBER.search(field), reason
    assert "Traceback" not in message


@FUZZ
@given(messages())
def test_every_message_gets_one_outcome_with_a_reason_that_names_a_field(
    ledger: CreditLedger, message: bytes
) -> None:
    check(decide(ledger, message))


@FUZZ
@given(json_values(max_leaves=60))
def test_any_json_value_as_a_message_gets_one_outcome(ledger: CreditLedger, value: object) -> None:
    import orjson  # noqa: PLC0415

    try:
        message = orjson.dumps(value)
    except orjson.JSONEncodeError:  # integers past 64 bits: sent as JSON text instead
        import json  # noqa: PLC0415

        message = json.dumps(value).encode()
    check(decide(ledger, message))


@FUZZ
@given(mutated_examples())
def test_a_mapping_built_in_process_is_held_to_the_same_rules(ledger: CreditLedger, value: object) -> None:
    """``apply`` and the platform's own commands hand the ledger mappings, not bytes."""
    check(decide(ledger, value if isinstance(value, dict) else {"value": value}))
