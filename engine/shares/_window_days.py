"""Eligible days of the decomposition windows, by age, sex, duration (and relativity columns), per batch.

For a window ``[period start, notice date]`` a batch of members gives its eligible days keyed by attained
age and completed months on the notice date, the members sharing on it (N) and their sharing days in
the window: integer sums, so batches and partitions add (:mod:`engine.shares._stream` sums them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from engine.cells.dates import attained_age_expr, completed_months_expr

#: a day number beyond any date: an exit never made ("never exits")
FAR_DAY = 10**9

Window = tuple[dt.date, dt.date]


def _window_batch(mb: pl.DataFrame, windows: list[Window], waiting_days: int, rel_cols: list[str],
                  plan: tuple[str, str] | None, cache: dict | None = None) -> list[tuple[pl.DataFrame, int, int]]:
    """Per window: eligible days by (age, sex, duration, rel_cols) on the notice date, N, sharing days.

    Notes
    -----
    With day numbers J (join), X (exit, never = far future), window [s, d] (``s <= d``): a member shares
    on d when ``J <= d < X``; its sharing days are ``max(0, min(X, d + 1) - max(J, s))`` and its eligible
    days ``max(0, min(X, d + 1) - max(J + waiting, s))`` (all three are 0 unless ``J <= d`` and ``X > s``,
    so only those members are computed), keyed by attained age and completed months
    on d (:func:`engine.cells.dates.age_from_civil`, :func:`engine.cells.dates.months_from_civil`).
    Day numbers are int32 (the physical type of a polars Date); the sums are int64.
    """
    from engine.cells.calendar import encoded
    from engine.cells.dates import day_number

    if plan is not None:
        mb, cache = mb.filter(pl.col(plan[0]) == plan[1]), None
    if not windows:
        return []
    if mb.get_column("birth_date").null_count() or mb.get_column("join_date").null_count():
        return _window_batch_polars(mb, windows, waiting_days, rel_cols)
    j = _day_numbers(mb, "join_date")
    x = _day_numbers(mb, "exit_date")
    sid, _, decode = encoded(mb, ["sex", *rel_cols], cache)
    civil = _Civil(_day_numbers(mb, "birth_date"), j)  # civil parts once per batch, for every window
    jw = j + np.int32(waiting_days)
    out = []
    for period_start, notice_date in windows:
        s, d = day_number(period_start), day_number(notice_date)
        rows = np.flatnonzero((j <= d) & (x > s))  # in the window at some day; any other member counts 0
        jr, xr = j[rows], x[rows]
        stop = np.minimum(xr, np.int32(d + 1))
        n_sharing = int(np.count_nonzero(xr > d))
        share_days = int(np.maximum(stop - np.maximum(jr, np.int32(s)), 0).sum(dtype=np.int64))
        days = stop - np.maximum(jw[rows], np.int32(s))
        pos = days > 0
        keep = rows[pos]
        age, dur = civil.on(d, keep)
        out.append((_cells_by(sid[keep], age, dur, days[pos], decode, rel_cols), n_sharing, share_days))
    return out


def _day_numbers(mb: pl.DataFrame, col: str) -> np.ndarray:
    """Day numbers of a date column as int32, a null (an exit never made) -> :data:`FAR_DAY`."""
    return mb.get_column(col).to_physical().fill_null(FAR_DAY).cast(pl.Int32).to_numpy()


class _Civil:
    """Attained age and completed months on a day of the members of a batch, by lookup on their birth and join days.

    The civil parts (:class:`engine.cells.dates.DayTable`) of every day number between a batch's
    earliest and latest birth (join) are computed once; on a day, the one age and duration formulas
    (:func:`engine.cells.dates.age_from_civil`, :func:`engine.cells.dates.months_from_civil`) give a
    table by birth (join) day, read at each member's day. A span much longer than the batch (a
    stray far date) keeps one entry per member instead.
    """

    def __init__(self, birth: np.ndarray, join: np.ndarray) -> None:
        self.birth, self.join = _Days(birth), _Days(join)

    def on(self, day: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(attained age, completed months) on day number ``day`` of the members at ``rows`` (int64)."""
        from engine.cells.dates import age_from_civil, civil_from_days, last_day, md_code, months_from_civil

        y, m, d = civil_from_days(np.array([day], dtype=np.int64))
        b, jn = self.birth.table, self.join.table
        age = age_from_civil(y, md_code(m, d), b.year, b.md)
        dur = months_from_civil(12 * y + m - 1, d, last_day(y, m), jn.mi, jn.day)
        return age[self.birth.at(rows)].astype(np.int64), dur[self.join.at(rows)].astype(np.int64)


class _Days:
    """Civil parts of day numbers: a :class:`engine.cells.dates.DayTable` over their span and each one's entry."""

    def __init__(self, days: np.ndarray) -> None:
        from engine.cells.dates import DayTable

        lo, hi = (int(days.min()), int(days.max())) if days.size else (0, 0)
        if hi - lo <= 4 * days.size + 100_000:  # the span's table, read at day - lo
            self.table, self.lo, self.days = DayTable(lo, hi), lo, days
        else:  # one entry per member
            order = np.arange(days.size, dtype=np.int64)
            self.table, self.lo, self.days = _RowTable(days), 0, order

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Entries in :attr:`table` of the days at ``rows``."""
        return self.days[rows] - self.lo


class _RowTable:
    """:class:`engine.cells.dates.DayTable`'s columns for given day numbers, one entry each (in their order)."""

    def __init__(self, days: np.ndarray) -> None:
        from engine.cells.dates import civil_from_days, last_day, md_code

        y, m, d = civil_from_days(days.astype(np.int64))
        self.year, self.mi, self.md, self.day, self.last = y, 12 * y + m - 1, md_code(m, d), d, last_day(y, m)



def _cells_by(sid: np.ndarray, age: np.ndarray, dur: np.ndarray, days: np.ndarray, decode: Any,
              rel_cols: list[str]) -> pl.DataFrame:
    """Integer day sums by (age, static key id, duration) as a frame ``age, sex, duration, rel_cols..., _days``.

    ``days`` are positive (the members with no eligible day are left out by the caller).
    """
    if age.size == 0:
        frame = decode(np.zeros(0, dtype=np.int64))
        return pl.concat([pl.DataFrame({"age": pl.Series([], dtype=pl.Int32)}), frame,
                          pl.DataFrame({"duration": pl.Series([], dtype=pl.Int32), "_days": pl.Series([], dtype=pl.Int64)})],
                         how="horizontal").select("age", "sex", "duration", *rel_cols, "_days")
    a0, d0 = int(age.min()), int(dur.min())
    na, nd = int(age.max()) - a0 + 1, int(dur.max()) - d0 + 1
    code = (sid.astype(np.int64) * na + (age - a0)) * nd + (dur - d0)
    size = (int(sid.max()) + 1) * na * nd
    if size <= 4 * code.size + 100_000:  # a dense grid: no sort
        dense = np.bincount(code, weights=days, minlength=size)
        uniq = np.flatnonzero(dense)  # every day count is positive: a cell is present iff its sum is
        total = dense[uniq].astype(np.int64)  # integer sums below 2^53: exact
    else:
        uniq, inv = np.unique(code, return_inverse=True)
        total = np.bincount(inv, weights=days).astype(np.int64)
    ds, rest = uniq % nd + d0, uniq // nd
    keys = decode(rest // na)
    frame = pl.concat([pl.DataFrame({"age": (rest % na + a0).astype(np.int32)}), keys,
                       pl.DataFrame({"duration": ds.astype(np.int32), "_days": total})], how="horizontal")
    return frame.select("age", "sex", "duration", *rel_cols, "_days")


def _window_batch_polars(mb: pl.DataFrame, windows: list[Window], waiting_days: int,
                         rel_cols: list[str]) -> list[tuple[pl.DataFrame, int, int]]:
    """:func:`_window_batch` for members with a null birth or join date (they keep a null age or duration)."""
    keys = ["age", "sex", "duration", *rel_cols]
    out = []
    for period_start, notice_date in windows:
        ps, nd = pl.lit(period_start), pl.lit(notice_date)
        first = pl.max_horizontal(pl.col("join_date") + pl.duration(days=waiting_days), ps)
        last_excl = pl.min_horizontal(pl.col("exit_date").fill_null(notice_date + dt.timedelta(days=1)),
                                      nd + pl.duration(days=1))
        sharing = (pl.col("join_date") <= nd) & (pl.col("exit_date").is_null() | (nd < pl.col("exit_date")))
        share_days = (last_excl - pl.max_horizontal(pl.col("join_date"), ps)).dt.total_days().clip(lower_bound=0)
        tot = mb.select(sharing.sum().alias("n"), share_days.sum().alias("y"))
        cells = (mb.lazy().with_columns((last_excl - first).dt.total_days().clip(lower_bound=0).alias("_days"))
                 .filter(pl.col("_days") > 0)
                 .with_columns(attained_age_expr(pl.col("birth_date"), nd).alias("age"),
                               completed_months_expr(pl.col("join_date"), nd).alias("duration"))
                 .group_by(*keys).agg(pl.col("_days").cast(pl.Int64).sum()).collect())
        out.append((cells, int(tot["n"][0] or 0), int(tot["y"][0] or 0)))
    return out
