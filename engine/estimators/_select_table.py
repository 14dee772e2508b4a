"""One select-table schema: duration bands in months with a factor, read the same way everywhere.

``engine.select_factors`` (or a fitted :class:`engine.select.SelectFactors`) produces it;
:func:`engine.projection.project`, :func:`engine.shares.decomposition.share_drivers` and
:func:`engine.replay` consume it through :func:`select_table`, so the output of one
feeds the others unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.errors import ConfigError

#: the canonical columns (``duration_to`` null for the open last band)
COLUMNS = ("duration_from", "duration_to", "factor")


def select_table(table: Any, *, route: str | None = None, factor: str = "factor") -> pl.DataFrame:
    """The canonical select table ``duration_from``, ``duration_to``, ``factor`` from any accepted input.

    Parameters
    ----------
    table : DataFrame or fitted :class:`engine.select.SelectFactors`
        ``engine.select_factors(...)`` output (``duration_from``, ``duration_to``,
        ``factor``, ``route``), a fitted ``SelectFactors`` (its ``summary``), or a hand-made
        table with ``duration_from`` (or its older alias ``duration_min``) and ``factor``.
    route : str, optional
        Which route's rows to use when the table has a ``route`` column (default: the first
        listed, ``"glm"`` for ``route="both"``).
    factor : str
        The factor column.

    Returns
    -------
    DataFrame with ``duration_from`` (Int32, completed months, inclusive), ``duration_to``
    (Int32, exclusive, null for the last band) and ``factor`` (Float64), sorted, starting at 0.

    Notes
    -----
    ``duration_to`` is taken as the next band's ``duration_from``: a gap (a middle band
    dropped for lack of exposure) takes the factor of the band before it. A null or NaN factor (a band without exposure) becomes 0.
    If the first band starts after month 0, a band [0, first) with factor 0 is prepended:
    ``select_factors`` drops bands without eligible exposure, i.e. the waiting period, where
    no incidence was observed. Factors must be >= 0 and band starts strictly increasing.
    """
    if hasattr(table, "summary") and not isinstance(table, pl.DataFrame):
        table = table.summary
    if not isinstance(table, pl.DataFrame):
        raise ConfigError(f"select_factors: expected a DataFrame or a fitted SelectFactors, got {type(table).__name__}")
    if "duration_from" not in table.columns and "duration_min" in table.columns:
        table = table.rename({"duration_min": "duration_from"})
    for col in ("duration_from", factor):
        if col not in table.columns:
            raise ConfigError(f"select_factors: table column '{col}' is required (columns: {table.columns})")
    if "route" in table.columns:
        routes = table["route"].unique(maintain_order=True).to_list()
        pick = route if route is not None else routes[0]
        if pick not in routes:
            raise ConfigError(f"select_factors: route '{pick}' not in the table ({routes})")
        table = table.filter(pl.col("route") == pick)
    t = table.sort("duration_from")
    lo = t["duration_from"].cast(pl.Int64).to_numpy()
    f = t[factor].cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
    if lo.size == 0:
        raise ConfigError("select_factors: the table has no band")
    if np.any(np.diff(lo) <= 0) or lo[0] < 0:
        raise ConfigError(f"select_factors: band starts must be >= 0 and strictly increasing, got {lo.tolist()}")
    if np.any(f < 0):
        raise ConfigError("select_factors: factors must be >= 0")
    hi = np.r_[lo[1:], -1]
    if lo[0] > 0:
        lo, hi, f = np.r_[0, lo], np.r_[lo[0], hi], np.r_[0.0, f]
    return pl.DataFrame({
        "duration_from": pl.Series(lo, dtype=pl.Int32),
        "duration_to": pl.Series([None if h < 0 else int(h) for h in hi], dtype=pl.Int32),
        "factor": pl.Series(f, dtype=pl.Float64),
    })


def factor_at(table: pl.DataFrame, months: np.ndarray) -> np.ndarray:
    """Select factor at completed months ``months`` (the band containing each; the last band is open)."""
    lo = table["duration_from"].to_numpy().astype(float)
    f = table["factor"].to_numpy()
    idx = np.searchsorted(lo, np.asarray(months, dtype=float), side="right") - 1
    return f[np.clip(idx, 0, None)]


__all__ = ["COLUMNS", "factor_at", "select_table"]
