"""Authorised queries: who may see what, every answer recorded first, nothing leaks into logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import RFC_4122, UUID

import pytest

from contract.messages import messages_from_store
from ledger.application.keys import issue_key
from ledger.application.queries import Answer
from ledger.domain.access import PUBLIC, Principal
from ledger.domain.queries import new_query_id
from streams.web.queries import HTTP_STATUS
from tests.conftest import PERSON, Clock, example
from tests.unit.querydesk import BANK, Desk, desk

__all__ = ["desk"]  # the fixture


def status(desk: Desk, who: Principal, **request: Any) -> Answer:
    return desk.service.status(who, request.pop("code", PERSON), **request)


def test_every_role_at_every_endpoint_gets_the_expected_answer_and_every_answer_is_recorded(
    desk: Desk,
) -> None:
    tax = desk.key("department", "tax_bureau")
    bank = desk.key("authorised_org", BANK)
    other_bank = desk.key("authorised_org", "bank-xm-002")
    auditor = desk.key("auditor", "audit_office")
    admin = desk.key("administrator", "credit_platform")
    me = desk.key("subject", "citizen", subject=PERSON)
    someone_else = desk.key("subject", "citizen", subject="440524188001010014")
    lending = {"purpose": "credit_review_lending", "authorisation_id": "SQ-2026-0601"}
    licensing = {"purpose": "administrative_licensing", "basis": "《行政许可法》第三十一条"}
    cases: list[tuple[str, Any, int]] = [
        ("public: status", lambda: status(desk, PUBLIC, **licensing), 403),
        ("public: black list", lambda: desk.service.lists(PUBLIC, "black", {}), 200),
        ("public: own file", lambda: desk.service.me(PUBLIC, "status"), 401),
        ("public: audit trail", lambda: desk.service.audit(PUBLIC, {}), 401),
        ("department with basis", lambda: status(desk, tax, **licensing), 200),
        ("department without purpose", lambda: status(desk, tax), 403),
        (
            "department with an unknown purpose",
            lambda: status(desk, tax, purpose="curiosity", basis="x"),
            403,
        ),
        (
            "department, purpose needing the subject's grant, no grant",
            lambda: status(desk, tax, purpose="credit_review_lending", basis="x"),
            403,
        ),
        ("department: audit trail", lambda: desk.service.audit(tax, {}), 403),
        ("bank with the subject's grant", lambda: status(desk, bank, **lending), 200),
        ("bank without a grant", lambda: status(desk, bank, purpose="credit_review_lending"), 403),
        ("bank citing a basis instead", lambda: status(desk, bank, **licensing), 403),
        ("another bank with this bank's grant", lambda: status(desk, other_bank, **lending), 403),
        (
            "bank, grant for another purpose",
            lambda: status(desk, bank, purpose="tenancy", authorisation_id="SQ-2026-0601"),
            403,
        ),
        (
            "bank: organisation status",
            lambda: status(desk, bank, code="91350100M000100Y43", purpose="public_procurement"),
            200,
        ),
        ("auditor: status", lambda: status(desk, auditor, **licensing), 403),
        ("auditor: audit trail", lambda: desk.service.audit(auditor, {}), 200),
        ("administrator with basis", lambda: status(desk, admin, **licensing), 200),
        ("subject: own status", lambda: desk.service.me(me, "status"), 200),
        ("subject: own file by code", lambda: status(desk, me), 200),
        ("subject: someone else's file", lambda: status(desk, someone_else), 403),
        ("subject: who queried me", lambda: desk.service.me(me, "queries"), 200),
        ("subject: report", lambda: desk.service.me(me, "report"), 200),
        ("subject: audit trail", lambda: desk.service.audit(me, {}), 403),
        ("department: someone's report", lambda: desk.service.me(tax, "report"), 403),
        ("bad identity number", lambda: status(desk, tax, code="11010519491231002Y", **licensing), 400),
    ]
    for name, call, expected in cases:
        before = desk.records()
        answer = call()
        assert HTTP_STATUS[answer.outcome] == expected, f"{name}: {answer.outcome} {answer.body}"
        assert desk.records() == before + 1, f"{name}: recorded exactly once"
        if expected != 200:
            assert "error" in answer.body, f"{name}: a refusal says why"
            assert "records" not in answer.body, f"{name}: refusals carry no data"


def test_a_revoked_or_expired_grant_no_longer_opens_the_file(desk: Desk, clock: Clock) -> None:
    bank = desk.key("authorised_org", BANK)
    request = {"purpose": "credit_review_lending", "authorisation_id": "SQ-2026-0601"}
    clock.set("2027-01-09T10:00:00+08:00")  # valid until 2027-01-08
    assert (
        status(desk, bank, **request).body["error"]["message"]
        == "the authorisation is valid 2026-10-08 to 2027-01-08"
    )
    clock.set("2026-10-21T10:00:00+08:00")
    desk.submit(example("revoke_authorisation"))
    assert status(desk, bank, **request).body["error"]["message"] == "the subject revoked this authorisation"


def test_a_query_whose_record_cannot_be_written_fails_and_returns_nothing(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    tax = desk.key("department", "tax_bureau")

    def broken(record: dict[str, Any]) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(desk.ledger, "record_query", broken)
    answer = status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》")
    assert HTTP_STATUS[answer.outcome] == 503
    assert answer.body == {
        "error": {
            "code": "audit_unavailable",
            "field": "",
            "message": "the query could not be recorded, so nothing is returned",
        }
    }


def test_a_subject_sees_who_queried_them_and_counts_free_reports(desk: Desk) -> None:
    tax = desk.key("department", "tax_bureau")
    me = desk.key("subject", "citizen", subject=PERSON)
    status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》")
    desk.project()
    seen = desk.service.me(me, "queries").body["queries"]
    assert [(q["organisation"], q["purpose"], q["outcome"]) for q in seen] == [
        ("tax_bureau", "administrative_licensing", "allowed")
    ]
    numbers = []
    for _ in range(3):
        numbers.append(desk.service.me(me, "report").body["report"])
        desk.project()
    assert [(r["number_this_year"], r["free"]) for r in numbers] == [(1, True), (2, True), (3, False)]


def test_auditors_get_hints_for_repeated_refusals(desk: Desk) -> None:
    bank = desk.key("authorised_org", "bank-xm-002")
    for _ in range(3):
        status(desk, bank, purpose="credit_review_lending")
    desk.project()
    answer = desk.service.audit(desk.key("auditor", "audit_office"), {"organisation": "bank-xm-002"})
    assert answer.body["count"] == 3
    assert answer.body["hints"][0]["hint"] == "refusals"


def test_no_identity_number_name_or_api_key_reaches_the_logs(
    desk: Desk, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    _, key = issue_key(
        desk.ledger.keys,
        role="department",
        organisation="tax_bureau",
        label="王科长",
        subject_key=None,
        now=desk.clock(),
        departments=desk.ledger.catalogue.latest.departments,
    )
    tax = desk.service.authenticate(key)
    assert tax is not None
    status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》")
    status(desk, tax, code="11010519491231002Y", purpose="administrative_licensing", basis="x")
    monkeypatch.setattr(desk.ledger, "record_query", lambda record: (_ for _ in ()).throw(OSError("down")))
    status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》")
    logged = caplog.text
    assert "audit" in logged or "recorded" in logged  # the failure was logged ...
    for secret in (PERSON, "11010519491231002Y", "张三", "王科长", key):
        assert secret not in logged  # ... without personal data or the key


def test_a_replay_reproduces_each_recorded_answer_and_catches_a_doctored_one(desk: Desk) -> None:
    from projections.replay import check_recorded_queries, replay  # noqa: PLC0415

    tax = desk.key("department", "tax_bureau")
    assert status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》").ok
    desk.submit(example("correct_record"))  # the file moves on after the answer
    desk.project()
    (record,) = desk.store.queries(endpoint="status")
    messages = messages_from_store(desk.ledger.reader)
    _, histories, _ = replay(messages, keep_history_for={record["subject_key"]})
    assert check_recorded_queries([record], histories, desk.ledger.catalogue) == []
    doctored = {**record, "view_digest": "0" * 64}
    (problem,) = check_recorded_queries([doctored], histories, desk.ledger.catalogue)
    assert (problem["field"], problem["expected"]) == ("view_digest", "0" * 64)


def test_query_records_are_numbered_in_time_order_so_the_register_appends_at_its_end(
    desk: Desk, clock: Clock
) -> None:
    tax = desk.key("department", "tax_bureau")
    for minute in ("10:01", "10:02", "10:03"):
        clock.set(f"2026-10-10T{minute}:00+08:00")
        status(desk, tax, purpose="administrative_licensing", basis="《行政许可法》")
    desk.project()
    rows = desk.store.conn.execute("SELECT query_id FROM queries ORDER BY at").fetchall()
    ids = [UUID(query_id) for (query_id,) in rows]
    assert len(ids) == 3
    assert {i.version for i in ids} == {7}
    assert sorted(ids, key=lambda i: i.int) == sorted(ids, key=lambda i: i.int >> 80)  # time first
    assert sorted(i.int >> 80 for i in ids) == [
        int(datetime.fromisoformat(f"2026-10-10T{m}:00+08:00").timestamp() * 1000)
        for m in ("10:01", "10:02", "10:03")
    ]


def test_query_ids_made_in_one_millisecond_differ_and_are_rfc_9562_version_7() -> None:
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    ids = {new_query_id(at) for _ in range(1000)}
    assert len(ids) == 1000
    assert {(i.version, i.variant) for i in ids} == {(7, RFC_4122)}
    assert {i.int >> 80 for i in ids} == {int(at.timestamp() * 1000)}
