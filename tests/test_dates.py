"""Calendar arithmetic of engine.cells.dates against Python's proleptic Gregorian calendar (datetime).

Every day from 1600 to 2400 (two 400-year eras and their boundaries, e.g. 1 March 2000): the
conversions day number <-> civil date, the first day of each calendar period holding a day and
the first day of the next period. Found by mutation testing: the first period of a window that
starts inside a quarter's second or third month, and the era length of the conversion.
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

from engine.cells.dates import civil_from_days, days_from_civil, is_leap, last_day, next_period_start, period_start

EPOCH = dt.date(1970, 1, 1)
DAYS = [dt.date(1600, 1, 1) + dt.timedelta(days=i) for i in range((dt.date(2400, 12, 31) - dt.date(1600, 1, 1)).days + 1)]
Z = np.array([(d - EPOCH).days for d in DAYS], dtype=np.int64)


def _first_of(d: dt.date, period: str) -> dt.date:
    month = {"month": d.month, "quarter": 3 * ((d.month - 1) // 3) + 1, "year": 1}[period]
    return dt.date(d.year, month, 1)


def _next_first(d: dt.date, period: str) -> dt.date:
    k = 12 * d.year + d.month - 1 + {"month": 1, "quarter": 3, "year": 12}[period]
    return dt.date(k // 12, k % 12 + 1, 1)


def test_civil_from_days_and_back_equal_datetime() -> None:
    y, m, d = civil_from_days(Z)
    assert y.dtype == m.dtype == d.dtype == np.int64
    assert y.tolist() == [x.year for x in DAYS]
    assert m.tolist() == [x.month for x in DAYS]
    assert d.tolist() == [x.day for x in DAYS]
    np.testing.assert_array_equal(days_from_civil(y, m, d), Z)


def test_leap_years_and_month_lengths_equal_calendar() -> None:
    years = np.arange(1600, 2401)
    assert is_leap(years).tolist() == [calendar.isleap(int(v)) for v in years]
    yy, mm = np.repeat(years, 12), np.tile(np.arange(1, 13), years.size)
    assert last_day(yy, mm).tolist() == [calendar.monthrange(int(a), int(b))[1] for a, b in zip(yy, mm)]


def test_period_start_and_next_period_start_equal_the_calendar() -> None:
    for period in ("month", "quarter", "year"):
        want = np.array([(_first_of(d, period) - EPOCH).days for d in DAYS])
        np.testing.assert_array_equal(period_start(Z, period), want)
        firsts = sorted(set(want.tolist()))[::7]  # every 7th period start
        got = [next_period_start(f, period) for f in firsts]
        assert got == [(_next_first(EPOCH + dt.timedelta(days=f), period) - EPOCH).days for f in firsts]
