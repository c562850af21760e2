"""The query register's group commit: records written off the event loop, many per transaction.

A check is answered only once its query record is durable (``QueryService.holding``): the handler
hands the records its answer needs to ``GroupCommit.write`` and awaits it. They are made into the
events to store there, on the event loop (``CreditLedger.query_events``: hashing and serialising
are Python, which a second thread would only take turns at the GIL for); one writer thread takes
every event waiting, writes them in one ledger transaction (``CreditLedger.write_query_events``:
one commit, one fsync, at SQLite's and PostgreSQL's full durability), and then wakes each waiting
request on its own event loop. While a transaction commits, the next requests' records gather in
the queue, so the batch grows with the load and a commit's cost is shared (group commit).

Why: written on the event loop, each record's commit (its fsync, and now and then SQLite's WAL
checkpoint: 9 ms at p99 and 34 ms at worst in bench/checks.py --trace) stopped every other request
on that loop, and each check paid a transaction of its own. Here the loop goes on serving while
the writer waits on the disk (SQLite and psycopg release the GIL there).

The promise is kept: the answer waits for the commit of its own record; if that transaction
fails, no record of the batch is written (one transaction) and every request in it is answered
``audit_unavailable`` with nothing returned, exactly as a failed write on the loop was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BATCH = 500
"""The most records one transaction writes (a burst is written in several)."""

_Waiting = tuple[Sequence[Any], asyncio.Future[None], asyncio.AbstractEventLoop]


class QueryWriter(Protocol):
    """What the group commit writes through: ``CreditLedger``'s two halves of ``record_query``."""

    def query_events(self, records: Sequence[dict[str, Any]]) -> Sequence[Any]: ...

    def write_query_events(self, stored: Sequence[Any]) -> None: ...


class GroupCommit:
    """Query records made into events on the caller's thread (``ledger.query_events``), written
    (``ledger.write_query_events``, all of a batch or none) on a thread of its own."""

    def __init__(self, ledger: QueryWriter, *, max_batch: int = MAX_BATCH) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.records = 0

    async def write(self, records: Sequence[dict[str, Any]]) -> bool:
        """Write ``records`` durably; True once they are, False if they could not be (logged)."""
        if not records:
            return True
        try:
            events = self._ledger.query_events(records)
        except Exception:
            log.exception(
                "%d query record(s) could not be made into events; refused, nothing returned", len(records)
            )
            return False
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._start()
        self._queue.put((events, done, loop))
        try:
            await asyncio.shield(done)  # a client that goes away does not unwrite its record
        except Exception:
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="query-register", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            count = len(first[0])
            while count < self._max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(waiting)
                count += len(waiting[0])
            self._commit(batch)

    def _commit(self, batch: list[_Waiting]) -> None:
        error: BaseException | None = None
        try:
            self._ledger.write_query_events([event for events, _, _ in batch for event in events])
            self.batches += 1
            self.records += sum(len(events) for events, _, _ in batch)
        except Exception as exc:
            error = exc
            log.exception(
                "%d query record(s) could not be recorded; each was refused and returned nothing",
                sum(len(events) for events, _, _ in batch),
            )
        waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, done, loop in batch:
            waiting.setdefault(loop, []).append(done)
        for loop, futures in waiting.items():  # one wake-up of each loop for the whole batch
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for those answers
                loop.call_soon_threadsafe(_settle, futures, error)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
