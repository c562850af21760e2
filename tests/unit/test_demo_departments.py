"""The demo's implementing departments: a pure answer per notice, sent by a thin agent, accepted by
the ledger (issue 13, "Clients and demo")."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from credit_ledger.demo_departments import behaviour, respond
from ledger.domain.catalogue import Catalogue
from streams.measures_agent import answer_notices
from tests.unit.measuredesk import DESIGNATION, designated, measure_desk, sub

NOW = datetime(2026, 7, 28, 2, tzinfo=UTC)


def test_each_notice_gets_the_same_answer_every_time_in_the_documented_shares() -> None:
    shares = Counter(behaviour(f"notice-{i}")[0] for i in range(20_000))
    documented = {
        "on_time": 45,
        "late": 10,
        "not_applicable": 15,
        "failed": 5,
        "on_reminder": 10,
        "silent": 15,
    }
    assert shares.keys() == documented.keys()
    assert all(abs(shares[k] / 200 - percent) < 1.5 for k, percent in documented.items()), shares
    assert behaviour("notice-1") == behaviour("notice-1")


def test_the_demo_departments_feedback_is_accepted_and_stopped_follows_a_withdrawal(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    desk = measure_desk(catalogue, tmp_path)
    designated(desk)
    answers = [a for m in desk.messages() if (a := respond(m, NOW)) is not None]
    assert 0 < len(answers) < 85
    outcomes = desk.at("2026-07-28T10:00:00+08:00").send(*answers)
    assert all(o.accepted for o in outcomes), [o.reason for o in outcomes if not o.accepted]
    assert [respond(m, NOW) for m in desk.messages()[:5]] == [respond(m, NOW) for m in desk.messages()[:5]]
    ended = sub("end_designation", submission_id="END-1", occurred_at="2026-07-29T09:00:00+08:00")
    ended.update(designation_id=DESIGNATION, reason="withdrawn")
    desk.at("2026-07-29T09:00:00+08:00").send(ended)
    withdrawals = [m for m in desk.messages() if m["state"] == "withdrawn"]
    stops = [a for m in withdrawals if (a := respond(m, datetime(2026, 7, 30, 2, tzinfo=UTC))) is not None]
    applied = {a["feedback"]["notice_id"] for a in answers if a["feedback"]["outcome"] == "applied"}
    assert {s["feedback"]["notice_id"] for s in stops} >= applied
    outcomes = desk.at("2026-07-30T10:00:00+08:00").send(*stops)
    assert all(o.accepted for o in outcomes), [o.reason for o in outcomes if not o.accepted]


def test_the_agent_decodes_each_message_answers_it_and_sends_the_answer_keyed_by_subject() -> None:
    sent: list[tuple[bytes, bytes]] = []
    messages = [
        orjson.dumps({"type": "notice", "notice_id": "n-1", "subject_key": "k-1"}),
        b"not json",
        orjson.dumps({"type": "reminder", "notice_id": "n-2", "subject_key": "k-2"}),
    ]

    async def values() -> AsyncIterator[bytes]:
        for value in messages:
            yield value

    def answer(message: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        if message["type"] != "notice":
            return None
        return {"submission_id": "s-1", "subject": {"key": message["subject_key"]}, "at": now.isoformat()}

    async def send(key: bytes, value: bytes) -> None:
        sent.append((key, value))

    asyncio.run(answer_notices(values(), answer, send, lambda: NOW))
    assert sent == [
        (b"k-1", orjson.dumps({"submission_id": "s-1", "subject": {"key": "k-1"}, "at": NOW.isoformat()}))
    ]
