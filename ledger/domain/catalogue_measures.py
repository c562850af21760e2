"""The catalogue's joint-measures sections: the measures lists, their feedback deadline, business types.

Parsed here so ``catalogue.py`` stays one screen of rules; ``catalogue.py`` calls these with its own
error builder (``fail(where, what)``), so every fault still names the file and the JSON path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

LISTS = ("black", "red")
MEASURE_KINDS = ("mandatory", "recommended")

FEEDBACK_WORKING_DAYS = 5
"""Policy default: an implementing department reports back within 5 working days of a notice.

The seeds ask for execution feedback (004 items 31 and 38) but set no deadline; five working days
is the project's default, set per edition in ``measure_feedback.within_working_days``."""

Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True)
class Measure:
    """One joint reward or sanction: its list, kind, the departments that implement it, its basis.

    ``published`` is false for a measure that is drafted in the list but not yet published:
    it cannot be applied, so it is never notified (DOMAIN.md, "Joint measures").
    """

    id: str
    list: str
    title: str
    kind: str
    implementing_departments: tuple[str, ...]
    basis: str
    published: bool = True


@dataclass(frozen=True)
class BusinessType:
    """A kind of approval or supervision a department checks a subject before (应查必查, 004 item 39).

    ``measures`` are the measures that bear on it; a check of this business is recorded in the query
    register with the business type's code as its purpose.
    """

    code: str
    title: str
    measures: tuple[str, ...]
    basis: str


def parse_measures(raw: Any, where: str, departments: Mapping[str, Any], fail: Fail) -> tuple[Measure, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fail(where, f"expected a list, got {type(raw).__name__}")
    measures: list[Measure] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        mw = f"{where}[{i}]"
        if not isinstance(item, dict):
            fail(mw, f"expected an object, got {type(item).__name__}")
        measure_id = item.get("id")
        if not isinstance(measure_id, str) or not measure_id:
            fail(f"{mw}.id", "is required (a string)")
        if measure_id in seen:
            fail(f"{mw}.id", f"measure {measure_id!r} is listed twice")
        seen.add(measure_id)
        implementing = tuple(item.get("implementing_departments", []))
        for code in implementing:
            if code not in departments:
                fail(f"{mw}.implementing_departments", f"department {code!r} is not defined")
        published = item.get("published", True)
        if not isinstance(published, bool):
            fail(f"{mw}.published", f"expected true/false, got {type(published).__name__}")
        measures.append(
            Measure(
                id=measure_id,
                list=_one_of(item.get("list"), LISTS, f"{mw}.list", fail),
                title=str(item.get("title", "")),
                kind=_one_of(item.get("kind"), MEASURE_KINDS, f"{mw}.kind", fail),
                implementing_departments=implementing,
                basis=str(item.get("basis", "")),
                published=published,
            )
        )
    return tuple(measures)


def parse_feedback_days(raw: Any, where: str, fail: Fail) -> int:
    if raw is None:
        return FEEDBACK_WORKING_DAYS
    if not isinstance(raw, dict):
        fail(where, f"expected an object, got {type(raw).__name__}")
    days = raw.get("within_working_days", FEEDBACK_WORKING_DAYS)
    if type(days) is not int or days < 1:
        fail(f"{where}.within_working_days", f"expected a whole number of working days >= 1, got {days!r}")
    return days


def parse_business_types(
    raw: Any,
    where: str,
    measures: tuple[Measure, ...],
    fail: Fail,
) -> dict[str, BusinessType]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        fail(where, f"expected an object, got {type(raw).__name__}")
    known = {m.id for m in measures}
    out: dict[str, BusinessType] = {}
    for code, item in raw.items():
        bw = f"{where}.{code}"
        if not isinstance(item, dict):
            fail(bw, f"expected an object, got {type(item).__name__}")
        listed = item.get("measures", [])
        if not isinstance(listed, list) or not listed:
            fail(f"{bw}.measures", "expected a non-empty list of measure ids")
        for measure_id in listed:
            if measure_id not in known:
                fail(f"{bw}.measures", f"measure {measure_id!r} is not in this edition's measures")
        out[code] = BusinessType(
            code=code,
            title=str(item.get("title", code)),
            measures=tuple(listed),
            basis=str(item.get("basis", "")),
        )
    return out


def _one_of(value: Any, allowed: tuple[str, ...], where: str, fail: Fail) -> str:
    if value not in allowed:
        fail(where, f"expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)
