"""Item 3 of issue 10: every outcome message fits its bound, whatever the rejected original was.

A rejection carries the submission as received. Small, it is carried whole; too large for
``OUTCOME_MESSAGE_LIMIT`` (after JSON escaping, which can multiply its size by six), the message
carries its first bytes, its length and SHA-256, and where to fetch it whole: the register keeps
every original (``CreditLedger.original_at``).
"""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest

from contract.messages import ORIGINAL_PATH, ORIGINAL_PREVIEW_BYTES, OUTCOME_MESSAGE_LIMIT, outcome_message
from ledger.application.limits import MAX_SUBMISSION_BYTES
from ledger.application.service import CreditLedger
from tests.conftest import example


def published(ledger: CreditLedger) -> list[dict[str, object]]:
    """Every outcome message as its department reads it (originals opened), each within the bound."""
    values = [outcome_message(p, o, ledger.open_original)[1] for p, o in ledger.outcomes_after(0)]
    assert all(len(v) <= OUTCOME_MESSAGE_LIMIT for v in values)
    return [orjson.loads(v) for v in values]


@pytest.mark.parametrize(
    "original",
    [
        json.dumps({**example("file_record"), "padding": "x" * 3_000_000}).encode(),  # a 3 MB submission
        b"[" + b" " * 9_000_000 + b"]",  # too large even to decode
        json.dumps({**example("file_record"), "padding": "\u0001" * 200_000}).encode(),  # escapes x6
        b"\xff" * 400_000,  # not UTF-8: base64, a third larger
    ],
    ids=["3MB", "9MB-undecoded", "control-characters", "binary"],
)
def test_item_3_a_rejected_original_too_large_to_publish_is_cut_with_its_digest_and_a_reference(
    ledger: CreditLedger, original: bytes
) -> None:
    (outcome,) = ledger.submit([original])
    assert outcome.reason is not None
    (message,) = published(ledger)
    assert message["original_truncated"] is True
    assert message["original_bytes"] == len(original)
    assert message["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert message["original_ref"] == ORIGINAL_PATH.format(position=message["position"])
    assert len(str(message["original"])) <= 2 * ORIGINAL_PREVIEW_BYTES
    department, whole = ledger.original_at(int(message["position"]))  # type: ignore[arg-type, misc]
    assert whole == original
    assert department == message["department"]


def test_item_3_a_rejected_original_that_fits_is_carried_whole(ledger: CreditLedger) -> None:
    data = {**example("file_record"), "padding": "税" * 20_000}
    original = json.dumps(data, ensure_ascii=False).encode()
    assert len(original) < MAX_SUBMISSION_BYTES
    ledger.submit([original])
    (message,) = published(ledger)
    assert message["original"] == original.decode()
    assert "original_truncated" not in message


def test_item_3_a_duplicate_of_a_large_rejection_is_bounded_too(ledger: CreditLedger) -> None:
    original = json.dumps({**example("file_record"), "padding": "x" * 600_000}).encode()
    ledger.submit([original])
    ledger.submit([original])
    first, again = published(ledger)
    assert again["duplicate"] is True
    assert again["first_position"] == first["position"]
    assert again["original_sha256"] == first["original_sha256"]


def test_on_a_topic_a_rejected_original_is_sealed_and_named_by_its_reference(ledger: CreditLedger) -> None:
    ledger.submit([json.dumps({**example("file_record"), "padding": 7}).encode()])
    ((position, outcome),) = ledger.outcomes_after(0)
    message = orjson.loads(outcome_message(position, outcome)[1])
    assert (message["original"], message["original_sealed"]) == (None, True)
    assert message["original_ref"] == ORIGINAL_PATH.format(position=position)
    assert "张三" not in json.dumps(message, ensure_ascii=False)
