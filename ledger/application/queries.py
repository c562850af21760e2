"""The authorised query path, shared by HTTP and CLI: authenticate, decide, record (fail closed), answer."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.application.service import CreditLedger, utc_now
from ledger.domain.access import (
    PUBLIC,
    ROLES,
    SELF_INQUIRY,
    Decision,
    Principal,
    decide_endpoint,
    decide_status,
)
from ledger.domain.errors import LedgerError
from ledger.domain.subjects import parse_subject_code
from ledger.domain.workdays import local_date
from projections.anomalies import anomaly_hints
from projections.asof import status_as_of
from projections.store import ProjectionStore
from projections.views import memberships, status, view_digest

log = logging.getLogger(__name__)

KEY_PREFIX = "clk"
FREE_REPORTS_PER_YEAR = 2


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(
    store: ProjectionStore,
    *,
    role: str,
    organisation: str,
    label: str,
    subject_key: str | None,
    now: datetime,
) -> tuple[str, str]:
    """A new API key: (key id, the key). Only its hash is stored; the key is shown once."""
    if role not in ROLES or role == "public":
        raise ValueError(f"role must be one of {', '.join(r for r in ROLES if r != 'public')}, got {role!r}")
    if (role == "subject") != (subject_key is not None):
        raise ValueError("a key for role 'subject' names the subject (and only such a key does)")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(24)}"
    store.add_key(
        {
            "key_id": key_id,
            "key_hash": hash_key(key),
            "role": role,
            "organisation": organisation,
            "label": label,
            "subject_key": subject_key,
            "created_at": now.isoformat(),
        }
    )
    return key_id, key


class QueryService:
    """Every answer carrying credit data, or refusing to, is recorded in the ledger first."""

    def __init__(
        self, ledger: CreditLedger, store: ProjectionStore, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.catalogue = ledger.catalogue
        self.clock = clock

    # -- who is asking ---------------------------------------------------------------------

    def authenticate(self, api_key: str | None) -> Principal | None:
        """The caller's principal; the public without a key; None for a key that is not valid."""
        if not api_key:
            return PUBLIC
        parts = api_key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        row = self.store.key(parts[1])
        if row is None or row["revoked_at"] or not hmac.compare_digest(row["key_hash"], hash_key(api_key)):
            return None
        return Principal(f"key:{row['key_id']}", row["role"], row["organisation"], row["subject_key"])

    # -- recording -------------------------------------------------------------------------

    def _record(
        self, principal: Principal, endpoint: str, decision: Decision, **fields: Any
    ) -> Answer | None:
        """Write the query record; an Answer (503) if it cannot be written, so nothing is returned."""
        record = {
            **principal.audit_fields(),
            "endpoint": endpoint,
            "outcome": "allowed" if decision.allowed else "refused",
            "reason": decision.code if decision.allowed else f"{decision.code}: {decision.reason}",
            "recorded_at": self.clock().isoformat(),
            **fields,
        }
        try:
            self.ledger.record_query(record)
        except Exception:
            log.exception("a %s query could not be recorded; it was refused and returned nothing", endpoint)
            return Answer(
                503,
                _error("audit_unavailable", "", "the query could not be recorded, so nothing is returned"),
            )
        return None

    def _refused(self, decision: Decision) -> Answer:
        status_code = 401 if decision.code == "not_authenticated" else 403
        return Answer(status_code, _error(decision.code, "", decision.reason))

    # -- a subject's status ------------------------------------------------------------------

    def status(
        self,
        principal: Principal,
        code: str,
        *,
        purpose: str | None = None,
        basis: str | None = None,
        authorisation_id: str | None = None,
        channel: str = "http",
        as_of: datetime | None = None,
    ) -> Answer:
        now = self.clock()
        today = local_date(now)
        request = {
            "purpose": purpose,
            "basis": basis,
            "authorisation_id": authorisation_id,
            "channel": channel,
            "as_of": as_of.isoformat() if as_of else None,
        }
        try:
            subject = parse_subject_code(code, today=today, field="subject.id")
        except LedgerError as exc:
            decision = Decision.refuse(exc.code, exc.message)
            return self._record(
                principal, "status", decision, subject_key=None, returned=[], **request
            ) or Answer(400, _error(exc.code, exc.field, exc.message))
        key = str(self.ledger.key_of(subject))
        state = self.store.state(key)
        decision = decide_status(
            principal,
            subject_key=key,
            subject_kind=state["kind"] if state else subject.kind.value,
            purpose=purpose,
            basis=basis,
            authorisation_id=authorisation_id,
            authorisations=(state or {}).get("authorisations", {}),
            purposes=self.catalogue.latest.query_purposes,
            today=today,
        )
        view = None
        if decision.allowed:
            if as_of is not None:
                view = status_as_of(self.ledger, self.ledger.key_of(subject), as_of, self.catalogue)
            elif state is not None:
                view = status(state, today, self.catalogue.edition_at(today))
        returned = ["status"] if view else []
        if view:  # so an auditor's replay can recompute exactly this answer and compare
            request["ledger_version"] = view["ledger_version"]
            request["view_digest"] = view_digest(view)
        failed = self._record(principal, "status", decision, subject_key=key, returned=returned, **request)
        if failed:
            return failed
        if not decision.allowed:
            return self._refused(decision)
        if view is None:
            return Answer(
                404, _error("no_file", "subject.id", f"there is no credit file for {subject.masked}")
            )
        return Answer(200, view)

    # -- the subject's own -------------------------------------------------------------------

    def me(self, principal: Principal, what: str) -> Answer:
        """``status``, ``queries`` (who looked at my file) or ``report`` (file, status, lists, queries)."""
        endpoint = f"me.{what}"
        decision = decide_endpoint(principal, endpoint)
        key = principal.subject_key
        if not decision.allowed or key is None:
            return self._record(principal, endpoint, decision, subject_key=key, returned=[]) or self._refused(
                decision
            )
        today = local_date(self.clock())
        state = self.store.state(key)
        body: dict[str, Any] = {}
        if what in ("status", "report") and state is not None:
            body["status"] = status(state, today, self.catalogue.edition_at(today))
        if what in ("queries", "report"):
            since = f"{today.year - 2}-{today.month:02d}-{today.day:02d}"  # two years, as credit bureaus show
            body["queries"] = [
                _as_seen_by_subject(q) for q in self.store.queries(subject_key=key, since=since)
            ]
        if what == "report":
            year_start = f"{today.year}-01-01"
            used = len(self.store.queries(subject_key=key, endpoint="me.report", since=year_start)) + 1
            body["report"] = {
                "number_this_year": used,
                "free": used <= FREE_REPORTS_PER_YEAR,
                "free_per_year": FREE_REPORTS_PER_YEAR,
            }
            body["lists"] = memberships(state, today) if state else {}
        returned = sorted(body)
        failed = self._record(
            principal, endpoint, decision, subject_key=key, returned=returned, purpose=SELF_INQUIRY
        )
        return failed or Answer(200, body)

    # -- lists -------------------------------------------------------------------------------

    def lists(self, principal: Principal, list_name: str, filters: Mapping[str, str | None]) -> Answer:
        decision = decide_endpoint(principal, "lists")
        rows = self.store.members(list_name, **filters) if decision.allowed else []
        if principal.role == "public":  # the public form: masked code and name, no linkable key
            rows = [{k: v for k, v in row.items() if k != "subject_key"} for row in rows]
        failed = self._record(
            principal,
            "lists",
            decision,
            subject_key=None,
            returned=[f"list:{list_name}"],
            filters={k: v for k, v in filters.items() if v},
        )
        if failed:
            return failed
        return Answer(200, {"list": list_name, "count": len(rows), "entries": rows})

    # -- auditors ------------------------------------------------------------------------------

    def audit(
        self, principal: Principal, filters: Mapping[str, str | None], *, anomalies: bool = True
    ) -> Answer:
        decision = decide_endpoint(principal, "audit.queries")
        if not decision.allowed:
            return self._record(
                principal, "audit.queries", decision, subject_key=None, returned=[]
            ) or self._refused(decision)
        wanted: dict[str, Any] = {k: v for k, v in filters.items() if v}
        rows = self.store.queries(**wanted)
        body: dict[str, Any] = {"count": len(rows), "queries": rows}
        if anomalies:
            body["hints"] = anomaly_hints(rows, acted=self._acted_by(rows))
        failed = self._record(
            principal,
            "audit.queries",
            decision,
            subject_key=None,
            returned=sorted(body),
            filters={k: v for k, v in filters.items() if v},
        )
        return failed or Answer(200, body)

    def _acted_by(self, rows: list[dict[str, Any]]) -> Callable[[str, str, str], bool]:
        """Did an organisation file anything on a subject after a time? Each file is read once."""
        states = self.store.load({q["subject_key"] for q in rows if q.get("subject_key")})

        def acted(subject_key: str, organisation: str, after: str) -> bool:
            loaded = states.get(subject_key)
            if loaded is None:
                return False
            records = loaded[0]["records"].values()
            return any(r["provider"] == organisation and (r["filed_at"] or "") > after for r in records)

        return acted


def _as_seen_by_subject(q: Mapping[str, Any]) -> dict[str, Any]:
    """What a subject sees of a query about them: who (organisation, role), when, why, the outcome."""
    return {k: q.get(k) for k in ("at", "organisation", "role", "purpose", "basis", "outcome", "returned")}


def _error(code: str, field: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "field": field, "message": message}}
