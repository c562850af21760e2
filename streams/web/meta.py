"""GET /v1/ and GET /v1/openapi.json: what the API serves, from the routes it serves."""

from __future__ import annotations

from streams.web.api import Api
from streams.web.calls import Call, Reply
from streams.web.openapi import openapi_document


async def index(api: Api, call: Call) -> Reply:
    """Every route with its summary, and where the full document is."""
    routes = [{"method": r.method, "path": r.path, "summary": r.summary} for r in api.routes]
    return Reply(200, {"title": "credit-ledger API", "openapi": "/v1/openapi.json", "routes": routes})


async def openapi(api: Api, call: Call) -> Reply:
    return Reply(200, openapi_document(api.routes))
