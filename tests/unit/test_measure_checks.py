"""Check before approve (应查必查, 004 item 39): which measures a department must or may apply to a
subject for a business, recorded in the query register before it is answered (issue 13)."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.catalogue import Catalogue
from ledger.domain.integrity import content_digest
from tests.conftest import ORGANISATION, PERSON, example
from tests.unit.measuredesk import MeasureDesk, designated, measure_desk, sub

LATER = "2026-07-13T10:00:00+08:00"


@pytest.fixture
def desk(catalogue: Catalogue, tmp_path: Path) -> MeasureDesk:
    return measure_desk(catalogue, tmp_path)


def person_designated(desk: MeasureDesk, list_name: str, department: str, at: str = LATER) -> None:
    """``department`` puts the person on ``list_name`` (on no record: a designation may rest on none)."""
    designation = sub("designate", submission_id=f"D-{list_name}", department=department, occurred_at=at)
    designation["subject"] = {"id": PERSON, "name": "张三"}
    designation["designation"].update(
        designation_id=f"{list_name.upper()}-2026-0001", list=list_name, valid_from=at[:10], records=[]
    )
    desk.at(at).submit(designation)


def check(desk: MeasureDesk, department: str, code: str, business: str, **more: Any) -> Any:
    return desk.measures.check(
        desk.key("department", department), code, business=business, reference="XK-2026-0042", **more
    )


def recorded_checks(desk: MeasureDesk) -> list[dict[str, Any]]:
    desk.project()  # query records are ledger events: the register is a read model of them
    return desk.store.queries(endpoint="check")


def test_a_check_returns_the_in_force_measures_mandatory_first_and_is_recorded(desk: MeasureDesk) -> None:
    designated(desk)
    answer = check(desk.at(LATER), "finance_regulator", ORGANISATION, "financing")
    assert answer.ok, answer.body
    body = answer.body
    assert body["result"] == "measures"
    assert [(s["measure"], s["kind"]) for s in body["sanctions"]] == [
        ("black.restrict_securities_financing", "mandatory"),
        ("black.differentiated_market_service", "recommended"),
        ("black.financial_risk_pricing", "recommended"),
    ]
    securities = body["sanctions"][0]
    assert securities["basis"] == "004_c889854a5fe8b94b.txt item 18"
    assert (securities["state"], securities["document_number"]) == ("issued", "闽市监信〔2026〕202号")
    assert body["other_notices_in_force"] == 3  # corporate office, profession ban, institution set-up
    (record,) = recorded_checks(desk)
    assert (record["organisation"], record["purpose"], record["reference"]) == (
        "finance_regulator",
        "financing",
        "XK-2026-0042",
    )
    assert (record["outcome"], record["subject_key"]) == ("allowed", str(desk.organisation.id))
    assert record["answer_digest"] == content_digest(body)


def test_a_check_is_visible_to_the_subject_among_their_queries(desk: MeasureDesk) -> None:
    person_designated(desk, "black", "tax_bureau")
    answer = check(desk, "tax_bureau", PERSON, "supervision_inspection")
    assert [s["measure"] for s in answer.body["sanctions"]] == ["black.key_supervision"]
    desk.project()
    mine = desk.service.me(desk.key("subject", "citizen", subject=PERSON), "queries")
    assert mine.ok
    assert {
        "organisation": "tax_bureau",
        "purpose": "supervision_inspection",
        "outcome": "allowed",
    }.items() <= (mine.body["queries"][-1].items())


def test_a_red_list_subject_gets_the_green_channel(desk: MeasureDesk) -> None:
    person_designated(desk, "red", "volunteer_federation")
    answer = check(desk, "market_regulator", PERSON, "administrative_licence")
    assert answer.body["sanctions"] == []
    (green,) = answer.body["incentives"]
    assert (green["measure"], green["list"], green["kind"]) == ("red.green_channel", "red", "recommended")
    assert green["basis"].startswith("004_c889854a5fe8b94b.txt item 5")
    assert green["why"] == "red-list designation RED-2026-0001"


def test_a_three_year_clean_record_earns_the_green_channel_for_a_licence(desk: MeasureDesk) -> None:
    old = copy.deepcopy(example("file_record"))  # a general tax penalty decided in 2023
    old["record"].update(display_months=6)
    old["record"]["decision"]["date"] = "2023-04-28"
    desk.at("2026-07-01T10:00:00+08:00").submit(old)
    answer = check(desk.at("2026-11-02T10:00:00+08:00"), "market_regulator", PERSON, "administrative_licence")
    (green,) = answer.body["incentives"]
    assert (green["measure"], green["list"], green["treatment"]) == (
        "red.green_channel",
        "clean",
        ["绿色通道", "容缺受理"],
    )
    assert green["why"] == "no adverse record for 3 consecutive years (since 2026-04-28)"
    not_licensing = check(desk, "market_regulator", PERSON, "supervision_inspection")
    assert not_licensing.body["result"] == "none"


def test_a_subject_with_nothing_to_apply_is_answered_none(desk: MeasureDesk) -> None:
    designated(desk)
    nothing = check(desk.at(LATER), "education", ORGANISATION, "public_procurement")
    assert (nothing.body["result"], nothing.body["sanctions"], nothing.body["incentives"]) == ("none", [], [])
    no_file = check(desk, "court", "110101199003071233", "travel_and_consumption")
    assert (no_file.body["result"], no_file.body["ledger_version"]) == ("none", 0)
    assert len(recorded_checks(desk)) == 2


def test_a_suspended_notice_is_not_a_measure_to_apply(desk: MeasureDesk) -> None:
    designated(desk)
    for _ in range(2):  # the second from the reader's memo of notice rows (the same stored state)
        assert check(desk, "court", ORGANISATION, "travel_and_consumption").body["result"] == "measures"
    objection = sub(
        "raise_objection",
        subject={"id": ORGANISATION, "name": "福州某某贸易有限公司"},
        occurred_at=LATER,
        record={"provider": "market_regulator", "record_id": "SJ-2026-0201"},
    )
    desk.at(LATER).submit(objection)
    assert check(desk, "court", ORGANISATION, "travel_and_consumption").body["result"] == "none"


def test_a_check_that_cannot_be_recorded_is_not_answered(
    desk: MeasureDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    designated(desk)
    court = desk.key("department", "court")

    def down(record: dict[str, Any]) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(desk.ledger, "record_query", down)
    answer = desk.measures.check(court, ORGANISATION, business="travel_and_consumption", reference="R")
    assert (answer.outcome, answer.body["error"]["code"]) == ("unavailable", "audit_unavailable")
    assert "sanctions" not in answer.body


@pytest.mark.parametrize(
    ("change", "outcome", "code", "field"),
    [
        ({"business": "fortune_telling"}, "invalid", "not_in_catalogue", "business"),
        ({"reference": " "}, "invalid", "invalid_input", "reference"),
        ({"department": "court"}, "forbidden", "not_own_department", ""),
        ({"code": "91350100M000100Y44"}, "invalid", "invalid_subject_code", "subject.id"),
    ],
)
def test_a_check_that_is_refused_names_why_and_is_recorded(
    desk: MeasureDesk, change: dict[str, Any], outcome: str, code: str, field: str
) -> None:
    request: dict[str, Any] = {"code": ORGANISATION, "business": "financing", "reference": "R-1", **change}
    answer = desk.measures.check(desk.key("department", "tax_bureau"), request.pop("code"), **request)
    assert (answer.outcome, answer.body["error"]["code"], answer.body["error"]["field"]) == (
        outcome,
        code,
        field,
    )
    (record,) = recorded_checks(desk)
    assert record["outcome"] == "refused"
    assert record["reason"].startswith(code)


def test_a_checks_view_is_remembered_by_the_stored_state_and_a_changed_state_is_never_answered_stale(
    desk: MeasureDesk,
) -> None:
    filing = sub("file_record_organisation", occurred_at="2026-07-10T10:00:00+08:00")
    desk.at("2026-07-10T10:00:00+08:00").submit(filing)
    key = str(desk.organisation.id)
    views = desk.service.views
    today = date(2026, 7, 13)
    before = views.check_view(key, today, "finance_regulator")
    assert before is not None
    assert before["notices"] == []
    assert views.check_view(key, today, "finance_regulator") is before  # remembered: same state
    assert views.check_view(key, today, "court") is not before  # another department's own view
    assert views.check_view(key, date(2026, 7, 14), "finance_regulator") is not before  # another day
    designated(desk)  # the state changes: its bytes are others
    after = views.check_view(key, today, "finance_regulator")
    assert after is not None
    assert {row["department"] for row in after["notices"]} == {"finance_regulator"}
    assert after["ledger_version"] > before["ledger_version"]
    answer = check(desk.at(LATER), "finance_regulator", ORGANISATION, "financing")
    assert answer.body["result"] == "measures"
