"""A signed-in subject's pages: my report, objections, repair applications, statements, tracking.

Signing in takes a subject credential the platform issued (``credit-ledger keys issue --role
subject``); real-name authentication against national identity systems is outside this project.
Every page showing the subject's file is a recorded query (``me.overview``, ``me.report``,
``me.applications``). Objections, repairs and statements are the same ledger actions departments
see, filed at the platform's desk (``credit_platform``) on the subject's file, so every rule and
every rejection reason of the intake applies; the portal only explains them beforehand.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import date
from typing import Any

import orjson
from aiohttp import web

from contract.messages import submission_key
from ledger.application.queries import PLATFORM, Answer
from ledger.domain.access import SELF_INQUIRY
from ledger.domain.workdays import add_working_days, working_days_between
from streams.portal.security import SESSION_COOKIE, Session, form_value, set_cookie
from streams.portal.site import CHANNEL, SIGN_IN_ROLES, Portal

MAX_TEXT = 1000
ACTIONS = {"objection": "异议申请", "repair": "信用修复申请", "statement": "情况说明"}


NOT_VALID = "凭证无效或已被吊销，请核对平台发放的凭证。"


async def login_page(portal: Portal, request: web.Request) -> web.Response:
    return portal.render(request, "login.html")


async def login(portal: Portal, request: web.Request) -> web.Response:
    """POST /login: a platform-issued key opens a session; a key that is not valid is recorded."""
    form = await portal.form(request)
    if form is None:
        return portal.bad_form(request)
    key = form_value(form, "credential", 200)
    queries = portal.parts.queries
    assert queries is not None
    who = await portal.on_ledger_thread(
        lambda: queries.authenticate_for(key, "portal.login", channel=CHANNEL)
    )
    if isinstance(who, Answer) or who.role == "public":  # an Answer: refused, and recorded
        return portal.render(request, "login.html", status=401, error=NOT_VALID)
    target = SIGN_IN_ROLES.get(who.role)
    if target is None:
        message = f"此凭证的角色（{who.role}）不能登录门户：门户面向信用主体本人和部门。"
        return portal.render(request, "login.html", status=403, error=message)
    opened = portal.sessions.open(who.principal_id.removeprefix("key:"))
    if opened is None:  # revoked between the check and now
        return portal.render(
            request, "login.html", status=401, error="凭证无效或已被吊销，请核对平台发放的凭证。"
        )
    token, _ = opened
    response = portal.redirect(target)
    set_cookie(response, request, SESSION_COOKIE, token)
    return response


async def logout(portal: Portal, request: web.Request) -> web.Response:
    if await portal.form(request) is None:
        return portal.bad_form(request)
    portal.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = portal.redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _subject(portal: Portal, request: web.Request) -> Session | None:
    session = portal.session(request)
    return session if session is not None and session.principal.role == "subject" else None


async def me(portal: Portal, request: web.Request) -> web.Response:
    """GET /me: records with their status, deadlines and what may be done; measures; who queried."""
    session = _subject(portal, request)
    if session is None:
        return portal.redirect("/login")
    queries = portal.parts.queries
    assert queries is not None
    answer = await portal.on_ledger_thread(lambda: queries.me(session.principal, "overview", channel=CHANNEL))
    if not answer.ok:
        return portal.refused(request, answer)
    today = portal.today()
    status = answer.body.get("status")
    records = [_with_actions(r, today) for r in (status or {}).get("records", [])]
    return portal.render(
        request, "me.html", status_view=status, records=records, body=answer.body, today=today.isoformat()
    )


def _with_actions(record: Mapping[str, Any], today: date) -> dict[str, Any]:
    """A record with whether an objection or a repair may be made now, and if not, why and from when."""
    out = dict(record)
    objection = record.get("open_objection")
    out["objection_blocked"] = f"已有异议（{objection['id']}）在处理中" if objection else ""
    if objection:
        out["objection_days_left"] = working_days_between(today, date.fromisoformat(objection["due_by"]))
    pending = [a for a in record.get("repairs") or [] if a["decision"] is None]
    earliest = record.get("repairable_from")
    blocked = ""
    if record["kind"] != "adverse":
        blocked = "只有失信记录可以申请信用修复"
    elif not record.get("early_end", True):
        blocked = "此类记录（按规定不得提前终止公示）须公示期满，不能申请修复"
    elif earliest and earliest > today.isoformat():
        blocked = f"最短公示期未满：最早可于 {earliest} 申请"
    elif pending:
        blocked = f"已有修复申请（{pending[0]['id']}）在审核中"
    out["repair_blocked"] = blocked
    return out


async def report(portal: Portal, request: web.Request) -> web.Response:
    """POST /me/report: the full report, one of the free reports of the year (recorded as me.report)."""
    session = _subject(portal, request)
    if session is None:
        return portal.redirect("/login")
    if await portal.form(request) is None:
        return portal.bad_form(request)
    queries = portal.parts.queries
    assert queries is not None
    answer = await portal.on_ledger_thread(lambda: queries.me(session.principal, "report", channel=CHANNEL))
    if not answer.ok:
        return portal.refused(request, answer)
    return portal.render(request, "report.html", body=answer.body, today=portal.today().isoformat())


async def applications(portal: Portal, request: web.Request) -> web.Response:
    """GET /me/applications: each objection and repair with its status and deadline in working days."""
    session = _subject(portal, request)
    if session is None:
        return portal.redirect("/login")
    queries = portal.parts.queries
    assert queries is not None
    answer = await portal.on_ledger_thread(
        lambda: queries.page(
            session.principal,
            "me.applications",
            lambda: _applications(portal, session),
            channel=CHANNEL,
            subject_key=session.principal.subject_key,
            purpose=SELF_INQUIRY,  # the subject reading their own file, as on /me
        )
    )
    if not answer.ok:
        return portal.refused(request, answer)
    return portal.render(request, "applications.html", **answer.body)


def _applications(portal: Portal, session: Session) -> dict[str, Any]:
    store = portal.parts.read_store
    assert store is not None
    assert session.principal.subject_key is not None
    state = store.state(session.principal.subject_key) or {"records": {}}
    today = portal.today()
    review = portal.parts.ledger.catalogue.latest.raw["repair"]
    review_days = int(review["review_working_days"]) + int(review["sector_review_working_days"])
    tracked = []
    for key, record in state["records"].items():
        for o in record.get("objections") or []:
            due = date.fromisoformat(o["due_by"])
            tracked.append(
                {
                    "kind": "objection",
                    "id": o["id"],
                    "record": key,
                    "title": record["title"],
                    "filed": (o["raised_at"] or "")[:10],
                    "state": {"upheld": "异议成立", "rejected": "异议不成立"}.get(o["outcome"], "核查中"),
                    "open": o["outcome"] is None,
                    "deadline": o["due_by"],
                    "working_days_left": working_days_between(today, due),
                    "overdue": o["overdue"],
                }
            )
        for a in record.get("repairs") or []:
            filed = (a["requested_at"] or today.isoformat())[:10]
            deadline = add_working_days(date.fromisoformat(filed), review_days)
            tracked.append(
                {
                    "kind": "repair",
                    "id": a["id"],
                    "record": key,
                    "title": record["title"],
                    "filed": filed,
                    "state": {"granted": "已修复", "refused": "不予修复"}.get(a["decision"] or "", "审核中"),
                    "open": a["decision"] is None,
                    "deadline": deadline.isoformat(),
                    "working_days_left": working_days_between(today, deadline),
                    "overdue": a["decision"] is None and deadline < today,
                    "reason": a.get("reason", ""),
                }
            )
    tracked.sort(key=lambda t: t["filed"], reverse=True)
    ids = [(PLATFORM, s["submission_id"]) for s in session.sent]
    receipts = portal.parts.ledger.register.select_receipts(ids)
    sent = []
    for s in reversed(session.sent):
        receipt = receipts.get((PLATFORM, s["submission_id"]))
        sent.append(
            {
                **s,
                "outcome": receipt.status if receipt else "queued",
                "reason": (receipt.reason or {}).get("message", "") if receipt else "",
            }
        )
    return {"tracked": tracked, "sent": sent, "review_days": review_days}


async def objection(portal: Portal, request: web.Request) -> web.Response:
    return await _submit(portal, request, "objection")


async def repair(portal: Portal, request: web.Request) -> web.Response:
    return await _submit(portal, request, "repair")


async def statement(portal: Portal, request: web.Request) -> web.Response:
    return await _submit(portal, request, "statement")


async def _submit(portal: Portal, request: web.Request, action: str) -> web.Response:
    """Send the subject's objection, repair application or statement to credit.submissions."""
    session = _subject(portal, request)
    if session is None:
        return portal.redirect("/login")
    form = await portal.form(request)
    if form is None:
        return portal.bad_form(request)
    record = form_value(form, "record", 300)
    text = form_value(form, "text", MAX_TEXT)
    provider, _, record_id = record.partition(":")
    if (action != "statement" and not record_id) or not text:
        session.flash = "请选择记录并填写内容后再提交。"
        portal.sessions.save(session)
        return portal.redirect("/me")
    reference = {"record": {"provider": provider, "record_id": record_id}} if record_id else {}
    token = secrets.token_hex(6).upper()
    fields: dict[str, Any] = {
        "objection": {"action": "raise_objection", "objection_id": f"YY-{token}", "grounds": text},
        "repair": {"action": "request_repair", "application_id": f"XF-{token}", "measures_taken": text},
        "statement": {"action": "add_statement", "statement_id": f"SM-{token}", "text": text},
    }[action]
    subject_key = session.principal.subject_key
    digest = hashlib.sha256(f"{subject_key}|portal.{action}.{token}".encode()).hexdigest()[:32]
    submission = {
        "submission_id": f"portal.{action}.{digest}",
        "department": PLATFORM,
        "subject": {"key": subject_key},
        "occurred_at": portal.parts.ledger.clock().isoformat(),
        **reference,
        **fields,
    }
    future = await portal.parts.submissions.send(
        key=submission_key(submission), value=orjson.dumps(submission)
    )
    await future
    ref = next(v for k, v in fields.items() if k.endswith("_id"))
    session.sent.append(
        {"submission_id": submission["submission_id"], "what": ACTIONS[action], "ref": ref, "record": record}
    )
    session.flash = f"{ACTIONS[action]}（{ref}）已提交，受理结果见下表。"
    portal.sessions.save(session)
    return portal.redirect("/me/applications")
