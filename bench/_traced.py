"""Bench only: ``credit-ledger serve`` with each stage of a check timed, for bench/checks.py --trace.

This launcher wraps, in its own process only, the functions one ``POST /v1/checks`` goes through
and writes what it measured to ``$CREDIT_TRACE_FILE`` (JSON) when serve stops:

- per request (``streams.http.dispatch``): total, ``auth`` (``QueryService.authenticate_for``),
  ``parse`` (``json_object``), ``check`` (``MeasuresService.check``, with its register write),
  ``record`` (``QueryService.record``: the register write), ``save`` (``CreditLedger.save`` of the
  query record), ``pool`` (waiting for the SQLite writer connection), ``commit`` (SQLite commit);
- the event loop: ``lag`` (how late a 1 ms sleep wakes: the loop blocked by something), and the
  callbacks that ran longer than 2 ms on the web server's loop with what they were;
- ``gc``: every collection (generation, duration), from ``gc.callbacks``.

Nothing here changes what serve does; the wrappers only read the clock.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import gc
import json
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/projections.py is no package

from eventsourcing.sqlite import SQLiteConnection, SQLiteDatastore

import streams.http
import streams.web.measures
from credit_ledger.cli import main
from ledger.application.measures import MeasuresService
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger

try:
    from streams.register import GroupCommit
except ImportError:  # a version without the group commit (bench/checks.py --code)
    GroupCommit = None  # type: ignore[assignment,misc]

clock = time.perf_counter
requests: list[dict[str, float]] = []
lags: list[tuple[float, float]] = []
slow: list[tuple[float, float, str, str]] = []
collections: list[tuple[float, int, float]] = []
current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("trace", default=None)
web_loop: list[Any] = []  # the web server's loop, then the lag sampler's task (kept)
batches: list[tuple[float, int, float]] = []
elsewhere: dict[str, list[float]] = defaultdict(list)


def add(stage: str, seconds: float) -> None:
    if threading.current_thread() is not threading.main_thread():
        elsewhere[f"{stage} ({threading.current_thread().name})"].append(seconds)
        return
    stages = current.get()
    if stages is not None:
        stages[stage] = stages.get(stage, 0.0) + seconds


def timed(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = clock()
        try:
            return original(*args, **kwargs)
        finally:
            add(stage, clock() - began)

    setattr(owner, name, wrapper)


def timed_async(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = clock()
        try:
            return await original(*args, **kwargs)
        finally:
            add(stage, clock() - began)

    setattr(owner, name, wrapper)


def install() -> None:
    """Wrap the stages of a check, the event loop's callbacks and the collector; dump at exit."""
    dispatch = streams.http.dispatch

    async def traced_dispatch(*args: Any, **kwargs: Any) -> Any:
        if not web_loop:
            web_loop.append(asyncio.get_running_loop())
            web_loop.append(asyncio.get_running_loop().create_task(lag_sampler()))  # type: ignore[arg-type]
        stages: dict[str, float] = {"at": time.time()}
        token = current.set(stages)
        began = clock()
        try:
            return await dispatch(*args, **kwargs)
        finally:
            stages["dispatch"] = clock() - began
            current.reset(token)
            requests.append(stages)

    streams.http.dispatch = traced_dispatch  # type: ignore[assignment]
    timed(QueryService, "authenticate_for", "auth")
    timed_async(streams.web.measures, "json_object", "parse")
    timed(MeasuresService, "check", "check")
    timed(QueryService, "record", "record")
    timed(CreditLedger, "save", "save")
    timed(SQLiteConnection, "commit", "commit")
    if GroupCommit is not None:
        timed_async(GroupCommit, "write", "register")
        trace_group_commit()
    if hasattr(CreditLedger, "write_query_events"):
        timed(CreditLedger, "query_events", "prepare")
        write_query_events = CreditLedger.write_query_events

        def traced_write(self: Any, stored: Any) -> Any:
            began = clock()
            try:
                return write_query_events(self, stored)
            finally:
                ended = clock()
                batches.append((time.time(), len(stored), ended - began))
                for span in in_transaction:
                    span[1] = ended

        CreditLedger.write_query_events = traced_write  # type: ignore[method-assign]
    original_get = SQLiteDatastore.get_connection

    @contextmanager
    def get_connection(self: Any, *, commit: bool) -> Any:
        began = clock()
        with original_get(self, commit=commit) as conn:
            if commit:
                add("pool", clock() - began)
            yield conn

    SQLiteDatastore.get_connection = get_connection  # type: ignore[method-assign]
    trace_callbacks()
    gc.callbacks.append(on_gc)
    atexit.register(dump)


committed: dict[int, list[float]] = {}  # id(future) -> [its transaction began, ended]
in_transaction: list[list[float]] = []  # the spans of the batch the writer is writing


def trace_group_commit() -> None:
    """Split a check's wait for its record into queued (until its transaction began), transaction
    (the writer's ``write_query_events``), and wake-up (until the event loop resumed the request)."""
    import streams.register  # noqa: PLC0415 - only a version with the group commit has it

    class Queue(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            stages = current.get()
            if item is not None and stages is not None:
                stages["_future"] = id(item[1])
                stages["_queued_at"] = clock()
            super().put(item, block, timeout)

    init = GroupCommit.__init__

    def traced_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._queue = Queue()

    commit = GroupCommit._commit

    def traced_commit(self: Any, batch: list[Any]) -> None:
        began = clock()
        spans = [[began, began] for _ in batch]
        for (_, done, _), span in zip(batch, spans, strict=True):
            committed[id(done)] = span
        in_transaction[:] = spans  # write_query_events' wrapper ends them, before the loop is woken
        commit(self, batch)

    write = GroupCommit.write

    async def traced_write(self: Any, records: Any) -> Any:
        result = await write(self, records)
        resumed = clock()
        stages = current.get()
        if stages is not None and "_future" in stages:
            began, ended = committed.pop(int(stages.pop("_future")), [resumed, resumed])
            queued_at = stages.pop("_queued_at")
            stages["queued"] = max(0.0, began - queued_at)
            stages["transaction"] = ended - began
            stages["wake-up"] = resumed - ended
        return result

    GroupCommit.__init__ = traced_init  # type: ignore[method-assign]
    GroupCommit._commit = traced_commit  # type: ignore[method-assign]
    GroupCommit.write = traced_write  # type: ignore[method-assign]
    assert streams.register.GroupCommit is GroupCommit


def trace_callbacks() -> None:
    """Note every callback over 2 ms on the web server's loop, with what it was."""
    run = asyncio.events.Handle._run

    def traced_run(self: Any) -> None:
        began = clock()
        run(self)
        took = clock() - began
        if took > 0.002 and web_loop and self._loop is web_loop[0]:
            slow.append((time.time(), took, threading.current_thread().name, repr(self)[:300]))

    asyncio.events.Handle._run = traced_run  # type: ignore[method-assign]


_gc_started: dict[int, float] = {}


def on_gc(phase: str, info: dict[str, Any]) -> None:
    ident = threading.get_ident()
    if phase == "start":
        _gc_started[ident] = clock()
    elif ident in _gc_started:
        collections.append((time.time(), info["generation"], clock() - _gc_started.pop(ident)))


async def lag_sampler() -> None:
    while True:
        began = clock()
        await asyncio.sleep(0.001)
        lags.append((time.time(), clock() - began - 0.001))


def dump() -> None:
    path = os.environ.get("CREDIT_TRACE_FILE")
    if not path:
        return
    Path(path).write_text(
        json.dumps(
            {
                "requests": requests,
                "lags": lags,
                "slow": slow,
                "gc": collections,
                "batches": batches,
                "elsewhere": elsewhere,
            }
        )
    )


if __name__ == "__main__":
    install()
    sys.exit(main(sys.argv[1:]))
