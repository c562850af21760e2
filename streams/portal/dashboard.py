"""A department's dashboard: 双公示 timeliness, rejections, objections, joint-measures feedback.

Figures are the department's own (an administrator picks a department), recorded in the query
register as ``department.dashboard``. The joint-measures figures are those of
``GET /v1/measures/stats`` for the department, from the same read (``ReadModels.measure_stats``).
Charts are SVG drawn by a template from the geometry computed here, so the page needs no script
and no chart library.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from aiohttp import web

from ledger.domain.workdays import working_days_between
from projections.publicity import PUBLICITY_CATEGORIES
from streams.portal.security import Session
from streams.portal.site import CHANNEL, Portal

OUTCOME_PAGE = 5000
DELAY_BUCKETS = (("0–3", 0, 3), ("4–7", 4, 7), ("8–14", 8, 14), ("15–30", 15, 30), (">30", 31, 10**6))
"""Working days from decision to filing; the two-disclosure rule is 7."""
MEASURE_FIGURES = {
    "received": "收到通知",
    "applied": "已实施",
    "not_applicable": "不适用",
    "failed": "未能实施",
    "overdue": "逾期未反馈",
}


async def dashboard(portal: Portal, request: web.Request) -> web.Response:
    session = portal.session(request)
    if session is None or session.principal.role not in ("department", "administrator"):
        return portal.redirect("/login")
    department = _department(portal, session, request.query.get("department", ""))
    queries = portal.parts.queries
    assert queries is not None
    answer = await portal.on_ledger_thread(
        lambda: queries.page(
            session.principal, "department.dashboard", lambda: figures(portal, department), channel=CHANNEL
        )
    )
    if not answer.ok:
        return portal.refused(request, answer)
    return portal.render(request, "dashboard.html", **answer.body)


def _department(portal: Portal, session: Session, asked: str) -> str:
    if session.principal.role == "department":
        return session.principal.organisation  # a department sees its own figures only
    known = portal.parts.ledger.catalogue.latest.departments
    return asked if asked in known else next(iter(known))


def figures(portal: Portal, department: str) -> dict[str, Any]:
    store = portal.parts.read_store
    assert store is not None
    edition = portal.parts.ledger.catalogue.latest
    rule = int(edition.raw["two_disclosures_working_days"])
    filings = store.records.filings(department)
    today = portal.today()
    return {
        "department": department,
        "timeliness": timeliness(filings, rule),
        "rejections": rejections(portal, department),
        "objections": objections(filings, today),
        "rule_days": rule,
        "choices": sorted(edition.departments),
        "measures": measures(portal, department, today),
    }


def measures(portal: Portal, department: str, today: date) -> dict[str, Any]:
    """The department's feedback on the measure notices addressed to it, as the stats endpoint counts."""
    queries = portal.parts.queries
    assert queries is not None
    stats = queries.views.measure_stats(today, department=department, since=None, until=None)
    totals = stats["totals"]
    shown = ("received", "applied", "not_applicable", "failed", "overdue")
    return {
        "totals": totals,
        "by_measure": stats["by_measure"],
        "chart": bars(
            [(MEASURE_FIGURES[name], totals[name]) for name in shown],
            highlight={MEASURE_FIGURES["failed"], MEASURE_FIGURES["overdue"]},
        ),
    }


def timeliness(filings: Sequence[Mapping[str, Any]], rule: int) -> dict[str, Any]:
    """Working days from each licence's or penalty's decision to its filing, against ``rule``."""
    delays = []
    late = []
    for f in filings:
        if f["category"] not in PUBLICITY_CATEGORIES or not f.get("filed_at"):
            continue
        delay = working_days_between(
            date.fromisoformat(f["decision_date"]), date.fromisoformat(f["filed_at"][:10])
        )
        delays.append(delay)
        if delay > rule:
            late.append({**f, "delay": delay})
    counts = [sum(low <= d <= high for d in delays) for _, low, high in DELAY_BUCKETS]
    return {
        "count": len(delays),
        "on_time": sum(d <= rule for d in delays),
        "share_on_time": (sum(d <= rule for d in delays) / len(delays)) if delays else None,
        "median_delay": statistics.median(delays) if delays else None,
        "late": sorted(late, key=lambda f: -f["delay"]),
        "chart": bars(
            [(label, n) for (label, _, _), n in zip(DELAY_BUCKETS, counts, strict=True)],
            highlight={label for label, low, _ in DELAY_BUCKETS if low > rule},
        ),
    }


REJECTION_TITLES = {
    "undecodable": "无法解析",
    "invalid_input": "格式不符",
    "invalid_field": "字段值无效",
    "missing_field": "缺少必填字段",
    "unexpected_field": "含未定义字段",
    "invalid_subject_code": "证件号码或信用代码无效",
    "invalid_for_subject": "不适用于该主体",
    "invalid_date": "日期无效",
    "invalid_period": "期限无效",
    "invalid": "内容无效",
    "too_large": "超出大小限制",
    "wrong_action": "操作类型不符",
    "not_authorised": "超出本部门职权",
    "not_in_catalogue": "不在目录内",
    "invalid_catalogue": "目录版本无效",
    "duplicate_id": "报送编号重复",
    "duplicate_key": "重复报送",
    "duplicate_record": "记录重复",
    "submission_conflict": "报送编号已用于其他内容",
    "unknown_record": "记录不存在",
    "record_closed": "记录已关闭",
    "objection_open": "异议处理中",
    "repair_pending": "修复申请处理中",
    "repair_not_allowed": "不可修复",
    "repair_too_early": "未满最短公示期",
    "not_due": "未到期",
    "ineligible": "不符合条件",
    "rule_violation": "不符合规则",
    "unknown_notice": "通知不存在",
    "stale_notice": "通知已更新",
    "notice_in_force": "通知仍在执行",
    "notice_not_in_force": "通知未在执行",
    "feedback_exists": "已反馈",
    "internal_error": "平台内部错误",
}
"""The dashboard's Chinese name of each rejection reason code (the code stays beside it: it is what
the department's own system reads in ``credit.outcomes``); an unknown code shows as itself."""


def rejections(portal: Portal, department: str) -> dict[str, Any]:
    """Every outcome of the department's submissions: the share rejected, by reason code."""
    ledger = portal.parts.ledger
    total = 0
    reasons: Counter[str] = Counter()
    after = 0
    while page := ledger.outcomes_after(after, department=department, limit=OUTCOME_PAGE):
        after = page[-1][0]
        for _, logged in page:
            if logged.duplicate:  # a re-send answered again: not a second submission
                continue
            total += 1
            if logged.status == "rejected":
                receipt = logged.receipt
                reason = receipt.reason if receipt is not None and receipt.status == "rejected" else None
                reason = reason or logged.entry.reason
                reasons[(reason or {}).get("code", "unknown")] += 1
    rows = [
        {"code": code, "title": REJECTION_TITLES.get(code, code), "count": n, "rate": n / total}
        for code, n in reasons.most_common()
    ]
    return {
        "total": total,
        "rejected": sum(reasons.values()),
        "by_reason": rows,
        "chart": bars([(REJECTION_TITLES.get(code, code), n) for code, n in reasons.most_common(8)]),
    }


def objections(filings: Sequence[Mapping[str, Any]], today: date) -> dict[str, Any]:
    """Objections against the department's records: open, resolved, and days taken against the deadline."""
    rows = []
    for f in filings:
        for o in f.get("objections") or []:
            raised = date.fromisoformat(o["raised_at"][:10]) if o.get("raised_at") else today
            due = date.fromisoformat(o["due_by"])
            ended = date.fromisoformat(o["resolved_at"][:10]) if o.get("resolved_at") else None
            rows.append(
                {
                    "record_id": f["record_id"],
                    "id": o["id"],
                    "raised": raised.isoformat(),
                    "due_by": o["due_by"],
                    "outcome": o["outcome"],
                    "days": ((ended or today) - raised).days,
                    "allowed": (due - raised).days,
                    "in_time": (ended or today) <= due,
                    "open": ended is None,
                }
            )
    resolved = [r for r in rows if not r["open"]]
    return {
        "rows": rows,
        "open": sum(r["open"] for r in rows),
        "resolved": len(resolved),
        "in_time": sum(r["in_time"] for r in resolved),
        "median_days": statistics.median([r["days"] for r in resolved]) if resolved else None,
        "chart": bars(
            [(r["id"], r["days"]) for r in rows[:12]],
            limit=max((r["allowed"] for r in rows), default=0),
            highlight={r["id"] for r in rows if not r["in_time"]},
        ),
    }


def bars(
    values: Sequence[tuple[str, int]], *, highlight: set[str] | None = None, limit: int = 0
) -> dict[str, Any]:
    """The geometry of a horizontal bar chart (the template draws it): one row per value.

    ``limit`` draws a line at that value (a deadline); ``highlight`` marks bars past a rule.
    """
    width, row = 320, 24
    top = max([v for _, v in values] + [limit, 1])
    return {
        "width": width + 140,
        "height": max(1, len(values)) * row + 8,
        "rows": [
            {
                "label": label,
                "value": value,
                "y": i * row + 4,
                "w": round(value / top * width, 1),
                "late": label in (highlight or set()),
            }
            for i, (label, value) in enumerate(values)
        ],
        "limit_x": round(limit / top * width, 1) + 130 if limit else None,
    }
