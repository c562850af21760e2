"""Poison isolation: "not now" is retried with back-off, "never" bisected down to one message and parked."""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from contract import topics
from contract.deadletters import Source, dead_letter

log = logging.getLogger(__name__)

T = TypeVar("T")


class Failure(enum.Enum):
    """How a flow reads an exception from applying a batch."""

    TRANSIENT = "transient"  # not now (database or broker unavailable): the same batch again, later
    POISON = "poison"  # never, for something in this batch: bisect, and park the message that fails alone
    FATAL = "fatal"  # neither: raise (the process ends and its supervisor restarts it)


Classify = Callable[[Exception], Failure]


@dataclass
class Backoff:
    """Waits between attempts: ``first`` seconds, doubling up to ``longest``; ``sleep`` is injectable."""

    first: float = 0.5
    longest: float = 10.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.longest)


ATTEMPTS = 3
"""Attempts a single message gets before it is parked (a whole batch gets one, then is bisected)."""


async def settle(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[Any]],
    park: Callable[[T, Exception], Awaitable[None]],
    *,
    classify: Classify,
    backoff: Backoff,
    attempts: int = ATTEMPTS,
    what: str = "a batch",
) -> None:
    """Apply ``items`` in order so that no single one can stall them.

    Transient failures are retried with back-off for as long as they last. A batch that fails
    otherwise is split in two halves applied in turn (so order is kept), down to single items; an
    item that still fails after ``attempts`` tries is handed to ``park`` and the rest go on. The
    happy path costs one ``try``. ``apply`` must be idempotent: the half that went through before
    its sibling failed, or a batch that failed part-way, is applied again (the ledger's receipts,
    the read models' versions and consumers' position checks make that harmless).
    """
    pending = list(items)
    if not pending:
        return
    failed = await _attempt(pending, apply, classify, backoff, 1 if len(pending) > 1 else attempts, what)
    if failed is None:
        return
    if len(pending) == 1:
        await park(pending[0], failed)
        return
    middle = len(pending) // 2
    log.warning(
        "%s of %d failed (%s); applying it in halves to isolate what fails",
        what,
        len(pending),
        type(failed).__name__,
    )
    for half in (pending[:middle], pending[middle:]):
        await settle(half, apply, park, classify=classify, backoff=backoff, attempts=attempts, what=what)


async def _attempt(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[Any]],
    classify: Classify,
    backoff: Backoff,
    attempts: int,
    what: str,
) -> Exception | None:
    """None once ``apply(items)`` succeeded; the last exception after ``attempts`` poison failures."""
    delays = backoff.delays()
    failures = 0
    while True:
        try:
            await apply(items)
        except Exception as exc:
            verdict = classify(exc)
            if verdict is Failure.FATAL:
                raise
            if verdict is Failure.POISON:
                failures += 1
                if failures >= attempts:
                    return exc
            delay = next(delays)
            log.warning(
                "%s of %d could not be applied (%s: %s); retrying in %.1fs",
                what,
                len(items),
                type(exc).__name__,
                exc,
                delay,
            )
            await backoff.sleep(delay)
        else:
            return None


def correlation_id() -> str:
    """A fresh id that ties a dead letter (and a receipt's reason) to the log line with the details."""
    return uuid.uuid4().hex


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


Send = Callable[[str, bytes, bytes], Awaitable[None]]
"""send(topic, key, value) returns once the broker has acknowledged the record."""


@dataclass
class DeadLetters:
    """One flow's parking: builds each dead letter, sends it (or hands it back), counts and remembers it.

    A letter is sent before the flow moves past the message (the intake and the projector commit
    offsets only afterwards; the relay saves its position only after the page with the letter is
    acknowledged), so a crash in between parks it again: letters are at least once, and copies
    share ``flow`` and ``source``.
    """

    flow: str
    send: Send | None = None
    clock: Callable[[], str] = utc_now_iso
    keep: int = 5
    count: int = 0
    last: deque[dict[str, Any]] = field(default_factory=deque)

    def letter(
        self,
        source: Source,
        *,
        key: bytes | None,
        payload: bytes | None,
        error: Exception,
        reason: str,
        correlation: str | None = None,
        receipt: dict[str, Any] | None = None,
    ) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of the dead letter for one message; counted as parked."""
        correlation = correlation or correlation_id()
        error_class = type(error).__name__
        letter_key, value = dead_letter(
            self.flow,
            source,
            key=key,
            payload=payload,
            error=error_class,
            reason=reason,
            correlation_id=correlation,
            parked_at=self.clock(),
            receipt=receipt,
        )
        self.count += 1
        self.last.append({"source": source.as_dict(), "error": error_class, "correlation_id": correlation})
        while len(self.last) > self.keep:
            self.last.popleft()
        return topics.DEAD_LETTERS, letter_key, value

    async def park(self, source: Source, **details: Any) -> None:
        """Send the dead letter for one message and return once the broker has it."""
        assert self.send is not None, "a flow that parks by itself is given a send"
        topic, key, value = self.letter(source, **details)
        await self.send(topic, key, value)
