"""Item 7 of issue 10: no reason repeats a full identity number, and none is longer than a bound.

A property test: submissions made from the published examples, with valid identity numbers
planted anywhere (values, keys, numbers, nested lists, the subject in forms the schema refuses)
and values far too long, each decided by a ledger. Whatever the rejection, its ``message`` and
``field`` hold no identity number that was planted and are at most ``MAX_MESSAGE`` long.
"""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application.service import CreditLedger
from ledger.domain.catalogue import load_catalogue
from ledger.domain.redaction import MAX_ECHO, MAX_MESSAGE, echo, mask_identity_numbers
from ledger.domain.subjects import person_check_character
from tests.conftest import EXAMPLES, SECRET

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
CATALOGUE = load_catalogue()
EXAMPLE_DATA = [json.loads(p.read_text("utf-8")) for p in sorted(EXAMPLES.glob("*.json"))]
_ids = itertools.count()


@st.composite
def identity_numbers(draw: st.DrawFn) -> str:
    """A valid GB 11643 identity number: a province's address code, a real birth date, a check."""
    province = draw(st.sampled_from([11, 31, 35, 44, 65]))
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, 30_000)))
    first17 = f"{province}{draw(st.integers(0, 9999)):04d}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + person_check_character(first17)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value, the value's own (``()``) first (the fuzz suite uses it too)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += paths_of(item, (*prefix, i))
    return out


def _plant(data: dict[str, Any], path: tuple[Any, ...], value: Any, *, as_key: bool) -> None:
    if not path:
        data["extra"] = value
        return
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    if as_key and isinstance(target, dict):
        target[value if isinstance(value, str) else str(value)] = target.pop(path[-1])
    else:
        target[path[-1]] = value


@st.composite
def hostile_submissions(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """A submission with identity numbers planted in it, and the numbers planted."""
    data = copy.deepcopy(draw(st.sampled_from(EXAMPLE_DATA)))
    data["submission_id"] = f"P-{next(_ids)}"
    numbers = draw(st.lists(identity_numbers(), min_size=1, max_size=3))
    for number in numbers:
        form = draw(
            st.sampled_from(
                ["bare", "lower", "embedded", "number", "list", "object", "key", "long", "subject_both"]
            )
        )
        value: Any = {
            "bare": number,
            "lower": number.lower(),
            "embedded": f"身份证号{number}，见附件",
            "number": int(number) if number[-1] != "X" else number,
            "list": [[number, {"id": number}]],
            "object": {"id": number, "name": "张三", "nested": {"again": number}},
            "key": number,
            "long": ("很长" * 300) + number + ("x" * 2000),
            "subject_both": {"id": number, "name": "张三", "key": number},
        }[form]
        if form == "subject_both":
            data["subject"] = value
            continue
        path = draw(st.sampled_from(paths_of(data)))
        _plant(data, path, value, as_key=form == "key")
    return json.dumps(data, ensure_ascii=draw(st.booleans())).encode(), numbers


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_submissions(), min_size=1, max_size=8))
def test_item_7_no_reason_repeats_a_planted_identity_number_or_runs_longer_than_the_bound(
    batch: list[tuple[bytes, list[str]]],
) -> None:
    ledger = CreditLedger(
        catalogue=CATALOGUE,
        secret=SECRET,
        clock=lambda: NOW,
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
    )
    try:
        outcomes = ledger.submit([raw for raw, _ in batch])
    finally:
        ledger.close()
    assert len(outcomes) == len(batch)
    for outcome, (_, numbers) in zip(outcomes, batch, strict=True):
        if outcome.reason is None:
            continue
        message, field = outcome.reason["message"], outcome.reason["field"]
        assert len(message) <= MAX_MESSAGE
        assert len(field) <= MAX_MESSAGE
        for number in numbers:
            for form in (number, number.lower()):
                assert form not in message, outcome.reason
                assert form not in field, outcome.reason


@given(st.text(max_size=3000), identity_numbers())
def test_item_7_a_masked_text_keeps_no_identity_number_and_an_echo_is_capped(text: str, number: str) -> None:
    planted = text[: len(text) // 2] + number + text[len(text) // 2 :]
    assert number not in mask_identity_numbers(planted)
    assert number not in echo(planted, limit=10_000)
    assert len(echo(planted)) <= MAX_ECHO
