"""The scheduler on a Faust timer: time into the platform's own commands, on the app's leader only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import faust
import orjson

from contract import topics
from ledger.domain.workdays import local_date
from projections.projector import Projector
from projections.scheduler import scheduled_submissions
from streams.storelock import StoreLock

log = logging.getLogger(__name__)

TICK = 1.0
"""How often the timer asks "am I the leader, and is a round due?": a worker that becomes the
leader runs its first round within a second, not a whole interval later."""

SendAll = Callable[[str, Iterable[tuple[bytes, bytes]]], Awaitable[int]]
"""send_all(topic, records) returns how many once the broker has acknowledged every one."""

Expire = Callable[[date, str], Awaitable[int]]
"""expire(today, now) destroys the keys of rejected originals past their retention; how many
(``CreditLedger.expire_originals`` on the ledger's own thread)."""


@dataclass
class SchedulerStats:
    runs: int = 0
    commands: int = 0  # sent to credit.submissions, over all rounds (re-sent until the ledger acts)
    announced: int = 0  # clean-record entries announced
    originals_shredded: int = 0  # monthly keys of rejected originals destroyed at retention end
    last_run_at: str | None = None


class Scheduler:
    """Due items become the platform's own ledger commands; clean-record eligibility is announced.

    A round reads the items due by today from the read models and sends a command for each to
    credit.submissions (ids derived from the item, so a command sent again is answered as a
    duplicate), then announces the clean-record entries that begin by today through the store's
    list-change outbox, which the projector publishes, and (with ``expire``) destroys the keys of
    rejected originals whose retention ended. The first round comes as soon as this worker
    leads, then one every ``interval`` seconds (``CREDIT_SCHEDULER_INTERVAL``).
    """

    def __init__(
        self,
        projector: Projector,
        send_all: SendAll,
        *,
        interval: float = 60.0,
        lock: StoreLock | None = None,
        expire: Expire | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.projector = projector
        self.send_all = send_all
        self.interval = interval
        self.lock = lock
        self.expire = expire
        self.clock = clock
        self.monotonic = monotonic
        self.stats = SchedulerStats()
        # Its own thread: the store's connection is used by nothing else in this process.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler")
        self._next = float("-inf")

    async def tick(self) -> None:
        """One beat of the leader's timer: a round if one is due."""
        now = self.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        await self.run(self.clock())

    async def run(self, now: datetime) -> tuple[int, int]:
        """One round; returns (commands sent, clean-record entries announced)."""
        loop = asyncio.get_running_loop()
        today = local_date(now)
        store = self.projector.store
        due = await loop.run_in_executor(self.executor, store.due_on_or_before, today.isoformat())
        commands = scheduled_submissions(due, today)
        records = [(c["subject"]["key"].encode(), orjson.dumps(c)) for c in commands]
        await self.send_all(topics.SUBMISSIONS, records)
        announced = await loop.run_in_executor(self.executor, self._announce, today)
        shredded = await self.expire(today, now.isoformat()) if self.expire is not None else 0
        stats = self.stats
        stats.originals_shredded += shredded
        if shredded:
            log.info("scheduler: %d monthly keys of rejected originals destroyed (retention ended)", shredded)
        stats.runs += 1
        stats.commands += len(commands)
        stats.announced += len(announced)
        stats.last_run_at = now.isoformat()
        if commands or announced:
            log.info(
                "scheduler: %d ledger commands sent, %d clean-record entries", len(commands), len(announced)
            )
        return len(commands), len(announced)

    def _announce(self, today: date) -> list[dict[str, Any]]:
        if self.lock is None:
            return self.projector.announce_clean(today)
        with self.lock.exclusive():  # no projector batch reads or writes a state meanwhile
            return self.projector.announce_clean(today)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        if self.lock is not None:
            self.lock.close()


TIMER_NAME = "credit-ledger.scheduler"


class QuietOverlaps(logging.Filter):
    """Drops mode's "Timer credit-ledger.scheduler is overlapping" warning. The timer only asks every
    TICK whether a round is due, so a round that takes longer than a TICK is expected, not a fault;
    the warning read as one on serve's terminal (issue 17). Other timers still warn."""

    def filter(self, record: logging.LogRecord) -> bool:
        overlapping = str(record.msg).startswith("Timer %s is overlapping")
        return not (overlapping and isinstance(record.args, tuple) and record.args[:1] == (TIMER_NAME,))


def register_scheduler(app: faust.App, scheduler: Scheduler) -> None:
    """Run ``scheduler`` on a Faust timer with ``on_leader=True``: one worker of the app's group
    (the one assigned Faust's leader partition) runs it; when it leaves, the next leader does."""
    timers_log = logging.getLogger("mode.timers")
    if not any(isinstance(f, QuietOverlaps) for f in timers_log.filters):
        timers_log.addFilter(QuietOverlaps())

    async def schedule() -> None:
        await scheduler.tick()

    timer = app.timer(interval=min(TICK, scheduler.interval), on_leader=True, name=TIMER_NAME)
    timer(schedule)
