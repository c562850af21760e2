"""The fault harness's counting: the waits count outcomes as they come, the verdict from scratch.

The fault tests (tests/faults/) wait with ``harness.FirstOutcomes``, which adds only the records a
follower read since the last poll, and decide with ``harness.count`` over every record. Both must
agree with each other, and the verdict must still see a lost and a doubled submission.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from tests.faults import harness
from tests.faults.harness import FirstOutcomes, Record


def outcome(position: int, submission: str, *, duplicate: bool = False) -> dict[str, Any]:
    return {"position": position, "submission_id": submission, "duplicate": duplicate, "events": [position]}


def from_scratch(records: list[Record], ids: set[str]) -> Counter[str]:
    """What the harness counted before FirstOutcomes: the first record of every position."""
    distinct, _ = harness.by_position(records)
    return Counter(
        o["submission_id"] for o in distinct.values() if not o["duplicate"] and o["submission_id"] in ids
    )


def test_counting_as_records_come_equals_counting_them_all_at_once() -> None:
    rng = random.Random(7)
    records: list[Record] = []
    for offset in range(3000):  # re-sent positions, duplicates, strangers, in random order
        position = rng.randrange(1200)
        records.append(
            (offset % 6, offset, outcome(position, f"s{rng.randrange(900)}", duplicate=rng.random() < 0.1))
        )
    ids = {f"s{i}" for i in range(0, 900, 3)}
    counting = FirstOutcomes(ids)
    while counting.seen < len(records):
        counting.add(records[counting.seen : counting.seen + rng.randrange(1, 400)])
        assert counting.counts == from_scratch(records[: counting.seen], ids)
    assert harness.first_outcomes(records, ids) == from_scratch(records, ids)


def test_the_verdict_still_sees_a_lost_and_a_doubled_submission() -> None:
    ids = {"a", "b", "c"}
    records: list[Record] = [
        (0, 0, outcome(1, "a")),
        (0, 1, outcome(2, "b")),
        (0, 2, outcome(2, "b")),  # re-sent by the relay: the same position, counted once
        (1, 0, outcome(3, "b")),  # a second first outcome at another position: applied twice
    ]
    counts = harness.count(ids, {"a", "b", "c"}, records, None)
    assert (counts.lost, counts.doubled, counts.resent) == (1, 1, 1)  # c acknowledged, never decided
    assert FirstOutcomes(ids).add(records) == Counter({"a": 1, "b": 2})
