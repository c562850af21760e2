"""The HTTP API in process: no 500s, every refusal in JSON and in the register, limits, outcomes kept private.

Each test is one fixed item of issue 10 (items 5, 6, 9, 10, 12, 14) or issue 17 (item 4).
"""

from __future__ import annotations

import ast
import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import PERSON, example
from tests.unit.querydesk import Desk, desk
from tests.unit.webdesk import Web, records

__all__ = ["desk"]  # the fixture

NO_FILE = "110101199003071233"  # a valid identity number no one has filed on
LICENSING = {"purpose": "administrative_licensing", "basis": "《行政许可法》第三十一条"}


def served(desk: Desk, tmp_path: Path, scenario: Callable[[Web], Awaitable[None]]) -> None:
    async def run() -> None:
        async with Web(desk, tmp_path) as web:
            await scenario(web)

    asyncio.run(run())


def last_record(desk: Desk) -> dict[str, Any]:
    return records(desk)[-1]


def test_fausts_own_pages_are_switched_off_and_answer_404_in_json(desk: Desk, tmp_path: Path) -> None:
    async def scenario(web: Web) -> None:
        for path in ("/", "/router/", "/router/assignments/", "/table/", "/graph/", "/stats/"):
            status, body = await web.call("GET", path)
            assert (status, body["error"]["code"]) == (404, "not_found"), path
        assert not [
            r for r in web.app.web.web_app.router.routes() if not r.resource.canonical.startswith("/v1/")
        ]

    served(desk, tmp_path, scenario)


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

    served(desk, tmp_path, scenario)


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
        assert web.topic.sent == []

    served(desk, tmp_path, scenario)


def test_a_nested_deep_or_oversized_submission_is_refused_in_its_receipt_and_never_sent(
    desk: Desk, tmp_path: Path
) -> None:
    good = example("file_record")
    deep = {**good, "reason": orjson.loads("[" * 300 + "]" * 300)}
    large = {**good, "reason": "x" * 1_000_000}

    async def scenario(web: Web) -> None:
        body = json.dumps([[good], deep, large, good, 42]).encode()  # orjson writes at most 254 levels
        status, answer = await web.call("POST", "/v1/submissions", data=body)
        assert status == 202
        assert [r["status"] for r in answer["receipts"]] == [
            "rejected",
            "rejected",
            "rejected",
            "queued",
            "rejected",
        ]
        codes = [r.get("reason", {}).get("code") for r in answer["receipts"]]
        assert codes == ["undecodable", "too_deep", "too_large", None, "undecodable"]
        assert [orjson.loads(value)["submission_id"] for _, value in web.topic.sent] == [
            good["submission_id"]
        ]
        assert answer["receipts"][3]["offset"] == 0

    served(desk, tmp_path, scenario)


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
    served(desk, tmp_path, scenario)


def test_outcomes_need_a_department_key_and_return_only_that_departments_submissions(
    desk: Desk, tmp_path: Path
) -> None:
    bad = copy.deepcopy(example("file_record"))
    bad["submission_id"], bad["subject"]["id"] = "TAX-2026-BAD", "11010519491231002Y"
    (rejected,) = desk.ledger.submit([bad])
    assert not rejected.accepted
    tax = desk.api_key("department", "tax_bureau")
    market = desk.api_key("department", "market_regulator")
    admin = desk.api_key("administrator", "credit_platform")

    async def scenario(web: Web) -> None:
        assert (await web.call("GET", "/v1/outcomes"))[0] == 401
        assert (await web.call("GET", "/v1/outcomes", key=desk.api_key("auditor", "audit_office")))[0] == 403
        assert (await web.call("GET", "/v1/outcomes?department=tax_bureau", key=market))[0] == 403
        status, page = await web.call("GET", "/v1/outcomes", key=tax)
        assert status == 200
        assert [(o["department"], o["status"]) for o in page["outcomes"]] == [
            ("tax_bureau", "accepted"),
            ("tax_bureau", "rejected"),
        ]
        assert '"11010519491231002Y"' in page["outcomes"][1]["original"]  # its own original, as sent
        status, page = await web.call("GET", "/v1/outcomes?department=tax_bureau", key=tax)
        assert len(page["outcomes"]) == 2
        status, page = await web.call("GET", "/v1/outcomes", key=market)
        assert {o["department"] for o in page["outcomes"]} == {"market_regulator"}
        status, everyone = await web.call("GET", "/v1/outcomes", key=admin)
        assert {o["department"] for o in everyone["outcomes"]} == {
            "tax_bureau",
            "market_regulator",
            "credit_platform",
        }
        status, later = await web.call(
            "GET", f"/v1/outcomes?after={everyone['outcomes'][1]['position']}", key=admin
        )
        assert [o["position"] for o in later["outcomes"]] == [o["position"] for o in everyone["outcomes"][2:]]
        reads = [r for r in records(desk) if r["endpoint"] == "outcomes"]
        assert [r["outcome"] for r in reads] == ["refused"] * 3 + ["allowed"] * 5
        assert reads[-1]["filters"] == {"after": everyone["outcomes"][1]["position"], "limit": 1000}

    served(desk, tmp_path, scenario)


def test_limit_abc_on_outcomes_names_field_limit(desk: Desk, tmp_path: Path) -> None:
    tax = desk.api_key("department", "tax_bureau")

    async def scenario(web: Web) -> None:
        for query, field in (
            ("limit=abc", "limit"),
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("after=-1", "after"),
        ):
            status, body = await web.call("GET", f"/v1/outcomes?{query}", key=tax)
            assert (status, body["error"]["field"]) == (400, field), query
            assert last_record(desk)["outcome"] == "refused"

    served(desk, tmp_path, scenario)


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

    served(desk, tmp_path, scenario)


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
        assert web.topic.sent == []

    served(desk, tmp_path, scenario)


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

    served(desk, tmp_path, scenario)


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

    served(desk, tmp_path, scenario)
    tax = desk.key("department", "tax_bureau")
    desk.service.status(tax, PERSON, channel="cli", **LICENSING)
    desk.service.audit(desk.key("auditor", "audit_office"), {}, channel="cli")
    assert [r["channel"] for r in records(desk)] == ["http"] * 6 + ["cli"] * 2


def test_ten_thousand_typical_submissions_fit_one_request_and_a_larger_body_is_refused_in_json(
    desk: Desk, tmp_path: Path
) -> None:
    def batch(n: int) -> bytes:
        base = example("file_record")
        return b"\n".join(orjson.dumps({**base, "submission_id": f"TAX-{i:06d}"}) for i in range(n))

    ndjson = {"Content-Type": "application/x-ndjson"}
    typical = batch(10_000)
    assert 3_000_000 < len(typical) < 16 * 2**20

    async def scenario(web: Web) -> None:
        status, answer = await web.call("POST", "/v1/submissions", data=typical, headers=ndjson)
        assert (status, answer["queued"], answer["rejected"]) == (202, 10_000, 0)
        status, answer = await web.call("POST", "/v1/submissions", data=batch(10_001), headers=ndjson)
        assert (status, answer["error"]["code"]) == (413, "batch_too_large")
        huge = b'{"reason": "' + b"x" * (16 * 2**20) + b'"}'
        status, answer = await web.call("POST", "/v1/submissions", data=huge, headers=ndjson)
        assert (status, answer["error"]["code"]) == (413, "batch_too_large")
        assert "16 MiB" in answer["error"]["message"]
        status, answer = await web.call("POST", "/v1/queries/status", data=huge)
        assert (status, answer["error"]["code"]) == (413, "body_too_large")
        assert len(web.topic.sent) == 10_000

    served(desk, tmp_path, scenario)


def test_json_lines_sent_without_their_content_type_are_told_to_send_application_x_ndjson(
    desk: Desk, tmp_path: Path
) -> None:
    lines = orjson.dumps(example("file_record")) + b"\n" + orjson.dumps(example("correct_record")) + b"\n"

    async def scenario(web: Web) -> None:
        for headers in ({}, {"Content-Type": "application/json"}):
            status, answer = await web.call("POST", "/v1/submissions", data=lines, headers=headers)
            assert (status, answer["error"]["code"]) == (400, "undecodable")
            assert "unexpected content after document" in answer["error"]["message"]
            assert answer["error"]["message"].endswith("send Content-Type: application/x-ndjson")
        status, answer = await web.call(
            "POST", "/v1/submissions", data=lines, headers={"Content-Type": "application/x-ndjson"}
        )
        assert (status, answer["queued"]) == (202, 2)

    served(desk, tmp_path, scenario)


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

    served(desk, tmp_path, scenario)


def test_a_subject_reads_the_outcome_of_their_own_grant_and_no_one_elses(desk: Desk, tmp_path: Path) -> None:
    me = desk.api_key("subject", "citizen", subject=PERSON)
    grant = {**example("grant_authorisation")["authorisation"], "authorisation_id": "SQ-2026-0999"}

    async def scenario(web: Web) -> None:
        status, queued = await web.call("POST", "/v1/me/authorisations", key=me, json=grant)
        assert status == 202
        ((_, value),) = web.topic.sent
        (outcome,) = desk.ledger.submit([orjson.loads(value)])
        assert outcome.accepted, outcome.reason
        status, page = await web.call("GET", queued["outcomes"], key=me)
        assert [(o["submission_id"], o["status"]) for o in page["outcomes"]] == [
            (queued["queued"], "accepted")
        ]
        status, _ = await web.call("GET", "/v1/outcomes?department=tax_bureau", key=me)
        assert status == 403

    served(desk, tmp_path, scenario)


def test_every_error_body_is_built_by_the_one_helper() -> None:
    root = Path(__file__).resolve().parents[2]

    def builds_error_body(path: Path) -> bool:
        """A dict literal {"error": {...}} anywhere in the module's code."""
        return any(
            isinstance(node, ast.Dict)
            and any(
                isinstance(k, ast.Constant) and k.value == "error" and isinstance(v, ast.Dict)
                for k, v in zip(node.keys, node.values, strict=True)
            )
            for node in ast.walk(ast.parse(path.read_text("utf-8")))
        )

    found = [
        str(path.relative_to(root))
        for package in ("ledger", "contract", "projections", "streams", "credit_ledger")
        for path in sorted((root / package).rglob("*.py"))
        if builds_error_body(path)
    ]
    assert found == ["ledger/domain/errors.py"]
