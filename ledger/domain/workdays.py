"""Working-day and calendar-month arithmetic on the Chinese calendar, for rule deadlines."""

from __future__ import annotations

import calendar
import functools
from datetime import date, datetime, timedelta, timezone
from typing import Literal

import chinese_calendar

__all__ = [
    "DeadlineUnit",
    "add_months",
    "add_working_days",
    "deadline",
    "has_holiday_data",
    "is_working_day",
    "working_days_between",
]

DeadlineUnit = Literal["days", "working_days"]

_ONE_DAY = timedelta(days=1)
_SATURDAY = 5


def has_holiday_data(day: date) -> bool:
    """Whether ``chinese_calendar`` knows the public holidays of ``day``'s year.

    The State Council publishes each year's holiday schedule only late in the year
    before, so the library always stops at a recent year (1.11.0 covers 2004-2026).
    """
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


@functools.lru_cache(maxsize=16384)
def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day: weekends and public holidays are not, and the
    make-up working days (调休, usually a Saturday or Sunday) are.

    For a year the ``chinese_calendar`` package has no data for (before 2004, or after the
    last published schedule) this falls back to Monday to Friday: holidays in such a year
    count as working days and make-up days do not. Use :func:`has_holiday_data` to tell
    whether a date was decided by the real schedule.

    Memoised: ``chinese_calendar`` scans its whole holiday table on every call (about 60 µs), and
    deadlines ask about the same few days again and again. Sixteen thousand days are 45 years.
    """
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < _SATURDAY


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself is not counted).

    ``n == 0`` returns ``start`` unchanged, even if it is not a working day.
    Raises ValueError if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"the number of working days must not be negative, got {n}")
    day = start
    remaining = n
    while remaining:
        day += _ONE_DAY
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """The number of working days ``d`` with ``start < d <= end``.

    This is the inverse of :func:`add_working_days`:
    ``working_days_between(s, add_working_days(s, n)) == n``. If ``end`` is before
    ``start`` the count is negative: ``working_days_between(b, a) == -working_days_between(a, b)``.
    """
    if end < start:
        return -working_days_between(end, start)
    count = 0
    day = start
    while day < end:
        day += _ONE_DAY
        if is_working_day(day):
            count += 1
    return count


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (may be negative), clamped to the last
    day of the target month: 2024-01-31 + 1 month is 2024-02-29.

    Raises ValueError if the result falls outside the years 1-9999.
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month_index = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"{day.isoformat()} + {months} months is outside the years 1-9999")
    month = month_index + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def deadline(start: date, amount: int, unit: DeadlineUnit) -> date:
    """The deadline ``amount`` days or working days after ``start``.

    ``"days"`` counts calendar days, ``"working_days"`` counts as :func:`add_working_days`.
    Raises ValueError for a negative amount or an unknown unit.
    """
    if amount < 0:
        raise ValueError(f"a deadline amount must not be negative, got {amount}")
    if unit == "working_days":
        return add_working_days(start, amount)
    if unit == "days":
        return start + timedelta(days=amount)
    raise ValueError(f"unknown deadline unit {unit!r}; expected 'days' or 'working_days'")


CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""Decision dates, display periods and deadlines are calendar days in China (UTC+8, no DST)."""


def local_date(moment: datetime) -> date:
    """The calendar day in China on which ``moment`` falls."""
    return moment.astimezone(CHINA_STANDARD_TIME).date()
