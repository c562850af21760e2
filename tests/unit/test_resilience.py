"""A stream must never stall or corrupt itself on one bad submission, and redelivery changes nothing."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from ledger import handlers
from ledger.application import CreditLedger
from ledger.creditfile import CreditFile
from streams.relay import LEDGER_CURSOR, OUTCOMES_CURSOR, Relay
from tests.conftest import PERSON, example, file_of


def test_a_submission_that_breaks_the_ledger_is_rejected_alone_and_the_rest_go_through(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_handle = handlers.handle

    def fragile(command: Any, *args: Any) -> Any:
        if command.envelope.submission_id == "TAX-2026-000102":
            raise RuntimeError("a bug in one command")
        return real_handle(command, *args)

    monkeypatch.setattr("ledger.application.handle", fragile)
    outcomes = ledger.submit_safely(
        [example("file_record"), example("correct_record"), example("raise_objection")]
    )
    assert [o.status for o in outcomes] == ["accepted", "rejected", "accepted"]
    assert outcomes[1].reason is not None
    assert outcomes[1].reason["code"] == "internal_error"


def test_an_abandoned_batch_leaves_nothing_behind_in_the_cache(
    ledger: CreditLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.submit([example("file_record")])
    version = file_of(ledger, PERSON).version

    def half_done(self: CreditFile, *args: Any, **kwargs: Any) -> None:
        self._record_corrected(
            record="tax_bureau:SW-2026-0101",
            changes={"title": "half"},
            reason="x",
            occurred_at="2026-06-03T03:00:00+00:00",
            timestamp=ledger.clock(),
            submission="x",
        )
        raise RuntimeError("failed after changing the file")

    monkeypatch.setattr(CreditFile, "correct_record", half_done)
    (outcome,) = ledger.submit_safely([example("correct_record")])
    assert outcome.reason is not None
    assert outcome.reason["code"] == "internal_error"
    monkeypatch.undo()
    file = file_of(ledger, PERSON)
    assert file.version == version
    assert file.records["tax_bureau:SW-2026-0101"].corrections == 0


def test_an_undecodable_message_is_receipted_by_its_source_so_redelivery_is_answered_the_same(
    ledger: CreditLedger,
) -> None:
    (first,) = ledger.submit([b"\xff not json"], sources=["credit.submissions/2/41"])
    (again,) = ledger.submit([b"\xff not json"], sources=["credit.submissions/2/41"])
    assert first.submission_id == "credit.submissions/2/41"
    assert (first.status, again.duplicate, again.reason) == ("rejected", True, first.reason)
    ((_, receipt),) = ledger.receipts_after(0)
    assert receipt.original == b"\xff not json"


def test_a_serious_record_linked_to_a_person_ends_that_persons_red_list_entry(ledger: CreditLedger) -> None:
    red = copy.deepcopy(example("designate"))
    red.update(department="volunteer_federation", subject={"id": "440524188001010014", "name": "李四"})
    red["designation"].update(list="red", records=[])
    assert ledger.submit([red])[0].accepted
    assert ledger.submit([example("file_record_organisation")])[0].accepted
    person = file_of(ledger, "440524188001010014")
    assert person.designations["HMD-2026-0202"].ended_reason == "serious_adverse_record"


class FakeProducer:
    """Acknowledges every record; remembers what it was sent, in order."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []
        self.fail_after = fail_after

    async def send(self, topic: str, key: bytes, value: bytes) -> Any:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("broker went away")
        self.sent.append((topic, key, orjson.loads(value)))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def relay_with(ledger: CreditLedger, producer: FakeProducer) -> Relay:
    return Relay(ledger, producer.send, ThreadPoolExecutor(1), page=3)


def test_the_relay_publishes_in_ledger_order_and_resumes_after_what_was_acknowledged(
    ledger: CreditLedger,
) -> None:
    ledger.submit([example("file_record"), example("file_record_organisation"), example("correct_record")])
    producer = FakeProducer(fail_after=4)
    with pytest.raises(ConnectionError):
        asyncio.run(relay_with(ledger, producer).run_once())
    assert ledger.recorder.relay_position(LEDGER_CURSOR) == 3  # type: ignore[attr-defined]  # one page acknowledged
    producer.fail_after = None
    asyncio.run(relay_with(ledger, producer).run_once())
    ledger_messages = [m for topic, _, m in producer.sent if topic == "credit.ledger"]
    assert [m["position"] for m in ledger_messages] == list(range(1, 8))
    assert ledger.recorder.relay_position(OUTCOMES_CURSOR) == 3  # type: ignore[attr-defined]
    keys = {m["subject_key"] for m in ledger_messages}
    assert all(key.decode() in keys for topic, key, _ in producer.sent if topic == "credit.ledger")


def test_rejections_go_to_both_outcomes_and_rejections_with_the_original(ledger: CreditLedger) -> None:
    ledger.submit([{"submission_id": "x", "department": "tax_bureau"}])
    producer = FakeProducer()
    asyncio.run(relay_with(ledger, producer).run_once())
    topics_sent = [t for t, _, _ in producer.sent]
    assert topics_sent == ["credit.outcomes", "credit.rejections"]
    message = producer.sent[1][2]
    assert message["reason"]["field"] == "action"
    assert orjson.loads(message["original"]) == {"submission_id": "x", "department": "tax_bureau"}
