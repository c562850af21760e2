"""Check before approve (应查必查, 004 item 39) and the supervision figures, on the query register.

A department about to approve a licence, a subsidy, a procurement award, a hiring asks which
measures it must or may apply to a subject for that business. The answer lists the notices in
force addressed to that department for the measures that bear on the business (mandatory first),
the red-list incentives (and the green channel, 容缺受理, of a three-year clean record), or
``none``, each with its catalogue basis. Like every read of credit data, a check is recorded in
the query register before it is answered (fail closed): requester, organisation, purpose (the
business type), subject, reference, the answer's digest and the outcome. The subject sees it at
``/v1/me/queries``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ledger.application.handlers import notified_measures
from ledger.application.queries import INVALID, OK, Answer, QueryService
from ledger.application.values import strict_date
from ledger.domain import notices
from ledger.domain.access import Decision, Principal, decide_check, decide_stats
from ledger.domain.catalogue import Catalogue, Edition
from ledger.domain.catalogue_measures import BusinessType
from ledger.domain.creditfile import CreditFile
from ledger.domain.errors import InvalidInput, LedgerError, error_body
from ledger.domain.integrity import content_digest
from ledger.domain.redaction import echo
from ledger.domain.subjects import parse_subject_code
from ledger.domain.workdays import local_date

CLEAN_RECORD_INCENTIVE = "red.green_channel"
"""The measure a three-year clean record earns (004 item 5: 绿色通道, 容缺受理)."""
MAX_TEXT = 1000


class MeasuresService:
    """Checks and supervision figures, each recorded through the query service's one register path."""

    def __init__(self, queries: QueryService, *, clock: Callable[[], datetime] | None = None) -> None:
        self.queries = queries
        self.views = queries.views
        self.catalogue: Catalogue = queries.catalogue
        self.clock = clock or queries.clock

    # -- check before approve ------------------------------------------------------------------

    def check(
        self,
        principal: Principal,
        code: Any,
        *,
        business: Any,
        reference: Any,
        department: Any = None,
        channel: str = "http",
    ) -> Answer:
        """Which measures ``department`` must or may apply to the subject ``code`` for ``business``."""
        today = local_date(self.clock())
        edition = self.catalogue.edition_at(today)
        request = {
            "purpose": business if isinstance(business, str) else echo(business),
            "reference": reference if isinstance(reference, str) else echo(reference),
            "department": department
            if isinstance(department, str) or department is None
            else echo(department),
        }
        try:
            named = department if isinstance(department, str) else principal.organisation
            decision = decide_check(principal, named)  # who may check, before what they asked is read
            if not decision.allowed:
                return self._refusal(principal, decision, channel, request)
            department, business_type = self._request(principal, edition, business, reference, department)
            subject = parse_subject_code(code, today=today, field="subject.id")
        except LedgerError as exc:
            refused = Decision.refuse(exc.code, exc.message)
            failed = self.queries.record(
                principal, "check", refused, channel=channel, subject_key=None, returned=[], **request
            )
            return failed or Answer(INVALID, error_body(exc.code, exc.field, exc.message))
        key = str(self.queries.ledger.key_of(subject))
        view = self.views.check_view(key, today, department)
        answer = check_answer(
            view, department, business_type, edition, self.catalogue, reference, subject.masked, today
        )
        failed = self.queries.record(
            principal,
            "check",
            Decision.allow(f"check before approval by {department}"),
            channel=channel,
            subject_key=key,
            returned=["check"],
            **request,
            department_checked=department,
            result=answer["result"],
            ledger_version=answer["ledger_version"],
            answer_digest=content_digest(answer),
        )
        return failed or Answer(OK, answer)

    def _request(
        self, principal: Principal, edition: Edition, business: Any, reference: Any, department: Any
    ) -> tuple[str, BusinessType]:
        """The department checking and the business type, or InvalidInput naming the field."""
        if department is None and principal.role == "administrator":
            raise InvalidInput(
                "department: the administrator checks on behalf of a department: name it",
                field="department",
            )
        for field, value in (("business", business), ("reference", reference), ("department", department)):
            if value is None and field == "department":
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise InvalidInput(
                    f"{field}: expected a non-blank string of at most {MAX_TEXT:,} characters, "
                    f"got {echo(value)}",
                    field=field,
                )
        checking = str(department or principal.organisation)
        edition.department(checking)
        return checking, edition.business_type(str(business))

    def _refusal(
        self, principal: Principal, decision: Decision, channel: str, request: Mapping[str, Any]
    ) -> Answer:
        failed = self.queries.record(
            principal, "check", decision, channel=channel, subject_key=None, returned=[], **request
        )
        return failed or self.queries.refused(decision)

    # -- supervision -------------------------------------------------------------------------------

    def stats(
        self,
        principal: Principal,
        *,
        department: str | None = None,
        since: str | None = None,
        until: str | None = None,
        channel: str = "http",
    ) -> Answer:
        """Per implementing department and per measure: received, applied, not applicable, failed,
        overdue, the median feedback delay and the on-time rate of mandatory notices (奖惩到位率)."""
        filters = {"department": department, "since": since, "until": until}
        decision = decide_stats(principal, department)
        invalid: LedgerError | None = None
        try:
            for name in ("since", "until"):
                if filters[name] is not None:
                    strict_date(str(filters[name]), name)
        except LedgerError as exc:
            decision, invalid = Decision.refuse(exc.code, exc.message), exc
        if not decision.allowed:
            failed = self.queries.record(
                principal, "measures.stats", decision, channel=channel, subject_key=None, returned=[]
            )
            if invalid is not None:
                return failed or Answer(INVALID, error_body(invalid.code, invalid.field, invalid.message))
            return failed or self.queries.refused(decision)
        if principal.role == "department":
            filters["department"] = principal.organisation
        today = local_date(self.clock())
        body = self.views.measure_stats(today, **filters)
        failed = self.queries.record(
            principal,
            "measures.stats",
            decision,
            channel=channel,
            subject_key=None,
            returned=["measure_stats"],
            filters={k: v for k, v in filters.items() if v},
        )
        return failed or Answer(OK, body)


def check_answer(
    view: Mapping[str, Any] | None,
    department: str,
    business: BusinessType,
    edition: Edition,
    catalogue: Catalogue,
    reference: str,
    masked_code: str,
    today: Any,
) -> dict[str, Any]:
    """The answer to a check: pure, so a recorded digest can be recomputed from the same view."""
    relevant = set(business.measures)
    sanctions: list[dict[str, Any]] = []
    incentives: list[dict[str, Any]] = []
    others = 0
    for row in (view or {}).get("notices", []):
        if row["department"] != department or row["state"] not in notices.IN_FORCE:
            continue
        if row["measure"] not in relevant:
            others += 1
            continue
        measure = _measure(catalogue, row["edition"], row["measure"])
        item = {
            "measure": row["measure"],
            "title": row["title"],
            "kind": row["kind"],
            "list": row["list"],
            "why": f"{row['list']}-list designation {row['designation_id']}",
            "basis": measure.basis if measure else "",
            "notice_id": row["notice_id"],
            "state": row["state"],
            "state_version": row["state_version"],
            "designation_id": row["designation_id"],
            "document_number": row["document_number"],
            "in_force": {"from": row["valid_from"], "until": row["valid_until"]},
        }
        (sanctions if row["list"] == "black" else incentives).append(item)
    clean = (view or {}).get("clean_record") or {}
    subject = (view or {}).get("subject") or {"masked_code": masked_code, "kind": None}
    green = next((m for m in edition.notified_measures("red") if m.id == CLEAN_RECORD_INCENTIVE), None)
    if (
        green is not None
        and subject.get("kind") == "person"
        and clean.get("eligible")
        and green.id in relevant
        and department in green.implementing_departments
        and not any(i["measure"] == green.id for i in incentives)
    ):
        incentives.append(
            {
                "measure": green.id,
                "title": green.title,
                "kind": green.kind,
                "list": "clean",
                "why": f"no adverse record for {edition.clean_record_years} consecutive years "
                f"(since {clean.get('since')})",
                "basis": green.basis,
                "treatment": ["绿色通道", "容缺受理"],
            }
        )
    order = {"mandatory": 0, "recommended": 1}
    sanctions.sort(key=lambda i: (order.get(i["kind"], 2), i["measure"], i.get("designation_id", "")))
    incentives.sort(key=lambda i: (order.get(i["kind"], 2), i["measure"], i.get("designation_id", "")))
    return {
        "subject": dict(subject),
        "department": department,
        "business": {
            "code": business.code,
            "title": business.title,
            "basis": business.basis,
            "edition": edition.edition,
        },
        "reference": reference,
        "as_of": today.isoformat(),
        "ledger_version": (view or {}).get("ledger_version", 0),
        "result": "measures" if sanctions or incentives else "none",
        "sanctions": sanctions,
        "incentives": incentives,
        "other_notices_in_force": others,
    }


def file_measures(file: CreditFile, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The measures notified against a credit file, as the file itself has them: one entry per
    designation and measure, with each implementing department's standing feedback."""
    out: list[dict[str, Any]] = []
    for designation in file.designations.values():
        if designation.notice_state is None:
            continue
        grouped: dict[str, dict[str, Any]] = {}
        for notice in notices.notices_for(
            file.id, designation.designation_id, designation.list, notified_measures(catalogue)(designation)
        ):
            standing = file.feedback.get(notice.notice_id, {}).get(designation.notice_version)
            entry = grouped.setdefault(
                notice.measure.id,
                {
                    "designation_id": designation.designation_id,
                    "measure": notice.measure.id,
                    "kind": notice.measure.kind,
                    "state": designation.notice_state,
                    "state_version": designation.notice_version,
                    "departments": {},
                },
            )
            entry["departments"][notice.department] = standing.outcome if standing else None
        out += grouped.values()
    return out


def _measure(catalogue: Catalogue, edition: str, measure_id: str) -> Any:
    return next((m for m in catalogue.edition(edition).measures if m.id == measure_id), None)
