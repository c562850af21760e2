"""The inbox port (``ledger.application.ports.Inbox``) on every recorder: rows in one transaction per
request, read back by position, each decided exactly when the outcomes log holds an entry read
from its source; kept across restarts; added to a store made before it.

Part of the recorder contract (``test_recorders.py``), on the same ``backend`` fixture.
"""

from __future__ import annotations

import threading

import orjson

from contract.messages import inbox_item
from ledger.application.ports import Inbox
from ledger.domain.inbox import InboxItem, inbox_source
from tests.contracts.conftest import Backend
from tests.contracts.samples import OTHER_PEOPLE, filing


def item(submission: dict[str, object] | bytes) -> InboxItem:
    """An inbox item as the HTTP door makes it."""
    if isinstance(submission, bytes):
        return inbox_item(orjson.loads(submission), submission)
    return inbox_item(submission, orjson.dumps(submission))


def test_the_recorder_implements_the_inbox_port(backend: Backend) -> None:
    ledger = backend.open()
    assert isinstance(ledger.recorder, Inbox)
    assert ledger.inbox is ledger.recorder


def test_rows_come_back_in_position_order_whole_and_undecided(backend: Backend) -> None:
    ledger = backend.open()
    assert (ledger.inbox.last_inbox_position(), ledger.inbox.inbox_page(0, 10)) == (0, [])
    first = ledger.record_in_inbox([item(filing("tax-1")), item(filing("tax-2", OTHER_PEOPLE[0]))])
    second = ledger.record_in_inbox([item(filing("tax-3", OTHER_PEOPLE[1]))])
    assert ledger.record_in_inbox([]) == []
    assert first == [first[0], first[0] + 1]
    assert second[0] > first[1]
    page = ledger.inbox.inbox_page(0, 10)
    assert [e.position for e in page] == [*first, *second]
    assert [e.item for e in page] == [
        item(filing("tax-1")),
        item(filing("tax-2", OTHER_PEOPLE[0])),
        item(filing("tax-3", OTHER_PEOPLE[1])),
    ]
    assert {e.received_at for e in page} == {"2026-11-01T09:00:00+00:00"}
    assert not any(e.decided for e in page)
    assert [e.position for e in ledger.inbox.inbox_page(first[0], 1)] == [first[1]]
    assert ledger.inbox.inbox_page(second[0], 10) == []
    assert ledger.inbox.last_inbox_position() == second[0]


def test_a_row_is_decided_once_an_outcome_is_logged_from_its_source_whatever_the_outcome(
    backend: Backend,
) -> None:
    ledger = backend.open()
    ledger.submit([filing("tax-0")], sources=["credit.submissions/0/0@1"])  # sent over Kafka first
    no_id = {"department": "tax_bureau", "action": "file_record"}  # no submission_id
    rows = [
        item(filing("tax-1", record_id="R2")),  # decided first here
        item(filing("tax-0")),  # a resend of the Kafka one: a duplicate
        item(filing("tax-0", record_id="R9")),  # the same id with other content: a conflict
        item(orjson.dumps(no_id)),  # registered under its source
        item(filing("tax-4", OTHER_PEOPLE[0])),  # never drained
    ]
    positions = ledger.record_in_inbox(rows)
    assert not any(e.decided for e in ledger.inbox.inbox_page(0, 10))
    drained = positions[:4]
    outcomes = ledger.submit([r.value for r in rows[:4]], sources=[inbox_source(p) for p in drained])
    assert [(o.status, o.duplicate) for o in outcomes] == [
        ("accepted", False),
        ("accepted", True),
        ("rejected", False),
        ("rejected", False),
    ]
    assert [e.decided for e in ledger.inbox.inbox_page(0, 10)] == [True, True, True, True, False]
    # Drained again (the broker lost the topic): the same sources, nothing logged twice.
    logged = len(ledger.outcomes_after(0))
    ledger.submit([r.value for r in rows[:4]], sources=[inbox_source(p) for p in drained])
    assert len(ledger.outcomes_after(0)) == logged


def test_a_receipt_for_the_same_id_read_from_elsewhere_does_not_decide_a_row(backend: Backend) -> None:
    ledger = backend.open()
    (position,) = ledger.record_in_inbox([item(filing("tax-1"))])
    # The department also sent it over Kafka, and that copy was decided first: the row has no
    # outcome of its own until it is drained (then a duplicate).
    ledger.submit([filing("tax-1")], sources=["credit.submissions/2/7@1"])
    assert [e.decided for e in ledger.inbox.inbox_page(0, 10)] == [False]
    ledger.submit([orjson.dumps(filing("tax-1"))], sources=[inbox_source(position)])
    assert [e.decided for e in ledger.inbox.inbox_page(0, 10)] == [True]


def test_concurrent_requests_each_get_consecutive_positions_and_none_is_lost(backend: Backend) -> None:
    writers = [backend.open() for _ in range(3)]
    got: list[list[int]] = []
    lock = threading.Lock()

    def append(ledger_index: int) -> None:
        for request in range(10):
            rows = [item(filing(f"w{ledger_index}-r{request}-{n}")) for n in range(5)]
            positions = writers[ledger_index].record_in_inbox(rows)
            with lock:
                got.append(positions)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(p == list(range(p[0], p[0] + 5)) for p in got)
    everything = sorted(p for positions in got for p in positions)
    assert len(set(everything)) == 150
    assert [e.position for e in backend.open().inbox.inbox_page(0, 1000)] == everything


def test_rows_survive_a_restart(durable_backend: Backend) -> None:
    first = durable_backend.open()
    positions = first.record_in_inbox([item(filing(f"tax-{n}")) for n in range(3)])
    first.close()
    page = durable_backend.open().inbox.inbox_page(0, 10)
    assert [(e.position, e.item) for e in page] == [
        (p, item(filing(f"tax-{n}"))) for n, p in enumerate(positions)
    ]


def test_a_store_made_before_the_inbox_gains_it_and_keeps_everything_else(durable_backend: Backend) -> None:
    made = durable_backend.open()
    (outcome,) = made.submit([filing("tax-1")])
    made.close()
    durable_backend.sql("DROP TABLE submission_inbox")  # type: ignore[attr-defined]  # as the version before
    upgraded = durable_backend.open()
    assert upgraded.inbox.last_inbox_position() == 0
    (position,) = upgraded.record_in_inbox([item(filing("tax-2"))])
    assert [e.position for e in upgraded.inbox.inbox_page(0, 10)] == [position]
    (again,) = upgraded.submit([filing("tax-1")])
    assert again.duplicate
    assert again.events == outcome.events
    assert upgraded.verify() == []
