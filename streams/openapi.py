"""The OpenAPI document the server publishes at /v1/openapi.json."""

from __future__ import annotations

from typing import Any

from credit_ledger import __version__
from ledger.submissions import submission_schema


def openapi_document() -> dict[str, Any]:
    reason = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "field": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "credit-ledger API",
            "version": __version__,
            "description": "Submit credit events and read their outcomes. Every submission ends accepted "
            "(with the ids of the ledger events it produced) or rejected (with a reason).",
        },
        "paths": {
            "/v1/submissions": {
                "post": {
                    "summary": "Publish a batch of submissions to credit.submissions",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Submission"},
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Submission"},
                                        },
                                    ]
                                }
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Queued; read outcomes from /v1/outcomes or credit.outcomes",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Receipts"}}
                            },
                        },
                        "400": {"description": "The body is not JSON"},
                        "413": {"description": "Too many submissions in one request"},
                    },
                }
            },
            "/v1/outcomes": {
                "get": {
                    "summary": "Outcomes after a position, optionally for one department",
                    "parameters": [
                        {"name": "department", "in": "query", "schema": {"type": "string"}},
                        {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "default": 1000, "maximum": 10000},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Outcomes in register order",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Outcomes"}}
                            },
                        }
                    },
                }
            },
            "/v1/health": {
                "get": {"summary": "Liveness and relay progress", "responses": {"200": {"description": "OK"}}}
            },
            "/v1/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
            },
        },
        "components": {
            "schemas": {
                "Submission": submission_schema(),
                "Reason": reason,
                "Receipts": {
                    "type": "object",
                    "properties": {
                        "queued": {"type": "integer"},
                        "rejected": {"type": "integer"},
                        "receipts": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Outcome": {
                    "type": "object",
                    "required": ["position", "status", "submission_id"],
                    "properties": {
                        "position": {"type": "integer"},
                        "status": {"enum": ["accepted", "rejected"]},
                        "department": {"type": ["string", "null"]},
                        "submission_id": {"type": "string"},
                        "subject_key": {"type": ["string", "null"]},
                        "events": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                        "reason": {"$ref": "#/components/schemas/Reason"},
                        "original": {"type": ["string", "null"]},
                    },
                },
                "Outcomes": {
                    "type": "object",
                    "properties": {
                        "outcomes": {"type": "array", "items": {"$ref": "#/components/schemas/Outcome"}},
                        "next": {"type": "integer"},
                    },
                },
            }
        },
    }
