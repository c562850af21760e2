"""The query register's group commit (``streams.register``): checks answered at once share one
transaction, written off the event loop, and no answer goes out before its record is durable."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.catalogue import Catalogue
from streams.register import GroupCommit
from tests.conftest import ORGANISATION
from tests.unit.measuredesk import MeasureDesk, designated, measure_desk
from tests.unit.webdesk import Web, records


class SlowDisk:
    """A ledger whose first transaction waits until let go: meanwhile the next records queue up."""

    def __init__(self, fail: int | None = None) -> None:
        self.written: list[list[str]] = []  # one list a transaction
        self.go = threading.Event()
        self.fail = fail  # the transaction (0, 1, ...) that fails
        self.threads: set[str] = set()

    def query_events(self, records: Sequence[dict[str, Any]]) -> list[str]:
        return [r["reference"] for r in records]

    def write_query_events(self, stored: Sequence[Any]) -> None:
        self.threads.add(threading.current_thread().name)
        self.go.wait(5)
        if len(self.written) == self.fail:
            self.written.append([])
            raise OSError("disk full")
        self.written.append(list(stored))


def test_writes_waiting_while_a_transaction_commits_go_in_the_next_one_and_each_waits_for_its_own() -> None:
    disk = SlowDisk()
    commit = GroupCommit(disk, max_batch=30)

    async def scenario() -> list[bool]:
        async def one(i: int) -> bool:
            done = await commit.write([{"reference": f"R{i}"}])
            flat = [r for t in disk.written for r in t]
            assert f"R{i}" in flat, "answered before its record was written"
            return done

        first = asyncio.create_task(one(0))
        await asyncio.sleep(0.05)  # the writer holds R0's transaction open
        rest = [asyncio.create_task(one(i)) for i in range(1, 50)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [first, *rest]), "nobody is answered before the commit"
        disk.go.set()
        return list(await asyncio.gather(first, *rest))

    try:
        assert asyncio.run(scenario()) == [True] * 50
    finally:
        commit.close()
    assert [len(t) for t in disk.written] == [1, 30, 19]  # R0 alone, then the queue, 30 at most
    assert disk.threads == {"query-register"}  # not the event loop's thread


def test_a_transaction_that_fails_fails_every_write_in_it_and_the_next_one_goes_on() -> None:
    disk = SlowDisk(fail=1)
    commit = GroupCommit(disk)

    async def scenario() -> list[bool]:
        first = asyncio.create_task(commit.write([{"reference": "R0"}]))
        await asyncio.sleep(0.05)
        failing = [asyncio.create_task(commit.write([{"reference": f"R{i}"}])) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        disk.go.set()
        done = list(await asyncio.gather(first, *failing))
        return [*done, await commit.write([{"reference": "R4"}])]

    try:
        assert asyncio.run(scenario()) == [True, False, False, False, True]
    finally:
        commit.close()
    assert disk.written == [["R0"], [], ["R4"]]


@pytest.fixture
def desk(catalogue: Catalogue, tmp_path: Path) -> MeasureDesk:
    return measure_desk(catalogue, tmp_path)


def test_checks_over_http_at_once_are_each_recorded_before_answered_in_fewer_transactions(
    desk: MeasureDesk, tmp_path: Path
) -> None:
    designated(desk)
    key = desk.api_key("department", "court")
    transactions: list[int] = []
    write = desk.ledger.write_query_events

    def counted(stored: Sequence[Any]) -> None:
        transactions.append(len(stored))
        if len(transactions) == 1:  # a slow first commit: the checks arriving meanwhile must share the next
            time.sleep(0.2)
        write(stored)

    desk.ledger.write_query_events = counted  # type: ignore[method-assign]
    body = {"subject": {"id": ORGANISATION}, "business": "travel_and_consumption"}

    async def scenario(web: Web) -> None:
        async def one(i: int) -> None:
            status, answer = await web.call(
                "POST", "/v1/checks", key=key, json={**body, "reference": f"R{i}"}
            )
            assert status == 200, answer
            assert any(r.get("reference") == f"R{i}" for r in records(desk)), "answered unrecorded"

        await asyncio.gather(*(one(i) for i in range(40)))

    async def run() -> None:
        async with Web(desk, tmp_path) as web:
            await scenario(web)

    asyncio.run(run())
    checks = [r for r in records(desk) if r["endpoint"] == "check"]
    assert sorted(r["reference"] for r in checks) == sorted(f"R{i}" for i in range(40))
    assert sum(transactions) == 40
    assert len(transactions) < 40  # some shared a transaction
