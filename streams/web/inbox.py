"""The doors' inbox write: what an HTTP route recorded before it answered (``ledger.domain.inbox``)."""

from __future__ import annotations

import asyncio

from ledger.application.service import TRANSIENT
from ledger.domain.inbox import InboxItem
from streams.web.api import Api
from streams.web.calls import ApiError


async def record(api: Api, items: list[InboxItem]) -> list[int]:
    """Record ``items`` in the inbox (one transaction, on the ledger thread); their positions.

    503 ``inbox_unavailable`` when the database does not answer: then nothing was recorded.
    """
    ledger = api.parts.ledger
    try:
        return await asyncio.get_running_loop().run_in_executor(
            api.parts.executor, ledger.record_in_inbox, items
        )
    except TRANSIENT:
        message = (
            "the submissions could not be recorded: the ledger's database did not answer; "
            "nothing was queued, send the request again"
        )
        raise ApiError(503, "inbox_unavailable", "", message) from None
