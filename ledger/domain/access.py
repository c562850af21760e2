"""Who may read what: principals, roles and the decision for each query. Pure; every decision is recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

ROLES = ("public", "subject", "department", "authorised_org", "auditor", "administrator")
MAY_CITE_BASIS = ("department", "administrator")  # bodies that act under a legal basis
SELF_INQUIRY = "subject_self_inquiry"
OPERATOR_PURPOSE = "operations"
"""The purpose recorded for the host operator's own reads at the console (``credit-ledger file``)
when the operator states none (``--purpose TEXT``)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (or the public). ``principal_id`` names the key, never the key itself."""

    principal_id: str
    role: str
    organisation: str
    subject_key: str | None = None  # a subject's own file, for role "subject"
    host: str | None = None  # the machine the host's operator works on (the command line's operator)

    def audit_fields(self) -> dict[str, Any]:
        return {"requester": self.principal_id, "organisation": self.organisation, "role": self.role}


PUBLIC = Principal("anonymous", "public", "public")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    reason: str

    @classmethod
    def allow(cls, reason: str = "") -> Decision:
        return cls(True, "allowed", reason)

    @classmethod
    def refuse(cls, code: str, reason: str) -> Decision:
        return cls(False, code, reason)


def decide_status(  # noqa: PLR0911 - one return per rule, in the order the register checks them
    principal: Principal,
    *,
    subject_key: str,
    subject_kind: str | None,
    purpose: str | None,
    basis: str | None,
    authorisation_id: str | None,
    authorisations: Mapping[str, Mapping[str, Any]],
    purposes: Mapping[str, Mapping[str, Any]],
    today: date,
) -> Decision:
    """May ``principal`` see this subject's status? The rules of the personal-credit query register."""
    role = principal.role
    if role == "public":
        return Decision.refuse(
            "not_public", "a subject's status is not public: the black list is at /v1/lists/black"
        )
    if role == "auditor":
        return Decision.refuse("auditor_no_credit_data", "auditors read the query register, not credit data")
    if role == "subject":
        if principal.subject_key != subject_key:
            return Decision.refuse("not_own_file", "a subject may see only their own file")
        return Decision.allow("the subject's own file")
    if not purpose:
        return Decision.refuse(
            "purpose_required", f"state a purpose from the catalogue: {_purpose_list(purposes)}"
        )
    rule = purposes.get(purpose)
    if rule is None:
        return Decision.refuse(
            "unknown_purpose",
            f"purpose {purpose!r} is not in the catalogue; it lists {_purpose_list(purposes)}",
        )
    if subject_kind == "organisation":
        return Decision.allow(f"organisation status for {purpose}")
    needs = rule.get("needs", "basis_or_authorisation")
    if authorisation_id:
        grant = authorisations.get(authorisation_id)
        problem = _grant_problem(grant, principal, purpose, today)
        if problem is None:
            return Decision.allow(f"subject's authorisation {authorisation_id}")
        if needs == "authorisation" or not basis:
            return Decision.refuse("authorisation_invalid", problem)
    if basis and needs in ("basis", "basis_or_authorisation"):
        if role not in MAY_CITE_BASIS:
            return Decision.refuse(
                "basis_not_for_role", f"a {role} queries a person only with the subject's authorisation"
            )
        return Decision.allow(f"legal basis: {basis}")
    wanted = {"basis": "a legal basis", "authorisation": "the subject's authorisation"}.get(
        needs, "a legal basis or the subject's authorisation"
    )
    return Decision.refuse("basis_required", f"purpose {purpose!r} needs {wanted}")


def _purpose_list(purposes: Mapping[str, Mapping[str, Any]]) -> str:
    """The purposes a requester may state (``credit-ledger purposes`` shows them with their titles)."""
    return ", ".join(sorted(p for p in purposes if p != SELF_INQUIRY))


def _grant_problem(
    grant: Mapping[str, Any] | None, principal: Principal, purpose: str, today: date
) -> str | None:
    if grant is None:
        return "no such authorisation on this subject's file"
    if not grant.get("active"):
        return "the subject revoked this authorisation"
    if grant.get("organisation") != principal.organisation:
        return f"the authorisation is for another organisation, not {principal.organisation!r}"
    if grant.get("purpose") != purpose:
        return f"the authorisation is for purpose {grant.get('purpose')!r}, not {purpose!r}"
    if not grant["valid_from"] <= today.isoformat() <= grant["valid_until"]:
        return f"the authorisation is valid {grant['valid_from']} to {grant['valid_until']}"
    return None


CHECKERS = ("department", "administrator")
"""Who checks a subject before approving (应查必查): a department for itself; the platform's
administrator (the operator's command line) on a named department's behalf."""


def decide_check(principal: Principal, department: str) -> Decision:
    """May ``principal`` check a subject's measures for ``department`` (the one about to approve)?"""
    role = principal.role
    if role == "public":
        return Decision.refuse("not_authenticated", "a check needs an API key: the department's own")
    if role not in CHECKERS:
        return Decision.refuse(
            "forbidden_role", f"checks are made by the department about to approve, not by role {role}"
        )
    if role == "department" and department != principal.organisation:
        return Decision.refuse(
            "not_own_department", f"this key checks for {principal.organisation!r} only, not {department!r}"
        )
    return Decision.allow(f"check before approval by {department}")


def decide_stats(principal: Principal, department: str | None) -> Decision:
    """Supervision figures: a department sees its own; the administrator and auditors everyone's."""
    role = principal.role
    if role == "public":
        return Decision.refuse("not_authenticated", "this needs an API key")
    if role not in ("department", "administrator", "auditor"):
        return Decision.refuse("forbidden_role", f"measure statistics are not for role {role}")
    if role == "department" and department not in (None, principal.organisation):
        return Decision.refuse(
            "not_own_department", f"this key reads the figures of {principal.organisation!r} only"
        )
    return Decision.allow()


def decide_endpoint(principal: Principal, endpoint: str) -> Decision:
    """Endpoints other than status: lists are public; the rest belong to one role."""
    owners = {
        "lists": ROLES,
        "me.status": ("subject",),
        "me.queries": ("subject",),
        "me.report": ("subject",),
        "me.overview": ("subject",),
        "me.applications": ("subject",),
        "department.dashboard": ("department", "administrator"),
        "file": ("administrator",),  # the whole file as the ledger holds it: the host's operator
        "me.authorisations": ("subject",),
        "audit.queries": ("auditor",),
        "audit.anomalies": ("auditor",),
    }
    allowed = owners.get(endpoint, ())
    if principal.role in allowed:
        return Decision.allow()
    if principal.role == "public":
        return Decision.refuse("not_authenticated", "this needs an API key")
    return Decision.refuse(
        "forbidden_role", f"{endpoint} is for role {' or '.join(allowed)}, not {principal.role}"
    )
