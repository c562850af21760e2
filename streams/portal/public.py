"""The public pages: search by name or code, 双公示 publicity, the red and black lists.

Publicity and the lists are GET pages of 20 with the API's filters (domain, department, since,
until); their page links carry the filters, so paging works without JavaScript.

Only public information appears: list entries and publicity items, with masked codes. A search
is always a POST (a code never lands in a URL or a log of URLs) and is rate-limited per client.
Names and titles are sealed in the read store: each page is opened through the query service's
one opening path (``streams.web.publicity.opened``) once what is public has been chosen, and a
person is found by their full name through the blind index (``CreditLedger.name_index``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ledger.domain.errors import LedgerError
from ledger.domain.subjects import parse_subject_code
from projections.publicity import Filters
from streams.portal.security import client_of, form_value
from streams.portal.site import Portal
from streams.web.calls import ApiError
from streams.web.publicity import MAX_PAGE, PAGE_SIZE, filters_of, opened, page_of, public_item

SUBJECTS_PER_PAGE = 10
MIN_NAME = 2
"""A name search needs two characters: one would list half the province."""

LIST_EXITS = {
    "black": [
        "有效期届满自动移出（不需申请）；",
        "完成信用修复，经认定单位同意后提前移出；",
        "认定所依据的决定被撤销，或异议成立；",
        "移出后停止公示和共享，记录保留在审计历史中。",
    ],
    "red": [
        "认定有效期届满自动移出；",
        "出现严重失信记录时立即移出；",
        "移出后停止公示，记录保留在审计历史中。",
    ],
}


async def home(portal: Portal, request: web.Request) -> web.Response:
    return portal.render(request, "home.html", filters=Filters(), query="")


async def stylesheet(portal: Portal, request: web.Request) -> web.Response:
    return web.Response(
        body=portal.stylesheet,
        content_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


async def search(portal: Portal, request: web.Request) -> web.Response:
    """POST /search: by name (a prefix of two characters or more) or by an 18-character code."""
    wait = portal.search_limit.take(client_of(request))
    if wait:
        seconds = max(1, round(wait))
        capacity, window = portal.settings.search_capacity, round(portal.settings.search_window)
        message = (
            f"查询过于频繁：为防止批量检索个人信息，每个客户端每 {window} 秒最多查询 {capacity} 次。"
            f"请在 {seconds} 秒后再试。"
        )
        response = portal.render(request, "limited.html", status=429, message=message)
        response.headers["Retry-After"] = str(seconds)
        return response
    form = await portal.form(request)
    if form is None:
        return portal.bad_form(request)
    query = form_value(form, "q", 100)
    try:
        filters = filters_of(
            {k: form_value(form, k, 100) for k in ("domain", "department", "since", "until")}
        )
        page = int(form_value(form, "page", 6) or "1")
    except (ApiError, ValueError) as exc:
        message = exc.message if isinstance(exc, ApiError) else "页码必须是数字"
        return portal.render(request, "home.html", status=400, error=message, filters=Filters(), query=query)
    page = min(max(page, 1), MAX_PAGE)
    try:
        found = await portal.on_ledger_thread(lambda: _found(portal, query, filters, page))
    except ApiError as exc:  # a sealed value failed its tag: named, never shown
        return portal.render(request, "error.html", status=exc.status, message=exc.message)
    status = 400 if "error" in found else 200
    shown = "" if found["by"] == "code" else query  # a code is not written back into the page
    return portal.render(request, "search.html", status=status, query=shown, filters=filters, **found)


def _found(portal: Portal, query: str, filters: Filters, page: int) -> dict[str, Any]:
    store = portal.parts.read_store
    assert store is not None
    today = portal.today()
    compact = query.replace(" ", "").upper()
    if len(compact) == 18 and compact.isalnum():
        try:
            subject = parse_subject_code(compact, today=today, field="q")
        except LedgerError as exc:
            return {"error": f"代码无效：{exc.message}", "subjects": [], "page": 1, "pages": 1, "by": "code"}
        keys = [str(portal.parts.ledger.key_of(subject))]
        by = "code"
    elif len(query) < MIN_NAME:
        error = f"请输入至少 {MIN_NAME} 个字的名称，或 18 位统一社会信用代码/身份证号码。"
        return {"error": error, "subjects": [], "page": 1, "pages": 1, "by": "name"}
    else:
        # One more than the page holds tells whether there is a next page. Organisations by a
        # prefix of their name (public, in clear); persons by the digest of their full name.
        digest = portal.parts.ledger.name_index.digest(query)
        keys = store.records.subjects_named(query, limit=page * SUBJECTS_PER_PAGE + 1, digest=digest)
        by = "name"
    more = len(keys) > page * SUBJECTS_PER_PAGE
    shown = keys[(page - 1) * SUBJECTS_PER_PAGE : page * SUBJECTS_PER_PAGE]
    day = today.isoformat()
    subjects = []
    for key in shown:
        items = [public_item(r) for r in store.records.public_items(key, day, filters)]
        entries = [e for e in store.records.list_rows(key) if _matches(e, filters)]
        if not items and not entries:
            continue  # nothing public about this subject: the public learns nothing of it
        first = items[0] if items else entries[0]
        subjects.append(
            {
                "name": first["name"],
                "masked_code": first["masked_code"],
                "kind": first.get("subject_kind") or ("organisation" if by == "code" else "person"),
                "public": items,
                "entries": entries,
            }
        )
    assert portal.parts.queries is not None
    subjects = opened(portal.parts.queries, {"subjects": subjects})["subjects"]
    return {"subjects": subjects, "page": page, "pages": page + 1 if more else page, "by": by}


def _matches(entry: dict[str, Any], f: Filters) -> bool:
    return (
        (not f.domain or f.domain in entry["domains"])
        and (not f.department or entry["department"] == f.department)
        and (not f.since or entry["entry_date"] >= f.since)
        and (not f.until or entry["entry_date"] <= f.until)
    )


async def publicity(portal: Portal, request: web.Request) -> web.Response:
    """GET /publicity: the same page as GET /v1/publicity, for people."""
    asked = _filters_and_page(portal, request)
    if isinstance(asked, web.Response):
        return asked
    filters, page = asked
    store, queries = portal.parts.read_store, portal.parts.queries
    assert store is not None
    assert queries is not None
    day = portal.today().isoformat()
    try:
        found = await portal.on_ledger_thread(lambda: opened(queries, page_of(store, day, filters, page)))
    except ApiError as exc:
        return portal.render(request, "error.html", status=exc.status, message=exc.message)
    return portal.render(request, "publicity.html", filters=filters, kept=kept(filters), **found)


async def list_page(portal: Portal, request: web.Request) -> web.Response:
    """GET /lists/black and /lists/red: entries with basis, validity and how to leave the list."""
    list_name = request.match_info["list_name"]
    if list_name not in LIST_EXITS:
        return portal.render(request, "error.html", status=404, message="名单只有红名单和黑名单。")
    asked = _filters_and_page(portal, request)
    if isinstance(asked, web.Response):
        return asked
    filters, page = asked
    store, queries = portal.parts.read_store, portal.parts.queries
    assert store is not None
    assert queries is not None
    wanted = {"domain": filters.domain, "department": filters.department}

    def read() -> tuple[int, list[dict[str, Any]]]:
        total, rows = store.members_page(
            list_name,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            since=filters.since,
            until=filters.until,
            **wanted,
        )
        public = [{k: v for k, v in row.items() if k != "subject_key"} for row in rows]
        return total, list(opened(queries, {"entries": public})["entries"])

    try:
        total, entries = await portal.on_ledger_thread(read)
    except ApiError as exc:  # a sealed value failed its tag: named, never shown
        return portal.render(request, "error.html", status=exc.status, message=exc.message)
    return portal.render(
        request,
        "lists.html",
        list_name=list_name,
        entries=entries,
        exits=LIST_EXITS[list_name],
        filters=filters,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        kept=kept(filters),
    )


def _filters_and_page(portal: Portal, request: web.Request) -> tuple[Filters, int] | web.Response:
    """The filters and page a paged page was asked for, or the 400 page naming what is wrong."""
    try:
        return filters_of(request.query), _page(request)
    except (ApiError, ValueError) as exc:
        message = exc.message if isinstance(exc, ApiError) else "页码必须是数字"
        return portal.render(request, "error.html", status=400, message=message)


def _page(request: web.Request) -> int:
    """The page asked for in the query (1 when none); ValueError when it is not a number."""
    return min(max(int(request.query.get("page") or 1), 1), MAX_PAGE)


def kept(filters: Filters) -> dict[str, str]:
    """The filters in force, which every page link carries (``pager`` in _macros.html)."""
    return {k: v for k, v in dataclasses.asdict(filters).items() if v}
