"""The life of a record, told as stories through the ledger's one entry point: ``submit``.

One module of just over 400 lines: the stories share the few helpers that tell them (``submit``,
``sub``, ``accepted``, ``rejected``), and each follows one record's whole life through them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.application.service import CreditLedger
from tests.conftest import ORGANISATION, OTHER_PERSON, PERSON, Clock, example, file_of


def submit(ledger: CreditLedger, *subs: dict[str, Any]) -> list[Any]:
    return ledger.submit(list(subs))


def sub(name: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example(name))
    body.update(changes)
    return body


def accepted(ledger: CreditLedger, *subs: dict[str, Any]) -> None:
    for outcome in submit(ledger, *subs):
        assert outcome.status == "accepted", outcome.reason


def rejected(ledger: CreditLedger, submission: dict[str, Any]) -> dict[str, str]:
    (outcome,) = submit(ledger, submission)
    assert outcome.status == "rejected"
    assert outcome.reason is not None
    return outcome.reason


TAX_RECORD = "tax_bureau:SW-2026-0101"


def test_a_filed_record_gets_its_display_period_from_the_decision_date_and_the_catalogue(
    ledger: CreditLedger,
) -> None:
    accepted(ledger, sub("file_record"))  # general penalty, decided 2026-05-28, 6 months asked
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert (record.display_from, record.display_until) == ("2026-05-28", "2027-05-28")
    assert record.repairable_from == "2026-08-28"  # general: at least 3 months of publicity
    assert record.edition == "2026-04"


def test_a_display_period_outside_the_catalogues_range_is_rejected_naming_the_field(
    ledger: CreditLedger,
) -> None:
    bad = sub("file_record")
    bad["record"]["display_months"] = 24  # general penalties show 3 to 12 months
    reason = rejected(ledger, bad)
    assert reason["field"] == "record.display_months"
    assert "3 to 12 months" in reason["message"]


def test_without_a_requested_period_the_longest_allowed_applies(ledger: CreditLedger) -> None:
    s = sub("file_record")
    del s["record"]["display_months"]
    accepted(ledger, s)
    assert file_of(ledger, PERSON).records[TAX_RECORD].display_until == "2027-05-28"


def test_work_safety_records_show_at_least_a_year_whatever_their_severity(
    ledger: CreditLedger, clock: Clock
) -> None:
    s = sub("file_record", department="emergency_management")
    s["record"].update(domain="work_safety", severity="minor")
    del s["record"]["display_months"]
    accepted(ledger, s)
    record = file_of(ledger, PERSON).records["emergency_management:SW-2026-0101"]
    assert record.display_until == "2027-05-28"
    assert record.repairable_from == "2027-05-28"


def test_only_the_provider_may_correct_a_record(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    stranger = sub("correct_record", department="transport")
    stranger["record"] = {"provider": "tax_bureau", "record_id": "SW-2026-0101"}
    reason = rejected(ledger, stranger)
    assert (reason["code"], reason["field"]) == ("not_authorised", "department")
    accepted(ledger, sub("correct_record"))
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert ledger.privacy.open(record.title).endswith("（2025年度），处以罚款")  # type: ignore[union-attr]
    assert record.corrections == 1


def test_a_correction_that_moves_the_decision_date_moves_the_display_period(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    accepted(ledger, sub("correct_record", changes={"decision_date": "2026-05-01"}))
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert (record.display_until, record.repairable_from) == ("2027-05-01", "2026-08-01")


def test_an_objection_marks_the_record_disputed_until_the_provider_resolves_it(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"), sub("raise_objection"))
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert record.disputed
    assert record.open_objection.due_by == "2026-06-25"  # 20 days from 2026-06-05
    second = sub("raise_objection", submission_id="DESK-X", objection_id="YY-2")
    assert rejected(ledger, second)["code"] == "objection_open"
    not_provider = sub("resolve_objection", department="transport")
    not_provider["record"] = {"provider": "tax_bureau", "record_id": "SW-2026-0101"}
    assert rejected(ledger, not_provider)["code"] == "not_authorised"
    accepted(ledger, sub("resolve_objection"))
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert not record.disputed
    assert record.objections["YY-2026-0301"].outcome == "rejected"  # both stay on file
    assert record.is_active


def test_only_the_subject_raises_objections_through_the_platform_desk(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    by_department = sub("raise_objection", department="tax_bureau")
    assert rejected(ledger, by_department)["code"] == "not_authorised"


def test_an_upheld_objection_can_revoke_the_record_and_end_the_designation_built_on_it(
    ledger: CreditLedger,
) -> None:
    accepted(ledger, sub("file_record_organisation"), sub("designate"))
    objection = sub(
        "raise_objection",
        subject=example("designate")["subject"],
        record={"provider": "market_regulator", "record_id": "SJ-2026-0201"},
    )
    upheld = sub(
        "resolve_objection",
        department="market_regulator",
        subject=example("designate")["subject"],
        record={"record_id": "SJ-2026-0201"},
        outcome="upheld",
        remedy="revoke",
        explanation="主体认定错误",
    )
    accepted(ledger, objection, upheld)
    org = file_of(ledger, ORGANISATION)
    assert org.records["market_regulator:SJ-2026-0201"].status == "revoked"
    designation = org.designations["HMD-2026-0202"]
    assert (designation.active, designation.ended_reason) == (False, "objection_upheld")


def test_an_upheld_objection_needs_a_remedy(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"), sub("raise_objection"))
    reason = rejected(ledger, sub("resolve_objection", outcome="upheld"))
    assert (reason["code"], reason["field"]) == ("missing_field", "remedy")


def test_repair_is_refused_before_the_minimum_publicity_period(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    early = sub("request_repair", occurred_at="2026-08-01T09:00:00+08:00")
    reason = rejected(ledger, early)
    assert reason["code"] == "repair_too_early"
    assert "2026-08-28" in reason["message"]


def test_repair_is_never_allowed_where_the_rules_forbid_ending_early(ledger: CreditLedger) -> None:
    s = sub("file_record", department="education")
    s["record"].update(category="exam_cheating", domain="education_examinations", severity="general")
    accepted(ledger, s)
    request = sub("request_repair", record={"provider": "education", "record_id": "SW-2026-0101"})
    assert rejected(ledger, request)["code"] == "repair_not_allowed"


def test_serious_market_regulation_penalties_cannot_end_early(ledger: CreditLedger) -> None:
    s = sub("file_record", department="market_regulator")
    s["record"].update(domain="market_regulation", severity="serious", display_months=12)
    accepted(ledger, s)
    record = file_of(ledger, PERSON).records["market_regulator:SW-2026-0101"]
    assert record.early_end is False


def test_a_granted_repair_ends_the_record_but_keeps_it_in_the_history(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"), sub("request_repair"))
    refused = sub("decide_repair", submission_id="TAX-R", decision="refused", reason="罚款未缴清")
    accepted(ledger, refused)
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert record.is_active
    assert record.repairs["XF-2026-0303"].decision == "refused"
    again = sub("request_repair", submission_id="DESK-R2", application_id="XF-2")
    accepted(ledger, again, sub("decide_repair", application_id="XF-2"))
    record = file_of(ledger, PERSON).records[TAX_RECORD]
    assert record.status == "repaired"
    assert len(record.repairs) == 2


def test_an_ended_record_accepts_statements_and_nothing_else(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"), sub("request_repair"), sub("decide_repair"))
    correction = sub("correct_record", occurred_at="2026-09-10T09:00:00+08:00")
    reason = rejected(ledger, correction)
    assert reason["code"] == "record_closed"
    assert "repaired" in reason["message"]
    objection = sub("raise_objection", occurred_at="2026-09-10T09:00:00+08:00")
    assert rejected(ledger, objection)["code"] == "record_closed"
    accepted(ledger, sub("add_statement", occurred_at="2026-09-10T09:00:00+08:00"))


def test_a_record_expires_at_the_end_of_its_display_period_and_not_before(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record_minor"))
    early = sub("expire_record", submission_id="SCHED-EARLY", occurred_at="2026-07-01T23:00:00+08:00")
    reason = rejected(ledger, early)
    assert (reason["code"], reason["field"]) == ("not_due", "occurred_at")
    accepted(ledger, sub("expire_record"))
    assert file_of(ledger, PERSON).records["transport:JT-2026-0401"].status == "expired"


def test_a_revoked_record_cannot_be_revoked_again(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record_organisation"), sub("revoke_record"))
    again = sub("revoke_record", submission_id="MKT-AGAIN")
    assert rejected(ledger, again)["code"] == "record_closed"


def test_a_court_may_revoke_another_departments_record(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record_organisation"))
    by_court = sub(
        "revoke_record",
        department="court",
        record={"provider": "market_regulator", "record_id": "SJ-2026-0201"},
    )
    accepted(ledger, by_court)


def test_a_serious_organisation_record_is_filed_on_each_responsible_persons_file(
    ledger: CreditLedger,
) -> None:
    (outcome,) = submit(ledger, sub("file_record_organisation"))
    org = file_of(ledger, ORGANISATION)
    person = file_of(ledger, OTHER_PERSON)
    key = "market_regulator:SJ-2026-0201"
    assert len(outcome.events) == 4  # org opened + filed, person opened + linked copy
    assert org.records[key].responsible_persons[0]["subject_key"] == str(person.id)
    assert person.records[key].linked_from == {"subject_key": str(org.id), "record": key}
    assert person.masked_code == "440524********0014"
    accepted(ledger, sub("revoke_record"))
    assert file_of(ledger, OTHER_PERSON).records[key].status == "revoked"


def test_responsible_persons_are_named_only_on_an_organisations_record(ledger: CreditLedger) -> None:
    s = sub("file_record")
    s["record"]["responsible_persons"] = [{"id": OTHER_PERSON, "name": "李四", "role": "法定代表人"}]
    assert rejected(ledger, s)["field"] == "record.responsible_persons"


def test_a_serious_adverse_record_ends_a_red_list_entry(ledger: CreditLedger) -> None:
    red = sub("designate", department="volunteer_federation", subject=example("file_record")["subject"])
    red["designation"].update(list="red", records=[])
    accepted(ledger, red)
    serious = sub("file_record", submission_id="TAX-S")
    serious["record"].update(record_id="SW-S", category="tax_evasion", severity="serious", display_months=12)
    accepted(ledger, serious)
    designation = file_of(ledger, PERSON).designations["HMD-2026-0202"]
    assert (designation.active, designation.ended_reason) == (False, "serious_adverse_record")
    again = sub("designate", submission_id="VF-2", department="volunteer_federation", subject=red["subject"])
    again["designation"].update(designation_id="RED-2", list="red", records=[])
    assert rejected(ledger, again)["code"] == "ineligible"


def test_a_department_may_designate_only_the_lists_it_is_registered_for(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    s = sub("designate", department="education", subject=example("file_record")["subject"])
    s["designation"]["records"] = []
    reason = rejected(ledger, s)
    assert (reason["code"], reason["field"]) == ("not_authorised", "designation.list")


def test_a_department_may_file_only_its_registered_categories_and_domains(ledger: CreditLedger) -> None:
    s = sub("file_record", department="volunteer_federation")
    reason = rejected(ledger, s)
    assert reason["code"] == "not_authorised"
    assert reason["field"] == "record.category"
    unknown = sub("file_record", department="ministry_of_magic")
    assert rejected(ledger, unknown) == {
        "code": "not_in_catalogue",
        "field": "department",
        "message": "department 'ministry_of_magic' is not registered in catalogue edition 2026-04",
    }


def test_a_rejected_first_filing_leaves_no_file_behind(ledger: CreditLedger) -> None:
    s = sub("file_record", department="volunteer_federation")
    rejected(ledger, s)
    assert file_of(ledger, PERSON) is None


def test_follow_up_actions_need_a_record_on_file(ledger: CreditLedger) -> None:
    reason = rejected(ledger, sub("correct_record"))
    assert (reason["code"], reason["field"]) == ("unknown_record", "subject.id")
    accepted(ledger, sub("file_record"))
    missing = sub("correct_record", submission_id="TAX-NOPE", record={"record_id": "NOPE"})
    assert rejected(ledger, missing) == {
        "code": "unknown_record",
        "field": "record.record_id",
        "message": "record 'tax_bureau:NOPE' is not on this subject's file",
    }


def test_every_event_carries_the_ledgers_time_not_the_wall_clock(ledger: CreditLedger, clock: Clock) -> None:
    clock.now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    accepted(ledger, sub("file_record"))
    events = list(ledger.events.get(file_of(ledger, PERSON).id))
    assert {e.timestamp for e in events} == {clock.now}


def test_an_occurred_at_in_the_future_is_rejected(ledger: CreditLedger, clock: Clock) -> None:
    future = sub("file_record", occurred_at="2026-11-03T09:00:00+08:00")
    assert rejected(ledger, future)["field"] == "occurred_at"


def test_a_legacy_code_failing_its_checksum_is_accepted_only_with_a_recorded_override(
    ledger: CreditLedger,
) -> None:
    legacy = sub("file_record_organisation", submission_id="MKT-L")
    legacy["subject"] = {"id": "91350100M000100Y44", "name": "老试点企业"}
    del legacy["record"]["responsible_persons"]
    reason = rejected(ledger, legacy)
    assert (reason["code"], reason["field"]) == ("invalid_subject_code", "subject.id")
    assert "check character (position 18) should be 3, got 4" in reason["message"]
    override = {"approved_by": "省信用中心 王五", "reason": "2015年试点期间赋码"}
    legacy2 = sub("file_record_organisation", submission_id="MKT-L2")
    legacy2["subject"] = {"id": "91350100M000100Y44", "name": "老试点企业", "checksum_override": override}
    del legacy2["record"]["responsible_persons"]
    accepted(ledger, legacy2)
    assert file_of(ledger, "91350100M000100Y43") is None
    events = list(ledger.submit([legacy2]))
    assert events[0].duplicate


@pytest.mark.parametrize("name", ["file_record", "designate"])
def test_a_resent_submission_changes_nothing_and_gets_its_first_outcome(
    ledger: CreditLedger, name: str
) -> None:
    first = submit(ledger, sub("file_record"), sub("file_record_organisation"))
    body = sub(name) if name == "file_record" else sub("designate")
    again = submit(ledger, body)[0]
    original = first[0] if name == "file_record" else None
    if original is not None:
        assert again.duplicate
        assert again.events == original.events
    version = file_of(ledger, PERSON).version
    submit(ledger, sub("file_record"), sub("file_record"))
    assert file_of(ledger, PERSON).version == version


def test_the_same_submission_id_with_other_content_is_a_conflict(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record"))
    changed = sub("file_record")
    changed["record"]["title"] = "另一内容"
    reason = rejected(ledger, changed)
    assert (reason["code"], reason["field"]) == ("submission_conflict", "submission_id")


def test_a_rejection_is_also_final_for_its_submission_id(ledger: CreditLedger) -> None:
    early = sub("correct_record")  # no record yet: rejected
    first = rejected(ledger, early)
    accepted(ledger, sub("file_record"))
    (again,) = submit(ledger, early)  # the same bytes after the record exists: still the same answer
    assert again.duplicate
    assert again.reason == first


def test_duplicates_inside_one_batch_are_answered_once(ledger: CreditLedger) -> None:
    outcomes = submit(ledger, sub("file_record"), sub("file_record"))
    assert [o.duplicate for o in outcomes] == [False, True]
    assert outcomes[0].events == outcomes[1].events


def test_every_kind_of_bad_input_becomes_a_rejection_never_an_exception(ledger: CreditLedger) -> None:
    outcomes = ledger.submit(
        [b"\xff\xfe not json", b"[1,2]", {"department": "tax_bureau"}, {"submission_id": 5}]
    )
    assert [o.status for o in outcomes] == ["rejected"] * 4
    assert [o.reason["code"] for o in outcomes] == [
        "undecodable",
        "undecodable",
        "missing_field",
        "missing_field",
    ]


def test_an_objection_left_unresolved_past_its_deadline_is_marked_overdue_and_stays_disputed(
    ledger: CreditLedger,
) -> None:
    accepted(ledger, sub("file_record_minor"), sub("raise_objection_minor"))
    early = sub(
        "mark_objection_overdue", submission_id="SCHED-EARLY", occurred_at="2026-04-30T12:00:00+08:00"
    )
    assert rejected(ledger, early)["code"] == "not_due"  # due by 2026-04-30: overdue only after it
    accepted(ledger, sub("mark_objection_overdue"))
    record = file_of(ledger, PERSON).records["transport:JT-2026-0401"]
    assert record.objections["YY-2026-0402"].overdue
    assert record.disputed
    again = sub("mark_objection_overdue", submission_id="SCHED-AGAIN")
    assert rejected(ledger, again)["code"] == "unknown_record"


def test_the_platform_addresses_a_file_by_its_key_and_departments_may_not(ledger: CreditLedger) -> None:
    accepted(ledger, sub("file_record_minor"))
    key = str(file_of(ledger, PERSON).id)
    by_key = sub("expire_record", subject={"key": key})
    accepted(ledger, by_key)
    assert file_of(ledger, PERSON).records["transport:JT-2026-0401"].status == "expired"
    department = sub("correct_record", submission_id="TAX-KEY", subject={"key": key})
    reason = rejected(ledger, department)
    assert (reason["code"], reason["field"]) == ("not_authorised", "subject.key")
    unknown = sub(
        "expire_record", submission_id="SCHED-NOKEY", subject={"key": "00000000-0000-8000-8000-000000000000"}
    )
    assert rejected(ledger, unknown)["field"] == "subject.key"
    both = sub("expire_record", submission_id="SCHED-BOTH", subject={"key": key, "id": PERSON})
    assert rejected(ledger, both)["field"] == "subject"
