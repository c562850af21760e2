"""The portal in process: public search, publicity, lists, sign-in, self-service, dashboard, guards.

The browser stories (tests/e2e/) show the same in Chromium; these pin each rule beside its cause.

One module of about 480 lines: every rule here is checked against the one in-process portal
(``desk``) and its ``filing`` helper.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import orjson

from ledger.domain.catalogue import Catalogue
from ledger.domain.personal import SHREDDED
from streams.portal.site import PortalSettings
from tests.conftest import ORGANISATION, PERSON, example, file_of
from tests.unit.measuredesk import designated, feedback, measure_desk
from tests.unit.portaldesk import Browser, serve_portal
from tests.unit.querydesk import NO_FILE, Desk, desk
from tests.unit.webdesk import records

__all__ = ["desk"]  # the fixture

OTHER_ORGANISATION = "91350100M000200Y4T"
IDENTITY_NUMBER = re.compile(r"\d{17}[\dX]|[0-9A-HJ-NPQRTUWXY]{18}")
ADDRESSES = re.compile(r'(?:href|action|src)="([^"]*)"')


def filing(
    submission_id: str,
    *,
    category: str,
    decided: str,
    filed: str,
    code: str = ORGANISATION,
    name: str = "福州某某贸易有限公司",
    department: str = "tax_bureau",
    domain: str = "taxation",
    severity: str | None = "general",
) -> dict[str, Any]:
    """A file_record submission of a licence or a penalty, decided and filed on the days given."""
    record: dict[str, Any] = {
        "record_id": submission_id,
        "category": category,
        "domain": domain,
        "title": "准予税务行政许可" if category == "administrative_licence" else "逾期申报，处以罚款",
        "decision": {"document_number": f"税〔2026〕{submission_id}号", "date": decided},
        "legal_basis": "《中华人民共和国税收征收管理法》",
    }
    if severity and category != "administrative_licence":
        record["severity"] = severity
    return {
        "submission_id": submission_id,
        "department": department,
        "action": "file_record",
        "subject": {"id": code, "name": name},
        "occurred_at": f"{filed}T09:00:00+08:00",
        "record": record,
    }


def a_rejected_filing(desk: Desk) -> None:
    """The tax bureau files in a domain it is not registered for: one rejection on its dashboard."""
    bad = copy.deepcopy(example("file_record"))
    bad["submission_id"], bad["record"]["domain"] = "TAX-BAD", "food_drug"
    assert not desk.ledger.submit([bad])[0].accepted


def addresses(text: str) -> list[str]:
    return ADDRESSES.findall(text)


def test_a_listed_organisation_is_found_by_name_and_by_code_with_its_entry_and_masked_code(
    desk: Desk, tmp_path: Path
) -> None:
    async def scenario(browser: Browser) -> None:
        home = await browser.get("/")
        assert home.status == 200
        by_name = await browser.post("/search", {"q": "福州某某"})
        assert by_name.status == 200
        assert "福州某某贸易有限公司" in by_name.text
        assert "闽市监信〔2026〕202号" in by_name.text
        by_code = await browser.post("/search", {"q": ORGANISATION.lower()})
        assert "闽市监信〔2026〕202号" in by_code.text
        person = await browser.post("/search", {"q": PERSON})
        assert "110105********002X" in person.text
        assert PERSON not in person.text, "a code searched for is not written back into the page"
        for page in (home, by_name, by_code, person):
            assert not [a for a in addresses(page.text) if IDENTITY_NUMBER.search(a)]

    serve_portal(desk, tmp_path, scenario)


def test_a_search_is_a_post_with_a_csrf_token_and_a_get_or_a_forged_post_finds_nothing(
    desk: Desk, tmp_path: Path
) -> None:
    async def scenario(browser: Browser) -> None:
        await browser.get("/")
        assert (await browser.get(f"/search?q={ORGANISATION}")).status == 405
        forged = await browser.post("/search", {"q": ORGANISATION}, token="0" * 64)
        assert forged.status == 403
        assert "CSRF" in forged.text
        assert "福州某某贸易有限公司" not in forged.text

    serve_portal(desk, tmp_path, scenario)


def test_publicity_shows_licences_and_penalties_in_their_period_and_the_api_serves_the_same(
    desk: Desk, tmp_path: Path
) -> None:
    desk.submit(
        filing("XK-1", category="administrative_licence", decided="2026-09-01", filed="2026-09-02"),
        filing("CF-1", category="administrative_penalty", decided="2026-09-03", filed="2026-09-04"),
        filing(
            "CF-OLD",
            category="administrative_penalty",
            decided="2026-04-02",
            filed="2026-04-03",
            severity="minor",
        ),
        filing(
            "XK-PERSON",
            category="administrative_licence",
            decided="2026-09-05",
            filed="2026-09-06",
            code=PERSON,
            name="张三",
        ),
    )

    async def scenario(browser: Browser) -> None:
        status, body = await browser.json("/v1/publicity")
        assert status == 200
        ids = [item["record_id"] for item in body["items"]]
        assert "XK-1" in ids
        assert "CF-1" in ids
        assert "SW-2026-0101" in ids
        assert "CF-OLD" not in ids, "its publicity period ended"
        assert "XK-PERSON" not in ids, "a person's licence is not public"
        assert all("subject_key" not in item for item in body["items"])
        page = await browser.get("/publicity")
        assert page.status == 200
        for item in body["items"]:
            assert item["decision_document"] in page.text
        status, licences = await browser.json("/v1/publicity?category=administrative_licence")
        assert [i["record_id"] for i in licences["items"]] == ["XK-1"]
        status, refused = await browser.json("/v1/publicity?since=yesterday")
        assert (status, refused["error"]["field"]) == (400, "since")

    serve_portal(desk, tmp_path, scenario)


def test_the_lists_show_basis_validity_and_how_to_leave_without_subject_keys(
    desk: Desk, tmp_path: Path
) -> None:
    async def scenario(browser: Browser) -> None:
        black = await browser.get("/lists/black")
        assert black.status == 200
        assert "《市场监督管理严重违法失信名单管理办法》第二条" in black.text
        assert "2026-07-10 至 2029-07-10" in black.text
        assert "如何移出名单" in black.text
        state = desk.store.load(list(desk.store.records.subjects_named("福州", limit=5)))
        for key in state:
            assert key not in black.text
        assert (await browser.get("/lists/grey")).status == 404

    serve_portal(desk, tmp_path, scenario)


def test_every_page_has_the_security_headers_and_cookies_are_httponly_strict_and_secure_behind_tls(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "本人", PERSON)

    async def scenario(browser: Browser) -> None:
        for path in ("/", "/publicity", "/lists/red", "/login"):
            page = await browser.get(path)
            assert "script-src" not in page.headers["Content-Security-Policy"]
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
        plain = await browser.sign_in(key)
        cookie = plain.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie
        await browser.get("/login")
        tls = await browser.post("/login", {"credential": key}, X_Forwarded_Proto="https")
        assert "Secure" in tls.headers["Set-Cookie"]

    serve_portal(desk, tmp_path, scenario)


def test_the_public_search_is_limited_per_client_with_a_message_saying_how_long_to_wait(
    desk: Desk, tmp_path: Path
) -> None:
    async def scenario(browser: Browser) -> None:
        await browser.get("/")
        token = browser.last.token if browser.last else ""
        answers = [await browser.post("/search", {"q": "张三"}, token=token) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert "查询过于频繁" in answers[-1].text
        assert "秒后再试" in answers[-1].text
        assert int(answers[-1].headers["Retry-After"]) >= 1

    serve_portal(desk, tmp_path, scenario, PortalSettings(search_capacity=3, search_window=60))


def test_names_are_escaped_by_the_templates(desk: Desk, tmp_path: Path) -> None:
    desk.submit(
        filing(
            "CF-X",
            category="administrative_penalty",
            decided="2026-09-03",
            filed="2026-09-04",
            code=OTHER_ORGANISATION,
            name="<script>alert(1)</script>公司",
        )
    )

    async def scenario(browser: Browser) -> None:
        page = await browser.get("/publicity")
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)" in page.text

    serve_portal(desk, tmp_path, scenario)


def test_a_subject_signs_in_sees_their_file_as_a_recorded_query_and_raises_an_objection_as_the_desk(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "本人", PERSON)

    async def scenario(browser: Browser) -> None:
        assert (await browser.get("/me")).headers["Location"] == "/login"
        signed = await browser.sign_in(key)
        assert (signed.status, signed.headers["Location"]) == (303, "/me")
        before = len(records(desk))
        me = await browser.get("/me")
        assert me.status == 200
        assert "逾期未申报个人所得税" in me.text
        record = records(desk)[before]
        assert (record["endpoint"], record["channel"], record["outcome"]) == (
            "me.overview",
            "portal",
            "allowed",
        )
        sent = await browser.post("/me/objection", {"record": "tax_bureau:SW-2026-0101", "text": "已缴纳"})
        assert (sent.status, sent.headers["Location"]) == (303, "/me/applications")
        tracking = await browser.get("/me/applications")
        assert "异议申请" in tracking.text

    web = serve_portal(desk, tmp_path, scenario)
    (submission,) = [orjson.loads(value) for _, value in web.topic.sent]
    assert submission["action"] == "raise_objection"
    assert submission["department"] == "credit_platform"
    assert submission["record"] == {"provider": "tax_bureau", "record_id": "SW-2026-0101"}
    assert submission["subject"] == {"key": str(file_of(desk.ledger, PERSON).id)}
    for outcome in desk.ledger.submit([submission]):
        assert outcome.accepted, outcome.reason


def test_the_repair_button_is_disabled_with_the_reason_and_earliest_date_until_the_minimum_period(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "本人", PERSON)
    desk.clock.set("2026-07-01T10:00:00+08:00")  # decided 2026-05-28, general: three months at least

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        early = await browser.get("/me")
        assert re.search(r'class="repair" disabled aria-describedby="repair-why-1"', early.text)
        assert "最短公示期未满：最早可于 2026-08-28 申请" in early.text

    serve_portal(desk, tmp_path, scenario)
    desk.clock.set("2026-09-01T10:00:00+08:00")

    async def later(browser: Browser) -> None:
        await browser.sign_in(key)
        page = await browser.get("/me")
        assert 'class="repair">申请信用修复' in page.text

    serve_portal(desk, tmp_path, later)


def test_a_late_filing_shows_on_its_departments_dashboard_and_the_view_is_recorded(
    desk: Desk, tmp_path: Path
) -> None:
    desk.submit(
        filing("CF-ON-TIME", category="administrative_penalty", decided="2026-09-01", filed="2026-09-03"),
        filing("CF-LATE", category="administrative_penalty", decided="2026-09-01", filed="2026-09-30"),
    )
    a_rejected_filing(desk)
    key = desk.api_key("department", "tax_bureau")

    async def scenario(browser: Browser) -> None:
        signed = await browser.sign_in(key)
        assert signed.headers["Location"] == "/dashboard"
        page = await browser.get("/dashboard")
        assert page.status == 200
        late = page.text.split("逾期报送", 1)[1]
        assert "CF-LATE" in late
        assert "CF-ON-TIME" not in late
        assert "<svg" in page.text
        assert "退回 1 条" in page.text
        assert records(desk)[-1]["endpoint"] == "department.dashboard"

    serve_portal(desk, tmp_path, scenario)


NEW_PERSON = NO_FILE
NAMED = "欧阳测试员"
"""A person with a public penalty and a black-list entry, found by name, then erased."""


def _person_listed(desk: Desk) -> None:
    penalty = filing(
        "CF-P",
        category="administrative_penalty",
        decided="2026-09-03",
        filed="2026-09-04",
        code=NEW_PERSON,
        name=NAMED,
        department="market_regulator",
        domain="product_quality",
        severity="serious",
    )
    listing = copy.deepcopy(example("designate"))
    listing["submission_id"] = "HMD-P"
    listing["subject"] = {"id": NEW_PERSON, "name": NAMED}
    listing["occurred_at"] = "2026-09-05T10:00:00+08:00"
    listing["designation"].update(
        designation_id="HMD-P", valid_from="2026-09-05", records=[{"record_id": "CF-P"}]
    )
    desk.submit(penalty, listing)


def test_a_person_is_found_by_name_with_the_name_and_title_opened_and_after_erasure_shows_shredded(
    desk: Desk, tmp_path: Path
) -> None:
    """The full name finds the person through the blind index; the page opens the name and the
    penalty's title. Once the penalty is revoked and the file erased, rows the read models still
    hold open as shredded (the keys went first); once they catch up, the name's digest is gone."""
    _person_listed(desk)
    revoke = copy.deepcopy(example("revoke_record"))
    revoke.update(
        submission_id="REV-P",
        subject={"id": NEW_PERSON, "name": NAMED},
        occurred_at="2026-10-10T09:00:00+08:00",
        record={"record_id": "CF-P"},
    )
    erase = {
        "submission_id": "DESK-ERASE-P",
        "department": "credit_platform",
        "action": "shred_record",
        "subject": {"key": str(file_of(desk.ledger, NEW_PERSON).id)},
        "occurred_at": "2026-10-10T09:30:00+08:00",
        "basis": "erasure_request",
        "legal_basis": "《个人信息保护法》第四十七条",
    }
    code = {"q": NEW_PERSON}

    async def scenario(browser: Browser) -> None:
        await browser.get("/")
        found = await browser.post("/search", {"q": f" {NAMED} "})  # as typed, spaces and all
        assert found.status == 200
        assert f"<h2>{NAMED} " in found.text, "the name, opened"
        assert "逾期申报，处以罚款" in found.text, "the penalty's title, opened while it is public"
        assert "税〔2026〕CF-P号" in found.text
        assert "enc1:" not in found.text
        assert "未查到" in (await browser.post("/search", {"q": NAMED[:2]})).text, "a person: full name"
        status, publicity = await browser.json("/v1/publicity")
        assert status == 200
        (item,) = [i for i in publicity["items"] if i["record_id"] == "CF-P"]
        assert (item["name"], item["title"]) == (NAMED, "逾期申报，处以罚款")
        black = await browser.get("/lists/black")
        assert NAMED in black.text
        assert "enc1:" not in black.text

        # The penalty is revoked and the file erased; the read models have not caught up yet: the
        # ledger destroyed the keys, so the stale rows open as shredded, never as ciphertext.
        for outcome in desk.ledger.submit([revoke, erase]):
            assert outcome.accepted, outcome.reason
        await browser.get("/")
        stale = await browser.post("/search", {"q": NAMED})
        assert stale.status == 200
        assert f"<h2>{NAMED}" not in stale.text
        assert "enc1:" not in stale.text
        assert stale.text.count("已销毁（shredded）") >= 2, "the name and the title"
        _status, publicity = await browser.json("/v1/publicity")
        (item,) = [i for i in publicity["items"] if i["record_id"] == "CF-P"]
        assert (item["name"], item["title"]) == (SHREDDED, SHREDDED)

        desk.project()  # caught up: the name's digest went with the file's unit
        await browser.get("/")
        assert "未查到" in (await browser.post("/search", {"q": NAMED})).text
        by_code = await browser.post("/search", code)  # revoked: nothing of it is public any more
        assert "未查到" in by_code.text
        assert NEW_PERSON not in by_code.text
        black = await browser.get("/lists/black")
        assert "已销毁（shredded）" not in black.text
        assert "enc1:" not in black.text

    serve_portal(desk, tmp_path, scenario)
    subject = str(file_of(desk.ledger, NEW_PERSON).id)
    assert [row for row in desk.store.name_index() if row["subject_key"] == subject] == []


def test_the_dashboard_shows_the_departments_joint_measures_feedback_as_the_stats_endpoint_counts_it(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    measures = measure_desk(catalogue, tmp_path)
    designated(measures)  # the court gets five notices, feedback due 17 July
    court = {n["measure"]: n for n in measures.notices("court")}
    on_time, late = "2026-07-15T09:00:00+08:00", "2026-07-22T09:00:00+08:00"
    measures.at(on_time).submit(
        feedback(court["black.restrict_exit"], "applied", at=on_time),
        feedback(court["black.restrict_high_consumption"], "not_applicable", at=on_time),
    )
    measures.at(late).submit(feedback(court["black.restrict_real_estate_purchase"], "failed", at=late))
    stats = measures.measures.stats(measures.key("department", "court")).body["totals"]
    key = measures.api_key("department", "court")

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        page = await browser.get("/dashboard")
        assert page.status == 200
        section = page.text.split("<h2>联合奖惩反馈</h2>", 1)[1].split("</section>", 1)[0]
        assert "尚未接入" not in page.text
        assert (
            f"共 {stats['received']} 件：已实施 {stats['applied']} 件，不适用 {stats['not_applicable']} 件，"
            f"未能实施 {stats['failed']} 件，逾期未反馈 {stats['overdue']} 件" in section
        )
        assert (stats["received"], stats["applied"], stats["failed"], stats["overdue"]) == (5, 1, 1, 2)
        assert f"反馈用时中位数 {stats['median_delay_working_days']} 个工作日" in section
        rate = stats["on_time_rate"]
        assert f"奖惩到位率（强制性措施按期实施的比例）{rate * 100:.1f}%" in section
        assert '<svg width="460"' in section
        assert 'aria-label="联合奖惩措施通知及反馈（件）"' in section
        exit_row = re.search(r"<tr[^>]*><td>限制出境（强制）</td>(.*?)</tr>", section)
        assert exit_row, section
        assert "<td>1</td><td>1</td><td>0</td><td>0</td><td>0</td>" in exit_row.group(1)

    serve_portal(measures, tmp_path, scenario)


def test_the_lists_are_paged_by_twenty_with_links_that_keep_the_filters(desk: Desk, tmp_path: Path) -> None:
    for n in range(1, 24):  # 23 more black-list entries on the same record, entered a day apart
        designation = copy.deepcopy(example("designate"))
        designation["submission_id"] = f"MKT-PAGE-{n}"
        entry = designation["designation"]
        entry["designation_id"] = f"HMD-PAGE-{n:02}"
        entry["document_number"] = f"闽市监信〔2026〕9{n:02}号"
        entry["valid_from"] = f"2026-08-{n:02}"
        desk.submit(designation)

    async def scenario(browser: Browser) -> None:
        first = await browser.get("/lists/black")
        assert first.status == 200
        assert "共 24 条，每页 20 条" in first.text
        assert "第 1 / 2 页" in first.text
        assert first.text.count("闽市监信〔2026〕") == 20
        assert "闽市监信〔2026〕202号" in first.text  # the oldest entry first
        (following,) = re.findall(r'href="(\?[^"]*)" rel="next"', first.text)
        assert following == "?page=2"
        second = await browser.get("/lists/black" + following)
        assert "第 2 / 2 页" in second.text
        assert second.text.count("闽市监信〔2026〕") == 4
        assert "闽市监信〔2026〕923号" in second.text
        assert 'rel="prev"' in second.text
        assert 'rel="next"' not in second.text
        beyond = await browser.get("/lists/black?page=9")
        assert "没有符合条件的名单条目" in beyond.text

        since = await browser.get("/lists/black?since=2026-08-02&department=market_regulator")
        assert "共 22 条，每页 20 条" in since.text
        (kept,) = re.findall(r'href="(\?[^"]*)" rel="next"', since.text)
        assert kept.replace("&amp;", "&") == "?department=market_regulator&since=2026-08-02&page=2"
        rest = await browser.get("/lists/black" + kept.replace("&amp;", "&"))
        assert rest.text.count("闽市监信〔2026〕") == 2
        assert "闽市监信〔2026〕901号" not in rest.text
        assert (await browser.get("/lists/black?page=x")).status == 400
        assert "共 0 条" in (await browser.get("/lists/black?domain=taxation")).text

    serve_portal(desk, tmp_path, scenario)
