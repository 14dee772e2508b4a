"""Members counted by (pool keys, join date, exit date): the history's cohorts, per batch and merged.

The three keys are packed into one Int64 (static key id, join day, exit day; a null date has
its own code) so counting runs on integers: a dense ``bincount`` on a small grid, a hash count
otherwise. The counts of several partitions are integers and are merged on the same grid
(:func:`merge_cohorts`): exact in any order.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: the count column
COUNT = "_n"


def member_counts(m: pl.DataFrame, keys: list[str], weight: str | None = None) -> pl.DataFrame:
    """Members counted by (pool keys, join_date, exit_date): ``keys..., join_date, exit_date, _n`` (UInt32).

    With ``weight`` (an integer column of ``m``) the rows' weights are summed instead (``_n`` Int64):
    the merge of counts of several partitions (:func:`merge_cohorts`).

    The three keys are packed into one Int64 (static key id, join day, exit day or a
    null code) so the count runs on integers: a dense ``bincount`` when the packed grid is
    small (e.g. a file of members who joined within a few weeks), a hash count otherwise; a
    plain group-by when they do not fit.
    """
    from engine.cells.calendar import encode_static

    j = m.get_column("join_date").to_physical().cast(pl.Int64)
    x = m.get_column("exit_date").to_physical().cast(pl.Int64)
    if m.height == 0:
        return _group_count(m, keys, weight)
    (jlo, jspan), (xlo, xspan) = _span(j), _span(x)
    sid, n_sid, decode = encode_static(m, keys)
    size = float(n_sid) * jspan * xspan
    if size >= 2.0**62:
        return _group_count(m, keys, weight)
    packed = (np.asarray(sid, dtype=np.int64) * jspan + _offsets(j, jlo, jspan)) * xspan + _offsets(x, xlo, xspan)
    w = None if weight is None else m.get_column(weight).cast(pl.Int64).to_numpy()
    if size <= 4 * m.height + 100_000:  # a dense grid: counted without hashing
        dense = np.bincount(packed, minlength=int(size))
        v = np.flatnonzero(dense)
        n = dense[v] if w is None else _int_sums(packed, w, int(size))[v]
    elif w is None:
        counts = pl.Series("k", packed).value_counts(name=COUNT, sort=False)
        v, n = counts.get_column("k").to_numpy(), counts.get_column(COUNT).to_numpy()
    else:
        sums = pl.DataFrame({"k": packed, COUNT: w}).group_by("k").agg(pl.col(COUNT).sum())
        v, n = sums.get_column("k").to_numpy(), sums.get_column(COUNT).to_numpy()
    xs, rest = v % xspan, v // xspan
    out = decode(rest // jspan)
    dates = pl.DataFrame([_dates("join_date", rest % jspan, jlo, jspan, j.null_count() > 0),
                          _dates("exit_date", xs, xlo, xspan, x.null_count() > 0)])
    return pl.concat([out, dates, pl.DataFrame({COUNT: pl.Series(n).cast(pl.UInt32 if weight is None else pl.Int64)})],
                     how="horizontal")


def _span(days: pl.Series) -> tuple[int, int]:
    """(lowest day, number of codes) of a day-number column: one code per day of its range, and one more,
    the last, for a null when it has one."""
    if days.null_count() == days.len():
        return 0, 1
    lo = int(days.min())
    return lo, int(days.max()) - lo + 1 + (days.null_count() > 0)


def _offsets(days: pl.Series, lo: int, span: int) -> np.ndarray:
    """Codes of day numbers (Int64) on the grid of :func:`_span` (a null -> the last code), int64."""
    return days.fill_null(lo + span - 1).to_numpy() - lo


def _dates(name: str, codes: np.ndarray, lo: int, span: int, nulls: bool) -> pl.Series:
    """Dates of the codes of :func:`_offsets` (the last code is a null date when the column had nulls)."""
    out = pl.Series(name, codes + lo).cast(pl.Int32).cast(pl.Date)
    if nulls:
        out = out.scatter(np.flatnonzero(codes == span - 1), None)
    return out


def _group_count(m: pl.DataFrame, keys: list[str], weight: str | None) -> pl.DataFrame:
    """:func:`member_counts` by a plain group-by (null join dates, or keys too many to pack)."""
    n = pl.len().cast(pl.UInt32) if weight is None else pl.col(weight).cast(pl.Int64).sum()
    return m.group_by(*keys, "join_date", "exit_date").agg(n.alias(COUNT))


def _int_sums(code: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of the integer weights ``w`` by ``code`` (a float ``bincount`` is exact below 2^53)."""
    if int(w.sum()) < 2**53:
        return np.bincount(code, weights=w, minlength=size).astype(np.int64)
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, code, w)
    return out


def merge_cohorts(frames: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """Cohort counts (:func:`member_counts`) of several partitions summed by (keys, join_date, exit_date).

    The counts are integers: they are added on the packed (key, join day, exit day) grid of
    :func:`member_counts` (a ``bincount`` when the grid is dense) rather than by a group-by on
    the key columns; the sums are exact, so the order of the partitions does not matter.
    """
    frames = [f for f in frames if f.height] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    return member_counts(pl.concat(frames, how="vertical_relaxed"), keys, weight=COUNT)
