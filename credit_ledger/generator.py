"""Realistic synthetic submissions from several departments, for the demo and the benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.domain.catalogue import Edition
from ledger.domain.subjects import organisation_check_character, person_check_character
from ledger.domain.workdays import local_date

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
_ADDRESS_CODES = ("110105", "310104", "440305", "330106", "510107", "350102", "420106", "610113")
_ORG_PREFIXES = ("91350100", "91110105", "91440300", "91310104")
_ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DEMO_DEPARTMENTS = (
    "tax_bureau",
    "court",
    "market_regulator",
    "education",
    "transport",
    "volunteer_federation",
)


def person_code(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    first17 = f"{rng.choice(_ADDRESS_CODES)}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return first17 + person_check_character(first17)


def organisation_code(rng: random.Random) -> str:
    first17 = rng.choice(_ORG_PREFIXES) + "".join(rng.choice(_ORG_ALPHABET) for _ in range(9))
    return first17 + organisation_check_character(first17)


def person_name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))


@dataclass
class _Filed:
    provider: str
    record_id: str
    kind: str
    severity: str | None
    decision: date
    objection: str | None = None
    repair: str | None = None
    ended: bool = False


@dataclass
class _Subject:
    code: str
    name: str
    kind: str
    records: list[_Filed] = field(default_factory=list)
    persons: list[dict[str, str]] = field(default_factory=list)
    designated: bool = False


class SubmissionGenerator:
    """Deterministic stream of submissions: mostly filings, with follow-ups and a few bad inputs.

    ``bad_ratio`` of the output is deliberately wrong (a bad check character, a category the
    department may not file, a record that does not exist) so rejections are exercised too.
    ``designation_share`` of it (0 by default: the benchmarks' workload is unchanged) designates a
    subject on the black list (on a live serious record, by its provider) or the red list (a person
    with a positive record and no serious one, by a red-list department), dated up to 12 days back
    so that some of their measure notices are answered late or become overdue in a demo.
    """

    def __init__(
        self,
        edition: Edition,
        *,
        subjects: int = 10_000,
        seed: int = 2026,
        now: datetime | None = None,
        bad_ratio: float = 0.0,
        departments: tuple[str, ...] = DEMO_DEPARTMENTS,
        organisation_share: float = 0.1,
        prefix: str = "gen",
        designation_share: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.designation_share = designation_share
        self.designators = {d: edition.department(d).may_designate for d in departments}
        self.now = now or datetime(2026, 11, 1, 9, tzinfo=UTC)
        self.bad_ratio = bad_ratio
        self.prefix = prefix
        self.counter = 0
        self.filings = [
            (d, cat.code, cat.kind, dom, cat.severities)
            for d in departments
            for cat in (edition.categories[c] for c in sorted(edition.department(d).categories))
            if cat.kind != "designation"
            for dom in sorted(edition.department(d).domains)
        ]
        self.subjects = [self._subject(organisation_share) for _ in range(subjects)]

    def _subject(self, organisation_share: float) -> _Subject:
        rng = self.rng
        if rng.random() < organisation_share:
            persons = [{"id": person_code(rng), "name": person_name(rng), "role": "法定代表人"}]
            return _Subject(
                organisation_code(rng), f"{person_name(rng)}贸易有限公司", "organisation", persons=persons
            )
        return _Subject(person_code(rng), person_name(rng), "person")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(n)]

    def next(self) -> dict[str, Any]:
        self.counter += 1
        roll = self.rng.random()
        subject = self.rng.choice(self.subjects)
        if roll < self.bad_ratio:
            return self._bad(subject)
        if self.designation_share and roll < self.bad_ratio + self.designation_share:
            designation = self._designation()
            if designation is not None:
                return designation
        live = [r for r in subject.records if not r.ended]
        if live and roll < 0.35:
            return self._follow_up(subject, self.rng.choice(live))
        return self._filing(subject)

    def _envelope(
        self, subject: _Subject, department: str, action: str, occurred: datetime
    ) -> dict[str, Any]:
        return {
            "submission_id": f"{self.prefix}-{self.counter:09d}",
            "department": department,
            "action": action,
            "subject": {"id": subject.code, "name": subject.name},
            "occurred_at": occurred.isoformat(),
        }

    def _occurred(self) -> datetime:
        return self.now - timedelta(minutes=self.rng.randrange(1, 600))

    def _filing(self, subject: _Subject) -> dict[str, Any]:
        rng = self.rng
        department, category, kind, domain, severities = rng.choice(self.filings)
        severity = rng.choice(severities) if kind == "adverse" else None
        decision = (self.now - timedelta(days=rng.randrange(1, 700))).date()
        record_id = f"{department[:3].upper()}-{self.counter:09d}"
        sub = self._envelope(subject, department, "file_record", self._occurred())
        sub["record"] = {
            "record_id": record_id,
            "category": category,
            "domain": domain,
            "title": f"{category} {record_id}",
            "decision": {
                "document_number": f"{department}〔{decision.year}〕{self.counter}号",
                "date": decision.isoformat(),
            },
            "legal_basis": "《社会信用体系建设法》相关条款",
        }
        if severity is not None:
            sub["record"]["severity"] = severity
        if subject.kind == "organisation" and severity == "serious":
            sub["record"]["responsible_persons"] = subject.persons
        if decision < (self.now - timedelta(days=1100)).date() and kind == "adverse":
            return sub  # would already be past any display period; filed but not tracked
        subject.records.append(_Filed(department, record_id, kind, severity, decision))
        return sub

    def _follow_up(self, subject: _Subject, record: _Filed) -> dict[str, Any]:
        rng = self.rng
        ref = {"provider": record.provider, "record_id": record.record_id}
        occurred = self._occurred()
        if record.objection is not None:
            sub = self._envelope(subject, record.provider, "resolve_objection", occurred)
            outcome = rng.choice(("rejected", "rejected", "upheld"))
            sub.update(
                record=ref,
                objection_id=record.objection,
                outcome=outcome,
                explanation="经核查" + ("属实" if outcome == "upheld" else "原记录无误"),
            )
            if outcome == "upheld":
                sub["remedy"] = "revoke"
                record.ended = True
            record.objection = None
            return sub
        if record.repair is not None:
            sub = self._envelope(subject, record.provider, "decide_repair", occurred)
            sub.update(
                record=ref,
                application_id=record.repair,
                decision="granted",
                reason="已履行义务并完成信用承诺",
            )
            record.repair, record.ended = None, True
            return sub
        choice = rng.random()
        if choice < 0.3:
            sub = self._envelope(subject, record.provider, "correct_record", occurred)
            sub.update(record=ref, changes={"title": f"更正：{record.record_id}"}, reason="文书信息录入错误")
            return sub
        if choice < 0.55 and record.kind == "adverse":
            record.objection = f"OBJ-{self.counter:09d}"
            sub = self._envelope(subject, "credit_platform", "raise_objection", occurred)
            sub.update(record=ref, objection_id=record.objection, grounds="本人对处罚事实有异议")
            return sub
        if choice < 0.8 and record.kind == "adverse" and record.severity != "serious":
            record.repair = f"REP-{self.counter:09d}"
            sub = self._envelope(subject, "credit_platform", "request_repair", occurred)
            sub.update(record=ref, application_id=record.repair, measures_taken="已缴清罚款并提交信用承诺书")
            return sub
        sub = self._envelope(subject, "credit_platform", "add_statement", occurred)
        sub.update(statement_id=f"ST-{self.counter:09d}", text="情况说明：已积极整改", record=ref)
        return sub

    def _designation(self) -> dict[str, Any] | None:
        """A black-list entry on a live serious record, or a red-list entry on a positive one."""
        rng = self.rng
        for _ in range(20):
            subject = rng.choice(self.subjects)
            if subject.designated:
                continue
            live = [r for r in subject.records if not r.ended]
            undisputed = [r for r in live if r.objection is None]  # else its notices begin suspended
            serious = [
                r for r in undisputed if r.severity == "serious" and "black" in self.designators[r.provider]
            ]
            positive = [
                r for r in undisputed if r.kind == "positive" and "red" in self.designators[r.provider]
            ]
            if serious:
                basis, list_name = rng.choice(serious), "black"
            elif positive and subject.kind == "person" and not any(r.severity == "serious" for r in live):
                basis, list_name = rng.choice(positive), "red"
            else:
                continue
            subject.designated = True
            occurred = self.now - timedelta(days=rng.randrange(0, 12), minutes=rng.randrange(1, 600))
            sub = self._envelope(subject, basis.provider, "designate", occurred)
            day = local_date(occurred)
            sub["designation"] = {
                "designation_id": f"{'HMD' if list_name == 'black' else 'HONG'}-{self.counter:09d}",
                "list": list_name,
                "basis": "《社会信用体系建设法》相关条款；晋政发〔2017〕3号",
                "document_number": f"{basis.provider}信〔{day.year}〕{self.counter}号",
                "valid_from": day.isoformat(),
                "valid_until": day.replace(year=day.year + 3).isoformat(),
                "records": [{"provider": basis.provider, "record_id": basis.record_id}],
            }
            return sub
        return None

    def _bad(self, subject: _Subject) -> dict[str, Any]:
        sub = self._filing(subject)
        if subject.records and subject.records[-1].record_id == sub["record"]["record_id"]:
            subject.records.pop()
        flavour = self.rng.randrange(3)
        if flavour == 0:
            code = sub["subject"]["id"]
            sub["subject"] = {**sub["subject"], "id": code[:-1] + ("0" if code[-1] != "0" else "1")}
        elif flavour == 1:
            sub["department"] = "volunteer_federation"
            sub["record"]["category"] = "tax_evasion"
            sub["record"]["severity"] = "serious"
        else:
            sub["action"] = "correct_record"
            sub["record"] = {"record_id": "NO-SUCH-RECORD"}
            sub["changes"] = {"title": "x"}
            sub["reason"] = "typo"
        return sub
