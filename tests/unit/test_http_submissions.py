"""Submissions and outcomes over HTTP in process: limits at the door, outcomes kept to their submitter.

Each test is one fixed item of issue 10 (items 6, 9, 12, 14) or issue 17 (item 4).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson

from tests.conftest import PERSON, example
from tests.unit.querydesk import Desk, desk
from tests.unit.webdesk import Web, records, serve

__all__ = ["desk"]  # the fixture


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
        assert [orjson.loads(value)["submission_id"] for _, value in web.sent] == [good["submission_id"]]
        queued = answer["receipts"][3]
        (row,) = web.desk.ledger.inbox.inbox_page(0, 10)
        assert (queued["inbox_position"], queued["source"]) == (row.position, f"inbox/{row.position}")
        assert (queued["partition"], queued["offset"]) == (None, None)  # not on Kafka yet
        assert answer["outcomes"] == "/v1/outcomes?department=tax_bureau"  # where to read them

    serve(desk, tmp_path, scenario)


def test_a_batch_of_several_departments_points_to_the_outcomes_of_all_its_callers(
    desk: Desk, tmp_path: Path
) -> None:
    mixed = [example("file_record"), example("designate")]

    async def scenario(web: Web) -> None:
        status, answer = await web.call("POST", "/v1/submissions", data=json.dumps(mixed).encode())
        assert (status, answer["queued"]) == (202, 2)
        assert answer["outcomes"] == "/v1/outcomes"

    serve(desk, tmp_path, scenario)


def test_an_item_whose_department_is_not_a_string_is_queued_and_the_batch_still_answered(
    desk: Desk, tmp_path: Path
) -> None:
    """Found by the HTTP fuzz test: a list or object as ``department`` made the answer a 500 (the
    outcomes link gathered the receipts' departments in a set). The intake rejects the item later."""
    odd = [
        {**example("file_record"), "department": ["tax_bureau"]},
        {**example("designate"), "department": {}},
    ]

    async def scenario(web: Web) -> None:
        status, answer = await web.call("POST", "/v1/submissions", data=json.dumps(odd).encode())
        assert (status, answer["queued"]) == (202, 2)
        assert answer["outcomes"] == "/v1/outcomes"
        assert answer["receipts"][0]["department"] == ["tax_bureau"], "the receipt says what was sent"

    serve(desk, tmp_path, scenario)


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

    serve(desk, tmp_path, scenario)


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
            assert records(desk)[-1]["outcome"] == "refused"
        status, body = await web.call("GET", "/v1/outcomes?limit=abc")  # the key is asked for first
        assert (status, body["error"]["code"]) == (401, "not_authenticated")

    serve(desk, tmp_path, scenario)


def test_an_original_position_past_what_a_store_holds_is_refused_naming_it_not_a_503(
    desk: Desk, tmp_path: Path
) -> None:
    """Found by the HTTP fuzz: a 20-digit position reached the query register, which could not
    encode it, and the route answered 503 audit_unavailable."""
    tax = desk.api_key("department", "tax_bureau")

    async def scenario(web: Web) -> None:
        for position in ("99999999999999999999", "0", "-1", "1.5"):
            status, body = await web.call("GET", f"/v1/outcomes/{position}/original", key=tax)
            assert (status, body["error"]["code"], body["error"]["field"]) == (
                400,
                "invalid_query",
                "position",
            )
            assert records(desk)[-1]["outcome"] == "refused", "and the refusal is in the register"

    serve(desk, tmp_path, scenario)


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
        assert len(web.sent) == 10_000

    serve(desk, tmp_path, scenario)


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

    serve(desk, tmp_path, scenario)


def test_a_subject_reads_the_outcome_of_their_own_grant_and_no_one_elses(desk: Desk, tmp_path: Path) -> None:
    me = desk.api_key("subject", "citizen", subject=PERSON)
    grant = {**example("grant_authorisation")["authorisation"], "authorisation_id": "SQ-2026-0999"}

    async def scenario(web: Web) -> None:
        status, queued = await web.call("POST", "/v1/me/authorisations", key=me, json=grant)
        assert status == 202
        ((_, value),) = web.sent
        (outcome,) = desk.ledger.submit([orjson.loads(value)])
        assert outcome.accepted, outcome.reason
        status, page = await web.call("GET", queued["outcomes"], key=me)
        assert [(o["submission_id"], o["status"]) for o in page["outcomes"]] == [
            (queued["queued"], "accepted")
        ]
        status, _ = await web.call("GET", "/v1/outcomes?department=tax_bureau", key=me)
        assert status == 403

    serve(desk, tmp_path, scenario)


def test_a_large_rejected_original_comes_as_a_preview_and_its_department_fetches_it_whole(
    desk: Desk, tmp_path: Path
) -> None:
    bad = copy.deepcopy(example("file_record"))
    bad["submission_id"], bad["subject"]["id"] = "TAX-2026-LARGE", "11010519491231002Y"
    bad["record"]["title"] = "x" * 9000
    bad["reason"] = ["y" * 9000] * 40  # about 360 KB: over the outcome message's 256 KiB
    raw = orjson.dumps(bad)
    (rejected,) = desk.ledger.submit([raw])
    assert not rejected.accepted
    tax = desk.api_key("department", "tax_bureau")
    market = desk.api_key("department", "market_regulator")

    async def scenario(web: Web) -> None:
        _, page = await web.call("GET", "/v1/outcomes", key=tax)
        (outcome,) = [o for o in page["outcomes"] if o["submission_id"] == "TAX-2026-LARGE"]
        assert outcome["original_truncated"] is True
        assert outcome["original_bytes"] == len(raw)
        status, whole = await web.call("GET", outcome["original_ref"], key=tax)
        assert status == 200
        assert whole["original"].encode() == raw
        status, refused = await web.call("GET", outcome["original_ref"], key=market)
        assert (status, refused["error"]["code"]) == (403, "not_own_outcomes")
        assert [r["outcome"] for r in records(desk) if r["endpoint"] == "outcomes.original"] == [
            "allowed",
            "refused",
        ]

    serve(desk, tmp_path, scenario)
