"""The inbox port (``ledger.application.ports.Inbox``) on every recorder: rows in one transaction per
request, read back by position, each decided exactly when the outcomes log holds an entry read
from its source; kept across restarts; added to a store made before it.

Part of the recorder contract (``test_recorders.py``), on the same ``backend`` fixture.
"""

from __future__ import annotations

import threading
from datetime import date

import orjson
import pytest

from contract.messages import inbox_item
from ledger.application.ports import Inbox
from ledger.application.privacy import INBOX_STREAM, SealedValueAltered
from ledger.application.service import CreditLedger
from ledger.domain.inbox import InboxItem, inbox_source
from tests.conftest import MASTER_KEY
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


def sealing(backend: Backend) -> CreditLedger:
    """A ledger on the backend that seals personal data (as ``serve`` runs it)."""
    ledger = backend.open()
    ledger.use_master_key(MASTER_KEY)
    return ledger


def test_sealed_rows_hold_only_ciphertext_and_every_worker_opens_them_as_received(backend: Backend) -> None:
    ledger = sealing(backend)
    rows = [item(filing("tax-1")), item(filing("tax-2", OTHER_PEOPLE[0])), item(b'{"action": "x"}')]
    positions = ledger.record_in_inbox(rows)
    stored = ledger.inbox.inbox_page(0, 10)
    assert [e.position for e in stored] == positions
    for entry, row in zip(stored, rows, strict=True):
        assert entry.item.key == b"", "the Kafka key (a normalised identity number) is sealed with the value"
        assert entry.item.value.startswith(b"enc1:")
        assert row.value not in entry.item.value
        assert row.key == b"" or row.key not in entry.item.value
        assert (entry.item.department, entry.item.submission_id) == (row.department, row.submission_id)
    assert [e.item for e in ledger.inbox_page(0, 10)] == rows
    other = sealing(backend)  # another worker on the same database: the month's key is stored
    more = other.record_in_inbox([item(filing("tax-3", OTHER_PEOPLE[1]))])
    assert [e.item for e in other.inbox_page(0, 10)] == [*rows, item(filing("tax-3", OTHER_PEOPLE[1]))]
    assert [e.item for e in ledger.inbox_page(positions[-1], 10)] == [item(filing("tax-3", OTHER_PEOPLE[1]))]
    units = sorted(row[2] for row in ledger.data_keys.live_data_keys(stream=INBOX_STREAM))
    assert units == ["inbox:tax_bureau:2026-11", "inbox:unregistered:2026-11"], "one key a department-month"
    ledger.submit([r.value for r in rows[:2]], sources=[inbox_source(p) for p in positions[:2]])
    assert [e.decided for e in ledger.inbox_page(0, 10)] == [True, True, False, False]
    assert more[0] > positions[-1]


def test_a_sealed_row_does_not_open_at_another_position(backend: Backend) -> None:
    ledger = sealing(backend)
    first, second = ledger.record_in_inbox([item(filing("tax-1")), item(filing("tax-2"))])
    (row, _) = ledger.inbox.inbox_page(0, 10)
    assert ledger.privacy is not None
    with pytest.raises(SealedValueAltered, match=f"inbox row {second} was sealed for position {first}"):
        ledger.privacy.open_inbox(second, row.item)


def test_inbox_keys_go_after_the_rejected_originals_retention(backend: Backend) -> None:
    ledger = sealing(backend)
    ledger.record_in_inbox([item(filing("tax-1"))])
    assert ledger.expire_originals(date(2027, 2, 28), "2027-02-28T00:00:00+00:00") == 0
    assert ledger.expire_originals(date(2027, 3, 1), "2027-03-01T00:00:00+00:00") == 1  # 90 days after
    (entry,) = ledger.inbox_page(0, 10)
    assert (entry.item.key, entry.item.value) == (b"", b""), "its content went with its key"


def test_workers_sealing_at_once_share_the_month_key_and_lose_no_row(backend: Backend) -> None:
    writers = [sealing(backend) for _ in range(3)]
    got: list[int] = []
    lock = threading.Lock()

    def append(n: int) -> None:
        for request in range(5):
            positions = writers[n].record_in_inbox([item(filing(f"w{n}-r{request}"))])
            with lock:
                got.extend(positions)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 15
    (unit,) = [row[2] for row in writers[0].data_keys.live_data_keys(stream=INBOX_STREAM)]
    assert unit == "inbox:tax_bureau:2026-11"
    opened = sealing(backend).inbox_page(0, 100)
    assert sorted(orjson.loads(e.item.value)["submission_id"] for e in opened) == sorted(
        f"w{n}-r{r}" for n in range(3) for r in range(5)
    )
