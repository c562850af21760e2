"""Issue 10, item 5: `publish` (and `publish --until-outcome`, which reads its file the same way)
refuses a line it cannot send, says which and why, and goes on with the next.

Kafka-free: ``streams.clients.prepared`` is what both paths send from. The whole command on the
embedded broker, summary included, is ``tests/integration/test_doors.py``'s item 5 test.
"""

from __future__ import annotations

import orjson

from ledger.application.limits import MAX_DECODED_BYTES, MAX_SUBMISSION_BYTES
from streams.clients import PublishReport, prepared
from tests.conftest import example


def test_issue_10_item_5_lines_over_the_limit_are_refused_by_number_and_the_rest_are_sent() -> None:
    good = orjson.dumps(example("file_record"))
    padded = orjson.dumps({**example("file_record"), "padding": "x" * MAX_SUBMISSION_BYTES})
    huge = b"[" + b" " * MAX_DECODED_BYTES + b"]"  # past what is even read: 8 MB, refused unread
    lines = [good, padded, b"  ", huge, b"not json", b"[1]", good]
    report, refusals = PublishReport(), []
    sent = list(prepared(lines, None, report, refusals.append))
    assert [p.number for p in sent] == [1, 7], "blank lines count, and the lines after a refusal go"
    assert report.refused == 4
    assert refusals[:2] == [
        f"line 2: too_large: the submission is {len(padded):,} bytes; at most 262,144 bytes are "
        "accepted (the ledger's limit for one submission)",
        f"line 4: too_large: the submission is {len(huge):,} bytes; at most 262,144 bytes are "
        "accepted (the ledger's limit for one submission)",
    ]
    assert refusals[2].startswith("line 5: not valid JSON")
    assert refusals[3] == "line 6: a submission must be a JSON object"


def test_a_line_that_fits_until_the_department_is_added_is_refused_as_sent() -> None:
    data = example("file_record")
    del data["department"]
    data["padding"] = ""
    room = MAX_SUBMISSION_BYTES - len(orjson.dumps(data))
    data["padding"] = "x" * (room - len(',"department":"tax_bureau"') + 1)
    line = orjson.dumps(data)
    assert len(line) <= MAX_SUBMISSION_BYTES
    report, refusals = PublishReport(), []
    assert list(prepared([line], "tax_bureau", report, refusals.append)) == []
    assert refusals == [
        f"line 1: too_large: the submission is {MAX_SUBMISSION_BYTES + 1:,} bytes; at most 262,144 "
        "bytes are accepted (the ledger's limit for one submission)"
    ]
