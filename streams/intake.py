"""The intake: batches of raw submissions from Kafka into the ledger, each with exactly one outcome."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from ledger.application import CreditLedger
from ledger.outcomes import Outcome

log = logging.getLogger(__name__)

EX_SOFTWARE = 70
"""Exit status when the worker must stop without committing offsets (see ``apply_batch``)."""


def source_of(message: Any) -> str:
    """Where a message came from: the receipt key for a message that has no usable id of its own."""
    return f"{message.topic}/{message.partition}/{message.offset}"


async def apply_batch(
    ledger: CreditLedger,
    executor: Executor,
    values: Sequence[bytes],
    sources: Sequence[str],
    *,
    first_delay: float = 0.5,
    max_delay: float = 10.0,
) -> list[Outcome]:
    """Apply one batch, retrying while the database is unavailable, until it is applied.

    Faust acknowledges a ``take_events`` batch when the loop body ends, even when it ends by
    cancellation. So if the worker is stopped while this batch is not yet in the ledger, the
    process exits at once (status 70) instead of letting those offsets be committed: the
    batch is redelivered on restart, and the ledger's receipts make that redelivery harmless.
    """
    loop = asyncio.get_running_loop()
    delay = first_delay
    while True:
        future = executor.submit(ledger.submit_safely, list(values), sources=list(sources))
        try:
            return await asyncio.shield(asyncio.wrap_future(future, loop=loop))
        except asyncio.CancelledError:
            try:
                future.result()  # the ledger transaction finishes (or fails) within moments
            except Exception:
                log.critical("stopping mid-batch with the batch not applied: exiting without commit")
                os._exit(EX_SOFTWARE)
            raise
        except Exception:
            log.exception("the ledger could not apply a batch of %d; retrying in %.1fs", len(values), delay)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            log.critical("stopping while the ledger is unavailable: exiting without commit")
            os._exit(EX_SOFTWARE)
        delay = min(delay * 2, max_delay)
