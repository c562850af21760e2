"""The inbox drain: publishes what the HTTP doors recorded to credit.submissions, in order, sealed.

It runs in the relay process, under the relay's lease, interleaved page by page with the relay's
own work (``Relay(drain=...)``). Why there and not in the intake's process: the intake is bound to
one core by the GIL and the drain's work (read a page, publish it) would be taken from it, while
the relay already owns a producer, a lease (one drainer at a time, whatever the number of
workers), tracked positions in the ledger and the "publish, wait for every acknowledgement, then
save the position" discipline the drain needs. Measured: docs/benchmarks.md (the inbox).

Each page of rows after the cursor ``INBOX_CURSOR`` is read, opened (the rows are sealed in the
database: ``CreditLedger.inbox_page``), with whether each row is decided already; the undecided
ones are published, keyed as the department's would be and carrying the seal
(``ledger.domain.inbox``), and only once the broker has acknowledged all of them does the cursor
move past the page. A crash in between publishes the page again: the intake reads a sealed
message under its inbox source, so a copy changes no outcome. When the embedded broker has lost
its topics, ``serve`` sets the cursor back to 0: every row is read again, the decided ones are
skipped, and the ones that were on the lost topic but never decided are published again.

A row the broker refuses for itself (too large for its limits, say) is rejected in the ledger as
``internal_error`` under its source, so it still has its one outcome, parked on
credit.dead-letters with its inbox position, and the drain goes on. So is a row whose stored
ciphertext no longer opens (``InboxEntry.altered``), without being published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import orjson

from contract import topics
from contract.deadletters import RELAY, Source
from ledger.application.reception import internal_error
from ledger.application.service import CreditLedger
from ledger.domain import errors
from ledger.domain.inbox import INBOX_HEADER, InboxEntry, inbox_source
from streams.isolation import Backoff, DeadLetters, Failure, correlation_id, settle
from streams.producing import RECORD_ERRORS

log = logging.getLogger(__name__)

INBOX_CURSOR = "inbox"
"""The relay position (``relay_positions``) of the last inbox row the drain has moved past."""

Headers = list[tuple[str, bytes]]
SendHeaded = Callable[[str, bytes, bytes, Headers], Awaitable[Awaitable[Any]]]
"""send(topic, key, value, headers) hands one record to the producer and returns the awaitable of
its acknowledgement (aiokafka's ``producer.send``); records of one partition keep their order."""


def classify(exc: Exception) -> Failure:
    """A record the broker will never take is parked; anything else ends the relay process."""
    return Failure.POISON if isinstance(exc, RECORD_ERRORS) else Failure.FATAL


class InboxDrain:
    """Moves the inbox's undecided rows to credit.submissions; see the module's description."""

    def __init__(
        self,
        ledger: CreditLedger,
        send: SendHeaded,
        executor: Executor,
        *,
        page: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        self.ledger = ledger
        self.send = send
        self.executor = executor
        self.page = page
        self.backoff = backoff or Backoff()
        self.dead_letters = DeadLetters(RELAY)
        self.published = 0
        self._cursor: int | None = None

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_once(self) -> int:
        """Drain one page; how many rows it moved past (0: the inbox is drained)."""
        if self._cursor is None:
            self._cursor = await self._db(self.ledger.reader.relay_position, INBOX_CURSOR)
        entries: list[InboxEntry] = await self._db(self.ledger.inbox_page, self._cursor, self.page)
        if not entries:
            return 0
        pending = [e for e in entries if not e.decided and e.altered is None]
        for entry in entries:
            if not entry.decided and entry.altered is not None:
                await self._reject_altered(entry, entry.altered)
        await settle(
            pending, self._publish, self._park, classify=classify, backoff=self.backoff, what="a page"
        )
        last = entries[-1].position
        await self._db(self.ledger.reader.save_relay_position, INBOX_CURSOR, last)
        self._cursor = last
        return len(entries)

    async def _publish(self, entries: Sequence[InboxEntry]) -> None:
        seal = self.ledger.inbox_seal
        acks = []
        try:
            for entry in entries:
                headers = [(INBOX_HEADER, seal.header(entry.position, entry.item.value))]
                acks.append(await self.send(topics.SUBMISSIONS, entry.item.key, entry.item.value, headers))
        except BaseException:
            asyncio.gather(*acks, return_exceptions=True)  # what was handed over may fail too, unobserved
            raise
        await asyncio.gather(*acks)
        self.published += len(entries)

    async def _reject_altered(self, entry: InboxEntry, why: str) -> None:
        """A row whose stored ciphertext does not open: tampered with in the database, or restored
        beside the wrong key. Nothing of it can be published; it is rejected in the ledger, so its
        sender still gets one outcome, and the rows after it go on."""
        correlation, source, item = correlation_id(), inbox_source(entry.position), entry.item
        log.error(
            "inbox row %d fails its integrity check (%s): rejected under %s, not published "
            "(correlation id %s)",
            entry.position,
            why,
            source,
            correlation,
        )
        reason = errors.reason(
            "internal_error",
            "",
            "the platform could not read this submission back from its inbox: the stored copy fails its "
            f"integrity check; operators have the details in its log under correlation id {correlation}",
        )
        # Registered as the inbox's "decided" reads it: under the department's own submission id
        # (kept in clear beside the ciphertext) when the row has one, else under its source.
        named = item.department is not None and item.submission_id is not None
        raw = orjson.dumps({"department": item.department, "submission_id": item.submission_id})
        await self._db(self.ledger.reject_unapplicable, raw if named else item.value, source, reason)

    async def _park(self, entry: InboxEntry, error: Exception) -> None:
        correlation = correlation_id()
        source = inbox_source(entry.position)
        log.error(
            "the broker refuses inbox row %d (%s); rejecting it as internal_error and parking it on %s "
            "(correlation id %s)",
            entry.position,
            error,
            topics.DEAD_LETTERS,
            correlation,
        )
        try:
            raise error
        except Exception:  # logged under the reason's own correlation id, with the traceback
            reason = internal_error("inbox row %d cannot be published", entry.position)
        outcome = await self._db(self.ledger.reject_unapplicable, entry.item.value, source, reason)
        topic, key, value = self.dead_letters.letter(
            Source(topics.SUBMISSIONS, position=entry.position),
            key=entry.item.key,
            payload=entry.item.value,
            error=error,
            reason=f"the broker refused the inbox row; it was rejected as internal_error under {source}",
            correlation=correlation,
            receipt={
                "department": outcome.department,
                "submission_id": outcome.submission_id,
                "status": outcome.status,
            },
        )
        await (await self.send(topic, key, value, []))
