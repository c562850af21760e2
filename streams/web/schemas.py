"""JSON Schemas of the API's answers, referenced from the OpenAPI document's components."""

from __future__ import annotations

from typing import Any

from ledger.application.submissions import submission_schema

TEXT = {"type": "string"}
NULLABLE_TEXT = {"type": ["string", "null"]}
REASON = {
    "type": "object",
    "required": ["code", "field", "message"],
    "properties": {"code": TEXT, "field": TEXT, "message": TEXT},
}


def schemas() -> dict[str, Any]:
    """Every schema in ``components.schemas``: what the route table's ``$ref`` names."""
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": REASON},
            "description": "Every refusal: a stable code, the field at fault (or empty), a sentence",
        },
        "Submission": submission_schema(),
        "Reason": REASON,
        "Receipts": {
            "type": "object",
            "required": ["queued", "rejected", "receipts"],
            "properties": {
                "queued": {"type": "integer"},
                "rejected": {"type": "integer"},
                "receipts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "status"],
                        "properties": {
                            "index": {"type": "integer"},
                            "status": {"enum": ["queued", "rejected"]},
                            "submission_id": {},
                            "department": {},
                            "inbox_position": {
                                "type": "integer",
                                "description": "queued: its position in the ledger's inbox",
                            },
                            "source": {
                                "type": "string",
                                "description": "queued: inbox/<inbox_position>, the source its outcome names",
                            },
                            "partition": {
                                "type": ["integer", "null"],
                                "description": "null: recorded in the inbox, not yet on Kafka (docs/http.md)",
                            },
                            "offset": {"type": ["integer", "null"], "description": "null, as partition"},
                            "reason": REASON,
                        },
                    },
                },
            },
        },
        "Outcome": {
            "type": "object",
            "required": ["position", "status", "submission_id"],
            "properties": {
                "position": {"type": "integer"},
                "status": {"enum": ["accepted", "rejected"]},
                "department": NULLABLE_TEXT,
                "submission_id": TEXT,
                "subject_key": NULLABLE_TEXT,
                "events": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                "reason": REASON,
                "original": NULLABLE_TEXT,
                "source": {
                    "type": ["string", "null"],
                    "description": "where the platform read the submission: "
                    "credit.submissions/<partition>/<offset>@<timestamp>, or inbox/<position> over HTTP",
                },
            },
        },
        "Outcomes": {
            "type": "object",
            "required": ["outcomes", "next"],
            "properties": {
                "outcomes": {"type": "array", "items": {"$ref": "#/components/schemas/Outcome"}},
                "next": {"type": "integer"},
            },
        },
        "Queued": {
            "type": "object",
            "required": ["queued", "outcomes"],
            "properties": {
                "queued": TEXT,
                "inbox_position": {"type": "integer"},
                "source": TEXT,
                "outcomes": TEXT,
            },
        },
        "List": {
            "type": "object",
            "required": ["list", "count", "entries"],
            "properties": {
                "list": {"enum": ["black", "red"]},
                "count": {"type": "integer"},
                "entries": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Register": {
            "type": "object",
            "required": ["count", "queries", "hints"],
            "properties": {
                "count": {"type": "integer"},
                "queries": {"type": "array", "items": {"type": "object"}},
                "hints": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Check": {
            "type": "object",
            "required": [
                "subject",
                "department",
                "business",
                "reference",
                "result",
                "sanctions",
                "incentives",
            ],
            "properties": {
                "subject": {"type": "object"},
                "department": TEXT,
                "business": {"type": "object"},
                "reference": TEXT,
                "as_of": {**TEXT, "format": "date"},
                "ledger_version": {"type": "integer"},
                "result": {"enum": ["measures", "none"]},
                "sanctions": {"type": "array", "items": {"type": "object"}},
                "incentives": {"type": "array", "items": {"type": "object"}},
                "other_notices_in_force": {"type": "integer"},
            },
        },
        "MeasureStats": {
            "type": "object",
            "required": ["as_of", "totals", "by_department", "by_measure"],
            "properties": {
                "as_of": {**TEXT, "format": "date"},
                "filters": {"type": "object"},
                "totals": {"type": "object"},
                "by_department": {"type": "array", "items": {"type": "object"}},
                "by_measure": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Checkpoints": {
            "type": "object",
            "required": ["checkpoints"],
            "properties": {"checkpoints": {"type": "array", "items": {"type": "object"}}},
        },
        "PublicKey": {
            "type": "object",
            "required": ["algorithm", "public_key", "key_id"],
            "properties": {
                "algorithm": {"const": "Ed25519"},
                "public_key": TEXT,
                "key_id": TEXT,
                "origin": TEXT,
                "vkey": {**TEXT, "description": "the signed-note verifier key of the log's checkpoints"},
            },
        },
        "Index": {
            "type": "object",
            "required": ["openapi", "routes"],
            "properties": {
                "openapi": TEXT,
                "routes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["method", "path", "summary"],
                        "properties": {"method": TEXT, "path": TEXT, "summary": TEXT},
                    },
                },
            },
        },
        "Health": health_schema(),
    }


def health_schema() -> dict[str, Any]:
    """GET /v1/health's document; docs/streams.md#the-health-endpoint explains each field."""
    by_cursor = {
        "type": "object",
        "properties": {
            "credit.ledger": {"type": "integer"},
            "credit.outcomes": {"type": "integer"},
            "inbox": {
                "type": "integer",
                "description": "the HTTP doors' inbox, drained to credit.submissions",
            },
        },
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
