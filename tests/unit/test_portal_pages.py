"""The portal's pages point by point (issue 14): search paging and filters, persons and
organisations, items leaving publicity, self-service forms, the register the subject sees, the
dashboard's rejections and objections. test_portal.py holds the first stories; this the rest.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import orjson

from ledger.domain.subjects import organisation_check_character
from tests.conftest import ORGANISATION, PERSON, example, file_of
from tests.unit.portaldesk import Browser, serve_portal
from tests.unit.querydesk import Desk, desk
from tests.unit.test_portal import NEW_PERSON, _person_listed, a_rejected_filing, filing

__all__ = ["desk"]  # the fixture

SECTIONS = re.compile(r'<section class="subject">(.*?)</section>', re.S)


def organisation(n: int) -> str:
    """A valid unified social credit code, the n-th of a series."""
    first17 = f"91350100M000{300 + n:03d}Y4"
    return first17 + organisation_check_character(first17)


def test_search_results_are_paged_by_ten_and_the_next_page_is_a_post_carrying_the_query(
    desk: Desk, tmp_path: Path
) -> None:
    desk.submit(
        *[
            filing(
                f"CF-PG-{n:02}",
                category="administrative_penalty",
                decided="2026-09-03",
                filed="2026-09-04",
                code=organisation(n),
                name=f"厦门翻页测试{n:02}有限公司",
            )
            for n in range(12)
        ]
    )

    async def scenario(browser: Browser) -> None:
        await browser.get("/")
        first = await browser.post("/search", {"q": "厦门翻页"})
        assert first.status == 200
        assert len(SECTIONS.findall(first.text)) == 10
        assert "第 1 页" in first.text
        (pager,) = re.findall(r'<form method="post" action="/search">(.*?)</form>', first.text, re.S)
        assert 'name="q" value="厦门翻页"' in pager
        assert 'name="page" value="2"' in pager
        assert ">下一页<" in pager
        second = await browser.post("/search", {"q": "厦门翻页", "page": "2"})
        names = re.findall(r"厦门翻页测试(\d\d)有限公司", second.text)
        assert len(SECTIONS.findall(second.text)) == 2
        assert ">上一页<" in second.text
        assert ">下一页<" not in second.text
        assert set(names).isdisjoint(re.findall(r"厦门翻页测试(\d\d)有限公司", first.text))

    serve_portal(desk, tmp_path, scenario)


def test_search_is_filtered_by_domain_department_and_decision_date(desk: Desk, tmp_path: Path) -> None:
    code = organisation(50)
    name = "泉州筛选测试有限公司"
    desk.submit(
        filing("CF-TAX-SEP", category="administrative_penalty", decided="2026-09-03", filed="2026-09-04",
               code=code, name=name),
        filing("CF-TAX-AUG", category="administrative_penalty", decided="2026-08-03", filed="2026-08-04",
               code=code, name=name),
        filing("CF-MKT-SEP", category="administrative_penalty", decided="2026-09-10", filed="2026-09-11",
               code=code, name=name, department="market_regulator", domain="product_quality"),
    )  # fmt: skip

    async def found(browser: Browser, **filters: str) -> set[str]:
        await browser.get("/")
        page = await browser.post("/search", {"q": name, **filters})
        assert page.status == 200
        return set(re.findall(r"税〔2026〕(CF-[A-Z]+-[A-Z]+)号", page.text))

    async def scenario(browser: Browser) -> None:
        assert await found(browser) == {"CF-TAX-SEP", "CF-TAX-AUG", "CF-MKT-SEP"}
        assert await found(browser, department="market_regulator") == {"CF-MKT-SEP"}
        assert await found(browser, domain="taxation") == {"CF-TAX-SEP", "CF-TAX-AUG"}
        assert await found(browser, since="2026-09-01") == {"CF-TAX-SEP", "CF-MKT-SEP"}
        assert await found(browser, until="2026-08-31") == {"CF-TAX-AUG"}
        assert await found(browser, domain="taxation", since="2026-09-01") == {"CF-TAX-SEP"}
        await browser.get("/")
        refused = await browser.post("/search", {"q": name, "since": "yesterday"})
        assert refused.status == 400

    serve_portal(desk, tmp_path, scenario)


def test_a_persons_licence_is_not_shown_where_an_organisations_is(desk: Desk, tmp_path: Path) -> None:
    """As the law does: an organisation's licences and penalties are public; a person's
    licences are personal data, only their penalties are published, with the number masked."""
    desk.submit(
        filing("XK-ORG", category="administrative_licence", decided="2026-09-01", filed="2026-09-02"),
        filing("XK-PER", category="administrative_licence", decided="2026-09-05", filed="2026-09-06",
               code=PERSON, name="张三"),
    )  # fmt: skip

    async def scenario(browser: Browser) -> None:
        await browser.get("/")
        company = await browser.post("/search", {"q": ORGANISATION})
        assert "法人和其他组织" in company.text
        assert "税〔2026〕XK-ORG号" in company.text
        row = re.search(r"<tr>\s*<td>税〔2026〕XK-ORG号</td>(.*?)</tr>", company.text, re.S)
        assert row, company.text
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))  # department, date, category, title, basis
        assert cells[:3] == ["税务局", "2026-09-01", "行政许可"]
        assert cells[4] == "《中华人民共和国税收征收管理法》"
        await browser.get("/")
        person = await browser.post("/search", {"q": PERSON})
        assert "自然人（仅显示依法公开的信息）" in person.text
        assert "京税罚〔2026〕101号" in person.text, "the person's penalty is public"
        assert "XK-PER" not in person.text, "the person's licence is not"
        assert "110105********002X" in person.text
        assert PERSON not in person.text
        publicity = await browser.get("/publicity")
        assert "XK-ORG" in publicity.text
        assert "XK-PER" not in publicity.text

    serve_portal(desk, tmp_path, scenario)


def test_items_leave_publicity_on_repair_and_on_revocation_and_stay_in_the_subjects_history(
    desk: Desk, tmp_path: Path
) -> None:
    desk.submit(
        filing("CF-REV", category="administrative_penalty", decided="2026-09-03", filed="2026-09-04"),
    )
    revoke = copy.deepcopy(example("revoke_record"))
    revoke.update(
        submission_id="REV-CF", occurred_at="2026-10-09T09:00:00+08:00", record={"record_id": "CF-REV"}
    )
    revoke["subject"] = {"id": ORGANISATION, "name": "福州某某贸易有限公司"}
    revoke["department"] = "tax_bureau"
    key = desk.api_key("subject", "本人", PERSON)

    async def public_ids(browser: Browser) -> set[str]:
        status, body = await browser.json("/v1/publicity")
        assert status == 200
        page = await browser.get("/publicity")
        ids = {item["record_id"] for item in body["items"]}
        for item in body["items"]:
            assert item["decision_document"] in page.text, "the page shows what the API serves"
        return ids

    async def before(browser: Browser) -> None:
        assert {"SW-2026-0101", "CF-REV"} <= await public_ids(browser)

    serve_portal(desk, tmp_path, before)
    desk.submit(example("request_repair"), example("decide_repair"), revoke)

    async def after(browser: Browser) -> None:
        ids = await public_ids(browser)
        assert "SW-2026-0101" not in ids, "repaired"
        assert "CF-REV" not in ids, "revoked"
        page = await browser.get("/publicity")
        assert "京税罚〔2026〕101号" not in page.text
        assert "税〔2026〕CF-REV号" not in page.text
        await browser.sign_in(key)
        me = await browser.get("/me/applications")
        assert "XF-2026-0303" in me.text, "the repair stays in the subject's history"
        assert "已修复" in me.text

    serve_portal(desk, tmp_path, after)
    events = [n.topic for n in desk.ledger.recorder.select_notifications(1, 100_000)]
    assert any(t.endswith("RecordRevoked") for t in events), "the ledger keeps the revoked record"
    assert any(t.endswith("RepairGranted") for t in events), "and the repaired one"


def test_repair_and_statement_forms_file_the_desks_ledger_actions_for_the_signed_in_subject(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "本人", PERSON)

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        me = await browser.get("/me")
        assert 'class="repair">申请信用修复' in me.text, "decided 2026-05-28: three months are over"
        sent = await browser.post("/me/repair", {"record": "tax_bureau:SW-2026-0101", "text": "已缴清罚款"})
        assert (sent.status, sent.headers["Location"]) == (303, "/me/applications")
        await browser.get("/me")
        said = await browser.post("/me/statement", {"record": "", "text": "已按期整改"})
        assert said.headers["Location"] == "/me/applications"
        await browser.get("/me")
        empty = await browser.post("/me/repair", {"record": "tax_bureau:SW-2026-0101", "text": ""})
        assert empty.headers["Location"] == "/me", "nothing is sent without its text"
        tracking = await browser.get("/me/applications")
        assert "信用修复申请" in tracking.text
        assert "情况说明" in tracking.text

    web = serve_portal(desk, tmp_path, scenario)
    repair, statement = [orjson.loads(value) for _, value in web.topic.sent]
    subject = {"key": str(file_of(desk.ledger, PERSON).id)}
    assert (repair["action"], repair["department"], repair["subject"]) == (
        "request_repair",
        "credit_platform",
        subject,
    )
    assert repair["measures_taken"] == "已缴清罚款"
    assert (statement["action"], statement["subject"], statement["text"]) == (
        "add_statement",
        subject,
        "已按期整改",
    )
    for outcome in desk.ledger.submit([repair, statement]):
        assert outcome.accepted, outcome.reason


def test_the_subject_sees_the_portals_own_reads_of_their_file_and_the_free_reports_counted(
    desk: Desk, tmp_path: Path
) -> None:
    key = desk.api_key("subject", "本人", PERSON)

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        first = await browser.get("/me")
        assert "本年度已使用免费信用报告 0 份，共 2 份" in first.text
        report = await browser.post("/me/report", {})
        assert report.status == 200
        assert "信用报告" in report.text
        desk.project()  # the register's rows reach the read models (the projector, when served)
        again = await browser.get("/me")
        assert "本年度已使用免费信用报告 1 份，共 2 份" in again.text
        await browser.get("/me/applications")
        desk.project()
        last = await browser.get("/me")
        queried = last.text.split("<h2>近两年查询记录</h2>", 1)[1]
        rows = re.findall(r"<tr><td>(.*?)</tr>", queried)
        assert len(rows) == 4, "/me twice, the report and the applications page, each recorded"
        for row in rows:  # in Chinese: who, why, the outcome
            assert "<td>本人</td><td>本人查询</td>" in row
            assert row.endswith("<td>已提供</td>")
        assert "subject_self_inquiry" not in queried

    serve_portal(desk, tmp_path, scenario)


def test_the_dashboard_shows_rejection_rates_by_reason_and_objections_against_the_deadline(
    desk: Desk, tmp_path: Path
) -> None:
    a_rejected_filing(desk)
    desk.submit(example("raise_objection"), example("resolve_objection"))
    key = desk.api_key("department", "tax_bureau")

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        page = await browser.get("/dashboard")
        assert page.status == 200
        text = re.sub(r"<[^>]+>", " ", page.text)
        assert "退回 1 条" in page.text
        assert re.search(r"\d+(\.\d+)?%", text), "the share rejected, by reason"
        assert "超出本部门职权" in text, "each reason in Chinese"
        assert "not_authorised" in text, "its code beside"
        assert "YY-2026-0301" in page.text
        assert "2026-06-25" in page.text, "the objection's deadline"
        assert page.text.count('role="img"') >= 3

    serve_portal(desk, tmp_path, scenario)


POST_PATHS = ("/search", "/login", "/logout", "/me/report", "/me/objection", "/me/repair", "/me/statement")
FORMS = re.compile(r'<form method="(\w+)" action="([^"]*)"[^>]*>(.*?)</form>', re.S)


def test_every_form_carries_a_csrf_token_every_post_refuses_without_it_and_no_address_holds_a_code(
    desk: Desk, tmp_path: Path
) -> None:
    subject = desk.api_key("subject", "本人", PERSON)
    department = desk.api_key("department", "tax_bureau")
    codes = re.compile(r"\d{17}[\dX]|[0-9A-HJ-NPQRTUWXY]{18}")

    def checked(page_text: str, where: str) -> set[str]:
        posted = set()
        for method, action, body in FORMS.findall(page_text):
            assert method == "get" or 'name="csrf_token"' in body, (
                f"{where}: a form to {action} without its token"
            )
            posted |= {action} if method == "post" else set()
        for address in re.findall(r'(?:href|action|src)="([^"]*)"', page_text):
            assert not codes.search(address), f"{where}: an identity number or code in {address}"
        return posted

    async def scenario(browser: Browser) -> None:
        posted: set[str] = set()
        for path in ("/", "/publicity", "/lists/black", "/lists/red", "/login"):
            posted |= checked((await browser.get(path)).text, path)
        posted |= checked((await browser.post("/search", {"q": ORGANISATION})).text, "/search")
        await browser.sign_in(subject)
        for path in ("/me", "/me/applications"):
            posted |= checked((await browser.get(path)).text, path)
        posted |= checked((await browser.post("/me/report", {})).text, "/me/report")
        for path in POST_PATHS:  # signed in, with the cookie, but a token that is not the form's
            refused = await browser.post(
                path, {"q": "福州", "record": "tax_bureau:SW-2026-0101", "text": "x"}, token=""
            )
            assert refused.status == 403, path
            assert "CSRF" in refused.text
        await browser.get("/me")
        await browser.post("/logout", {})
        await browser.sign_in(department)
        posted |= checked((await browser.get("/dashboard")).text, "/dashboard")
        assert posted == set(POST_PATHS), "every POST path is a form on some page"

    web = serve_portal(desk, tmp_path, scenario)
    assert web.topic.sent == [], "nothing refused was sent"


def test_a_listed_person_sees_the_joint_measures_applied_to_them_and_the_list_on_their_page(
    desk: Desk, tmp_path: Path
) -> None:
    _person_listed(desk)
    key = desk.api_key("subject", "本人", NEW_PERSON)

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        me = await browser.get("/me")
        assert "已列入黑名单" in me.text
        measures = me.text.split("<h2>联合奖惩措施</h2>", 1)[1].split("</section>", 1)[0]
        applied = re.findall(r"<li>实施中：(.*?)（(必须|建议)）</li>", measures)
        assert applied, measures
        assert "没有对您实施的联合惩戒措施" not in measures

    serve_portal(desk, tmp_path, scenario)


def test_the_intakes_rules_apply_to_the_subjects_forms_and_a_rejection_shows_with_its_reason(
    desk: Desk, tmp_path: Path
) -> None:
    """Two objections to the same record, the second sent before the first was answered (two
    tabs): the intake accepts the first and rejects the second (objection_open), as it would a
    desk clerk's; the applications page shows each outcome, the rejection with its reason."""
    key = desk.api_key("subject", "本人", PERSON)
    objection = {"record": "tax_bureau:SW-2026-0101", "text": "罚款已在决定前缴纳"}

    async def scenario(browser: Browser) -> None:
        await browser.sign_in(key)
        await browser.get("/me")
        token = browser.last.token if browser.last else ""
        for _ in range(2):
            sent = await browser.post("/me/objection", objection, token=token)
            assert sent.headers["Location"] == "/me/applications"
        outcomes = desk.ledger.submit([orjson.loads(value) for _, value in browser.web.topic.sent])
        assert [o.accepted for o in outcomes] == [True, False]
        reason = outcomes[1].reason or {}
        assert reason.get("code") == "objection_open"
        desk.project()
        page = await browser.get("/me/applications")
        sent_rows = page.text.split("<caption>受理结果</caption>", 1)[1].split("</table>", 1)[0]
        assert "已受理" in sent_rows
        assert f"未受理：{reason['message']}" in sent_rows
        assert "核查中" in page.text, "the accepted one is tracked with its deadline"

    serve_portal(desk, tmp_path, scenario)
