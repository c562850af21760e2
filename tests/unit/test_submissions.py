"""The submission format: every published example is valid, and bad input names its field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest

from ledger.application import submissions
from ledger.domain.commands import FileRecord
from ledger.domain.errors import InvalidInput
from tests.conftest import EXAMPLES, example

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
ACTIONS = submissions.submission_schema()["properties"]["action"]["enum"]


def test_there_is_an_example_for_every_action() -> None:
    shown = {json.loads(p.read_text("utf-8"))["action"] for p in EXAMPLES.glob("*.json")}
    assert shown == set(ACTIONS)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_is_valid_against_the_published_schema(path: Any) -> None:
    data = json.loads(path.read_text("utf-8"))
    jsonschema_rs.validator_for(submissions.submission_schema()).validate(data)
    submissions.parse(data, now=NOW)


def test_a_filing_parses_into_a_typed_command() -> None:
    command = submissions.parse(example("file_record"), now=NOW)
    assert isinstance(command.action, FileRecord)
    assert command.envelope.key == "tax_bureau/TAX-2026-000101"
    assert command.envelope.subject.masked == "110105********002X"
    assert command.envelope.occurred_at == datetime(2026, 6, 1, 1, 30, tzinfo=UTC)


def bad(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(example("file_record"))
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if delete:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "field", "code", "text"),
    [
        (
            bad("submission_id", None, delete=True),
            "submission_id",
            "missing_field",
            "submission_id is required",
        ),
        (
            bad("record.decision.date", None, delete=True),
            "record.decision.date",
            "missing_field",
            "is required",
        ),
        (bad("record.severity", "catastrophic"), "record.severity", "invalid_field", "catastrophic"),
        (bad("record.display_months", "six"), "record.display_months", "invalid_field", "is not of type"),
        (
            bad("record.decision.date", "2026-02-30"),
            "record.decision.date",
            "invalid_input",
            "is not a real date",
        ),
        (bad("occurred_at", "yesterday"), "occurred_at", "invalid_field", "yesterday"),
        (bad("occurred_at", "2026-06-01T09:30:00"), "occurred_at", "invalid_field", "2026-06-01T09:30:00"),
        (bad("action", "delete_everything"), "action", "invalid_field", "delete_everything"),
        (bad("subject.id", "11010519491231002Y"), "subject.id", "invalid_subject_code", "position 18"),
        (bad("subject.religion", "x"), "subject", "unexpected_field", "religion"),
        (bad("grounds", "not for a filing"), "", "unexpected_field", "grounds"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_is_rejected_with_the_field_and_what_was_expected(
    data: dict[str, Any], field: str, code: str, text: str
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        submissions.parse(data, now=NOW)
    error = excinfo.value
    assert (error.field, error.code) == (field, code)
    assert text in error.message


def test_the_digest_ignores_key_order_but_not_content() -> None:
    data = example("file_record")
    assert submissions.digest(data) == submissions.digest(dict(reversed(list(data.items()))))
    assert submissions.digest(data) != submissions.digest({**data, "submission_id": "other"})
