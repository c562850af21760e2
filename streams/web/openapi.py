"""The OpenAPI 3.1 document, written from the route table: the paths served are the paths documented."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib.metadata import version
from typing import Any

from streams.web.calls import JSON, NONE, OPTIONAL, Route
from streams.web.schemas import schemas

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]

SERVER_STATUSES = {
    500: "internal_error: an unexpected failure, with a correlation id the operator finds in the log",
}
BODY_STATUSES = {
    400: "undecodable: the body is not JSON",
    413: "body_too_large: the body is over this route's limit",
}
KEY_STATUSES = {401: "invalid_key (recorded), or not_authenticated: this needs a key"}
REGISTER_STATUSES = {503: "audit_unavailable: the query could not be recorded, so nothing is returned"}


def statuses(route: Route) -> dict[int, str]:
    """Every status ``route`` answers, described: its own and those the server adds by kind."""
    found = dict(SERVER_STATUSES)
    if route.max_body:
        found.update(BODY_STATUSES)
    if route.auth != NONE:
        found.update(KEY_STATUSES)
    if route.endpoint is not None:
        found.update(REGISTER_STATUSES)
    found.update(route.responses)
    return dict(sorted(found.items()))


def operation(route: Route) -> dict[str, Any]:
    """One route as an OpenAPI operation object."""
    responses: dict[str, Any] = {}
    for status, description in statuses(route).items():
        schema = route.response_schemas.get(status)
        if schema is None and status >= 400:
            schema = {"$ref": "#/components/schemas/Error"}
        response: dict[str, Any] = {"description": description}
        media = route.media_type if status < 400 else JSON
        if media != JSON:
            response["content"] = {media: {"schema": schema} if schema is not None else {}}
        elif schema is not None:
            response["content"] = {JSON: {"schema": schema}}
        responses[str(status)] = response
    op: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "responses": responses,
    }
    if route.description:
        op["description"] = route.description
    if route.parameters:
        op["parameters"] = [dict(p) for p in route.parameters]
    if route.request_body is not None:
        op["requestBody"] = {"required": True, "content": dict(route.request_body)}
    if route.auth != NONE:
        # An empty requirement first: the public may call it too, and is answered as the public.
        op["security"] = [{}, *SECURITY] if route.auth == OPTIONAL else SECURITY
    if route.endpoint is not None:
        op["x-query-register"] = route.endpoint
    return op


def operation_id(route: Route) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", route.path.removeprefix("/v1/").lower()).strip("_")
    return f"{route.method.lower()}_{words or 'index'}"


def openapi_document(routes: Iterable[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "credit-ledger API",
            "version": version("credit-ledger"),
            "description": "Submit credit events and read their outcomes; query a subject's status "
            "with an API key, every query recorded; prove the ledger. Every refusal is "
            '{"error": {"code", "field", "message"}}. Limits: docs/http.md.',
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from 'credit-ledger keys issue'",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": schemas(),
        },
    }


def served_operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation a document describes."""
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
