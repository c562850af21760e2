"""Handlers of the joint-measures routes: check a subject before approving, and the supervision figures.

Both are answered by ``ledger.application.measures.MeasuresService`` and recorded in the query
register before they are answered; an identity number travels in the body of a POST, never a URL.
"""

from __future__ import annotations

from typing import Any

from streams.web.api import Api
from streams.web.bodies import json_object
from streams.web.calls import Call, Reply
from streams.web.queries import reply, subject_id

STATS_FILTERS = ("department", "since", "until")


async def check(api: Api, call: Call) -> Reply:
    """``{"subject": {"id": CODE}, "business": TYPE, "reference": REF, "department"?: D}``."""
    request: Any = await json_object(call)
    code = subject_id(request, '"business": TYPE, "reference": REF')
    return reply(
        api.measures.check(
            call.who,
            code,
            business=request.get("business"),
            reference=request.get("reference"),
            department=request.get("department"),
            channel=call.channel,
        )
    )


async def stats(api: Api, call: Call) -> Reply:
    filters = {name: call.query.get(name) or None for name in STATS_FILTERS}
    return reply(api.measures.stats(call.who, channel=call.channel, **filters))
