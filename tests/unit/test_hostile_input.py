"""Issue 10's hostile submissions: every one gets an outcome with a reason naming its field.

Each test is named after the issue's item it answers. The ledger is the in-memory one of
``tests/conftest.py``; a batch holds the hostile submission among valid ones, so "the batch goes
on" is checked along with the reason.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger.application import limits
from ledger.application.queries import INVALID, QueryService
from ledger.application.service import CreditLedger
from ledger.domain.access import Principal
from ledger.domain.outcomes import Outcome
from tests.conftest import OTHER_PERSON, PERSON, Clock, example, file_of


def encoded(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def filing(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(example("file_record"))
    data.update(changes)
    return data


def decided(ledger: CreditLedger, *messages: bytes | dict[str, Any]) -> list[Outcome]:
    """Submit the messages between two valid filings; every one has an outcome, the valid pass."""
    before = filing(submission_id="VALID-BEFORE")
    after = filing(submission_id="VALID-AFTER", subject={"id": OTHER_PERSON, "name": "李四"})
    outcomes = ledger.submit([encoded(before), *messages, encoded(after)])
    assert len(outcomes) == len(messages) + 2
    assert outcomes[0].accepted, outcomes[0].reason
    assert outcomes[-1].accepted, outcomes[-1].reason
    return outcomes[1:-1]


def reason(outcome: Outcome) -> dict[str, str]:
    assert outcome.reason is not None, outcome
    return outcome.reason


# -- item 1: deep JSON, and the other limits ------------------------------------------------------


@pytest.mark.parametrize("depth", [17, 255, 256, 300, 1023])
def test_item_1_json_nested_deeper_than_the_limit_is_refused_naming_its_field(
    ledger: CreditLedger, depth: int
) -> None:
    # The reproducer: a valid filing with a deeply nested list appended.
    text = json.dumps(example("file_record"))[:-1] + ',"reason":' + "[" * depth + "]" * depth + "}"
    (outcome,) = decided(ledger, text.encode())
    assert reason(outcome)["code"] == "too_large"
    assert reason(outcome)["field"].startswith("reason")
    assert f"at most {limits.MAX_DEPTH}" in reason(outcome)["message"]
    assert outcome.submission_id == "TAX-2026-000101"  # registered under its id: a resend is a duplicate
    (again,) = ledger.submit([text.encode()])
    assert again.duplicate


def test_item_1_nesting_within_the_limit_reaches_the_schema(ledger: CreditLedger) -> None:
    depth = limits.MAX_DEPTH - 1
    text = json.dumps(example("file_record"))[:-1] + ',"reason":' + "[" * depth + "]" * depth + "}"
    (outcome,) = decided(ledger, text.encode())
    assert reason(outcome)["code"] == "unexpected_field"


def test_item_1_a_string_longer_than_the_limit_is_refused_naming_its_field(ledger: CreditLedger) -> None:
    data = filing()
    data["record"]["title"] = "税" * (limits.MAX_STRING + 1)
    (outcome,) = decided(ledger, encoded(data))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("too_large", "record.title")


def test_item_1_a_list_longer_than_the_limit_is_refused_naming_its_field(ledger: CreditLedger) -> None:
    data = filing()
    data["record"]["responsible_persons"] = [{}] * (limits.MAX_ITEMS + 1)
    (outcome,) = decided(ledger, encoded(data))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("too_large", "record.responsible_persons")


def test_item_1_a_submission_larger_than_the_limit_is_refused_under_its_id(ledger: CreditLedger) -> None:
    data = filing()
    data["record"]["padding"] = "x" * limits.MAX_SUBMISSION_BYTES
    (outcome,) = decided(ledger, encoded(data))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("too_large", "")
    assert outcome.submission_id == "TAX-2026-000101"
    assert len(reason(outcome)["message"]) < 200


def test_item_1_a_message_too_large_to_decode_is_refused_undecoded(ledger: CreditLedger) -> None:
    (outcome,) = decided(ledger, b"[" + b" " * limits.MAX_DECODED_BYTES + b"]")
    assert reason(outcome)["code"] == "too_large"
    assert outcome.submission_id is None


def test_item_1_a_mapping_built_in_process_is_held_to_the_same_limits(ledger: CreditLedger) -> None:
    nested: Any = []
    for _ in range(400):  # deeper than orjson can encode: the limit must come first
        nested = [nested]
    (outcome,) = decided(ledger, {**example("file_record"), "reason": nested})
    assert reason(outcome)["code"] == "too_large"


def test_item_1_an_integer_past_64_bits_in_a_mapping_is_refused_naming_its_field(
    ledger: CreditLedger,
) -> None:
    """Bytes received cannot hold one (orjson reads a longer integer as a float), but a mapping built
    in process can, and the canonical encoder raises on it: the limit must come first."""
    data = filing(submission_id="T-BIG")
    data["record"]["count"] = 2**70
    (outcome,) = decided(ledger, data)
    assert reason(outcome) == {
        "code": "too_large",
        "field": "record.count",
        "message": "record.count: an integer of 71 bits; JSON integers here are at most 64 bits",
    }


@pytest.mark.parametrize(
    ("key", "field"), [("", 'record[""]'), ("a.b", 'record["a.b"]'), ("x[0]", 'record["x[0]"]')]
)
def test_item_1_a_key_that_would_not_read_as_one_in_a_path_is_quoted(
    ledger: CreditLedger, key: str, field: str
) -> None:
    data = filing(submission_id=f"T-KEY-{key}")
    data["record"][key] = "y" * (limits.MAX_STRING + 1)
    (outcome,) = decided(ledger, data)
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("too_large", field)


def test_item_1_a_fault_in_the_limit_checks_rejects_that_submission_alone(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = limits.canonical_bytes

    def fragile(value: Any) -> bytes:
        if isinstance(value, dict) and value.get("submission_id") == "T-FAULT":
            raise TypeError("a bug in the encoder")
        return real(value)

    monkeypatch.setattr(limits, "canonical_bytes", fragile)
    (outcome,) = decided(ledger, encoded(filing(submission_id="T-FAULT")))
    assert reason(outcome)["code"] == "internal_error"
    assert "correlation id" in reason(outcome)["message"]
    assert outcome.submission_id == "T-FAULT", "registered under its id"


def test_item_1_every_line_of_a_batch_gets_an_outcome_whatever_it_holds(ledger: CreditLedger) -> None:
    deep = json.dumps(example("file_record"))[:-1] + ',"x":' + "[" * 600 + "]" * 600 + "}"
    hostile = [
        deep.encode(),
        b"\xff\xfe not utf-8",
        b"[" * 2000 + b"]" * 2000,
        b'{"department": "tax_bureau", "submission_id": 7}',
        b"null",
        encoded(filing(submission_id="T-2", occurred_at="0001-01-01T00:00:00+08:00")),
    ]
    outcomes = decided(ledger, *hostile)
    assert [o.status for o in outcomes] == ["rejected"] * len(hostile)


# -- item 2: dates out of range -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "text"),
    [
        ("occurred_at", "0001-01-01T00:00:00+08:00", "out of range"),
        ("occurred_at", "9999-12-31T23:59:59-23:59", "out of range"),
        ("record.decision.date", "0001-01-01", "out of range"),
        ("record.decision.date", "9999-12-31", "out of range"),
        ("record.decision.date", "0000-01-01", "no year 0"),
        ("record.decision.date", "2026-13-01", "month 13 does not exist"),
        ("record.decision.date", "20260601", "a date YYYY-MM-DD"),
    ],
)
def test_item_2_a_date_out_of_range_is_refused_with_a_reason(
    ledger: CreditLedger, path: str, value: str, text: str
) -> None:
    data = filing()
    target = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    (outcome,) = decided(ledger, encoded(data))
    assert reason(outcome)["field"] == path
    assert reason(outcome)["code"] in ("invalid_input", "invalid_field")
    assert text in reason(outcome)["message"]


@pytest.mark.parametrize(
    ("action", "path", "value"),
    [
        ("designate", "designation.valid_until", "9999-12-31"),
        ("designate", "designation.valid_from", "0001-01-01"),
        ("correct_record", "changes.decision_date", "9999-12-01"),
    ],
)
def test_item_2_every_date_field_is_range_checked(
    ledger: CreditLedger, action: str, path: str, value: str
) -> None:
    data = copy.deepcopy(example(action))
    parent, last = path.split(".")
    data[parent][last] = value
    (outcome,) = decided(ledger, encoded(data))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("invalid_input", path)
    assert "out of range" in reason(outcome)["message"]


# -- item 4: integers are integers ----------------------------------------------------------------


@pytest.mark.parametrize("value", [6.0, True, 1e1, "6"])
def test_item_4_display_months_must_be_an_integer(ledger: CreditLedger, value: Any) -> None:
    data = filing()
    data["record"]["display_months"] = value
    (outcome,) = decided(ledger, encoded(data))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("invalid_field", "record.display_months")


def test_item_4_schema_version_must_be_the_integer_1(ledger: CreditLedger) -> None:
    (outcome,) = decided(ledger, encoded(filing(schema_version=1.0)))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("invalid_field", "schema_version")
    fresh = filing(submission_id="T-3", schema_version=1)
    fresh["record"]["record_id"] = "SW-2026-0102"
    (accepted,) = ledger.submit([encoded(fresh)])
    assert accepted.accepted, accepted.reason


# -- item 6: what was wrongly accepted, and what had the wrong message ----------------------------


@pytest.mark.parametrize("offset", ["+08:60", "+24:00", "-99:00"])
def test_item_6_a_zone_offset_outside_rfc_3339_is_refused(ledger: CreditLedger, offset: str) -> None:
    (outcome,) = decided(ledger, encoded(filing(occurred_at=f"2026-06-01T09:30:00{offset}")))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("invalid_input", "occurred_at")
    assert f"zone offset {offset} is not valid" in reason(outcome)["message"]


def test_item_6_a_date_that_does_not_exist_is_called_so(ledger: CreditLedger) -> None:
    (outcome,) = decided(ledger, encoded(filing(occurred_at="2026-02-30T09:00:00+08:00")))
    assert reason(outcome)["field"] == "occurred_at"
    assert "is not a real date: February 2026 has 28 days" in reason(outcome)["message"]
    assert "zone offset" not in reason(outcome)["message"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "1970-01-01T08:00:00+08:00"])
def test_item_6_a_statement_before_the_first_catalogue_edition_opens_no_file(
    ledger: CreditLedger, moment: str
) -> None:
    data = copy.deepcopy(example("add_statement"))
    del data["record"]
    data["occurred_at"] = moment
    (outcome,) = ledger.submit([encoded(data)])
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("not_in_catalogue", "occurred_at")
    assert file_of(ledger, PERSON) is None


def test_item_6_a_statement_on_an_existing_file_may_still_be_dated_before_the_first_edition(
    ledger: CreditLedger,
) -> None:
    assert ledger.submit([example("file_record")])[0].accepted
    data = copy.deepcopy(example("add_statement"))
    data["occurred_at"] = "2025-01-01T09:00:00+08:00"
    (outcome,) = ledger.submit([encoded(data)])
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("91350100M000100Y\ufb02", "expected 18 characters, got 17"),  # ﬂ, which upper-cases to FL
        ("91350100M000100Y4\ufb02", "position 18 has 'ﬂ'"),
        ("１1010519491231002X", "position 1 "),  # a full-width digit
        ("11010519491231002\u0445", "position 18"),  # Cyrillic x
    ],
)
def test_item_6_a_code_with_a_non_ascii_character_is_refused_not_normalised(
    ledger: CreditLedger, code: str, text: str
) -> None:
    (outcome,) = decided(ledger, encoded(filing(subject={"id": code, "name": "x"})))
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("invalid_subject_code", "subject.id")
    assert text in reason(outcome)["message"]


def test_item_6_a_lower_case_x_is_still_upper_cased(ledger: CreditLedger) -> None:
    (outcome,) = ledger.submit([encoded(filing(subject={"id": PERSON.lower(), "name": "张三"}))])
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (lambda s: s[:-1] + ', "department": "market_regulator"}', "department"),
        (lambda s: s.replace('"title": ', '"title": "x", "title": ', 1), "record.title"),
        # An escaped colon must not hide the repeat from the quick check.
        (lambda s: s.replace('"title": ', '"title": "a\\u003ab", "title": ', 1), "record.title"),
    ],
)
def test_item_6_a_duplicate_json_key_is_refused_naming_it(
    ledger: CreditLedger, text: Any, field: str
) -> None:
    raw = text(json.dumps(example("file_record"), ensure_ascii=False))
    (outcome,) = decided(ledger, raw.encode())
    assert (reason(outcome)["code"], reason(outcome)["field"]) == ("duplicate_key", field)
    assert "appears more than once" in reason(outcome)["message"]


def test_item_6_an_escaped_colon_without_a_duplicate_is_accepted(ledger: CreditLedger) -> None:
    data = filing(submission_id="TAX-COLON")
    data["record"]["title"] = "逃税:罚款"
    raw = json.dumps(data).replace(":罚", "\\u003a罚").replace("\\u7f5a", "罚")
    (outcome,) = ledger.submit([raw.encode()])
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"purpose": "administrative_licensing", "basis": ""}, "basis"),
        ({"purpose": "administrative_licensing", "basis": "   "}, "basis"),
        ({"purpose": "administrative_licensing", "basis": {"law": "x"}}, "basis"),
        ({"purpose": ["administrative_licensing"], "basis": "x"}, "purpose"),
        ({"purpose": "administrative_licensing", "basis": "x", "authorisation_id": 5}, "authorisation_id"),
        ({"purpose": "administrative_licensing", "basis": "x", "as_of": "yesterday"}, "as_of"),
    ],
)
def test_item_6_a_blank_or_non_string_basis_is_refused_and_recorded(
    ledger: CreditLedger, clock: Clock, request_fields: dict[str, Any], field: str
) -> None:
    recorded: list[dict[str, Any]] = []
    ledger.record_query = lambda record: recorded.append(record) or "q"  # type: ignore[method-assign]
    service = QueryService(ledger, views=None, clock=clock)  # type: ignore[arg-type]
    tax = Principal("officer-1", "department", "tax_bureau")
    answer = service.status(tax, PERSON, **request_fields)
    assert answer.outcome == INVALID
    assert answer.body["error"]["field"] == field
    assert answer.body["error"]["code"] == "invalid_field"
    assert [r["outcome"] for r in recorded] == ["refused"]


def test_item_6_a_subject_id_that_is_not_a_string_is_refused(ledger: CreditLedger, clock: Clock) -> None:
    ledger.record_query = lambda record: "q"  # type: ignore[method-assign]
    service = QueryService(ledger, views=None, clock=clock)  # type: ignore[arg-type]
    tax = Principal("officer-1", "department", "tax_bureau")
    answer = service.status(tax, 11010519491231002, purpose="administrative_licensing", basis="x")
    assert answer.outcome == INVALID
    assert answer.body["error"]["field"] == "subject.id"
