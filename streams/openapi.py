"""The OpenAPI document the server publishes at /v1/openapi.json."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from ledger.application.submissions import submission_schema


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
            "version": version("credit-ledger"),
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
            "/v1/queries/status": {
                "post": {
                    "summary": "A subject's credit status: authorised (API key), purposeful and recorded",
                    "security": [{"apiKey": []}, {"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["subject"],
                                    "properties": {
                                        "subject": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {"id": {"type": "string"}},
                                        },
                                        "purpose": {
                                            "type": "string",
                                            "description": "a query purpose from the catalogue",
                                        },
                                        "basis": {
                                            "type": "string",
                                            "description": "legal basis (departments)",
                                        },
                                        "authorisation_id": {
                                            "type": "string",
                                            "description": "the subject's grant to your organisation",
                                        },
                                        "as_of": {"type": "string", "format": "date-time"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "The status"},
                        "400": {"description": "Bad identity number"},
                        "401": {"description": "Invalid key"},
                        "403": {"description": "Refused (recorded)"},
                        "404": {"description": "No file"},
                        "503": {"description": "Could not be recorded: nothing returned"},
                    },
                }
            },
            "/v1/me/status": {
                "get": {
                    "summary": "Your own status (role subject)",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/v1/me/queries": {
                "get": {
                    "summary": "Who queried your file in the last two years",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/v1/me/report": {
                "get": {
                    "summary": "Your full report (file, status, lists, queries); two free a year",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/v1/me/authorisations": {
                "post": {
                    "summary": "Authorise an organisation to query your file for a purpose",
                    "security": [{"bearer": []}],
                    "responses": {"202": {"description": "Queued"}},
                }
            },
            "/v1/me/authorisations/{authorisation_id}/revoke": {
                "post": {
                    "summary": "Revoke an authorisation",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "authorisation_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"202": {"description": "Queued"}},
                }
            },
            "/v1/lists/{list}": {
                "get": {
                    "summary": "The public black or red list (identity numbers masked); recorded",
                    "parameters": [
                        {
                            "name": "list",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["black", "red"]},
                        },
                        {"name": "domain", "in": "query", "schema": {"type": "string"}},
                        {"name": "department", "in": "query", "schema": {"type": "string"}},
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"}},
                    ],
                    "responses": {"200": {"description": "Entries"}},
                }
            },
            "/v1/audit/queries": {
                "get": {
                    "summary": "The query register with anomaly hints (role auditor)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("requester", "organisation", "subject_key", "purpose", "since", "until")
                    ],
                    "responses": {
                        "200": {"description": "Records and hints"},
                        "403": {"description": "Not an auditor"},
                    },
                }
            },
            "/v1/proofs/checkpoints": {
                "get": {
                    "summary": "Signed checkpoints of the ledger's Merkle tree",
                    "responses": {"200": {"description": "Checkpoints"}},
                }
            },
            "/v1/proofs/inclusion": {
                "get": {
                    "summary": "Inclusion proof (RFC 9162) of an event in the tree at a checkpoint size",
                    "parameters": [
                        {"name": "position", "in": "query", "schema": {"type": "integer"}},
                        {"name": "event_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                        {
                            "name": "size",
                            "in": "query",
                            "schema": {"type": "integer"},
                            "description": "default: the latest checkpoint",
                        },
                    ],
                    "responses": {
                        "200": {"description": "The proof"},
                        "404": {"description": "No such event"},
                        "409": {"description": "The event is newer than the latest checkpoint"},
                    },
                }
            },
            "/v1/proofs/consistency": {
                "get": {
                    "summary": "Consistency proof (RFC 9162) between two tree sizes",
                    "parameters": [
                        {"name": "old", "in": "query", "required": True, "schema": {"type": "integer"}},
                        {"name": "new", "in": "query", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {"200": {"description": "The proof"}},
                }
            },
            "/v1/proofs/public-key": {
                "get": {
                    "summary": "The operator's Ed25519 checkpoint key (verify it out of band)",
                    "responses": {"200": {"description": "Key and key id"}},
                }
            },
            "/v1/health": {
                "get": {
                    "summary": "Progress and lag of the intake, relay and read models, judged ok or degraded",
                    "description": "Degraded still answers 200: a stalled relay or projector must not take "
                    "the API out of a load balancer. Stalls are judged across calls: a follower behind "
                    "and not moving for stall_seconds (CREDIT_HEALTH_STALL_SECONDS, default 30).",
                    "responses": {
                        "200": {
                            "description": "ok, or degraded with problems",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                        "503": {
                            "description": "The ledger database could not be read: ledger_unreadable",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                            },
                        },
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from 'credit-ledger keys issue'",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
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
                "Health": _health_schema(),
            },
        },
    }


def _health_schema() -> dict[str, Any]:
    """GET /v1/health's document; docs/streams.md#the-health-endpoint explains each field."""
    by_cursor = {
        "type": "object",
        "properties": {"credit.ledger": {"type": "integer"}, "credit.outcomes": {"type": "integer"}},
    }
    partition = {
        "type": "object",
        "properties": {
            "partition": {"type": "integer"},
            "position": {"type": ["integer", "null"], "description": "the next offset to fetch"},
            "highwater": {"type": ["integer", "null"], "description": "as the last fetch reported it"},
            "lag": {"type": ["integer", "null"]},
        },
    }
    return {
        "type": "object",
        "required": ["status", "problems", "intake", "topics"],
        "properties": {
            "status": {"enum": ["ok", "degraded", "unavailable"]},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {
                            "enum": [
                                "relay_stalled",
                                "projections_stalled",
                                "projections_unreadable",
                                "intake_backlog",
                                "ledger_unreadable",
                            ]
                        },
                        "message": {"type": "string"},
                    },
                },
            },
            "intake": {
                "type": "object",
                "description": "this worker's intake since it started",
                "properties": {
                    "batches": {"type": "integer"},
                    "submissions": {"type": "integer"},
                    "applying_seconds": {"type": "number"},
                    "lag": {
                        "type": "integer",
                        "description": "records waiting on this worker's partitions of credit.submissions "
                        "(approximate: high watermarks from the last fetch)",
                    },
                    "partitions": {"type": "array", "items": partition},
                },
            },
            "relayed_up_to": {**by_cursor, "description": "the relay's saved positions"},
            "ledger_head": {
                **by_cursor,
                "description": "the ledger's last notification id and last receipt position",
            },
            "relay_lag": {**by_cursor, "description": "ledger_head minus relayed_up_to"},
            "projections": {
                "type": ["object", "null"],
                "description": "null when this worker has no projection store",
                "properties": {
                    "projected_up_to": {"type": ["integer", "null"]},
                    "lag": {
                        "type": ["integer", "null"],
                        "description": "relayed credit.ledger events not yet in the read models",
                    },
                },
            },
            "stall_seconds": {"type": "number"},
            "topics": {"type": "array", "items": {"type": "string"}},
        },
    }
