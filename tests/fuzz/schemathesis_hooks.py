"""schemathesis hooks for this API, loaded by the run in test_openapi_schemathesis.py."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """The document says a JSON-lines body is a string: it is sent as it is, in UTF-8."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()
