"""`publish --until-outcome` (issue 12): which outcome answers which line, and the verdict of each.

Kafka-free: ``streams.awaiting.Answers`` is fed outcome messages as credit.outcomes carries them.
The loop around it (sending, re-sending, rewinding across a broker restart) is in
``tests/integration/test_doors.py``.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.awaiting import Answers, Pending
from streams.clients import Prepared


def line(number: int, submission_id: str | None = "S-1") -> Pending:
    ident = ("tax_bureau", submission_id) if submission_id is not None else None
    return Pending(Prepared(number, b"key", b"{}", ident))


def outcome(position: int, source: str | None, *, status: str = "accepted", **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "position": position,
            "status": status,
            "department": "tax_bureau",
            "submission_id": "S-1",
            "duplicate": False,
            "source": source,
            **extra,
        }
    )


def test_an_outcome_answers_the_send_whose_source_it_names_and_no_other() -> None:
    answers, ours, other = Answers(), line(1), line(2, "S-2")
    for pending in (ours, other):
        answers.expect(pending)
    answers.landed(ours, "credit.submissions/3/7@1700")
    answers.landed(other, "credit.submissions/3/8@1700")
    assert answers.take(outcome(1, "credit.submissions/3/7@1701")) == 0  # another message, same offset
    assert answers.take(outcome(2, "inbox/7")) == 0
    assert answers.take(outcome(3, "credit.submissions/3/7@1700", status="rejected")) == 1
    assert (ours.verdict, other.verdict) == ("rejected", "unanswered")
    assert answers.take(outcome(3, "credit.submissions/3/7@1700", status="rejected")) == 0  # a relay copy
    for garbage in (b"not json", b"[1]", orjson.dumps({"source": 5})):
        assert answers.take(garbage) == 0


def test_a_re_sends_duplicate_gives_way_to_the_first_decision_on_our_own_first_send() -> None:
    answers, pending = Answers(), line(1)
    answers.expect(pending)
    answers.landed(pending, "credit.submissions/0/1@1")  # lost with the broker, as it turned out
    answers.landed(pending, "credit.submissions/0/0@9")  # the re-send, on the new broker
    duplicate = outcome(9, "credit.submissions/0/0@9", duplicate=True, first_position=4)
    assert answers.take(duplicate) == 1
    assert pending.verdict == "duplicate"
    assert answers.take(outcome(4, "credit.submissions/0/1@1")) == 0  # not a new answer, a better one
    assert pending.verdict == "accepted"
    assert answers.take(duplicate) == 0
    assert pending.verdict == "accepted", "a duplicate never replaces a first decision"


def test_only_duplicates_mean_the_id_was_decided_before_this_run() -> None:
    answers, pending = Answers(), line(1)
    answers.expect(pending)
    answers.landed(pending, "credit.submissions/0/5@1")
    assert answers.take(outcome(2, "credit.submissions/0/0@0")) == 0  # the earlier run's first decision
    assert answers.take(outcome(8, "credit.submissions/0/5@1", duplicate=True, first_position=2)) == 1
    assert pending.verdict == "duplicate"


def test_outcomes_from_a_ledger_without_sources_are_matched_by_department_and_id_once_each() -> None:
    answers, first, second = Answers(), line(1), line(2)  # the same id twice in one file
    for pending in (first, second):
        answers.expect(pending)
    legacy = orjson.loads(outcome(1, None))
    del legacy["source"]
    assert answers.take(orjson.dumps(legacy)) == 1
    assert answers.take(orjson.dumps({**legacy, "position": 2, "duplicate": True})) == 1
    assert (first.verdict, second.verdict) == ("accepted", "duplicate")
    unkeyed = line(3, None)
    answers.expect(unkeyed)
    assert answers.take(orjson.dumps({**legacy, "submission_id": None})) == 0
    assert unkeyed.verdict == "unanswered"
