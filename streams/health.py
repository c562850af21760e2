"""GET /v1/health: the worker's progress and lag (intake, relay, read models), judged ok or degraded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.web import Request, Response, View

from contract import topics
from ledger.application.service import CreditLedger
from projections.store import ProjectionStore
from streams.drain import INBOX_CURSOR
from streams.intake import Intake
from streams.parts import WorkerParts
from streams.relay import LEDGER_CURSOR, OUTCOMES_CURSOR, QUERY_RECORDED


def register_health_view(app: faust.App, parts: WorkerParts) -> None:
    health = HealthCheck(parts, parts.health_stall_seconds, group=lambda: _group_view(app))

    @app.page("/v1/health")
    class Health(View):
        """GET the worker's progress and lag, judged: ok, degraded (still 200) or 503 (no ledger)."""

        async def get(self, request: Request) -> Response:
            report, status = await health.report()
            return self.json(report, status=status)


INTAKE_BACKLOG_RECORDS = 0
"""Consumer lag above this, with nothing applied for the stall time, is an intake backlog. Any
waiting record counts: the stall time already tells a busy intake from a stuck one, and the
embedded broker's under-reported high watermark can hide lag but never invents it."""

LEDGER_READ_TIMEOUT = 5.0
"""Health's reads queue behind the intake's batch on the one ledger thread (about 0.1 s for 1,000
submissions). No answer in 5 s means the database is not answering; load balancers give up then."""

POSITION_TIMEOUT = 0.5
"""aiokafka waits for a partition's position after a rebalance; health reports it unknown instead."""

RELAY_CURSORS = (LEDGER_CURSOR, OUTCOMES_CURSOR, INBOX_CURSOR)
"""The relay's cursors: the ledger's events, the outcomes log, and the HTTP doors' inbox it drains."""


def _group_view(app: faust.App) -> dict[str, Any]:
    """This worker in the Faust app's group: whether it holds Faust's leader partition (and so runs
    the scheduler) right now, and the group generation it last joined (None before it has)."""
    try:
        leader = bool(app.is_leader())
    except Exception:  # the app's consumer is not up yet: not the leader
        leader = False
    generation = getattr(app, "consumer_generation_id", None)
    return {"leader": leader, "generation": generation if isinstance(generation, int) else None}


@dataclass(frozen=True)
class LedgerProgress:
    """How far the ledger, the relay and the read models have got, read in one hop on the ledger thread."""

    relayed: dict[str, int]  # the relay's saved positions, by cursor
    head: dict[str, int]  # the ledger's last notification id and last receipt position, by cursor
    projected_up_to: int | None  # None: this worker has no projection store, or it could not be read
    projections_error: str | None = None

    def relay_lag(self, cursor: str) -> int:
        return max(0, self.head[cursor] - self.relayed[cursor])

    @property
    def projection_lag(self) -> int | None:
        if self.projected_up_to is None:
            return None
        return max(0, self.relayed[LEDGER_CURSOR] - self.projected_up_to)


def read_progress(ledger: CreditLedger, store: ProjectionStore | None) -> LedgerProgress:
    """Every database read health makes; runs on the ledger thread. Raises if the ledger cannot be read."""
    # The relay's positions first: read after them, the heads cannot be behind them.
    relayed = {cursor: ledger.reader.relay_position(cursor) for cursor in RELAY_CURSORS}
    head = {
        LEDGER_CURSOR: ledger.reader.head(),
        OUTCOMES_CURSOR: ledger.reader.last_outcome_position(),
        INBOX_CURSOR: ledger.inbox.last_inbox_position(),
    }
    if store is None:
        return LedgerProgress(relayed, head, None)
    try:
        projected = projected_up_to(ledger, store, relayed[LEDGER_CURSOR])
    except Exception as exc:  # the read models are not the ledger: report them, keep answering
        return LedgerProgress(relayed, head, None, f"{type(exc).__name__}: {exc}")
    return LedgerProgress(relayed, head, projected)


def projected_up_to(ledger: CreditLedger, store: Any, relayed: int) -> int:
    """The last ledger position the read models hold, at most the relay's (what they can see).

    The store keeps each subject's version, not a global position, and reading the maximum would
    scan every subject's row. Instead a binary search on "is the event at p in the read models?",
    each probe one indexed row in the ledger and one in the store: one probe when the projector is
    level with the relay. While it works through a backlog its partitions interleave, so the figure
    is approximate then.
    """
    if relayed <= 0 or _is_projected(ledger, store, relayed, relayed):
        return max(0, relayed)
    low, high = 0, relayed  # the event at ``low`` is projected (0: trivially), the one at ``high`` not
    while high - low > 1:
        middle = (low + high) // 2
        if _is_projected(ledger, store, middle, relayed):
            low = middle
        else:
            high = middle
    return low


def _is_projected(ledger: CreditLedger, store: Any, position: int, relayed: int) -> bool:
    """Whether the read models hold the first relayed event at or after ``position``.

    ``relayed`` is the id of an event the relay published, so a search below it always finds one.
    """
    found = ledger.reader.event_rows(position - 1, 1, stop=relayed)
    if not found:
        return True  # a gap in the ids up to what was relayed: nothing there to miss
    _, key, version, topic, _state = found[0]
    if topic.endswith(QUERY_RECORDED):  # query records are filed in the query register
        return bool(store.has_query(key))
    return int(store.subject_version(key)) >= version


async def intake_partitions(intake: Intake) -> list[dict[str, int | None]]:
    """Position, high watermark and lag of each credit.submissions partition this worker holds.

    The high watermark is the last one a fetch returned, so no broker round trip; on the embedded
    broker it is under-reported after batched writes, so the lag is approximate. Records fetched
    but still being applied (at most one batch) are not counted.
    """
    consumer = intake.consumer
    if consumer is None:
        return []
    assigned = sorted(consumer.assignment(), key=lambda tp: tp.partition)
    highwaters = {tp: consumer.highwater(tp) for tp in assigned}  # before any await: still assigned
    return [await _partition_lag(consumer, tp, highwaters[tp]) for tp in assigned]


async def _partition_lag(consumer: Any, tp: Any, highwater: int | None) -> dict[str, int | None]:
    position = None if highwater is None else await _position(consumer, tp)
    lag = None if highwater is None or position is None else max(0, highwater - position)
    return {"partition": tp.partition, "position": position, "highwater": highwater, "lag": lag}


async def _position(consumer: Any, tp: Any) -> int | None:
    try:
        return int(await asyncio.wait_for(consumer.position(tp), POSITION_TIMEOUT))
    except (IllegalStateError, TimeoutError):
        return None  # moved to another worker meanwhile, or not positioned yet after a rebalance


@dataclass
class StallWatch:
    """Remembers across health calls since when a follower has been behind without moving."""

    position: int | None = None
    behind_since: float | None = None

    def seconds_stalled(self, position: int, lag: int, now: float) -> float:
        """How long ``position`` has stood still while ``lag`` > 0: 0 on the first such sighting."""
        if lag <= 0:
            self.position, self.behind_since = position, None
            return 0.0
        if position != self.position or self.behind_since is None:
            self.position, self.behind_since = position, now
            return 0.0
        return now - self.behind_since


def _problem_entry(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class HealthCheck:
    """Reads the worker's progress and judges it; its watches tell a stall from a pause across calls."""

    def __init__(
        self,
        parts: WorkerParts,
        stall_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        group: Callable[[], dict[str, Any]] = lambda: {"leader": False, "generation": None},
    ) -> None:
        self.parts = parts
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.group = group
        self.relay_watches = {cursor: StallWatch() for cursor in RELAY_CURSORS}
        self.projections_watch = StallWatch()
        self.intake_watch = StallWatch()

    async def report(self) -> tuple[dict[str, Any], int]:
        """The health document and its HTTP status: 200 when ok or degraded, 503 without a ledger."""
        intake = await self._intake_figures()
        parts = self.parts
        loop = asyncio.get_running_loop()
        try:
            progress = await asyncio.wait_for(
                loop.run_in_executor(parts.executor, read_progress, parts.ledger, parts.read_store),
                LEDGER_READ_TIMEOUT,
            )
        except TimeoutError:
            # The reads wait for the ledger thread: a transaction stuck on a lock keeps it too.
            why = (
                f"no answer within {LEDGER_READ_TIMEOUT:.0f} s: the database, or the ledger thread "
                "the intake shares, is stuck, for instance on a lock another writer holds"
            )
            return self._unavailable(intake, why), 503
        except Exception as exc:  # any failure to read the ledger is this answer, not a 500
            return self._unavailable(intake, f"{type(exc).__name__}: {exc}"), 503
        dead_letters = self.parts.dead_letters.summary() if self.parts.dead_letters is not None else None
        problems = self._judge(progress, intake, self.clock()) + _dead_letter_problems(dead_letters)
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "intake": intake,
            "relayed_up_to": progress.relayed,
            "ledger_head": progress.head,
            "relay_lag": {cursor: progress.relay_lag(cursor) for cursor in RELAY_CURSORS},
            "projections": self._projections_figures(progress),
            "dead_letters": dead_letters,
            "scheduler": self._scheduler_figures(),
            "stall_seconds": self.stall_seconds,
            "topics": list(topics.ALL_TOPICS),
        }, 200

    async def _intake_figures(self) -> dict[str, Any]:
        stats = self.parts.intake.stats
        partitions = await intake_partitions(self.parts.intake)
        return {
            "batches": stats.batches,
            "submissions": stats.submissions,
            "applying_seconds": round(stats.applying_seconds, 3),
            "dead_letters": stats.dead_letters,
            "lag": sum(p["lag"] or 0 for p in partitions),
            "partitions": partitions,
        }

    def _projections_figures(self, progress: LedgerProgress) -> dict[str, Any] | None:
        if self.parts.read_store is None:
            return None
        return {"projected_up_to": progress.projected_up_to, "lag": progress.projection_lag}

    def _scheduler_figures(self) -> dict[str, Any] | None:
        scheduler = self.parts.scheduler
        if scheduler is None:
            return None
        stats = scheduler.stats
        return {
            **self.group(),
            "interval": scheduler.interval,
            "runs": stats.runs,
            "commands": stats.commands,
            "announced": stats.announced,
            "last_run_at": stats.last_run_at,
        }

    def _unavailable(self, intake: dict[str, Any], why: str) -> dict[str, Any]:
        message = f"the ledger database could not be read ({why}); look at the serve log and the database"
        return {
            "status": "unavailable",
            "problems": [_problem_entry("ledger_unreadable", message)],
            "intake": intake,
            "stall_seconds": self.stall_seconds,
            "topics": list(topics.ALL_TOPICS),
        }

    def _judge(self, progress: LedgerProgress, intake: dict[str, Any], now: float) -> list[dict[str, str]]:
        return [
            *self._relay_problems(progress, now),
            *self._projection_problems(progress, now),
            *self._intake_problems(intake, now),
        ]

    def _relay_problems(self, progress: LedgerProgress, now: float) -> list[dict[str, str]]:
        problems = []
        for cursor, watch in self.relay_watches.items():
            lag = progress.relay_lag(cursor)
            stalled = watch.seconds_stalled(progress.relayed[cursor], lag, now)
            if stalled > self.stall_seconds:
                problems.append(
                    _problem_entry(
                        "relay_stalled",
                        f"the relay has not moved {cursor} past {progress.relayed[cursor]} for "
                        f"{stalled:.0f} s while {lag} more wait in the ledger; check that a relay runs "
                        "(every serve starts one unless --no-relay) and look at relay.log",
                    )
                )
        return problems

    def _projection_problems(self, progress: LedgerProgress, now: float) -> list[dict[str, str]]:
        if progress.projections_error is not None:
            message = f"the projection store could not be read ({progress.projections_error})"
            return [_problem_entry("projections_unreadable", message)]
        lag, projected = progress.projection_lag, progress.projected_up_to
        if lag is None or projected is None:
            return []
        stalled = self.projections_watch.seconds_stalled(projected, lag, now)
        if stalled <= self.stall_seconds:
            return []
        message = (
            f"the read models have not moved past ledger position {projected} for {stalled:.0f} s "
            f"while {lag} relayed events wait; look at project.log"
        )
        return [_problem_entry("projections_stalled", message)]

    def _intake_problems(self, intake: dict[str, Any], now: float) -> list[dict[str, str]]:
        lag = intake["lag"] if intake["lag"] > INTAKE_BACKLOG_RECORDS else 0
        stalled = self.intake_watch.seconds_stalled(intake["submissions"], lag, now)
        if stalled <= self.stall_seconds:
            return []
        message = (
            f"this worker's intake has applied nothing for {stalled:.0f} s while about {lag} "
            "submissions wait on its partitions of credit.submissions; look at the serve log "
            "(the intake logs each failed batch there)"
        )
        return [_problem_entry("intake_backlog", message)]


def _dead_letter_problems(summary: dict[str, Any] | None) -> list[dict[str, str]]:
    """New dead letters make the worker degraded until someone acknowledges them."""
    if summary is None or not summary["unacknowledged"]:
        return []
    flows = ", ".join(
        f"{flow} {figures['unacknowledged']}"
        for flow, figures in summary["by_flow"].items()
        if figures["unacknowledged"]
    )
    message = (
        f"{summary['unacknowledged']} message(s) could not be decided and were parked on "
        f"{topics.DEAD_LETTERS} ({flows}); the flows went on. Read them with "
        "'python -m streams.deadletters list --bootstrap HOST:PORT', look up each correlation id "
        "in the flow's log, then acknowledge with 'python -m streams.deadletters acknowledge "
        "--bootstrap HOST:PORT' (docs/streams.md, dead letters)"
    )
    return [_problem_entry("dead_letters", message)]
