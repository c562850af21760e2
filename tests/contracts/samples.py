"""Submissions the recorder contract (and the stores' own tests) are played with."""

from __future__ import annotations

from typing import Any

from ledger.domain.subjects import person_check_character

PERSON = "11010519491231002X"
OTHER_PEOPLE = ("110105198001010016", "110105198001010024", "110105198001010032")


def filing(submission_id: str, subject: str = PERSON, record_id: str = "R1") -> dict[str, Any]:
    """A tax bureau filing a tax-evasion record against ``subject``."""
    return {
        "submission_id": submission_id,
        "department": "tax_bureau",
        "action": "file_record",
        "subject": {"id": subject, "name": "张三"},
        "occurred_at": "2026-10-30T10:00:00+08:00",
        "record": {
            "record_id": record_id,
            "category": "tax_evasion",
            "domain": "taxation",
            "severity": "serious",
            "title": "逃税",
            "decision": {"document_number": f"税罚〔2026〕{record_id}号", "date": "2026-10-29"},
        },
    }


def objection(submission_id: str, subject: str = PERSON, record_id: str = "R1") -> dict[str, Any]:
    """The credit platform passing on the subject's objection to a record."""
    return {
        "submission_id": submission_id,
        "department": "credit_platform",
        "action": "raise_objection",
        "subject": {"id": subject, "name": "张三"},
        "occurred_at": "2026-10-31T10:00:00+08:00",
        "record": {"provider": "tax_bureau", "record_id": record_id},
        "objection_id": f"O-{submission_id}",
        "grounds": "not me",
    }


def answer(submission_id: str, objection_id: str) -> dict[str, Any]:
    """The tax bureau rejecting an objection to its record R1."""
    return {
        "submission_id": submission_id,
        "department": "tax_bureau",
        "action": "resolve_objection",
        "subject": {"id": PERSON, "name": "张三"},
        "occurred_at": "2026-10-31T12:00:00+08:00",
        "record": {"record_id": "R1"},
        "objection_id": objection_id,
        "outcome": "rejected",
        "explanation": "checked",
    }


def with_bad_subject(submission_id: str) -> dict[str, Any]:
    """A filing whose identity number is one digit short."""
    return dict(filing(submission_id), subject={"id": PERSON[:-1], "name": "张三"})


def person(n: int) -> str:
    first17 = f"110105198001{n // 1000 % 28 + 1:02d}{n % 1000:03d}"
    return first17 + person_check_character(first17)
