"""Crude incidence by group with exact (Garwood) Poisson intervals, and actual / expected.

Everything works on the exposure core's *cells* (sums of ``exposure_years`` and
``claims`` per key combination); nothing here touches member rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError


def _check_level(level: float) -> float:
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise ConfigError(f"level: '{level}' is not a number in (0, 1)") from None
    if not 0.0 < lv < 1.0:
        raise ConfigError(f"level: {lv} must lie strictly between 0 and 1")
    return lv


def garwood_interval(claims: Any, exposure: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) two-sided Poisson confidence interval for a rate claims / exposure.

    Parameters
    ----------
    claims : array-like of non-negative claim counts D.
    exposure : array-like of exposures E (years, or expected claims for an A/E ratio).
    level : confidence level 1 - a.

    Returns
    -------
    (lower, upper) : float arrays broadcast to the inputs' shape (``nan`` where E <= 0).

    Notes
    -----
    lower = chi2.ppf(a/2, 2D) / (2E), set to 0 when D = 0;
    upper = chi2.ppf(1 - a/2, 2D + 2) / (2E).
    Coverage is at least ``level`` for every true rate (Garwood, 1936).
    Counts need not be integers (the chi-square quantiles are continuous in D).
    """
    from scipy.stats import chi2

    lv = _check_level(level)
    a = 1.0 - lv
    d = np.asarray(claims, dtype=float)
    e = np.asarray(exposure, dtype=float)
    d, e = np.broadcast_arrays(d, e)
    if np.any(d < 0) or np.any(~np.isfinite(d)):
        raise DataError("claims: counts must be finite and non-negative")
    with np.errstate(divide="ignore", invalid="ignore"):
        lo_q = np.where(d > 0, chi2.ppf(a / 2.0, 2.0 * np.maximum(d, 1e-300)), 0.0)
        hi_q = chi2.ppf(1.0 - a / 2.0, 2.0 * d + 2.0)
        pos = e > 0
        lower = np.where(pos, lo_q / (2.0 * np.where(pos, e, 1.0)), np.nan)
        upper = np.where(pos, hi_q / (2.0 * np.where(pos, e, 1.0)), np.nan)
    return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def expected_claims(
    cells: pl.DataFrame | pl.LazyFrame, basis: str = "ci2020", table: str = "CI4", exposure_col: str = "exposure_years"
) -> pl.Series:
    """Expected claims per cell: exposure_years x reference rate at the cell's age and sex.

    Raises :class:`ConfigError` naming the missing column when the cells lack ``age`` or
    ``sex``, and :class:`DataError` when a cell's age/sex is not in the basis.
    """
    from engine.data.reference import reference_basis

    df = cells.collect() if isinstance(cells, pl.LazyFrame) else cells
    for c in ("age", "sex"):
        if c not in df.columns:
            raise ConfigError(
                f"cells: column '{c}' is required for the expected claims of basis '{basis}' "
                "(group the exposure by age and sex, or pass basis=None)"
            )
    ref = reference_basis(basis, table)
    j = (
        df.select(pl.col("age").cast(pl.Int32), pl.col("sex").cast(pl.String), pl.col(exposure_col))
        .with_row_index("_i")
        .join(ref, on=["age", "sex"], how="left")
        .sort("_i")
    )
    miss = j.filter(pl.col("rate").is_null() & (pl.col(exposure_col) > 0))
    if miss.height:
        r = miss.row(0, named=True)
        raise DataError(
            f"cells: {miss.height} cells have age/sex outside basis '{basis}' {table} "
            f"(first: age={r['age']}, sex={r['sex']})"
        )
    return (j[exposure_col] * j["rate"].fill_null(0.0)).alias("expected")


@api_input(frames=("cells",))
def incidence(
    cells: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] = ("age", "sex"),
    level: float = 0.95,
    basis: str | None = "ci2020",
    table: str = "CI4",
    scale_basis: bool = False,
    exposure_col: str = "exposure_years",
    claims_col: str = "claims",
) -> pl.DataFrame:
    """Crude incidence by group with Garwood intervals and actual / expected against a basis.

    Parameters
    ----------
    cells : cells from the exposure core (any keys; ``exposure_years`` and ``claims``).
    by : group keys (may be empty: one overall row).
    level : confidence level of the intervals.
    basis, table : reference basis (default CI2020 CI4, by age and sex); ``None`` skips A/E.
    scale_basis : multiply the basis by the maximum-likelihood level factor
        sum(claims) / sum(expected) of all cells, so A/E compares the *shape* (e.g. a
        mutual-aid pool well below the insured table); adds column ``basis_level``.

    Returns
    -------
    DataFrame sorted by ``by`` with the keys, ``exposure_years``, ``claims``, ``rate``,
    ``rate_lower``, ``rate_upper`` and, with a basis, ``expected``, ``expected_rate``,
    ``ae``, ``ae_lower``, ``ae_upper`` (and ``basis_level``).

    Notes
    -----
    rate = D / E, E = sum of exposure_years; interval per :func:`garwood_interval`.
    expected = sum over the group's cells of E_cell * q_ref(age_cell, sex_cell), computed
    per cell *before* aggregation, so any ``by`` (e.g. city_tier alone) gets the right
    age/sex mix. A/E = D / expected with interval Garwood(D, expected), the expected count
    treated as known. With ``scale_basis`` every expected value is multiplied by
    k = sum D / sum expected (the Poisson MLE of a level factor on the basis), so the
    overall A/E is 1.
    """
    df = cells.collect() if isinstance(cells, pl.LazyFrame) else cells
    by = [by] if isinstance(by, str) else list(by)
    for c in [*by, exposure_col, claims_col]:
        if c not in df.columns:
            raise ConfigError(f"cells: column '{c}' is required (by={by})")
    lv = _check_level(level)
    work = df.select(*by, pl.col(exposure_col).cast(pl.Float64), pl.col(claims_col))
    if basis is not None:
        work = work.with_columns(expected_claims(df, basis, table, exposure_col))
    sums = [exposure_col, claims_col] + (["expected"] if basis is not None else [])
    agg = work.group_by(by).agg(pl.col(sums).sum()).sort(by) if by else work.select(pl.col(sums).sum())
    agg = agg.rename({exposure_col: "exposure_years", claims_col: "claims"})
    d = agg["claims"].to_numpy().astype(float)
    e = agg["exposure_years"].to_numpy()
    lo, hi = garwood_interval(d, e, lv)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(e > 0, d / np.where(e > 0, e, 1.0), np.nan)
    out = agg.with_columns(pl.Series("rate", rate), pl.Series("rate_lower", lo), pl.Series("rate_upper", hi))
    if basis is None:
        return out
    if scale_basis:
        tot_exp = float(work["expected"].sum())
        if tot_exp <= 0:
            raise DataError("cells: the basis expects no claims, so no level factor can be fitted")
        k = float(work[claims_col].sum()) / tot_exp
        out = out.with_columns(pl.col("expected") * k, pl.lit(k).alias("basis_level"))
    ex = out["expected"].to_numpy()
    alo, ahi = garwood_interval(d, ex, lv)
    with np.errstate(divide="ignore", invalid="ignore"):
        ae = np.where(ex > 0, d / np.where(ex > 0, ex, 1.0), np.nan)
        erate = np.where(e > 0, ex / np.where(e > 0, e, 1.0), np.nan)
    cols = [pl.Series("expected_rate", erate), pl.Series("ae", ae), pl.Series("ae_lower", alo), pl.Series("ae_upper", ahi)]
    out = out.with_columns(cols)
    order = [*by, "exposure_years", "claims", "rate", "rate_lower", "rate_upper", "expected", "expected_rate",
             "ae", "ae_lower", "ae_upper"] + (["basis_level"] if scale_basis else [])
    return out.select(order)


@api_input(frames=("inc",))
def plot_incidence(inc: pl.DataFrame, ax: Any = None, x: str = "age", hue: str | None = "sex", log: bool = True) -> Any:
    """Plot crude incidence by ``x`` with Garwood intervals against the reference basis.

    Parameters
    ----------
    inc : output of :func:`incidence` (with ``x``, ``rate``, ``rate_lower``, ``rate_upper``,
        and optionally ``expected_rate``).
    ax : matplotlib Axes (a new figure when None).
    hue : key drawn as separate series (ignored if absent).
    log : log scale on the rate axis.

    Returns
    -------
    The matplotlib Axes.
    """
    from engine._optional import pyplot
    plt = pyplot()

    if x not in inc.columns:
        raise ConfigError(f"plot_incidence: column '{x}' is not in the incidence table")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    groups = [(None, inc)] if hue is None or hue not in inc.columns else [
        (k[0], g) for k, g in inc.sort(hue).group_by(hue, maintain_order=True)
    ]
    for key, g in groups:
        g = g.sort(x)
        xs = g[x].to_numpy()
        lab = "observed" if key is None else f"{hue}={key}"
        line = ax.plot(xs, g["rate"].to_numpy(), marker="o", ms=3, lw=1, label=lab)[0]
        ax.fill_between(xs, g["rate_lower"].to_numpy(), g["rate_upper"].to_numpy(), color=line.get_color(), alpha=0.2)
        if "expected_rate" in g.columns:
            ax.plot(xs, g["expected_rate"].to_numpy(), ls="--", color=line.get_color(),
                    label="reference" if key is None else f"reference {hue}={key}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("incidence per exposure-year")
    ax.legend()
    return ax


__all__ = ["expected_claims", "garwood_interval", "incidence", "plot_incidence"]
