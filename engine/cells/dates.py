"""Vectorised calendar arithmetic on day numbers (days since 1970-01-01, polars ``Date`` physical).

Everything here works on numpy integer arrays and small lookup tables, so the
exposure core never converts dates one by one.

Notes
-----
* Civil dates from day numbers and back use H. Hinnant's integer algorithms
  (proleptic Gregorian calendar).
* Attained age on day ``t`` (age last birthday)::

      age = year(t) - year(birth) - [ (month(t), day(t)) < (month(birth), day(birth)) ]

  The tuple comparison puts a 29 February birthday on 1 March in common years
  (28 February < 29 February < 1 March), as docs/domain.md section 4 requires.
* Completed months since ``join`` on day ``t`` (a month boundary is the same
  day-of-month, or the month's last day when that day does not exist)::

      months = 12 (year(t) - year(join)) + month(t) - month(join)
               - [ day(t) < min(day(join), last_day(year(t), month(t))) ]
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

EPOCH = dt.date(1970, 1, 1)


def day_number(d: dt.date) -> int:
    """Days since 1970-01-01 of a ``datetime.date``."""
    return (d - EPOCH).days


def civil_from_days(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month (1-12), day (1-31) of day numbers (int64 arrays)."""
    z = np.asarray(z, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = y + (m <= 2)
    return y, m, d


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Day numbers of civil dates (int64 arrays; ``d`` may not exceed the month's length)."""
    y = np.asarray(y, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = np.where(m > 2, m - 3, m + 9)
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def is_leap(y: np.ndarray) -> np.ndarray:
    """Gregorian leap years."""
    y = np.asarray(y)
    return (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))


def last_day(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Number of days of month ``m`` of year ``y``."""
    y = np.asarray(y, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    ny = y + (m == 12)
    nm = np.where(m == 12, 1, m + 1)
    return days_from_civil(ny, nm, np.ones_like(nm)) - days_from_civil(y, m, np.ones_like(m))


def md_code(m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Order-preserving code of a (month, day) pair: ``32 * month + day``."""
    return 32 * np.asarray(m, dtype=np.int64) + np.asarray(d, dtype=np.int64)


class DayTable:
    """Lookup tables (year, month index, md code, day) for the day numbers ``lo .. hi``.

    ``month_index = 12 * year + month - 1`` orders months.
    """

    def __init__(self, lo: int, hi: int) -> None:
        self.lo = int(lo)
        days = np.arange(self.lo, int(hi) + 1, dtype=np.int64)
        y, m, d = civil_from_days(days)
        self.year = y.astype(np.int32)
        self.mi = (12 * y + m - 1).astype(np.int32)
        self.md = md_code(m, d).astype(np.int16)
        self.day = d.astype(np.int16)
        self.last = last_day(y, m).astype(np.int16)


class MonthTable:
    """First day number and length of each month index in ``mi_lo .. mi_hi``."""

    def __init__(self, mi_lo: int, mi_hi: int) -> None:
        self.lo = int(mi_lo)
        mi = np.arange(self.lo, int(mi_hi) + 1, dtype=np.int64)
        y, m = mi // 12, mi % 12 + 1
        self.first = days_from_civil(y, m, np.ones_like(m))
        self.length = last_day(y, m)

    def anniversary(self, mi: np.ndarray, dom: np.ndarray) -> np.ndarray:
        """Day number of day-of-month ``dom`` in month ``mi``, capped at the month's last day."""
        k = mi - self.lo
        return self.first[k] + np.minimum(dom, self.length[k]) - 1


def age_from_civil(year: np.ndarray, md: np.ndarray, birth_year: np.ndarray, birth_md: np.ndarray) -> np.ndarray:
    """Attained age from the civil parts of the day and of the birth (the one age formula).

    Parameters
    ----------
    year, md : year and :func:`md_code` of the day (numpy arrays; the dtype is kept).
    birth_year, birth_md : year and :func:`md_code` of the birth.

    Notes
    -----
    age = year - birth_year - [md < birth_md] (age last birthday). The (month, day)
    comparison puts a 29 February birthday on 1 March in common years.
    """
    return year - birth_year - (md < birth_md)


def months_from_civil(month_index: np.ndarray, day: np.ndarray, last: np.ndarray, join_month_index: np.ndarray,
                      join_day: np.ndarray) -> np.ndarray:
    """Completed months since joining from the civil parts of the day and of the join date (the one duration formula).

    Parameters
    ----------
    month_index, day, last : ``12 year + month - 1``, day of month and the month's length, of the day.
    join_month_index, join_day : the same for the join date.

    Notes
    -----
    months = (month_index - join_month_index) - [day < min(join_day, last)]: a month
    boundary is join's day of month, or the month's last day when that day does not exist.
    """
    return (month_index - join_month_index) - (day < np.minimum(join_day, last))


def attained_age(birth: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Age last birthday on day numbers ``day`` of members born on day numbers ``birth`` (int64).

    Notes
    -----
    :func:`age_from_civil` on the civil dates (domain.md section 4: a 29 February
    birthday falls on 1 March in common years).
    """
    yb, mb, db = civil_from_days(birth)
    y, m, d = civil_from_days(day)
    return age_from_civil(y, md_code(m, d), yb, md_code(mb, db))


def completed_months(join: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Completed months on day numbers ``day`` since day numbers ``join`` (int64).

    Notes
    -----
    :func:`months_from_civil` on the civil dates (domain.md section 4).
    """
    yj, mj, dj = civil_from_days(join)
    y, m, d = civil_from_days(day)
    return months_from_civil(12 * y + m - 1, d, last_day(y, m), 12 * yj + mj - 1, dj)


def _on_days(fn: Any, first: pl.Expr, at: dt.date | str | pl.Expr) -> pl.Expr:
    """Polars expression applying ``fn(first_days, at_days)`` (numpy, day numbers) row-wise; null stays null."""
    at_e = pl.lit(at, dtype=pl.Date) if isinstance(at, dt.date) else at

    def apply(s: pl.Series) -> pl.Series:
        a = s.struct.field("a")
        b = s.struct.field("b")
        ok = (a.is_not_null() & b.is_not_null()).to_numpy()
        x = a.cast(pl.Date).to_physical().fill_null(0).to_numpy().astype(np.int64)
        t = b.cast(pl.Date).to_physical().fill_null(0).to_numpy().astype(np.int64)
        out = pl.Series(np.asarray(fn(x, t), dtype=np.int32))
        return out if ok.all() else out.set(pl.Series(~ok), None)  # type: ignore[arg-type]

    return pl.struct(a=first, b=at_e).map_batches(apply, return_dtype=pl.Int32, is_elementwise=True)


def attained_age_expr(birth: str | pl.Expr, at: dt.date | str | pl.Expr) -> pl.Expr:
    """:func:`attained_age` as an Int32 polars expression of a birth-date column on ``at`` (a date, a column name or an expression)."""
    return _on_days(attained_age, pl.col(birth) if isinstance(birth, str) else birth, at)


def completed_months_expr(join: str | pl.Expr, at: dt.date | str | pl.Expr) -> pl.Expr:
    """:func:`completed_months` as an Int32 polars expression of a join-date column on date ``at``."""
    return _on_days(completed_months, pl.col(join) if isinstance(join, str) else join, at)


def birthday(year: np.ndarray, bmd: np.ndarray) -> np.ndarray:
    """Day number of the birthday in ``year`` for birth (month, day) code ``bmd``.

    A 29 February birthday falls on 1 March in common years.
    """
    year = np.asarray(year, dtype=np.int64)
    bmd = np.asarray(bmd, dtype=np.int64)
    m, d = bmd // 32, bmd % 32
    feb29 = (m == 2) & (d == 29) & ~is_leap(year)
    m = np.where(feb29, 3, m)
    d = np.where(feb29, 1, d)
    return days_from_civil(year, m, d)


def period_start(day: np.ndarray, period: str) -> np.ndarray:
    """Day number of the first day of the calendar month / quarter / year holding ``day``."""
    y, m, _ = civil_from_days(day)
    if period == "month":
        m0 = m
    elif period == "quarter":
        m0 = (m - 1) // 3 * 3 + 1
    else:
        m0 = np.ones_like(m)
    return days_from_civil(y, m0, np.ones_like(m0))


def next_period_start(first: int, period: str) -> int:
    """First day of the period after the one starting on day number ``first``."""
    y, m, _ = (int(v[0]) for v in civil_from_days(np.array([first])))
    step = {"month": 1, "quarter": 3, "year": 12}[period]
    mi = 12 * y + m - 1 + step
    return int(days_from_civil(np.array([mi // 12]), np.array([mi % 12 + 1]), np.array([1]))[0])
