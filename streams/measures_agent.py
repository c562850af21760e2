"""The demo's implementing departments on a Faust agent: notices in, feedback submissions out.

A thin ``async for`` agent on ``credit.measures``: decode each message, ask a pure function what
the department it is addressed to answers, send that to ``credit.submissions``. This flow is
where Faust's per-event delivery (about 80 µs an event, docs/streams.md) costs nothing that
matters: notices come a few dozen per designation, far below the 12,000 events/s an agent
delivers, and each answer is one small message. Its position lives in the Faust app's consumer
group (committed after each message is handled, so at least once); there is no state to keep.
A redelivered notice gets the same submission id: the ledger answers it as a duplicate, or, if
the first answer was dated "now" and this one later, refuses it as a conflict (the first stands).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from contract import topics
from contract.messages import submission_key
from streams.app import platform_topic

log = logging.getLogger(__name__)

Respond = Callable[[dict[str, Any], datetime], dict[str, Any] | None]
"""respond(message, now): the submission a department sends for a credit.measures message, or None."""

AGENT_NAME = "credit-ledger.demo-departments"


async def answer_notices(
    values: AsyncIterable[bytes],
    respond: Respond,
    send: Callable[[bytes, bytes], Awaitable[Any]],
    clock: Callable[[], datetime],
) -> None:
    """What the agent does: each message decoded, answered by ``respond``, the answer sent."""
    async for value in values:
        try:
            submission = respond(orjson.loads(value), clock())
        except (ValueError, KeyError, TypeError):
            log.warning("a credit.measures message the demo departments cannot read; skipped")
            continue
        if submission is not None:
            await send(submission_key(submission), orjson.dumps(submission))


def register_feedback_agent(
    app: faust.App, respond: Respond, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Any:
    """Add the departments' agent to ``app`` (before its worker starts); returns the agent."""
    measures = platform_topic(app, topics.MEASURES)
    submissions = platform_topic(app, topics.SUBMISSIONS)

    async def send(key: bytes, value: bytes) -> Any:
        return await submissions.send(key=key, value=value)

    async def departments(stream: faust.StreamT[bytes]) -> None:
        await answer_notices(stream, respond, send, clock)

    return app.agent(measures, name=AGENT_NAME)(departments)
