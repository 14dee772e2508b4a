"""Deterministic float sums: the same bytes whatever the row order and thread scheduling.

polars' parallel ``group_by().sum()`` adds floats in an order that depends on thread
scheduling (last-bit differences from run to run), and any sequential sum depends on
the row order (which depends on how the input was partitioned). The helpers here sum
in a *canonical* order: rows sorted by group, then by value. The result depends only
on the multiset of values in each group, so it is identical across reruns and across
any partitioning or shuffling of the same rows.

Notes
-----
For group g with values x_1..x_n sorted ascending, the sum is ``numpy.add.reduceat``
over that sorted run (a fixed sequence of float additions); :func:`exact_sum` is the
correctly rounded sum (``math.fsum``), independent of order by construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from engine.data._coerce import api_input

__all__ = ["group_index", "group_sums", "exact_sum"]


def exact_sum(values: pl.Series | np.ndarray | Sequence[float]) -> float:
    """Correctly rounded sum (``math.fsum``) of non-null values: independent of their order.

    Notes
    -----
    fsum tracks the exact partial sums, so the result is the float nearest the exact
    real sum, whatever the order of the terms.
    """
    if isinstance(values, pl.Series):
        values = values.drop_nulls().cast(pl.Float64).to_numpy()
    arr = np.asarray(values, dtype=float)
    return math.fsum(arr.tolist())


@api_input(frames=("frame",))
def group_index(frame: pl.DataFrame, keys: Sequence[str]) -> tuple[pl.DataFrame, np.ndarray]:
    """The distinct ``keys`` of ``frame`` sorted (nulls last) and each row's position among them.

    Returns
    -------
    (uniq, idx): ``uniq`` one row per key combination; ``idx[i]`` the row of ``uniq`` of row ``i``.
    """
    keys = list(keys)
    uniq = frame.select(keys).unique().sort(keys, nulls_last=True).with_row_index("_g")
    # every row matches exactly one row of uniq: the left join keeps the rows in their order
    idx = (frame.select(keys).join(uniq, on=keys, how="left", nulls_equal=True, maintain_order="left")
           .get_column("_g").to_numpy().astype(np.int64))
    return uniq.drop("_g"), idx


@api_input(frames=("frame",))
def group_sums(frame: pl.DataFrame, keys: Sequence[str], cols: Sequence[str]) -> pl.DataFrame:
    """Sums of ``cols`` by ``keys``, one row per key combination sorted by keys; order-independent.

    Parameters
    ----------
    frame : rows to sum (any order).
    keys : grouping columns (nulls form their own group, sorted last).
    cols : numeric columns to sum (nulls count as 0); returned as Float64.

    Returns
    -------
    DataFrame with ``keys`` then ``cols``.

    Notes
    -----
    Each column is summed over its rows sorted by (group, value), so the bits of the
    result do not depend on the input's row order or on the number of threads.
    """
    keys = list(keys)
    cols = list(cols)
    if not keys:
        return pl.DataFrame({c: [exact_sum(frame.get_column(c).fill_null(0))] for c in cols})
    uniq, idx = group_index(frame, keys)
    if frame.height == 0:
        return uniq.with_columns([pl.lit(0.0).alias(c) for c in cols])
    n = uniq.height
    counts = np.bincount(idx, minlength=n)  # every group of uniq has a row: the runs start at these offsets
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = []
    for c in cols:
        s = frame.get_column(c)
        v = s.cast(pl.Float64).fill_null(0.0).to_numpy()
        if s.dtype.is_integer() and float(np.abs(v).sum()) < 2.0**52:
            # whole numbers whose every partial sum is below 2**53: each addition is exact, in any order
            sums = np.bincount(idx, weights=v, minlength=n)
        else:
            sums = np.add.reduceat(_sorted_by_group(v, idx, n), starts)
        out.append(pl.Series(c, sums))
    return uniq.with_columns(out)


def _sorted_by_group(v: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """The values of ``v`` ordered by group ``idx`` (0..n-1), ascending within each group.

    Notes
    -----
    The values of ``v[np.lexsort((v, idx))]``, found with two unstable sorts: each value's rank r
    among the sorted values, then the sort of ``idx * len(v) + r``. Only values that compare equal
    can swap, which changes no sum; NaN and -0.0 (equal to other bits) take the lexsort, as do keys
    beyond int64.
    """
    m = v.size
    if n * m >= 2**62 or np.isnan(v).any() or bool(np.signbit(v[v == 0]).any()):
        return v[np.lexsort((v, idx))]
    order = np.argsort(v)
    rank = np.empty(m, np.int64)
    rank[order] = np.arange(m)
    key = idx * m + rank
    key.sort()
    return v[order[key % m]]
