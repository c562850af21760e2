"""The route table: every route of the HTTP API, declared once.

``streams.http`` registers a view for each; ``streams.web.openapi`` writes each as an OpenAPI
operation; ``GET /v1/`` lists them. Statuses every route of a kind answers are added by
``streams.web.openapi.statuses`` (500 everywhere; 400 and 413 where a body is read; 401 where a key
is read; 503 where the query register records), so a table entry lists only its own.

One module of just over 400 lines because it is one table: the served API and its document are
read from it, and a table split in two could no longer be read, or checked, as the whole API.
"""

from __future__ import annotations

from typing import Any

from projections.publicity import PUBLICITY_CATEGORIES
from streams.health import register_health_view
from streams.web import measures, meta, proof_views, proofs, publicity, queries, submissions
from streams.web.calls import OPTIONAL, REQUIRED, Route

SMALL_BODY = 64 * 1024
"""The largest status query or grant read (bytes): far above any real one."""


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**parameter, "description": description} if description else parameter


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


TEXT = {"type": "string"}
STATUS_BODY = {
    "type": "object",
    "required": ["subject"],
    "properties": {
        "subject": {"type": "object", "required": ["id"], "properties": {"id": TEXT}},
        "purpose": {**TEXT, "description": "a query purpose from the catalogue"},
        "basis": {**TEXT, "minLength": 1, "description": "legal basis (departments, administrators)"},
        "authorisation_id": {**TEXT, "description": "the subject's grant to your organisation"},
        "as_of": {**TEXT, "format": "date-time", "description": "the status as recorded by then"},
    },
}
GRANT_BODY = {
    "type": "object",
    "required": ["authorisation_id", "organisation", "purpose", "valid_from", "valid_until"],
    "properties": {
        "authorisation_id": {**TEXT, "minLength": 1, "maxLength": 1000},
        "organisation": TEXT,
        "purpose": TEXT,
        "valid_from": {**TEXT, "format": "date"},
        "valid_until": {**TEXT, "format": "date"},
    },
}
SUBMISSIONS_BODY = {
    "application/json": {
        "schema": {
            "oneOf": [
                {"type": "object", "description": "one submission (#/components/schemas/Submission)"},
                {"type": "array", "maxItems": submissions.MAX_BATCH, "items": {}},
            ]
        }
    },
    "application/x-ndjson": {"schema": {**TEXT, "description": "one submission per line"}},
}
OUTCOMES_PARAMETERS = (
    _query("department", TEXT, "the administrator: one department's; a department: its own only"),
    _query("after", {"type": "integer", "minimum": 0, "default": 0}, "a register position"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": submissions.MAX_OUTCOMES, "default": 1000}),
)
LIST_PARAMETERS = (
    _path("list_name", {"enum": list(queries.LISTS)}),
    _query("domain", TEXT),
    _query("department", TEXT),
    _query("since", {**TEXT, "format": "date"}),
    _query("until", {**TEXT, "format": "date"}),
)
CHECK_BODY = {
    "type": "object",
    "required": ["subject", "business", "reference"],
    "properties": {
        "subject": {"type": "object", "required": ["id"], "properties": {"id": TEXT}},
        "business": {
            **TEXT,
            "description": "a business type from the catalogue (administrative_licence, ...)",
        },
        "reference": {**TEXT, "minLength": 1, "description": "your case or application number"},
        "department": {
            **TEXT,
            "description": "the department checking: your own (the administrator names one)",
        },
    },
}
STATS_PARAMETERS = (
    _query("department", TEXT, "one implementing department's (a department's key: its own only)"),
    _query("since", {**TEXT, "format": "date"}, "notices issued on or after this day"),
    _query("until", {**TEXT, "format": "date"}, "notices issued on or before this day"),
)
SIZE = {"type": "integer", "minimum": 0}
ME = {200: "The answer", 403: "forbidden_role: for role subject (recorded)"}


def _me(what: str, summary: str) -> Route:
    return Route(
        "GET",
        f"/v1/me/{what}",
        summary,
        queries.me(what),
        ME,
        auth=REQUIRED,
        endpoint=f"me.{what}",
        response_schemas={200: {"type": "object"}},
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/",
        "This index: every route with its summary, and a link to the OpenAPI document",
        meta.index,
        {200: "The routes"},
        response_schemas={200: _ref("Index")},
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        "This API's OpenAPI 3.1 document",
        meta.openapi,
        {200: "The document"},
        response_schemas={200: {"type": "object", "required": ["openapi", "paths"]}},
    ),
    Route(
        "POST",
        "/v1/submissions",
        "Record a batch of submissions for the intake; a receipt per item",
        submissions.submit,
        {
            202: "Recorded in the inbox: read each outcome at /v1/outcomes or on credit.outcomes "
            "(its source is the receipt's source)",
            400: "undecodable: the body is not JSON, or not an object, an array or JSON lines",
            413: "batch_too_large: a body over 16 MiB or more than 10,000 submissions",
            503: "inbox_unavailable: the ledger's database did not answer; nothing was recorded",
        },
        max_body=submissions.MAX_BODY,
        request_body=SUBMISSIONS_BODY,
        response_schemas={202: _ref("Receipts")},
        description="A JSON object, a JSON array, or JSON lines (Content-Type: application/x-ndjson). "
        "Every item accepted is recorded in the ledger's inbox, in one transaction, before the answer: "
        "a receipt is never lost. The relay then publishes it to credit.submissions. An item that is "
        "not a JSON object, nests too deeply or is larger than one Kafka message is refused in its "
        "receipt and not recorded; the others are. Limits: docs/http.md.",
    ),
    Route(
        "GET",
        "/v1/outcomes",
        "Your own submissions' outcomes after a register position (a department's key); recorded",
        submissions.outcomes,
        {200: "Outcomes in register order", 400: "invalid_query: after or limit", 403: "not yours"},
        auth=REQUIRED,
        endpoint="outcomes",
        parameters=OUTCOMES_PARAMETERS,
        response_schemas={200: _ref("Outcomes")},
        description="A department's key reads its own submissions' outcomes, the administrator's "
        "everyone's, a subject's the outcomes of their own grants and revocations.",
    ),
    Route(
        "GET",
        "/v1/outcomes/{position}/original",
        "The whole original of one of your rejected submissions (outcome messages carry a preview)",
        submissions.original,
        {200: "The bytes as received", 400: "invalid_query: position", 403: "not yours", 404: "none"},
        auth=REQUIRED,
        endpoint="outcomes.original",
        parameters=(_path("position", {"type": "integer", "minimum": 1}),),
        response_schemas={200: {"type": "object", "required": ["position", "original"]}},
        description="Outcome and rejection messages are bounded (256 KiB): a larger original comes "
        "as a preview with original_ref, this path. A department's key reads its own.",
    ),
    Route(
        "POST",
        "/v1/queries/status",
        "A subject's credit status: authorised, purposeful, and recorded before it is returned",
        queries.status,
        {
            200: "The status",
            400: "invalid_input or invalid_subject_code, naming the field (recorded)",
            403: "Refused (recorded)",
            404: "no_file: no credit file for this subject (recorded as answered)",
        },
        auth=OPTIONAL,
        endpoint="status",
        max_body=SMALL_BODY,
        request_body=_json(STATUS_BODY),
        response_schemas={200: {"type": "object"}},
    ),
    _me("status", "Your own status (role subject); recorded"),
    _me("queries", "Who queried your file in the last two years (role subject); recorded"),
    _me("report", "Your full report: file, status, lists, queries; two free a year (role subject)"),
    Route(
        "POST",
        "/v1/me/authorisations",
        "Authorise an organisation to query your file for a purpose (role subject)",
        queries.grant,
        {
            202: "Queued as the platform's grant_authorisation",
            400: "invalid_input",
            403: "Refused (recorded)",
        },
        auth=REQUIRED,
        endpoint="me.authorisations",
        max_body=SMALL_BODY,
        request_body=_json(GRANT_BODY),
        response_schemas={202: _ref("Queued")},
    ),
    Route(
        "POST",
        "/v1/me/authorisations/{authorisation_id}/revoke",
        "Revoke one of your authorisations (role subject)",
        queries.revoke,
        {202: "Queued as the platform's revoke_authorisation", 400: "invalid_input", 403: "Refused"},
        auth=REQUIRED,
        endpoint="me.authorisations",
        parameters=(_path("authorisation_id", TEXT),),
        response_schemas={202: _ref("Queued")},
    ),
    Route(
        "GET",
        "/v1/lists/{list_name}",
        "The black or red list (public; identity numbers masked); recorded",
        queries.lists,
        {200: "The entries", 404: "not_found: lists are black and red"},
        auth=OPTIONAL,
        endpoint="lists",
        parameters=LIST_PARAMETERS,
        response_schemas={200: _ref("List")},
    ),
    Route(
        "POST",
        "/v1/checks",
        "Check a subject before approving (应查必查): the measures your department must or may apply",
        measures.check,
        {
            200: "The notices in force for your department and business, the incentives, or result none",
            400: "invalid_input, invalid_subject_code, or not_in_catalogue (business, department), "
            "naming the field (recorded)",
            403: "forbidden_role or not_own_department (recorded)",
        },
        auth=REQUIRED,
        endpoint="check",
        max_body=SMALL_BODY,
        request_body=_json(CHECK_BODY),
        response_schemas={200: _ref("Check")},
        description="Recorded in the query register before it is answered: requester, organisation, "
        "purpose (the business type), subject, reference, the answer's digest. docs/measures.md",
    ),
    Route(
        "GET",
        "/v1/measures/stats",
        "Supervision of joint measures per department and measure (奖惩到位率); recorded",
        measures.stats,
        {
            200: "Totals, by department, by measure",
            400: "invalid_input: since or until is not a date (recorded)",
            403: "forbidden_role or not_own_department (recorded)",
        },
        auth=REQUIRED,
        endpoint="measures.stats",
        parameters=STATS_PARAMETERS,
        response_schemas={200: _ref("MeasureStats")},
        description="A department's key reads its own figures; the administrator's and auditors' "
        "everyone's. docs/measures.md#supervision",
    ),
    Route(
        "GET",
        "/v1/publicity",
        "双公示: administrative licences and penalties in their publicity period (public, masked ids)",
        publicity.publicity,
        {
            200: "One page, newest decision first",
            400: "invalid_query: a filter or the page",
            503: "no_read_models (this worker serves none) or read_models_unavailable",
        },
        parameters=(
            _query("domain", TEXT),
            _query("department", TEXT),
            _query("since", {**TEXT, "format": "date"}, "decided on or after"),
            _query("until", {**TEXT, "format": "date"}, "decided on or before"),
            _query("category", {"enum": list(PUBLICITY_CATEGORIES)}),
            _query("page", {"type": "integer", "minimum": 1, "maximum": publicity.MAX_PAGE, "default": 1}),
        ),
        response_schemas={200: {"type": "object", "required": ["total", "page", "items"]}},
        description="The same items as the portal's /publicity page. A person's licences are not "
        "public; items leave at the end of their publicity period, or on repair or revocation, and "
        "stay in the ledger's history. docs/portal.md",
    ),
    Route(
        "GET",
        "/v1/audit/queries",
        "The query register with anomaly hints (role auditor); recorded",
        queries.audit,
        {200: "Records and hints", 403: "forbidden_role: not an auditor"},
        auth=REQUIRED,
        endpoint="audit.queries",
        parameters=tuple(_query(name, TEXT) for name in queries.AUDIT_FILTERS),
        response_schemas={200: _ref("Register")},
    ),
    Route(
        "GET",
        "/v1/proofs/checkpoints",
        "Signed checkpoints of the ledger's Merkle tree, oldest first",
        proof_views.checkpoints,
        {200: "The checkpoints", 400: "invalid_query: limit"},
        parameters=(_query("limit", SIZE, "only the latest so many"),),
        response_schemas={200: _ref("Checkpoints")},
    ),
    Route(
        "GET",
        "/v1/proofs/inclusion",
        "Inclusion proof (RFC 9162) of an event in the tree at a checkpoint size",
        proof_views.inclusion,
        {
            200: "The proof",
            400: "invalid_query: give exactly one of position and event_id",
            404: "unknown_event",
            409: "not_checkpointed (newer than the latest checkpoint), or store_changed",
            422: "size_out_of_range",
        },
        parameters=(
            _query("position", SIZE),
            _query("event_id", TEXT),
            _query("size", SIZE, "default: the latest checkpoint's"),
        ),
        response_schemas={200: {"type": "object"}},
    ),
    Route(
        "GET",
        "/v1/proofs/consistency",
        "Consistency proof (RFC 9162) between two tree sizes",
        proof_views.consistency,
        {200: "The proof", 400: "invalid_query: old or new", 409: "store_changed", 422: "size_out_of_range"},
        parameters=(
            {**_query("old", SIZE), "required": True},
            {**_query("new", SIZE), "required": True},
        ),
        response_schemas={200: {"type": "object"}},
    ),
    Route(
        "GET",
        "/v1/proofs/public-key",
        "The operator's Ed25519 checkpoint key (verify it out of band)",
        proof_views.public_key,
        {200: "Key and key id", 404: "no_key: nothing signed here yet", 503: "key_misconfigured"},
        response_schemas={200: _ref("PublicKey")},
    ),
    Route(
        "GET",
        "/checkpoint",
        "The latest checkpoint as a C2SP signed note (tlog-checkpoint), with its witnesses' cosignatures",
        proof_views.checkpoint_note,
        {200: "The checkpoint note", 404: "no_checkpoint: none in this form signed here yet"},
        media_type=proofs.NOTE,
        response_schemas={200: TEXT},
        description="c2sp.org/tlog-tiles: the origin, the tree size, the base64 root, the lines "
        "'credit-ledger time|receipts|prev', a blank line and the signature lines: the operator's "
        "(named by the origin) and each witness's cosignature/v1. From the serving host's "
        "checkpoints.jsonl; cacheable for 5 s. Verify it with Go's golang.org/x/mod/sumdb/note "
        "and the operator's vkey (GET /v1/proofs/public-key). docs/auditing.md",
    ),
    Route(
        "GET",
        "/tile/{level}/{index}",
        "A hash tile of the ledger's Merkle tree (tlog-tiles): full, or partial with .p/W",
        proof_views.tile,
        {
            200: "256 hashes (8,192 bytes), or W of a partial tile",
            400: "invalid_tile: not a tile path",
            404: "not_in_tree: the tree is not that large yet; not_served: entry bundles",
            409: "store_changed",
        },
        media_type=proofs.TILE,
        matches={"index": ".+"},
        parameters=(
            _path("level", {**TEXT, "description": "0 to 63"}),
            _path(
                "index",
                {**TEXT, "description": "3-digit elements: x001/x234/067, and .p/W for a partial tile"},
            ),
        ),
        description="c2sp.org/tlog-tiles over the same RFC 9162 tree as the proofs: level 0 holds leaf "
        "hashes, each hash of level L the root of 256**L leaves. Immutable: cacheable for a year. "
        "Any tile the tree already holds is served; entry bundles (tile/entries/) are not.",
    ),
    Route(
        "GET",
        "/v1/health",
        "Progress and lag of the intake, relay and read models, judged ok or degraded",
        None,
        {200: "ok, or degraded with problems", 503: "ledger_unreadable: the ledger cannot be read"},
        registered_by=register_health_view,
        response_schemas={200: _ref("Health"), 503: _ref("Health")},
        description="Degraded still answers 200: a stalled relay or projector must not take the API "
        "out of a load balancer. Stalls are judged across calls: a follower behind and not moving "
        "for stall_seconds (CREDIT_HEALTH_STALL_SECONDS, default 30). docs/streams.md#the-health-endpoint",
    ),
)
