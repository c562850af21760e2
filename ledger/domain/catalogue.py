"""The information catalogue: what may be recorded, by whom, and for how long, by edition."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ledger.domain.catalogue_measures import (
    BusinessType,
    Measure,
    parse_business_types,
    parse_feedback_days,
    parse_measures,
)
from ledger.domain.errors import CatalogueError, NotAuthorised, NotInCatalogue
from ledger.domain.workdays import add_months

KINDS = ("adverse", "positive", "neutral", "designation")
SEVERITIES = ("minor", "general", "serious")
LISTS = ("black", "red")
ROLES = ("provider", "court", "platform")


@dataclass(frozen=True)
class Category:
    code: str
    title: str
    kind: str
    severities: tuple[str, ...] = ()
    early_end: bool = True
    display_months: int | None = None
    list: str | None = None


@dataclass(frozen=True)
class Department:
    code: str
    title: str
    role: str
    categories: frozenset[str]
    domains: frozenset[str]
    may_designate: frozenset[str]


@dataclass(frozen=True)
class PublicityRule:
    """Months a record is shown, counted from its decision date, and whether repair may end it early."""

    min_months: int
    max_months: int | None
    early_end: bool


@dataclass(frozen=True)
class DisplayPeriod:
    display_from: date
    display_until: date | None
    repairable_from: date | None
    early_end: bool


@dataclass(frozen=True)
class Edition:
    """One version of the catalogue, in force from ``effective_from``."""

    edition: str
    effective_from: date
    domains: Mapping[str, str]
    categories: Mapping[str, Category]
    departments: Mapping[str, Department]
    measures: tuple[Measure, ...]
    publicity: Mapping[str, tuple[int, int]]
    sector_min_months: Mapping[str, int]
    no_early_end: frozenset[tuple[str, str]]
    objection_resolve_within: int
    objection_resolve_unit: str
    clean_record_years: int
    query_window_years: int
    retention_years: int  # personal content is shredded this long after a record ends (docs/privacy.md)
    score: Mapping[str, Any]
    query_purposes: Mapping[str, Mapping[str, str]]
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    feedback_within_working_days: int = 5
    business_types: Mapping[str, BusinessType] = field(default_factory=dict)

    # -- lookups that name the field at fault -------------------------------------------
    def department(self, code: str, *, field: str = "department") -> Department:
        try:
            return self.departments[code]
        except KeyError:
            raise NotInCatalogue(
                f"department {code!r} is not registered in catalogue edition {self.edition}",
                field=field,
            ) from None

    def category(self, code: str, *, field: str = "record.category") -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise NotInCatalogue(
                f"category {code!r} is not in catalogue edition {self.edition}", field=field
            ) from None

    def check_domain(self, code: str, *, field: str = "record.domain") -> None:
        if code not in self.domains:
            raise NotInCatalogue(f"domain {code!r} is not in catalogue edition {self.edition}", field=field)

    def check_may_file(self, department: str, category: str, domain: str) -> None:
        dept = self.department(department)
        if category not in dept.categories:
            raise NotAuthorised(
                f"department {department!r} is not registered to file category {category!r}",
                field="record.category",
            )
        if domain not in dept.domains:
            raise NotAuthorised(
                f"department {department!r} is not registered to file in domain {domain!r}",
                field="record.domain",
            )

    def check_may_designate(self, department: str, list_name: str) -> None:
        if list_name not in self.department(department).may_designate:
            raise NotAuthorised(
                f"department {department!r} may not designate entries on the {list_name} list",
                field="designation.list",
            )

    def measures_for(self, list_name: str) -> tuple[Measure, ...]:
        return tuple(m for m in self.measures if m.list == list_name)

    def notified_measures(self, list_name: str) -> tuple[Measure, ...]:
        """The published measures of a list: what a designation on it notifies (never a draft)."""
        return tuple(m for m in self.measures if m.list == list_name and m.published)

    def business_type(self, code: str, *, field: str = "business") -> BusinessType:
        try:
            return self.business_types[code]
        except KeyError:
            raise NotInCatalogue(
                f"business type {code!r} is not in catalogue edition {self.edition} "
                f"(it lists {', '.join(sorted(self.business_types)) or 'none'})",
                field=field,
            ) from None

    # -- rules ---------------------------------------------------------------------------
    def publicity_rule(self, category: Category, domain: str, severity: str | None) -> PublicityRule:
        if category.kind == "adverse":
            if severity is None:
                raise NotInCatalogue("an adverse record needs a severity", field="record.severity")
            low, high = self.publicity[severity]
            low = max(low, self.sector_min_months.get(domain, 0))
            high = max(high, low)
            early = category.early_end and (domain, severity) not in self.no_early_end
            return PublicityRule(low, high, early)
        months = category.display_months
        return PublicityRule(0 if months is None else months, months, True)

    def display_period(
        self,
        category: Category,
        domain: str,
        severity: str | None,
        decision_date: date,
        requested_months: int | None,
        *,
        field: str = "record.display_months",
    ) -> DisplayPeriod:
        """The display period from the decision date: the requested months within the rule's range,
        or the longest the rule allows when none is requested."""
        rule = self.publicity_rule(category, domain, severity)
        if category.kind == "adverse":
            assert rule.max_months is not None  # adverse rules always have a maximum
            months = rule.max_months if requested_months is None else requested_months
            if not rule.min_months <= months <= rule.max_months:
                raise NotInCatalogue(
                    f"display period for a {severity} {category.code} record in {domain} must be "
                    f"{rule.min_months} to {rule.max_months} months, got {months}",
                    field=field,
                )
            return DisplayPeriod(
                decision_date,
                add_months(decision_date, months),
                add_months(decision_date, rule.min_months),
                rule.early_end,
            )
        months_or_none = requested_months if requested_months is not None else rule.max_months
        until = None if months_or_none is None else add_months(decision_date, months_or_none)
        return DisplayPeriod(decision_date, until, None, True)


@dataclass(frozen=True)
class Catalogue:
    name: str
    editions: tuple[Edition, ...]

    def edition_at(self, day: date) -> Edition:
        """The edition in force on ``day``."""
        in_force = [e for e in self.editions if e.effective_from <= day]
        if not in_force:
            raise NotInCatalogue(
                f"no catalogue edition is in force on {day.isoformat()} "
                f"(the earliest starts {self.editions[0].effective_from.isoformat()})",
                field="occurred_at",
            )
        return in_force[-1]

    def edition(self, name: str) -> Edition:
        for e in self.editions:
            if e.edition == name:
                return e
        raise NotInCatalogue(f"catalogue edition {name!r} is unknown", field="edition")

    @property
    def latest(self) -> Edition:
        return self.editions[-1]


# -- loading ---------------------------------------------------------------------------------


def default_catalogue_path() -> Path:
    return Path(str(resources.files("ledger") / "data" / "catalogue.json"))


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """Load and validate a catalogue file (the shipped default when ``path`` is None)."""
    source = Path(path) if path is not None else default_catalogue_path()
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"catalogue file {source} does not exist") from None
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"catalogue file {source} is not valid JSON: {exc}") from None
    return parse_catalogue(data, origin=str(source))


def parse_catalogue(data: Any, *, origin: str = "<catalogue>") -> Catalogue:
    p = _Path(origin)
    root = p.mapping(data, "")
    if root.get("format") != 1:
        p.fail("format", f"expected 1, got {root.get('format')!r}")
    editions_raw = root.get("editions")
    if not isinstance(editions_raw, list) or not editions_raw:
        p.fail("editions", "expected a non-empty list of editions")
    editions = tuple(_parse_edition(p, e, f"editions[{i}]") for i, e in enumerate(editions_raw))
    starts = [e.effective_from for e in editions]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        p.fail("editions", "editions must be listed by strictly increasing effective_from")
    return Catalogue(name=str(root.get("name", "catalogue")), editions=editions)


class _Path:
    """Builds catalogue errors that name the file and the JSON path at fault."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, what: str) -> NoReturn:
        raise CatalogueError(f"{self.origin}: {where}: {what}", field=where)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where or "(root)", f"expected an object, got {type(value).__name__}")
        return value

    def get(self, obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
        if key not in obj:
            self.fail(f"{where}.{key}", "is required")
        value = obj[key]
        if not isinstance(value, kind):
            self.fail(f"{where}.{key}", f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def date(self, obj: Mapping[str, Any], key: str, where: str) -> date:
        raw = self.get(obj, key, where, str)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.fail(f"{where}.{key}", f"expected a date YYYY-MM-DD, got {raw!r}")

    def one_of(self, value: Any, allowed: tuple[str, ...], where: str) -> str:
        if value not in allowed:
            self.fail(where, f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _parse_edition(p: _Path, raw: Any, where: str) -> Edition:
    e = p.mapping(raw, where)
    domains = {
        code: str(p.mapping(d, f"{where}.domains.{code}").get("title", code))
        for code, d in p.get(e, "domains", where, dict).items()
    }
    categories: dict[str, Category] = {}
    for code, raw_category in p.get(e, "categories", where, dict).items():
        cw = f"{where}.categories.{code}"
        c = p.mapping(raw_category, cw)
        kind = p.one_of(c.get("kind"), KINDS, f"{cw}.kind")
        severities = tuple(c.get("severities", ()))
        if kind == "adverse" and (not severities or any(s not in SEVERITIES for s in severities)):
            p.fail(f"{cw}.severities", f"an adverse category needs severities from {', '.join(SEVERITIES)}")
        list_name = c.get("list")
        if kind == "designation":
            p.one_of(list_name, LISTS, f"{cw}.list")
        categories[code] = Category(
            code=code,
            title=str(c.get("title", code)),
            kind=kind,
            severities=severities,
            early_end=bool(c.get("early_end", True)),
            display_months=c.get("display_months"),
            list=list_name,
        )
    departments: dict[str, Department] = {}
    for code, raw_department in p.get(e, "departments", where, dict).items():
        dw = f"{where}.departments.{code}"
        d = p.mapping(raw_department, dw)
        may_file = p.mapping(d.get("may_file", {}), f"{dw}.may_file")
        cats = frozenset(may_file.get("categories", []))
        doms = frozenset(may_file.get("domains", []))
        for c_code in cats - categories.keys():
            p.fail(f"{dw}.may_file.categories", f"category {c_code!r} is not defined in this edition")
        for d_code in doms - domains.keys():
            p.fail(f"{dw}.may_file.domains", f"domain {d_code!r} is not defined in this edition")
        designate = frozenset(d.get("may_designate", []))
        for lst in designate:
            p.one_of(lst, LISTS, f"{dw}.may_designate")
        departments[code] = Department(
            code=code,
            title=str(d.get("title", code)),
            role=p.one_of(d.get("role", "provider"), ROLES, f"{dw}.role"),
            categories=cats,
            domains=doms,
            may_designate=designate,
        )
    measures = parse_measures(e.get("measures"), f"{where}.measures", departments, p.fail)
    publicity: dict[str, tuple[int, int]] = {}
    pub = p.get(e, "publicity", where, dict)
    for sev in SEVERITIES:
        rule = p.mapping(pub.get(sev), f"{where}.publicity.{sev}")
        low = p.get(rule, "min_months", f"{where}.publicity.{sev}", int)
        high = p.get(rule, "max_months", f"{where}.publicity.{sev}", int)
        if not 0 <= low <= high:
            p.fail(f"{where}.publicity.{sev}", f"expected 0 <= min_months <= max_months, got {low}..{high}")
        publicity[sev] = (low, high)
    sector: dict[str, int] = {}
    for i, raw_override in enumerate(e.get("sector_overrides", [])):
        ow = f"{where}.sector_overrides[{i}]"
        o = p.mapping(raw_override, ow)
        months = p.get(o, "min_months", ow, int)
        for d_code in p.get(o, "domains", ow, list):
            if d_code not in domains:
                p.fail(f"{ow}.domains", f"domain {d_code!r} is not defined")
            sector[d_code] = max(sector.get(d_code, 0), months)
    no_early = frozenset(
        (str(p.mapping(r, f"{where}.no_early_end")["domain"]), str(r.get("severity")))
        for r in e.get("no_early_end", [])
    )
    objection = p.mapping(e.get("objection", {}), f"{where}.objection")
    return Edition(
        edition=p.get(e, "edition", where, str),
        effective_from=p.date(e, "effective_from", where),
        domains=domains,
        categories=categories,
        departments=departments,
        measures=measures,
        publicity=publicity,
        sector_min_months=sector,
        no_early_end=no_early,
        objection_resolve_within=int(objection.get("resolve_within", 20)),
        objection_resolve_unit=p.one_of(
            objection.get("resolve_unit", "days"), ("days", "working_days"), f"{where}.objection.resolve_unit"
        ),
        clean_record_years=int(e.get("clean_record_years", 3)),
        # 征信业管理条例 art. 16: adverse information is kept 5 years from the end of the act.
        retention_years=int(e.get("retention_years", 5)),
        query_window_years=int(e.get("query_window_years", 5)),
        score=p.mapping(e.get("score", {}), f"{where}.score"),
        query_purposes=p.mapping(e.get("query_purposes", {}), f"{where}.query_purposes"),
        raw=e,
        feedback_within_working_days=parse_feedback_days(
            e.get("measure_feedback"), f"{where}.measure_feedback", p.fail
        ),
        business_types=parse_business_types(
            e.get("business_types"), f"{where}.business_types", measures, p.fail
        ),
    )
