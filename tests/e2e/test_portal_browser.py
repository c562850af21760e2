"""The portal in Debian's headless Chromium, against a real `credit-ledger serve`: the stories of issue 14.

Playwright drives the system browser (``executable_path``); nothing downloads a browser, and a
missing /usr/bin/chromium fails these tests (``scripts/test`` installs it). Each page visited is
checked for labels on every input and headings in order; the forms are used by keyboard where the
story says so. Screenshots go to ``CREDIT_PORTAL_SCREENSHOTS`` (docs/portal/ when the docs are
made: ``CREDIT_PORTAL_SCREENSHOTS=docs/portal pytest tests/e2e``), else under pytest's tmp dir.

One module because the stories share one served worker and the records filed into it (a
module-scoped fixture: starting serve and projecting takes most of the run), and their order
matters: the search-limit story uses up the client's searches, so it comes last.
"""

from __future__ import annotations

import itertools
import os
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ledger.domain.workdays import add_months
from tests.integration.serving import Served, answers, cli, issue_key, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",  # as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine's network is closed: no calls home
    "--disable-component-update",
    "--disable-sync",
]
PERSON = "11010519491231002X"
ORGANISATION = "91350100M000100Y43"
TODAY = date.today()
CHINA = timezone(timedelta(hours=8))


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def record(
    sid: str, department: str, code: str, name: str, *, category: str, domain: str, decided: str, filed: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "record_id": sid,
        "category": category,
        "domain": domain,
        "title": {
            "administrative_penalty": "逾期申报，处以罚款",
            "administrative_licence": "准予行政许可",
        }.get(category, "生产销售假冒伪劣产品"),
        "decision": {"document_number": f"文〔{decided[:4]}〕{sid}号", "date": decided},
        "legal_basis": "《中华人民共和国行政处罚法》",
    }
    if category != "administrative_licence":
        body["severity"] = "serious" if category == "counterfeit_goods" else "general"
        body["display_months"] = 24 if category == "counterfeit_goods" else 12
    return {
        "submission_id": sid,
        "department": department,
        "action": "file_record",
        "subject": {"id": code, "name": name},
        "occurred_at": f"{filed}T09:00:00+08:00",
        "record": body,
    }


SUBMISSIONS = [
    # 张三: a penalty decided 40 days ago (repair not yet allowed) and one 200 days ago (allowed).
    record(
        "SW-NEW",
        "tax_bureau",
        PERSON,
        "张三",
        category="administrative_penalty",
        domain="taxation",
        decided=day(40),
        filed=day(38),
    ),
    record(
        "SW-OLD",
        "tax_bureau",
        PERSON,
        "张三",
        category="administrative_penalty",
        domain="taxation",
        decided=day(200),
        filed=day(199),
    ),
    # A tax licence filed a month after its decision: late under the 7-working-day rule.
    record(
        "XK-LATE",
        "tax_bureau",
        ORGANISATION,
        "福州某某贸易有限公司",
        category="administrative_licence",
        domain="taxation",
        decided=day(45),
        filed=day(10),
    ),
    record(
        "SJ-1",
        "market_regulator",
        ORGANISATION,
        "福州某某贸易有限公司",
        category="counterfeit_goods",
        domain="product_quality",
        decided=day(60),
        filed=day(59),
    ),
    {
        "submission_id": "HMD-1",
        "department": "market_regulator",
        "action": "designate",
        "subject": {"id": ORGANISATION, "name": "福州某某贸易有限公司"},
        "occurred_at": f"{day(58)}T10:00:00+08:00",
        "designation": {
            "designation_id": "HMD-1",
            "list": "black",
            "basis": "《市场监督管理严重违法失信名单管理办法》第二条",
            "document_number": "闽市监信〔2026〕202号",
            "valid_from": day(58),
            "valid_until": (TODAY + timedelta(days=700)).isoformat(),
            "records": [{"record_id": "SJ-1"}],
        },
    },
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served worker (its own embedded broker) with the stories' records filed and projected."""
    server = Served(tmp_path_factory.mktemp("portal") / "data", http=True).start(timeout=60)
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        wait_for(lambda: answers(f"{base}/v1/health"), 60, server.describe)
        request = urllib.request.Request(
            f"{base}/v1/submissions",
            data=orjson.dumps(SUBMISSIONS),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        wait_for(lambda: _black_list_has(base, "HMD-1"), 60, server.describe)
        assert f"portal:    {base}/  (信用门户" in server.log.read_text(), "the banner shows the portal"
        yield server
    finally:
        server.stop()


def _black_list_has(base: str, designation: str) -> bool:
    with urllib.request.urlopen(f"{base}/v1/lists/black", timeout=5) as response:
        return designation in response.read().decode()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is needed: apt-get install chromium (scripts/test does)"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="zh-CN")
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CREDIT_PORTAL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def url(served: Served, path: str) -> str:
    return f"http://127.0.0.1:{served.http_port}{path}"


def accessible(page: Page) -> None:
    """Every visible input has a label, there is one h1 and no heading skips a level."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == [], f"{page.url}: inputs without a label: {unlabelled}"
    levels = page.evaluate(
        "() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])"
    )
    assert levels[:1] == [1], f"{page.url}: the first heading is the h1, got {levels}"
    assert levels.count(1) == 1, f"{page.url}: one h1, got {levels}"
    jumps = [(a, b) for a, b in itertools.pairwise(levels) if b > a + 1]
    assert jumps == [], f"{page.url}: headings skip a level: {jumps}"
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"


def tab_to(page: Page, element_id: str, presses: int = 80) -> None:
    """Press Tab until the element has the focus, as a keyboard user does."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with the Tab key")


def sign_in(page: Page, served: Served, key: str, shot: Path | None = None) -> None:
    """By keyboard only: Tab to the credential, type it, Enter."""
    page.goto(url(served, "/login"))
    accessible(page)
    if shot:
        page.screenshot(path=shot, full_page=True)
    tab_to(page, "credential")
    page.keyboard.type(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_a_listed_subject_is_found_by_name_and_by_code(served: Served, page: Page, shots: Path) -> None:
    page.goto(url(served, "/"))
    accessible(page)
    page.screenshot(path=shots / "home.png", full_page=True)
    page.get_by_label("名称或代码").fill("福州某某")
    page.get_by_role("button", name="查询").click()
    assert "闽市监信〔2026〕202号" in page.inner_text("main")
    assert "/search" in page.url
    assert "福州" not in page.url
    accessible(page)
    page.screenshot(path=shots / "search.png", full_page=True)
    page.get_by_label("名称或代码").fill(ORGANISATION)
    with page.expect_navigation():
        page.get_by_label("名称或代码").press("Enter")
    assert "失信黑名单" in page.inner_text("main")
    assert ORGANISATION not in page.url
    page.goto(url(served, "/lists/black"))
    accessible(page)
    assert "有效期届满自动移出" in page.inner_text("main")
    page.screenshot(path=shots / "black-list.png", full_page=True)
    page.goto(url(served, "/publicity"))
    accessible(page)
    page.screenshot(path=shots / "publicity.png", full_page=True)


def test_a_subject_signs_in_objects_to_a_record_and_the_public_page_shows_it_disputed(
    served: Served, page: Page, shots: Path
) -> None:
    key = issue_key(served, "--role", "subject", "--subject", PERSON)
    sign_in(page, served, key, shots / "login.png")
    assert page.url.endswith("/me")
    accessible(page)
    page.screenshot(path=shots / "me.png", full_page=True)
    article = page.locator("article.record", has_text="SW-NEW")
    field_id = article.locator("textarea[name=text]").first.get_attribute("id")
    assert field_id is not None
    tab_to(page, field_id)
    page.keyboard.type("罚款已在决定前缴纳，请核查")
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # 提出异议, by keyboard
    assert page.url.endswith("/me/applications")

    def accepted_and_tracked() -> bool:  # the outcome first, then the read models' tracking row
        page.reload()
        text = page.inner_text("main")
        return "已受理" in text and "核查中" in text

    wait_for(accepted_and_tracked, 30, served.describe)
    assert "个工作日" in page.locator("tr", has_text="核查中").inner_text()
    accessible(page)
    page.screenshot(path=shots / "applications.png", full_page=True)

    def disputed_in_public() -> bool:
        page.goto(url(served, "/publicity?department=tax_bureau"))
        row = page.locator("tr", has_text="SW-NEW")
        return row.count() == 1 and "异议处理中" in row.inner_text()

    wait_for(disputed_in_public, 30, served.describe)


def test_the_repair_button_is_disabled_with_its_reason_before_the_minimum_period_and_enabled_after(
    served: Served, page: Page, shots: Path
) -> None:
    key = issue_key(served, "--role", "subject", "--subject", PERSON)
    sign_in(page, served, key)
    recent = page.locator("article.record", has_text="SW-NEW").get_by_role("button", name="申请信用修复")
    old = page.locator("article.record", has_text="SW-OLD").get_by_role("button", name="申请信用修复")
    assert recent.is_disabled()
    earliest = add_months(date.fromisoformat(day(40)), 3).isoformat()  # a general penalty: 3 months at least
    reason = page.locator("article.record", has_text="SW-NEW").locator(".why", has_text="最短公示期未满")
    assert reason.count() == 1
    assert earliest in reason.inner_text()
    assert "最早可于" in reason.inner_text()
    assert old.is_enabled()
    page.locator("article.record", has_text="SW-NEW").screenshot(path=shots / "repair-disabled.png")
    used = page.locator("section", has_text="信用报告").inner_text()
    assert "共 2 份" in used
    with page.expect_navigation():
        page.get_by_role("button", name="获取本人信用报告").click()
    assert "本人信用报告" in page.inner_text("h1")
    assert "SW-OLD" in page.inner_text("main")
    accessible(page)
    page.screenshot(path=shots / "report.png", full_page=True)


def test_a_late_filing_shows_on_the_departments_dashboard(served: Served, page: Page, shots: Path) -> None:
    key = issue_key(served, "--role", "department", "--organisation", "tax_bureau")
    sign_in(page, served, key)
    assert page.url.endswith("/dashboard")
    accessible(page)
    late = page.locator("table", has_text="逾期报送")
    assert "XK-LATE" in late.inner_text()
    assert "SW-OLD" not in late.inner_text()
    assert page.locator("svg[role=img]").count() >= 1
    page.screenshot(path=shots / "dashboard.png", full_page=True)


def test_a_designations_notices_and_their_feedback_show_on_the_implementing_departments_dashboard(
    served: Served, page: Page, shots: Path
) -> None:
    """HMD-1 (black list) notifies the court of five measures; the court applies one; its dashboard
    counts it with the figures of GET /v1/measures/stats."""

    def court_notices() -> list[dict[str, Any]]:
        shown = cli(
            served, "subscribe", "measures", "--department", "court", "--from-beginning", "--idle", "1"
        )
        assert shown.returncode == 0, shown.stderr
        found = [orjson.loads(line) for line in shown.stdout.splitlines()]
        return [m for m in found if m["type"] == "notice" and m["designation_id"] == "HMD-1"]

    notices = wait_for(lambda: (found := court_notices()) and len(found) >= 5 and found, 60, served.describe)
    exit_notice = next(m for m in notices if m["measure"]["id"] == "black.restrict_exit")
    feedback = {
        "submission_id": "FK-PORTAL-1",
        "subject": {"key": exit_notice["subject_key"]},
        # A minute ago in China: "today at 09:00" is still in the future between 00:00 and 01:00 UTC.
        "occurred_at": (datetime.now(CHINA) - timedelta(minutes=1)).isoformat(timespec="seconds"),
        "feedback": {
            "feedback_id": "FK-PORTAL-1",
            "notice_id": exit_notice["notice_id"],
            "state_version": exit_notice["state_version"],
            "outcome": "applied",
            "business_reference": "（2026）闽01执限字第9号",
            "applied_on": TODAY.isoformat(),
        },
    }
    sent = cli(served, "feedback", "-", "--department", "court", stdin=orjson.dumps(feedback).decode())
    assert sent.returncode == 0, sent.stderr
    key = issue_key(served, "--role", "department", "--organisation", "court")
    sign_in(page, served, key)
    assert page.url.endswith("/dashboard")

    def counted() -> bool:
        page.reload()
        return "已实施 1 件" in page.locator("section", has_text="联合奖惩反馈").inner_text()

    wait_for(counted, 60, served.describe)
    section = page.locator("section", has_text="联合奖惩反馈")
    text = section.inner_text()
    assert "共 5 件" in text
    assert "逾期未反馈 4 件" in text  # designated 58 days ago: the other four are past their day
    assert "奖惩到位率" in text
    assert "尚未接入" not in page.inner_text("main")
    assert section.locator("svg[role=img]").count() == 1
    row = section.locator("tr", has_text="限制出境")
    assert row.locator("td").all_inner_texts()[1:3] == ["1", "1"]
    accessible(page)
    page.screenshot(path=shots / "dashboard-measures.png", full_page=True)


PHONE = {"width": 375, "height": 740}
WIDER_THAN_THE_SCREEN = """width => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > width && !e.closest('.scroll'))
    .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right))
    .slice(0, 8)"""
"""What sticks out past the screen, outside the boxes that scroll (for the failure message)."""


def test_every_page_works_on_a_phone_without_javascript(
    served: Served, browser: Browser, shots: Path
) -> None:
    """A 375-pixel screen and no script at all: nothing is wider than the screen (wide tables
    scroll inside their box), the viewport is declared, and search, sign-in and the objection
    form are plain forms that work as they are."""
    context = browser.new_context(
        viewport=PHONE, locale="zh-CN", java_script_enabled=False, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()

        def fits(path: str) -> None:
            assert page.locator('meta[name=viewport][content*="width=device-width"]').count() == 1
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            past = page.evaluate(WIDER_THAN_THE_SCREEN, PHONE["width"])
            assert wide <= PHONE["width"], f"{path}: {wide}px wide on a {PHONE['width']}px screen: {past}"
            accessible(page)

        for path in ("/", "/publicity", "/lists/black", "/lists/red", "/login"):
            page.goto(url(served, path))
            fits(path)
        page.goto(url(served, "/"))
        page.get_by_label("名称或代码").fill("福州某某")
        with page.expect_navigation():
            page.get_by_role("button", name="查询").click()
        assert "闽市监信〔2026〕202号" in page.inner_text("main")
        fits("/search")
        page.screenshot(path=shots / "phone-search.png", full_page=True)
        page.goto(url(served, "/login"))
        page.get_by_label("凭证").fill(issue_key(served, "--role", "subject", "--subject", PERSON))
        with page.expect_navigation():
            page.get_by_role("button", name="登录").click()
        assert page.url.endswith("/me")
        fits("/me")
        page.screenshot(path=shots / "phone-me.png", full_page=True)
        for path in ("/me/applications",):
            page.goto(url(served, path))
            fits(path)
        page.goto(url(served, "/"))
        dept = issue_key(served, "--role", "department", "--organisation", "tax_bureau")
        with page.expect_navigation():
            page.get_by_role("button", name="退出登录").click()
        page.goto(url(served, "/login"))
        page.get_by_label("凭证").fill(dept)
        with page.expect_navigation():
            page.get_by_role("button", name="登录").click()
        assert page.url.endswith("/dashboard")
        fits("/dashboard")
    finally:
        context.close()


def test_the_public_search_limit_answers_with_its_message(served: Served, page: Page, shots: Path) -> None:
    """The limit is 30 searches a minute per client, refilled at one every 2 s. Searching through
    the page takes long enough on a loaded machine for the refill to keep up, so the same client
    (the context's cookies and the form's token) first uses up its searches with quick posts, and
    the next search typed into the page is the one refused, with its message."""
    page.goto(url(served, "/"))
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    for _ in range(5):  # a round: posts until one is refused, then the person's search at once
        for _ in range(100):
            quick = page.request.post(url(served, "/search"), form={"csrf_token": token, "q": "张三"})
            if quick.status == 429:
                break
        assert quick.status == 429, "the search limit never answered"
        page.get_by_label("名称或代码").fill("张三")
        with page.expect_navigation():
            page.get_by_label("名称或代码").press("Enter")
        if "查询过于频繁" in page.inner_text("main"):
            break
    text = page.inner_text("main")
    assert "查询过于频繁" in text
    assert "秒后再试" in text
    accessible(page)
    page.screenshot(path=shots / "limited.png", full_page=True)
