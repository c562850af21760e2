"""The HTTP API in process: no 500s, every refusal in JSON and recorded in the query register.

Each test is one fixed item of issue 10 (items 6, 10, 12) or issue 11 (one error helper).
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import PERSON, example
from tests.unit.querydesk import LICENSING, NO_FILE, Desk, desk
from tests.unit.webdesk import Web, records, serve

__all__ = ["desk"]  # the fixture


def last_record(desk: Desk) -> dict[str, Any]:
    return records(desk)[-1]


def test_fausts_own_pages_are_switched_off_and_answer_404_in_json(desk: Desk, tmp_path: Path) -> None:
    async def scenario(web: Web) -> None:
        for path in ("/", "/router/", "/router/assignments/", "/table/", "/graph/", "/stats/"):
            status, body = await web.call("GET", path)
            assert (status, body["error"]["code"]) == (404, "not_found"), path
        tlog = {"/checkpoint", "/tile/{level}/{index}"}  # C2SP tlog-tiles fixes these two paths
        assert not [
            r
            for r in web.app.web.web_app.router.routes()
            if not r.resource.canonical.startswith("/v1/") and r.resource.canonical not in tlog
        ]

    serve(desk, tmp_path, scenario)


def test_malformed_status_queries_answer_400_naming_the_field_and_are_recorded_as_refused(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("department", "tax_bureau")
    person = {"subject": {"id": PERSON}, **LICENSING}
    cases = [
        ({**person, "as_of": "yesterday"}, "as_of"),
        ({**person, "as_of": 5}, "as_of"),
        ({**person, "as_of": "2026-10-10T10:00:00"}, "as_of"),
        ({**person, "as_of": "0001-01-01T00:00:00+08:00"}, "as_of"),
        ({**person, "subject": {"id": 11010519491231002}}, "subject.id"),
        ({**person, "subject": PERSON}, "subject.id"),
        ({**person, "purpose": ["administrative_licensing"]}, "purpose"),
        ({**person, "basis": ""}, "basis"),
        ({**person, "basis": "   "}, "basis"),
        ({**person, "basis": {"law": "x"}}, "basis"),
        ({**person, "authorisation_id": 7}, "authorisation_id"),
        ({**person, "purpose": "x" * 1001}, "purpose"),
        ([person], ""),
    ]

    async def scenario(web: Web) -> None:
        for body, field in cases:
            before = len(records(desk))
            status, answer = await web.call("POST", "/v1/queries/status", key=key, json=body)
            assert (status, answer["error"]["field"]) == (400, field), (body, answer)
            assert set(answer["error"]) == {"code", "field", "message"}
            assert len(records(desk)) == before + 1, f"{field}: recorded once"
            record = last_record(desk)
            assert (record["outcome"], record["endpoint"], record["channel"]) == ("refused", "status", "http")
            assert record["requester"].startswith("key:")
        status, _ = await web.call("POST", "/v1/queries/status", key=key, json=person)
        assert status == 200

    serve(desk, tmp_path, scenario)


def test_authorisation_bodies_that_are_not_objects_answer_400_and_are_recorded(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "citizen", subject=PERSON)

    async def scenario(web: Web) -> None:
        for body in ([1], None, "grant", {"authorisation_id": 5}, {"organisation": "bank"}):
            status, answer = await web.call("POST", "/v1/me/authorisations", key=key, json=body)
            assert status == 400, (body, answer)
            assert answer["error"]["field"] == ("" if not isinstance(body, dict) else "authorisation_id")
            assert last_record(desk)["endpoint"] == "me.authorisations"
        status, _ = await web.call("POST", "/v1/me/authorisations", key=key, data=b"[1")
        assert status == 400
        assert web.sent == []

    serve(desk, tmp_path, scenario)


def test_an_unexpected_exception_is_a_json_500_with_a_correlation_id_logged_and_recorded(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = desk.api_key("department", "tax_bureau")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the read models fell over")

    monkeypatch.setattr(desk.service.views, "subject", broken)

    async def scenario(web: Web) -> None:
        status, body, headers = await web.exchange(
            "POST", "/v1/queries/status", key=key, json={"subject": {"id": PERSON}, **LICENSING}
        )
        assert (status, body["error"]["code"]) == (500, "internal_error")
        correlation = headers["X-Correlation-Id"]
        assert correlation in body["error"]["message"]
        assert f"internal error {correlation}" in caplog.text
        assert "RuntimeError: the read models fell over" in caplog.text  # with its traceback
        record = last_record(desk)
        assert (record["outcome"], record["reason"]) == (
            "refused",
            f"internal_error: correlation id {correlation}",
        )
        assert record["requester"].startswith("key:")

    caplog.set_level(logging.ERROR)
    serve(desk, tmp_path, scenario)


def test_refusals_with_forged_garbage_or_revoked_keys_are_recorded_with_the_key_they_named(
    desk: Desk, tmp_path: Path
) -> None:
    real = desk.api_key("department", "tax_bureau")
    key_id = real.split("_")[1]
    revoked = desk.api_key("department", "tax_bureau")
    desk.ledger.keys.revoke_key(revoked.split("_")[1], desk.clock().isoformat())
    cases = [
        ("hello", "unknown key", "not a key of this platform"),
        ("clk_000000000000_forged", "unknown key", "not a key of this platform"),
        (f"clk_{key_id}_not-the-secret", f"key:{key_id}", "the key's secret does not match"),
        (revoked, f"key:{revoked.split('_')[1]}", "the key was revoked"),
    ]
    calls = [
        ("POST", "/v1/queries/status", "status"),
        ("GET", "/v1/me/status", "me.status"),
        ("GET", "/v1/lists/black", "lists"),
        ("GET", "/v1/audit/queries", "audit.queries"),
        ("GET", "/v1/outcomes", "outcomes"),
        ("POST", "/v1/me/authorisations", "me.authorisations"),
    ]

    async def scenario(web: Web) -> None:
        for key, requester, why in cases:
            for method, path, endpoint in calls:
                status, body = await web.call(method, path, key=key, json={"subject": {"id": PERSON}})
                assert (status, body["error"]["code"]) == (401, "invalid_key"), (key, path)
                record = last_record(desk)
                assert (record["requester"], record["endpoint"], record["outcome"]) == (
                    requester,
                    endpoint,
                    "refused",
                )
                assert (record["reason"], record["channel"]) == (f"invalid_key: {why}", "http")
        assert "not-the-secret" not in orjson.dumps(records(desk)).decode()

    serve(desk, tmp_path, scenario)


def test_refused_grant_attempts_are_recorded(desk: Desk, tmp_path: Path) -> None:
    grant = example("grant_authorisation")["authorisation"]

    async def scenario(web: Web) -> None:
        for key, status in ((desk.api_key("department", "tax_bureau"), 403), (None, 401)):
            answer, _ = await web.call("POST", "/v1/me/authorisations", key=key, json=grant)
            assert answer == status
            record = last_record(desk)
            assert (record["endpoint"], record["outcome"]) == ("me.authorisations", "refused")
            answer, _ = await web.call("POST", "/v1/me/authorisations/SQ-2026-0601/revoke", key=key)
            assert answer == status
            assert last_record(desk)["endpoint"] == "me.authorisations"
        assert web.sent == []

    serve(desk, tmp_path, scenario)


def test_a_status_answered_no_file_is_recorded_as_answered_not_as_allowed(desk: Desk, tmp_path: Path) -> None:
    key = desk.api_key("department", "tax_bureau")

    async def scenario(web: Web) -> None:
        for extra in ({}, {"as_of": "2026-10-01T00:00:00+08:00"}):
            body = {"subject": {"id": NO_FILE}, **LICENSING, **extra}
            status, answer = await web.call("POST", "/v1/queries/status", key=key, json=body)
            assert (status, answer["error"]["code"]) == (404, "no_file")
            record = last_record(desk)
            assert (record["outcome"], record["returned"]) == ("answered", [])
            assert record["reason"] == "no_file: there is no credit file for 110101********1233"
        status, _ = await web.call(
            "POST", "/v1/queries/status", key=key, json={"subject": {"id": PERSON}, **LICENSING}
        )
        assert (status, last_record(desk)["outcome"]) == (200, "allowed")

    serve(desk, tmp_path, scenario)


def test_every_query_record_names_the_channel_it_came_through(desk: Desk, tmp_path: Path) -> None:
    me = desk.api_key("subject", "citizen", subject=PERSON)
    auditor = desk.api_key("auditor", "audit_office")

    async def scenario(web: Web) -> None:
        for path, key in (
            ("/v1/me/status", me),
            ("/v1/me/queries", me),
            ("/v1/me/report", me),
            ("/v1/audit/queries", auditor),
        ):
            assert (await web.call("GET", path, key=key))[0] == 200
        assert (await web.call("GET", "/v1/me/status", key=auditor))[0] == 403
        assert (await web.call("GET", "/v1/lists/red"))[0] == 200

    serve(desk, tmp_path, scenario)
    tax = desk.key("department", "tax_bureau")
    desk.service.status(tax, PERSON, channel="cli", **LICENSING)
    desk.service.audit(desk.key("auditor", "audit_office"), {}, channel="cli")
    assert [r["channel"] for r in records(desk)] == ["http"] * 6 + ["cli"] * 2


def test_v1_serves_an_index_of_the_routes_with_a_link_to_the_openapi_document(
    desk: Desk, tmp_path: Path
) -> None:
    async def scenario(web: Web) -> None:
        status, index = await web.call("GET", "/v1/")
        assert (status, index["openapi"]) == (200, "/v1/openapi.json")
        _, document = await web.call("GET", index["openapi"])
        listed = {(r["method"], r["path"]): r["summary"] for r in index["routes"]}
        documented = {
            (method.upper(), path): op["summary"]
            for path, ops in document["paths"].items()
            for method, op in ops.items()
        }
        assert listed == documented

    serve(desk, tmp_path, scenario)


def test_every_error_body_is_built_by_the_one_helper() -> None:
    root = Path(__file__).resolve().parents[2]

    def keys(node: ast.Dict) -> set[object]:
        return {k.value for k in node.keys if isinstance(k, ast.Constant)}

    def is_reason(node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "reason"

    def builds_error_body(path: Path) -> bool:
        """A dict literal {"error": {...}} or {"error": reason(...)} anywhere in the module's code."""
        return any(
            isinstance(node, ast.Dict)
            and any(
                isinstance(k, ast.Constant)
                and k.value == "error"
                and (isinstance(v, ast.Dict) or is_reason(v))
                for k, v in zip(node.keys, node.values, strict=True)
            )
            for node in ast.walk(ast.parse(path.read_text("utf-8")))
        )

    def builds_reason(path: Path) -> bool:
        """A dict literal {"code": ..., "field": ..., "message": ...}: a reason built by hand."""
        return any(
            isinstance(node, ast.Dict) and keys(node) == {"code", "field", "message"}
            for node in ast.walk(ast.parse(path.read_text("utf-8")))
        )

    modules = [
        path
        for package in ("ledger", "contract", "projections", "streams", "credit_ledger")
        for path in sorted((root / package).rglob("*.py"))
    ]
    assert [str(p.relative_to(root)) for p in modules if builds_error_body(p)] == ["ledger/domain/errors.py"]
    # errors.reason builds every reason; schemas.py is the JSON Schema that documents its shape
    assert [str(p.relative_to(root)) for p in modules if builds_reason(p)] == [
        "ledger/domain/errors.py",
        "streams/web/schemas.py",
    ]
