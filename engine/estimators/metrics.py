"""Goodness-of-fit metrics for incidence models on cells.

Mean Poisson deviance, a deterministic held-out split of cells, the Lorenz curve and
Gini index of a risk ranking, and calibration by exposure-weighted decile of the
predicted rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError


def _arrays(*xs: Any) -> list[np.ndarray]:
    out = [np.asarray(x, dtype=float).ravel() for x in xs]
    n = out[0].shape[0]
    if any(a.shape[0] != n for a in out):
        raise DataError(f"metrics: arrays of different lengths {[a.shape[0] for a in out]}")
    return out


def poisson_deviance(claims: Any, predicted_claims: Any) -> np.ndarray:
    """Unit Poisson deviance of each cell's count against its predicted count.

    Notes
    -----
    d_i = 2 * (D_i log(D_i / mu_i) - (D_i - mu_i)), with 0 log 0 = 0.
    """
    d, m = _arrays(claims, predicted_claims)
    if np.any(m < 0) or np.any(d < 0):
        raise DataError("metrics: claims and predicted claims must be non-negative")
    # the log only where D > 0 (claims are rare: most cells have none); the same values as np.where
    t = np.zeros_like(d)
    pos = np.flatnonzero(d > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t[pos] = d[pos] * np.log(d[pos] / m[pos])
    return 2.0 * (t - (d - m))


def mean_poisson_deviance(claims: Any, predicted_claims: Any, exposure: Any) -> float:
    """Exposure-weighted mean Poisson deviance per exposure-year (lower is better).

    Notes
    -----
    With y_i = D_i / E_i and predicted rate r_i = mu_i / E_i,
    sum_i E_i * 2 (y_i log(y_i / r_i) - y_i + r_i) / sum_i E_i
    = sum_i 2 (D_i log(D_i / mu_i) - D_i + mu_i) / sum_i E_i,
    which equals ``sklearn.metrics.mean_poisson_deviance(y, r, sample_weight=E)``.
    """
    d, m, e = _arrays(claims, predicted_claims, exposure)
    if e.sum() <= 0:
        raise DataError("metrics: total exposure must be positive")
    keep = e > 0
    return float(poisson_deviance(d[keep], m[keep]).sum() / e[keep].sum())


@api_input(frames=("cells",))
def split_cells(
    cells: pl.DataFrame, test_size: float = 0.25, random_state: int = 0, method: str = "hash",
    keys: Sequence[str] | None = None, seed: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Deterministic train / test split of cells.

    Parameters
    ----------
    test_size : share of cells (``hash``) or of periods (``period``) held out.
    method : ``"hash"``: a cell is in the test set when a seeded hash of its key values,
        mapped to [0, 1), is below ``test_size``; ``"period"``: the last
        ``ceil(test_size * n_periods)`` periods are the test set (out-of-time).
    keys : key columns hashed (default: every key column).
    random_state : seed of the hash (``seed`` is a deprecated alias).

    Notes
    -----
    The hash split depends only on each cell's own keys and the seed (not on row order
    or the other cells), so it is stable when cells are added; it uses polars' row hash
    with fixed seeds, which is stable for a given polars version.
    """
    from engine.estimators.features import key_columns

    if seed is not None:
        from engine._results import warn_renamed

        warn_renamed("split_cells", "seed", "random_state")
        random_state = seed
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"test_size: {test_size} must lie strictly between 0 and 1")
    if method == "period":
        if "period" not in cells.columns:
            raise ConfigError("cells: column 'period' is required for method='period'")
        periods = cells.get_column("period").unique().sort()
        n_test = int(np.ceil(test_size * periods.len()))
        if n_test >= periods.len():
            raise ConfigError(f"test_size: {test_size} leaves no training period ({periods.len()} periods)")
        cut = periods[periods.len() - n_test]
        mask = cells.get_column("period") >= cut
    elif method == "hash":
        ks = list(keys) if keys is not None else key_columns(cells)
        if not ks:
            raise ConfigError("cells: no key column to hash")
        h = cells.select(ks).hash_rows(seed=int(random_state))
        u = (h.to_numpy() >> np.uint64(11)).astype(np.float64) / float(2**53)
        mask = pl.Series(u < float(test_size))
    else:
        raise ConfigError(f"method: '{method}' must be 'hash' or 'period'")
    return cells.filter(~mask), cells.filter(mask)


def lorenz_curve(claims: Any, predicted_rate: Any, exposure: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of a risk ranking: cumulative exposure share vs cumulative claims share.

    Returns
    -------
    (x, y) starting at (0, 0) and ending at (1, 1); one point per distinct predicted rate.

    Notes
    -----
    Cells are ordered by increasing predicted rate; cells with equal predicted rates are
    merged into one step (a ranking cannot separate them). A model that ranks risk well
    puts few claims in the low-risk exposure: its curve sags far below the diagonal.
    """
    d, r, e = _arrays(claims, predicted_rate, exposure)
    if e.sum() <= 0 or d.sum() <= 0:
        raise DataError("metrics: the Lorenz curve needs positive total exposure and claims")
    uniq, inv = np.unique(r, return_inverse=True)
    ge = np.bincount(inv, weights=e, minlength=uniq.size)
    gd = np.bincount(inv, weights=d, minlength=uniq.size)
    x = np.concatenate([[0.0], np.cumsum(ge) / e.sum()])
    y = np.concatenate([[0.0], np.cumsum(gd) / d.sum()])
    return x, y


def gini(claims: Any, predicted_rate: Any, exposure: Any) -> float:
    """Gini index of a risk ranking: 1 - 2 * area under the Lorenz curve (trapezoids).

    0 for a ranking that carries no information, larger is better (at most 1).
    """
    x, y = lorenz_curve(claims, predicted_rate, exposure)
    return float(1.0 - np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1])))


def calibration_table(
    claims: Any, predicted_rate: Any, exposure: Any, n_bins: int = 10, level: float = 0.95
) -> pl.DataFrame:
    """Calibration by exposure-weighted quantile bin (decile) of the predicted rate.

    Returns
    -------
    DataFrame with ``bin`` (1 = lowest predicted rate), ``exposure_years``,
    ``predicted_claims``, ``claims``, ``predicted_rate``, ``observed_rate``,
    ``observed_lower``, ``observed_upper`` (Garwood) and ``ae`` = claims / predicted.

    Notes
    -----
    Cells are sorted by predicted rate; a cell belongs to bin
    min(n_bins, floor(n_bins * (C_i - E_i / 2) / sum E) + 1), C_i the cumulative exposure
    up to and including the cell, i.e. its exposure midpoint decides (cells are not split,
    so bins hold about, not exactly, 1/n_bins of the exposure). Bins without cells are absent.
    """
    from engine.estimators.crude import garwood_interval

    d, r, e = _arrays(claims, predicted_rate, exposure)
    if int(n_bins) < 1:
        raise ConfigError(f"n_bins: {n_bins} must be at least 1")
    tot = e.sum()
    if tot <= 0:
        raise DataError("metrics: total exposure must be positive")
    order = np.argsort(r, kind="stable")
    es = e[order]
    mid = np.cumsum(es) - es / 2.0
    b = np.minimum(np.floor(n_bins * mid / tot).astype(np.int64), n_bins - 1) + 1
    df = pl.DataFrame({"bin": b, "exposure_years": es, "predicted_claims": r[order] * es, "claims": d[order]})
    from engine.cells.sums import group_sums  # order-independent float sums: same bytes on every run

    out = group_sums(df, ["bin"], ["exposure_years", "predicted_claims", "claims"])
    lo, hi = garwood_interval(out["claims"].to_numpy(), out["exposure_years"].to_numpy(), level)
    return out.with_columns(
        (pl.col("predicted_claims") / pl.col("exposure_years")).alias("predicted_rate"),
        (pl.col("claims") / pl.col("exposure_years")).alias("observed_rate"),
        pl.Series("observed_lower", lo), pl.Series("observed_upper", hi),
        (pl.col("claims") / pl.col("predicted_claims")).alias("ae"),
    )


def plot_lorenz(claims: Any, predicted_rate: Any, exposure: Any, ax: Any = None, label: str | None = None) -> Any:
    """Plot the Lorenz curve with the diagonal; returns the matplotlib Axes."""
    from engine._optional import pyplot
    plt = pyplot()

    x, y = lorenz_curve(claims, predicted_rate, exposure)
    g = gini(claims, predicted_rate, exposure)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="no information")
    ax.plot(x, y, lw=1.5, label=f"{label or 'model'} (Gini {g:.3f})")
    ax.set_xlabel("cumulative exposure share (by increasing predicted rate)")
    ax.set_ylabel("cumulative claims share")
    ax.legend()
    return ax


def plot_calibration(table: pl.DataFrame, ax: Any = None) -> Any:
    """Plot observed vs predicted rate per bin of :func:`calibration_table`; returns the Axes."""
    from engine._optional import pyplot
    plt = pyplot()

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    p = table["predicted_rate"].to_numpy()
    o = table["observed_rate"].to_numpy()
    err = np.vstack([o - table["observed_lower"].to_numpy(), table["observed_upper"].to_numpy() - o])
    ax.errorbar(p, o, yerr=err, fmt="o", ms=4, capsize=2, label="observed (Garwood interval)")
    lim = [0.0, float(max(p.max(), table["observed_upper"].max()))]
    ax.plot(lim, lim, ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set_xlabel("predicted rate (claims per exposure-year)")
    ax.set_ylabel("observed rate (claims per exposure-year)")
    ax.legend()
    return ax


__all__ = [
    "calibration_table", "gini", "lorenz_curve", "mean_poisson_deviance", "plot_calibration", "plot_lorenz",
    "poisson_deviance", "split_cells",
]
