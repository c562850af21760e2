"""The outbox relay: publishes the ledger's events and outcomes to Kafka, in order, from tracked positions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from ledger.application import CreditLedger
from ledger.outcomes import REJECTED
from streams import topics
from streams.messages import ledger_message, outcome_message

log = logging.getLogger(__name__)

LEDGER_CURSOR = "credit.ledger"
OUTCOMES_CURSOR = "credit.outcomes"

# send(topic, key, value) schedules one record and returns an awaitable for its acknowledgement.
Send = Callable[[str, bytes, bytes], Awaitable[Awaitable[Any]]]


class Relay:
    """Reads the ledger's notification log and submission register after the last position it
    published, sends every record, waits for the broker's acknowledgement, and only then
    records the new position. A crash between sending and recording re-sends a tail that
    consumers recognise by ``position`` (and events by ``subject_key``/``version``); nothing
    is ever published that the ledger did not commit, and nothing committed is skipped.
    """

    def __init__(self, ledger: CreditLedger, send: Send, executor: Executor, *, page: int = 2000) -> None:
        self.ledger = ledger
        self.send = send
        self.executor = executor
        self.page = page
        self.published = {LEDGER_CURSOR: 0, OUTCOMES_CURSOR: 0}

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_once(self) -> int:
        """Publish everything committed so far; return how many records were sent."""
        sent = 0
        while True:
            batch = await self._relay_events() + await self._relay_outcomes()
            sent += batch
            if batch == 0:
                return sent

    async def _relay_events(self) -> int:
        recorder = self.ledger.recorder
        position: int = await self._db(recorder.relay_position, LEDGER_CURSOR)
        notifications = await self._db(recorder.select_notifications, position + 1, self.page)
        if not notifications:
            return 0
        decode = self.ledger.mapper.transcoder.decode
        acks = []
        for n in notifications:
            key, value = ledger_message(n.id, n.originator_id, n.originator_version, n.topic, decode(n.state))
            acks.append(await self.send(topics.LEDGER, key, value))
        await asyncio.gather(*acks)
        await self._db(recorder.save_relay_position, LEDGER_CURSOR, notifications[-1].id)
        self.published[LEDGER_CURSOR] += len(notifications)
        return len(notifications)

    async def _relay_outcomes(self) -> int:
        recorder = self.ledger.recorder
        position: int = await self._db(recorder.relay_position, OUTCOMES_CURSOR)
        receipts = await self._db(self.ledger.receipts_after, position)
        if not receipts:
            return 0
        acks = []
        for pos, receipt in receipts:
            key, value = outcome_message(pos, receipt)
            acks.append(await self.send(topics.OUTCOMES, key, value))
            if receipt.status == REJECTED:
                acks.append(await self.send(topics.REJECTIONS, key, value))
        await asyncio.gather(*acks)
        await self._db(recorder.save_relay_position, OUTCOMES_CURSOR, receipts[-1][0])
        self.published[OUTCOMES_CURSOR] += len(receipts)
        return len(receipts)

    def restart_from_beginning(self, cursor: str) -> None:
        """Re-publish everything (the topic was created empty, e.g. the embedded broker restarted)."""
        self.ledger.recorder.save_relay_position(cursor, 0)  # type: ignore[attr-defined]
        log.warning("relay %s will re-publish the whole ledger: the topic was empty", cursor)
