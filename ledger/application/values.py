"""Strict values in submissions: integers that are ints, RFC 3339 dates and times that exist.

JSON Schema lets through what the ledger must not record (6.0 as an integer, +08:60 as an
offset, 2026-02-30 as a date); each check here names the field and what was expected.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from ledger.domain.errors import InvalidInput
from ledger.domain.redaction import echo
from ledger.domain.workdays import local_date


def integer(value: Any, field: str) -> None:
    """JSON Schema counts 6.0 as an integer; the ledger does not (nor true, which is no number)."""
    if type(value) is not int:
        raise InvalidInput(
            f"{field}: expected an integer written without a fraction or exponent (6, not 6.0); "
            f"got {echo(value)}",
            field=field,
            code="invalid_field",
        )


def check_integers(data: Mapping[str, Any]) -> None:
    """The schema's integer fields, held to ``int``: ``schema_version``, ``display_months`` and
    a notice's ``state_version``."""
    for name in ("schema_version", "state_version"):
        if name in data:
            integer(data[name], name)
    feedback = data.get("feedback")
    if isinstance(feedback, Mapping) and "state_version" in feedback:
        integer(feedback["state_version"], "feedback.state_version")
    for parent in ("record", "changes"):
        container = data.get(parent)
        if isinstance(container, Mapping) and "display_months" in container:
            value = container["display_months"]
            if value is not None:
                integer(value, f"{parent}.display_months")


DATE_MIN = date(1800, 1, 1)
DATE_MAX = date(2999, 12, 31)
"""The range of every date field: wide enough for any record, narrow enough that a display
period (up to 600 months) or a clean-record span added to it is still a date."""

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _real_date(year: int, month: int, day: int, text: str, field: str) -> date:
    if not 1 <= month <= 12:
        raise InvalidInput(
            f"{field}: {echo(text)} is not a real date: month {month:02d} does not exist", field=field
        )
    try:
        return date(year, month, day)
    except ValueError:
        days = calendar.monthrange(year, month)[1] if year >= 1 else 31
        raise InvalidInput(
            f"{field}: {echo(text)} is not a real date: {calendar.month_name[month]} {year} has {days} days",
            field=field,
        ) from None


def strict_date(value: str, field: str) -> date:
    """A ``YYYY-MM-DD`` date that exists, within :data:`DATE_MIN` .. :data:`DATE_MAX`."""
    match = _DATE.fullmatch(value)
    if match is None:
        raise InvalidInput(f"{field}: expected a real date YYYY-MM-DD, got {echo(value)}", field=field)
    year, month, day = (int(g) for g in match.groups())
    if year == 0:
        raise InvalidInput(f"{field}: {echo(value)} is not a real date: there is no year 0", field=field)
    parsed = _real_date(year, month, day, value, field)
    if not DATE_MIN <= parsed <= DATE_MAX:
        raise InvalidInput(
            f"{field}: {value} is out of range: dates from {DATE_MIN} to {DATE_MAX} are accepted", field=field
        )
    return parsed


def strict_datetime(value: str, field: str) -> datetime:
    """An RFC 3339 time with a zone offset, strictly: a real date, a real time of day, an offset
    within ±23:59, and a moment that exists in UTC and in China time. Returned in UTC.

    The common case is read by ``datetime.fromisoformat`` (in C), once the few things it would
    let through are ruled out (other forms, non-ASCII digits, offset minutes of 60 or more);
    anything it refuses is read again by :func:`_spelled_out_datetime`, which says what is wrong.
    """
    if (
        value.isascii()
        and len(value) >= 20
        and value[10] == "T"
        and (value[-1] == "Z" or (value[-6] in "+-" and value[-3] == ":" and value[-2] < "6"))
    ):
        try:
            utc = datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
        else:
            if utc.year < 9999:  # so the day in China, which every rule counts in, exists too
                return utc
    return _spelled_out_datetime(value, field)


def _spelled_out_datetime(value: str, field: str) -> datetime:
    """``strict_datetime`` character by character: every refusal names what is wrong."""
    match = _TIME.fullmatch(value)
    if match is None:
        raise InvalidInput(
            f"{field}: expected an RFC 3339 time with a zone offset "
            f"(YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM), got {echo(value)}",
            field=field,
        )
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    if year == 0:
        raise InvalidInput(f"{field}: {echo(value)} is not a real date: there is no year 0", field=field)
    _real_date(year, month, day, value, field)
    if hour > 23 or minute > 59 or second > 59:
        leap = (
            " (leap seconds are not accepted: use :59)"
            if second == 60 and hour <= 23 and minute <= 59
            else ""
        )
        raise InvalidInput(
            f"{field}: {echo(value)} is not a real time of day: expected 00:00:00 to 23:59:59{leap}",
            field=field,
        )
    offset = timedelta(0)
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise InvalidInput(
                f"{field}: the zone offset {zone} is not valid: expected -23:59 to +23:59, "
                "with minutes 00-59",
                field=field,
            )
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        utc = moment.astimezone(UTC)
        local_date(utc)  # the day in China, which every rule counts in, must exist too
    except OverflowError:
        raise InvalidInput(
            f"{field}: {value} is out of range: times from 0001-01-01T00:00:00Z to "
            "9999-12-31T15:59:59Z can be recorded",
            field=field,
        ) from None
    return utc
