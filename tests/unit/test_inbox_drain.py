"""The inbox drain (issue 12): what the HTTP doors recorded reaches the intake sealed, in order, and a
row drained twice, or lost with a broker's topics and drained again, has exactly one outcome.

No broker: the drain's producer is a list, and the intake's ``LedgerApplier`` applies what the list
holds as consumed records, on the in-memory ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError

from contract import topics
from contract.messages import inbox_item, outcome_message
from ledger.application.service import CreditLedger
from ledger.domain.inbox import INBOX_HEADER, InboxSeal
from streams.drain import INBOX_CURSOR, InboxDrain
from streams.intake import LedgerApplier, source_of
from streams.isolation import Backoff, DeadLetters
from tests.conftest import SECRET, example


class Broker:
    """credit.submissions and credit.dead-letters as the drain's producer sees them: every record
    acknowledged at once, or refused for values containing ``refuse``."""

    def __init__(self, refuse: bytes | None = None) -> None:
        self.records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.refuse = refuse

    async def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.refuse is not None and self.refuse in value and topic == topics.SUBMISSIONS:
            future.set_exception(MessageSizeTooLargeError("the broker's message.max.bytes"))
        else:
            self.records.append((topic, key, value, headers))
            future.set_result(len(self.records) - 1)
        return future

    def submissions(self) -> list[Any]:
        """The credit.submissions records as the intake consumes them (one partition, in order)."""
        found = [r for r in self.records if r[0] == topics.SUBMISSIONS]
        return [
            ConsumerRecord(topic, 0, offset, 1_700_000_000_000, 0, key, value, None, 1, len(value), headers)
            for offset, (topic, key, value, headers) in enumerate(found)
        ]


def door(ledger: CreditLedger, *submissions: dict[str, Any]) -> list[int]:
    """POST /v1/submissions as far as the inbox: the items recorded, their positions."""
    return ledger.record_in_inbox([inbox_item(s, orjson.dumps(s)) for s in submissions])


def drain_all(drain: InboxDrain) -> None:
    async def run() -> None:
        while await drain.run_once():
            pass

    asyncio.run(run())


def intake(ledger: CreditLedger, records: Sequence[Any]) -> None:
    applier = LedgerApplier(ledger, ThreadPoolExecutor(1), DeadLetters("intake"), Backoff())
    asyncio.run(applier.apply(records))


def sources_logged(ledger: CreditLedger) -> list[str | None]:
    return [orjson.loads(outcome_message(p, o)[1])["source"] for p, o in ledger.outcomes_after(0)]


SUBMISSIONS = ("file_record", "file_record_organisation", "correct_record")


def test_rows_are_published_in_order_sealed_and_each_outcome_names_its_inbox_source(
    ledger: CreditLedger,
) -> None:
    positions = door(ledger, *(example(name) for name in SUBMISSIONS))
    broker = Broker()
    drain = InboxDrain(ledger, broker.send, ThreadPoolExecutor(1))
    drain_all(drain)
    assert [orjson.loads(value)["submission_id"] for _, _, value, _ in broker.records] == [
        example(name)["submission_id"] for name in SUBMISSIONS
    ]
    person, organisation = b"11010519491231002X", b"91350100M000100Y43"
    assert [key for _, key, _, _ in broker.records] == [person, organisation, person]
    seal = InboxSeal(SECRET)
    assert [headers for *_, headers in broker.records] == [
        [(INBOX_HEADER, seal.header(p, v))] for p, (_, _, v, _) in zip(positions, broker.records, strict=True)
    ]
    assert ledger.reader.relay_position(INBOX_CURSOR) == positions[-1]
    assert asyncio.run(drain.run_once()) == 0  # nothing new

    intake(ledger, broker.submissions())
    assert sources_logged(ledger) == [f"inbox/{p}" for p in positions]
    assert [o.status for _, o in ledger.outcomes_after(0)] == ["accepted"] * 3
    assert all(e.decided for e in ledger.inbox.inbox_page(0, 10))


def test_rows_lost_with_the_topic_are_drained_again_and_no_row_gets_a_second_outcome(
    ledger: CreditLedger,
) -> None:
    positions = door(ledger, *(example(name) for name in SUBMISSIONS))
    broker = Broker()
    drain_all(InboxDrain(ledger, broker.send, ThreadPoolExecutor(1)))
    intake(ledger, broker.submissions()[:1])  # the intake had applied only the first when serve died
    door(ledger, example("raise_objection"))  # recorded while the drain was gone: never published

    ledger.reader.save_relay_position(INBOX_CURSOR, 0)  # what serve does when the topic was created
    again = Broker()
    drain_all(InboxDrain(ledger, again.send, ThreadPoolExecutor(1)))
    assert [orjson.loads(v)["submission_id"] for _, _, v, _ in again.records] == [
        example(name)["submission_id"] for name in (*SUBMISSIONS[1:], "raise_objection")
    ], "only what has no outcome yet is published again"
    intake(ledger, again.submissions())
    intake(ledger, broker.submissions())  # and the old copies too, were they ever delivered
    logged = sources_logged(ledger)
    assert sorted(logged) == sorted(f"inbox/{p}" for p in [*positions, positions[-1] + 1])
    assert len(logged) == len(set(logged)) == 4, "one outcome per row, copies or not"
    assert [o.duplicate for _, o in ledger.outcomes_after(0)] == [False] * 4
    assert ledger.verify() == []


def test_a_header_that_does_not_seal_its_message_is_read_as_an_ordinary_kafka_message() -> None:
    seal = InboxSeal(SECRET)
    value = orjson.dumps(example("file_record"))
    genuine = ConsumerRecord(
        "credit.submissions", 2, 9, 5, 0, b"k", value, None, 1, 1, [(INBOX_HEADER, seal.header(4, value))]
    )
    assert source_of(genuine, seal) == "inbox/4"
    sealed = seal.header(4, value)
    for header in (
        b"5" + sealed[1:],  # another row's position
        seal.header(4, value + b" "),  # other bytes
        InboxSeal(b"another deployment's secret").header(4, value),
        b"4:" + b"0" * 32,
        b"4",
        b"x" * 1000,
    ):
        forged = dataclasses.replace(genuine, headers=[(INBOX_HEADER, header)])
        assert source_of(forged, seal) == "credit.submissions/2/9@5"
    assert source_of(genuine) == "credit.submissions/2/9@5"  # no seal to check against: not trusted


def test_a_row_the_broker_refuses_is_rejected_in_the_ledger_under_its_source_and_parked(
    ledger: CreditLedger,
) -> None:
    refused = {**example("file_record_organisation"), "padding": "REFUSE-ME"}
    positions = door(ledger, example("file_record"), refused, example("correct_record"))
    broker = Broker(refuse=b"REFUSE-ME")
    drain = InboxDrain(ledger, broker.send, ThreadPoolExecutor(1), backoff=Backoff(sleep=_no_sleep))
    drain_all(drain)
    published = {orjson.loads(r[2])["submission_id"] for r in broker.records if r[0] == topics.SUBMISSIONS}
    # Isolating the refused row publishes its neighbours more than once: copies of one sealed row.
    assert published == {example("file_record")["submission_id"], example("correct_record")["submission_id"]}
    ((_, _, letter, _),) = [r for r in broker.records if r[0] == topics.DEAD_LETTERS]
    parked = orjson.loads(letter)
    assert (parked["flow"], parked["source"]["topic"], parked["source"]["position"]) == (
        "relay",
        topics.SUBMISSIONS,
        positions[1],
    )
    assert parked["receipt"]["status"] == "rejected"
    intake(ledger, broker.submissions())
    by_source = {orjson.loads(outcome_message(p, o)[1])["source"]: o for p, o in ledger.outcomes_after(0)}
    assert set(by_source) == {f"inbox/{p}" for p in positions}
    assert len(ledger.outcomes_after(0)) == 3, "one outcome per row, the copies none"
    reason = by_source[f"inbox/{positions[1]}"].receipt
    assert reason is not None
    assert reason.reason is not None
    assert reason.reason["code"] == "internal_error"
    assert all(e.decided for e in ledger.inbox.inbox_page(0, 10))  # drained again, it is skipped


async def _no_sleep(seconds: float) -> None:
    return None


def test_a_row_whose_ciphertext_was_altered_is_rejected_under_its_source_and_the_rows_after_it_go_on(
    ledger: CreditLedger, caplog: Any
) -> None:
    positions = door(ledger, *(example(name) for name in SUBMISSIONS))
    stored = ledger.inbox._inbox  # type: ignore[attr-defined]  # the in-memory recorder's rows
    position, item, received = stored[1]
    flipped = item.value[:-3] + (b"A" if item.value[-3:-2] != b"A" else b"B") + item.value[-2:]
    stored[1] = (position, dataclasses.replace(item, value=flipped), received)
    broker = Broker()
    drain_all(InboxDrain(ledger, broker.send, ThreadPoolExecutor(1)))
    assert [orjson.loads(value)["submission_id"] for _, _, value, _ in broker.records] == [
        example(name)["submission_id"] for name in (SUBMISSIONS[0], SUBMISSIONS[2])
    ], "nothing of the altered row is published; the row after it is"
    assert ledger.reader.relay_position(INBOX_CURSOR) == positions[-1]
    assert f"inbox row {positions[1]} fails its integrity check" in caplog.text
    intake(ledger, broker.submissions())
    by_source = {orjson.loads(outcome_message(p, o)[1])["source"]: o for p, o in ledger.outcomes_after(0)}
    assert set(by_source) == {f"inbox/{p}" for p in positions}, "every row has its one outcome"
    altered = by_source[f"inbox/{positions[1]}"].receipt
    assert altered is not None
    assert altered.status == "rejected"
    assert altered.reason is not None
    assert altered.reason["code"] == "internal_error"
    assert "fails its integrity check" in altered.reason["message"]
    assert all(e.decided for e in ledger.inbox.inbox_page(0, 10))
