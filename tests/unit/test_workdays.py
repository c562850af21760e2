"""Working days on the Chinese calendar, calendar months and deadlines."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.workdays import (
    add_months,
    add_working_days,
    deadline,
    has_holiday_data,
    is_working_day,
    working_days_between,
)

# 2024 National Day: 1-7 October off; Sunday 29 September and Saturday 12 October worked.
NATIONAL_DAY = date(2024, 10, 1)
MAKE_UP_SUNDAY = date(2024, 9, 29)
MAKE_UP_SATURDAY = date(2024, 10, 12)

# Years chinese_calendar will never cover (before its first year, far beyond its last).
UNCOVERED_TUESDAY = date(2100, 1, 5)
UNCOVERED_SATURDAY = date(2100, 1, 9)

covered_dates = st.dates(min_value=date(2004, 1, 1), max_value=date(2026, 12, 1))


# --- is_working_day ---------------------------------------------------------------------


def test_national_day_is_not_a_working_day() -> None:
    assert not is_working_day(NATIONAL_DAY)


def test_the_whole_national_day_week_is_off() -> None:
    assert not any(is_working_day(NATIONAL_DAY + timedelta(days=i)) for i in range(7))


def test_a_sunday_make_up_day_is_a_working_day() -> None:
    assert MAKE_UP_SUNDAY.weekday() == 6
    assert is_working_day(MAKE_UP_SUNDAY)


def test_a_saturday_make_up_day_is_a_working_day() -> None:
    assert MAKE_UP_SATURDAY.weekday() == 5
    assert is_working_day(MAKE_UP_SATURDAY)


def test_an_ordinary_weekend_is_not_a_working_day() -> None:
    assert not is_working_day(date(2024, 9, 28))  # Saturday before the make-up Sunday


def test_an_ordinary_weekday_is_a_working_day() -> None:
    assert is_working_day(date(2024, 9, 27))


def test_the_spring_festival_2026_make_up_saturday_is_a_working_day() -> None:
    assert date(2026, 2, 14).weekday() == 5
    assert is_working_day(date(2026, 2, 14))


def test_outside_the_library_years_weekdays_are_working_days() -> None:
    assert not has_holiday_data(UNCOVERED_TUESDAY)
    assert is_working_day(UNCOVERED_TUESDAY)
    assert not is_working_day(UNCOVERED_SATURDAY)


def test_the_fallback_does_not_know_holidays_before_2004() -> None:
    # 1 October 2003 was a public holiday, but the library has no data for 2003.
    assert not has_holiday_data(date(2003, 10, 1))
    assert is_working_day(date(2003, 10, 1))


def test_the_library_covers_2004_to_at_least_2026() -> None:
    assert has_holiday_data(date(2004, 1, 1))
    assert has_holiday_data(date(2026, 12, 31))


@given(covered_dates)
def test_in_the_library_years_a_day_is_a_working_day_exactly_when_it_is_no_holiday(
    day: date,
) -> None:
    assert is_working_day(day) is not chinese_calendar.is_holiday(day)


@given(st.dates(min_value=date(2100, 1, 1), max_value=date(2200, 12, 31)))
def test_the_fallback_is_exactly_monday_to_friday(day: date) -> None:
    assert is_working_day(day) is (day.weekday() < 5)


# --- add_working_days -------------------------------------------------------------------


def test_one_working_day_after_the_last_day_before_national_day_is_the_8th() -> None:
    assert add_working_days(date(2024, 9, 30), 1) == date(2024, 10, 8)


def test_one_working_day_after_friday_before_national_day_is_the_make_up_sunday() -> None:
    assert add_working_days(date(2024, 9, 27), 1) == MAKE_UP_SUNDAY


def test_counting_across_the_national_day_holiday() -> None:
    # Working days after 27 Sep: 29, 30 Sep, 8, 9, 10, 11, 12 (Saturday), 14 Oct.
    assert add_working_days(date(2024, 9, 27), 5) == date(2024, 10, 10)
    assert add_working_days(date(2024, 9, 27), 7) == MAKE_UP_SATURDAY
    assert add_working_days(date(2024, 9, 27), 8) == date(2024, 10, 14)


def test_a_start_inside_the_holiday_counts_from_the_first_day_back() -> None:
    assert add_working_days(date(2024, 10, 3), 1) == date(2024, 10, 8)


def test_zero_working_days_is_the_start_itself_even_on_a_holiday() -> None:
    assert add_working_days(NATIONAL_DAY, 0) == NATIONAL_DAY


def test_a_negative_number_of_working_days_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        add_working_days(NATIONAL_DAY, -1)


@pytest.mark.skipif(has_holiday_data(date(2027, 1, 1)), reason="chinese_calendar covers 2027")
def test_counting_runs_from_the_library_years_into_the_fallback_years() -> None:
    # 2026-12-31 is a Thursday; the next working days fall in a year without data.
    assert add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 1)  # Friday, by fallback


@given(covered_dates, st.integers(0, 40))
def test_the_result_is_a_working_day_after_the_start(start: date, n: int) -> None:
    result = add_working_days(start, n)
    if n == 0:
        assert result == start
    else:
        assert result > start
        assert is_working_day(result)


# --- working_days_between ---------------------------------------------------------------


def test_working_days_between_counts_after_the_start_up_to_and_including_the_end() -> None:
    assert working_days_between(date(2024, 9, 27), date(2024, 10, 14)) == 8
    assert working_days_between(date(2024, 9, 30), date(2024, 10, 7)) == 0


def test_working_days_between_a_day_and_itself_is_zero() -> None:
    assert working_days_between(NATIONAL_DAY, NATIONAL_DAY) == 0


def test_working_days_between_is_negative_when_the_end_is_earlier() -> None:
    assert working_days_between(date(2024, 10, 14), date(2024, 9, 27)) == -8


@given(covered_dates, st.integers(0, 60))
def test_working_days_between_inverts_add_working_days(start: date, n: int) -> None:
    assert working_days_between(start, add_working_days(start, n)) == n


@given(covered_dates, covered_dates)
def test_working_days_between_is_antisymmetric(a: date, b: date) -> None:
    # Keep the spans short enough to be quick.
    b = a + timedelta(days=(b - a).days % 120)
    assert working_days_between(a, b) == -working_days_between(b, a)


# --- add_months -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 8, 31), 1, date(2024, 9, 30)),
        (date(2024, 1, 15), 3, date(2024, 4, 15)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 5, 20), 0, date(2024, 5, 20)),
        (date(2024, 1, 10), -13, date(2022, 12, 10)),
    ],
)
def test_add_months_moves_by_calendar_months_and_clamps_to_the_month_end(
    day: date, months: int, expected: date
) -> None:
    assert add_months(day, months) == expected


def test_add_months_beyond_year_9999_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside the years 1-9999"):
        add_months(date(9999, 12, 1), 1)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)), st.integers(-36, 36))
def test_add_months_keeps_the_day_unless_the_month_is_too_short(day: date, months: int) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == day.day or (result.day < day.day and (result + timedelta(1)).day == 1)


# --- deadline ---------------------------------------------------------------------------


def test_a_deadline_in_calendar_days_ignores_holidays() -> None:
    assert deadline(date(2024, 9, 30), 20, "days") == date(2024, 10, 20)


def test_a_deadline_in_working_days_skips_holidays() -> None:
    assert deadline(date(2024, 9, 30), 3, "working_days") == date(2024, 10, 10)


def test_a_negative_deadline_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        deadline(NATIONAL_DAY, -1, "days")


def test_an_unknown_deadline_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown deadline unit 'weeks'"):
        deadline(NATIONAL_DAY, 1, "weeks")  # type: ignore[arg-type]
