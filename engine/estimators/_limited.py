"""Limited-fluctuation credibility: the full standard, ``Z = min(1, sqrt(n / n_full))``, the blend, a table per group.

Also the cell-column helpers shared with :mod:`engine.estimators.credibility`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine._estimator import _warn_renamed
from engine.conventions import CREDIBILITY_PROBABILITY, CREDIBILITY_TOLERANCE, FULL_CREDIBILITY_CLAIMS, full_credibility_standard
from engine.errors import ConfigError, DataError
from engine.data._coerce import api_input


def _as_list(keys: str | Sequence[str], what: str) -> list[str]:
    """Column name(s) as a non-empty list of strings (ConfigError otherwise)."""
    if isinstance(keys, str):
        return [keys]
    out = list(keys)
    if not out or not all(isinstance(k, str) for k in out):
        raise ConfigError(f"{what}: expected a column name or a non-empty list of column names, got {keys!r}")
    return out


def _require(df: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    """Raise DataError naming the columns of ``cols`` missing from ``df``."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{what}: cells lack column(s) {missing}; present: {df.columns}")


def full_standard(p: float = CREDIBILITY_PROBABILITY, k: float = CREDIBILITY_TOLERANCE, cv: float = 0.0) -> float:
    """Claims needed for full credibility (limited-fluctuation / classical).

    Notes
    -----
    ``n_full = (z_{(1+p)/2} / k)^2 * (1 + cv^2)`` where ``cv`` is the coefficient
    of variation of the claim size (0 for claim counts / fixed benefits).
    With p = 0.90 and k = 0.05: (1.644854 / 0.05)^2 = 1082.2.
    """
    if not (0.0 < p < 1.0):
        raise ConfigError(f"p: probability must be in (0, 1), got {p!r}")
    if not (k > 0.0):
        raise ConfigError(f"k: tolerance must be > 0, got {k!r}")
    if not (cv >= 0.0):
        raise ConfigError(f"cv: must be >= 0, got {cv!r}")
    return full_credibility_standard(p, k, cv)


def limited_fluctuation(claims: Any, full_standard: float = FULL_CREDIBILITY_CLAIMS) -> Any:
    """Limited-fluctuation credibility factor ``Z = min(1, sqrt(n / n_full))``.

    Parameters
    ----------
    claims : float or array-like
        Observed claim counts ``n`` (>= 0).
    full_standard : float
        Claims for full credibility (default :data:`engine.conventions.FULL_CREDIBILITY_CLAIMS`,
        1,082.2: 90% probability of being within ±5%; see :func:`full_standard`).

    Returns
    -------
    float or numpy.ndarray
        ``Z`` with the shape of ``claims``.

    Notes
    -----
    Square-root rule: ``Z = min(1, sqrt(n / n_full))``.
    """
    if not (full_standard > 0):
        raise ConfigError(f"full_standard: must be > 0, got {full_standard!r}")
    n = np.asarray(claims, dtype=float)
    if np.isnan(n).any() or (n < 0).any():
        raise DataError("limited_fluctuation: claims must be non-negative numbers")
    z = np.minimum(1.0, np.sqrt(n / float(full_standard)))
    return float(z) if z.ndim == 0 else z


def credibility_blend(rate: Any, complement: Any, z: Any) -> Any:
    """Blend ``Z * rate + (1 - Z) * complement`` (scalars or arrays)."""
    zz = np.asarray(z, dtype=float)
    if ((zz < 0) | (zz > 1)).any():
        raise DataError("credibility_blend: Z must lie in [0, 1]")
    out = zz * np.asarray(rate, dtype=float) + (1.0 - zz) * np.asarray(complement, dtype=float)
    return float(out) if np.ndim(out) == 0 else out


@api_input(frames=("cells",))
def limited_fluctuation_table(
    cells: pl.DataFrame,
    by: str | Sequence[str],
    complement: float | str = "overall",
    full_standard: float = FULL_CREDIBILITY_CLAIMS,
    claims_col: str = "claims",
    exposure_col: str = "exposure_years",
    **renamed: Any,
) -> pl.DataFrame:
    """Limited-fluctuation credibility rates per group of cells.

    Parameters
    ----------
    cells : polars.DataFrame
        Cells with ``by`` columns, claims and exposure.
    by : str or list of str
        Group columns.
    complement : "overall", float, or str
        ``"overall"`` = total claims / total exposure; a number = fixed rate; any
        other string = a column of expected claims (complement = expected / exposure).
    full_standard : float
        Claims for full credibility.
    claims_col, exposure_col : str
        Columns of the cells (``claims`` and ``exposure`` are deprecated aliases).

    Returns
    -------
    polars.DataFrame
        ``by``, exposure_years, claims, rate, Z, complement, credibility_rate.
    """
    for old, new in (("claims", "claims_col"), ("exposure", "exposure_col")):
        if old in renamed:
            _warn_renamed("limited_fluctuation_table", old, new)
            if new == "claims_col":
                claims_col = renamed.pop(old)
            else:
                exposure_col = renamed.pop(old)
    if renamed:
        raise TypeError(f"limited_fluctuation_table() got an unexpected keyword argument '{next(iter(renamed))}'")
    claims, exposure = claims_col, exposure_col
    keys = _as_list(by, "by")
    need = [*keys, claims, exposure]
    ref_col = complement if isinstance(complement, str) and complement != "overall" else None
    if ref_col:
        need.append(ref_col)
    _require(cells, need, "limited_fluctuation_table")
    aggs = [pl.col(exposure).cast(pl.Float64).sum().alias("exposure_years"),
            pl.col(claims).sum().alias("claims")]
    if ref_col:
        aggs.append(pl.col(ref_col).cast(pl.Float64).sum().alias("_ref"))
    g = cells.group_by(keys).agg(aggs).sort(keys)
    n = g.get_column("claims").to_numpy()
    z = np.atleast_1d(limited_fluctuation(n, full_standard))
    g = g.with_columns(
        pl.when(pl.col("exposure_years") > 0).then(pl.col("claims") / pl.col("exposure_years")).alias("rate"),
        pl.Series("Z", z, dtype=pl.Float64),
    )
    if complement == "overall":
        tot_e = float(g.get_column("exposure_years").sum())
        if tot_e <= 0:
            raise DataError("limited_fluctuation_table: total exposure is 0")
        comp = pl.lit(float(g.get_column("claims").sum()) / tot_e)
    elif ref_col:
        comp = pl.when(pl.col("exposure_years") > 0).then(pl.col("_ref") / pl.col("exposure_years"))
    else:
        comp = pl.lit(float(complement))
    g = g.with_columns(comp.cast(pl.Float64).alias("complement"))
    g = g.with_columns(
        (pl.col("Z") * pl.col("rate").fill_null(0.0) + (1 - pl.col("Z")) * pl.col("complement")).alias(
            "credibility_rate"
        )
    )
    return g.select([*keys, "exposure_years", "claims", "rate", "Z", "complement", "credibility_rate"])
