"""Metrics of a segmentation: homogeneity, deviance explained, Gini, share volatility, cross-subsidy, ARI.

All functions are vectorised over cells (numpy / polars); nothing loops over members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError
from engine.conventions import BENEFIT_SCHEDULE, DAYS_PER_YEAR, FEE
from engine.estimators.credibility import limited_fluctuation
from engine.estimators.crude import garwood_interval
from engine.plans.sharing import cross_subsidy, pooled_share

#: Xianghubao benefit schedule (CNY): 300,000 up to age 39, 100,000 at 40-59 (reference/README.md).
XIANGHUBAO_BENEFIT: tuple[tuple[int, float], ...] = BENEFIT_SCHEDULE


def window_years(cells: pl.DataFrame) -> float:
    """Calendar length (years) of the data window spanned by the ``period`` column (1.0 without it).

    Notes
    -----
    The period length is the smallest gap between distinct ``period`` starts
    (a month, quarter or year); the window runs from the first period start to the
    end of the last period: T = (last - first) + one period length, in days / 365.25.
    With a single period (or none) T = 1; pass the window explicitly in that case.
    """
    if "period" not in cells.columns or cells.height == 0:
        return 1.0
    p = np.unique(cells.get_column("period").cast(pl.Int32).to_numpy())
    if p.size == 1:
        return 1.0  # one period: its length is unknown; pass window_years explicitly
    step = float(np.min(np.diff(p)))
    return float(p[-1] - p[0] + step) / DAYS_PER_YEAR


def benefit_per_cell(cells: pl.DataFrame, benefit: Any = None) -> np.ndarray:
    """Benefit B per claim for each cell.

    ``benefit`` may be a number, a column name, a callable ``age -> B`` (vectorised),
    or a list of ``(max_age, B)`` pairs (the Xianghubao schedule is
    ``[(39, 300000), (10**6, 100000)]``). When ``None``: the mean ``amount`` per claim
    of the cell's schedule band (age <= 39 / >= 40 if ``age`` is a key, else overall)
    when the cells carry ``amount`` and claims; else the Xianghubao schedule when ``age``
    is a key; else 1 (shares are then in units of the benefit).
    """
    n = cells.height
    has_age = "age" in cells.columns
    if benefit is None:
        if "amount" in cells.columns and float(cells.get_column("claims").sum()) > 0:
            band = (cells.get_column("age").to_numpy() >= 40).astype(int) if has_age else np.zeros(n, int)
            a = np.bincount(band, weights=cells.get_column("amount").to_numpy().astype(float), minlength=2)
            c = np.bincount(band, weights=cells.get_column("claims").to_numpy().astype(float), minlength=2)
            overall = a.sum() / c.sum()
            mean = np.where(c > 0, a / np.where(c > 0, c, 1.0), overall)
            return mean[band]
        benefit = list(XIANGHUBAO_BENEFIT) if has_age else 1.0
    if isinstance(benefit, (int, float)):
        return np.full(n, float(benefit))
    if isinstance(benefit, str):
        if benefit not in cells.columns:
            raise ConfigError(f"benefit: column '{benefit}' is not in the cells")
        return cells.get_column(benefit).to_numpy().astype(float)
    if not has_age:
        raise ConfigError("benefit: an age schedule needs an 'age' key in the cells")
    age = cells.get_column("age").to_numpy()
    if callable(benefit):
        return np.asarray(benefit(age), float) * np.ones(n)
    sched = sorted((int(a), float(b)) for a, b in benefit)
    out = np.full(n, sched[-1][1])
    for a, b in reversed(sched):
        out = np.where(age <= a, b, out)
    return out


def weighted_ari(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> float:
    """Adjusted Rand index of two labelings with non-negative weights (e.g. exposure).

    Notes
    -----
    The Hubert-Arabie formula with weighted counts n_ij = sum of w over items
    labelled (i, j), C(x) = x (x - 1) / 2:
    ARI = (sum C(n_ij) - sum C(a_i) sum C(b_j) / C(n)) /
          ((sum C(a_i) + sum C(b_j)) / 2 - sum C(a_i) sum C(b_j) / C(n)).
    With integer weights this equals ``sklearn.metrics.adjusted_rand_score`` on the
    items repeated w times. 1.0 when both labelings have a single class.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    w = np.ones(a.size) if w is None else np.asarray(w, float)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    tab = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(tab, (ia, ib), w)

    def c2(x: np.ndarray | float) -> np.ndarray | float:
        return x * (x - 1.0) / 2.0

    n = tab.sum()
    sij = c2(tab).sum()
    sa = c2(tab.sum(1)).sum()
    sb = c2(tab.sum(0)).sum()
    expected = sa * sb / c2(n)
    maxi = 0.5 * (sa + sb)
    if maxi == expected:
        return 1.0
    return float(min(1.0, (sij - expected) / (maxi - expected)))  # no rounding above 1


def gini(rank_rate: np.ndarray, claims: np.ndarray, measure: np.ndarray) -> float:
    """Ordered-Lorenz Gini of a ranking of groups or cells (0 when there are no claims or no measure).

    Notes
    -----
    G = 1 - sum_i (x_i - x_{i-1}) (y_i + y_{i-1}), items sorted by ``rank_rate`` (ties merged),
    x the cumulative ``measure`` share and y the cumulative claims share: the one implementation is
    :func:`engine.estimators.metrics.gini` (argument order: claims, ranking, measure).
    """
    from engine.estimators.metrics import gini as _gini

    d, m = np.asarray(claims, float), np.asarray(measure, float)
    if d.sum() <= 0 or m.sum() <= 0:
        return 0.0
    return _gini(d, np.asarray(rank_rate, float), m)


def _unique_codes(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)``: the sorted distinct values and each item's position among them.

    Small non-negative integer labels (group labels, unit numbers: one per cell, once per K of the
    frontier) are counted (``np.bincount``, linear) instead of sorted; any other input goes to
    ``np.unique``. Both give the same arrays (values in ``x``'s dtype, positions as ``intp``).
    """
    x = np.asarray(x)
    if x.ndim == 1 and x.size and (x.dtype.kind == "i" or (x.dtype.kind == "u" and x.dtype.itemsize < 8)):
        lo, hi = int(x.min()), int(x.max())
        if lo >= 0 and hi <= 4 * x.size + 1024:  # a count table no larger than a few times the input
            present = np.bincount(x, minlength=hi + 1) > 0
            return np.flatnonzero(present).astype(x.dtype), (np.cumsum(present) - 1).astype(np.intp)[x]
    return np.unique(x, return_inverse=True)


def poisson_deviance(d: np.ndarray, mu: np.ndarray) -> float:
    """Total Poisson deviance 2 sum [d log(d/mu) - (d - mu)] (d log d = 0 at d = 0).

    The sum of :func:`engine.estimators.metrics.poisson_deviance`, the one implementation of the unit deviance.
    """
    from engine.estimators.metrics import poisson_deviance as _unit

    return float(_unit(np.asarray(d, float), np.asarray(mu, float)).sum())


@api_input(frames=("cells",))
def segmentation_metrics(
    cells: pl.DataFrame,
    groups: Any,
    predicted_rate: Any,
    *,
    benefit: Any = None,
    period_months: float = 1.0,
    window: float | None = None,
    base_rate: Any = None,
    fee: float = FEE,
    alpha: float = 0.05,
    finest: Any = None,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Per-group table and overall metrics of any segmentation of ``cells``.

    Parameters
    ----------
    cells : cells with ``exposure_years``, ``claims`` (and optionally ``amount``, ``age``, ``period``).
    groups : group label per cell (sequence aligned with the rows; nulls are not allowed).
    predicted_rate : model incidence per exposure-year per cell (annual).
    benefit : see :func:`benefit_per_cell`.
    period_months : sharing period length; annual quantities times period_months / 12.
    window : data window in years (default: from ``period``, see :func:`window_years`).
    base_rate : optional per-cell base rate the groups are relative to (rate = base x relativity).
    finest : optional label per cell of the finest units (distinct feature combinations) at
        which the residual cross-subsidy is measured (default: each cell).

    Returns
    -------
    (groups table, scalars). The table has one row per group (sorted by label):
    exposure_years, claims, rate (= claims / exposure), rate_lower/upper (Garwood),
    predicted_rate (exposure-weighted), expected_claims_per_period, share_cv,
    credibility, own_share (annual risk cost per exposure-year), cross_subsidy,
    cross_subsidy_per_period and cross_subsidy_pct.

    Notes
    -----
    T = window years; expected claims per period n_g = D_g / T * period_months / 12
    (the group's experience rate times its mean annual exposure); share CV = 1/sqrt(n_g);
    credibility Z = min(1, sqrt(D_g / 1082.2)) on the group's observed claims
    (:func:`engine.estimators.credibility.limited_fluctuation`); rate interval: :func:`engine.estimators.crude.garwood_interval`.
    Risk cost per cell s_c = (1 + fee) r_c B_c with r_c the predicted rate; pooled
    share s = sum E s_c / sum E; group share s_g likewise within g; cross-subsidy
    of g = s - s_g (positive: g overpays in the pooled plan).
    Homogeneity: within = sum E (rho_c - rhobar_g)^2 / sum E of the predicted
    relativity rho = r / base; ``homogeneity`` = 1 - within / total.
    Deviance explained = 1 - Dev(group rates) / Dev(one rate), on observed claims
    with mu_c = E_c base_c rho_g, rho_g = D_g / sum_g E base.
    Gini: ordered Lorenz of observed claims against E x base, ranked by rho_g.
    ``cross_subsidy_abs_pct`` = 100 sum_g E_g |s - s_g| / (E s) (percent, between the groups of a pooled plan);
    ``residual_cross_subsidy_pct`` = 100 sum_u E_u |s_g(u) - s_u| / (E s) (percent), what remains between the
    units u (``finest``) inside the groups once each group pays its own share.
    """
    E, D, g, r = _metric_inputs(cells, groups, predicted_rate)
    base = np.ones_like(E) if base_rate is None else np.asarray(base_rate, float)
    T = window_years(cells) if window is None else float(window)
    B = benefit_per_cell(cells, benefit)
    labels, gi = _unique_codes(g)
    k = labels.size
    Eg = np.bincount(gi, weights=E, minlength=k)
    Dg = np.bincount(gi, weights=D, minlength=k)
    Mg = np.bincount(gi, weights=E * base, minlength=k)
    mug = np.bincount(gi, weights=E * r, minlength=k)
    s_c = (1.0 + fee) * r * B
    sg = np.bincount(gi, weights=E * s_c, minlength=k) / np.where(Eg > 0, Eg, 1.0)
    s = float(pooled_share(E, s_c))
    n_per = Dg / T * period_months / 12.0
    with np.errstate(divide="ignore"):
        cv = np.where(n_per > 0, 1.0 / np.sqrt(np.where(n_per > 0, n_per, 1.0)), np.inf)
    table = _group_table(labels, Eg, Dg, Mg, mug, sg, s, n_per, cv, period_months=period_months, alpha=alpha)
    within, total = _relativity_dispersion(E, r, base, gi, k, Eg)
    rho_g = Dg / np.where(Mg > 0, Mg, 1.0)
    dev_seg = poisson_deviance(D, E * base * rho_g[gi])
    dev_null = poisson_deviance(D, E * base * D.sum() / np.sum(E * base))
    resid = _residual_cross_subsidy(E, s_c, gi, sg, s, finest)
    scal = {
        "n_groups": float(k),
        "window_years": T,
        "pooled_share": s,
        "within_dispersion": within,
        "homogeneity": 1.0 - within / total if total > 0 else 1.0,
        "deviance_explained": 1.0 - dev_seg / dev_null if dev_null > 0 else 0.0,
        "gini": gini(rho_g[gi], D, E * base),
        "cross_subsidy_abs_pct": 100.0 * float(np.sum(Eg * np.abs(s - sg)) / (E.sum() * s)) if s > 0 else 0.0,
        "residual_cross_subsidy_pct": resid,
        "share_cv_max": float(cv.max()),
        "share_cv_weighted": float(np.sum(Eg * cv) / Eg.sum()),
        "min_expected_claims_per_period": float(n_per.min()),
    }
    return table, scal


def _metric_inputs(
    cells: pl.DataFrame, groups: Any, predicted_rate: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exposure, claims, group labels and predicted rates per cell, checked for one value per cell."""
    E = cells.get_column("exposure_years").to_numpy().astype(float)
    D = cells.get_column("claims").to_numpy().astype(float)
    g = np.asarray(pl.Series(groups).to_numpy() if not isinstance(groups, np.ndarray) else groups)
    if g.size != cells.height:
        raise DataError(f"groups: {g.size} labels for {cells.height} cells")
    r = np.asarray(predicted_rate, float)
    if r.size != cells.height or not np.all(np.isfinite(r)):
        raise DataError("predicted_rate: needs one finite rate per cell")
    return E, D, g, r


def relativity_to_portfolio(claims: Any, exposure_years: Any) -> Any:
    """Each group's crude rate relative to the whole portfolio's crude rate over the same window.

    Parameters
    ----------
    claims, exposure_years : array-like or polars expressions
        Claims and exposure-years per group; the groups partition the portfolio.

    Returns
    -------
    array or expression: 1 for a group at the portfolio's rate, NaN for a group without exposure.

    Notes
    -----
    relativity_g = (D_g / E_g) / (sum_h D_h / sum_h E_h). The reference is named: the portfolio's crude rate
    (claims per exposure-year) over the study; its exposure-weighted mean over the groups is 1.
    """
    if isinstance(claims, pl.Expr):
        return (claims / exposure_years) / (claims.sum() / exposure_years.sum())
    d, e = np.asarray(claims, float), np.asarray(exposure_years, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (d / np.where(e > 0, e, np.nan)) / (d.sum() / e.sum())


def _group_table(
    labels: np.ndarray,
    Eg: np.ndarray,
    Dg: np.ndarray,
    Mg: np.ndarray,
    mug: np.ndarray,
    sg: np.ndarray,
    s: float,
    n_per: np.ndarray,
    cv: np.ndarray,
    *,
    period_months: float,
    alpha: float,
) -> pl.DataFrame:
    """One row per group: exposure, claims, rates with their Garwood interval, share CV, credibility and cross-subsidy.

    Notes
    -----
    ``rate = D_g / E_g``; ``relativity_to_portfolio`` = rate / (sum D / sum E) (:func:`relativity_to_portfolio`;
    ``relativity`` is its deprecated alias); ``relativity_to_base = D_g / sum_g E base`` (the multiplier of the
    ``adjust_for`` base rate; the rate itself when there is no base); credibility
    ``Z = min(1, sqrt(D_g / 1082.2))``; ``cross_subsidy = s - s_g``; ``cross_subsidy_pct`` =
    100 (s - s_g) / s (percent of the pooled share).
    """
    lo, hi = garwood_interval(Dg, Eg, 1.0 - alpha)
    return pl.DataFrame(
        {
            "group": labels,
            "exposure_years": Eg,
            "claims": Dg,
            "rate": Dg / np.where(Eg > 0, Eg, np.nan),
            "rate_lower": lo,
            "rate_upper": hi,
            "relativity_to_portfolio": relativity_to_portfolio(Dg, Eg),
            "relativity": relativity_to_portfolio(Dg, Eg),  # deprecated alias of relativity_to_portfolio
            "relativity_to_base": Dg / np.where(Mg > 0, Mg, np.nan),
            "predicted_rate": mug / np.where(Eg > 0, Eg, np.nan),
            "predicted_relativity": mug / np.where(Mg > 0, Mg, np.nan),
            "expected_claims_per_period": n_per,
            "share_cv": cv,
            "credibility": limited_fluctuation(Dg),
            "own_share": sg,
            "cross_subsidy": cross_subsidy(s, sg),
            "cross_subsidy_per_period": (s - sg) * period_months / 12.0,
            "cross_subsidy_pct": 100.0 * (s - sg) / s if s > 0 else np.zeros(labels.size),
        }
    )


def _relativity_dispersion(
    E: np.ndarray, r: np.ndarray, base: np.ndarray, gi: np.ndarray, k: int, Eg: np.ndarray
) -> tuple[float, float]:
    """Exposure-weighted variance of the predicted relativity within the groups and in total.

    Notes
    -----
    ``within = sum E (rho_c - rhobar_g)^2 / sum E``, ``total = sum E (rho_c - rhobar)^2 / sum E``,
    ``rho = r / base``.
    """
    rho = r / np.where(base > 0, base, np.nan)
    rbar = np.bincount(gi, weights=E * rho, minlength=k) / np.where(Eg > 0, Eg, 1.0)
    within = float(np.sum(E * (rho - rbar[gi]) ** 2) / E.sum())
    total = float(np.sum(E * (rho - np.sum(E * rho) / E.sum()) ** 2) / E.sum())
    return within, total


def _residual_cross_subsidy(
    E: np.ndarray, s_c: np.ndarray, gi: np.ndarray, sg: np.ndarray, s: float, finest: Any
) -> float:
    """Cross-subsidy left between the finest units inside the groups, in percent of the pooled cost.

    Notes
    -----
    ``100 sum_u E_u |s_g(u) - s_u| / (E s)``; the units are the cells when ``finest`` is None.
    """
    if finest is None:
        su, Eu, gu = s_c, E, gi
    else:
        _, ui = _unique_codes(np.asarray(finest))
        Eu = np.bincount(ui, weights=E)
        su = np.bincount(ui, weights=E * s_c) / np.where(Eu > 0, Eu, 1.0)
        gu = np.zeros(Eu.size, np.int64)
        gu[ui] = gi
    return 100.0 * float(np.sum(Eu * np.abs(sg[gu] - su)) / (E.sum() * s)) if s > 0 else 0.0


def recommend_k(removed: np.ndarray, min_marginal: float) -> int:
    """Largest K such that every step k-1 -> k (k <= K) removes at least ``min_marginal`` of the removable cross-subsidy.

    ``removed[k-1]`` is the share of removable cross-subsidy removed with k groups
    (0 at k = 1). Steps are taken in order and the first small step stops.
    """
    k = 1
    for i in range(1, len(removed)):
        if removed[i] - removed[i - 1] >= min_marginal:
            k = i + 1
        else:
            break
    return k


def frontier_table(
    cells: pl.DataFrame,
    partitions: dict[int, np.ndarray],
    finest: np.ndarray,
    predicted_rate: np.ndarray,
    *,
    min_marginal: float,
    metric_kw: dict[str, Any],
) -> tuple[pl.DataFrame, int]:
    """Granularity frontier over K and the recommended K (see :func:`recommend_k`).

    Notes
    -----
    R(K) = residual cross-subsidy of the K-group plan measured between the finest
    units (every distinct combination of the segmentation features): sum_u E_u |s_g(u) - s_u|.
    cross_subsidy_removed(K) = 1 - R(K) / R(1): 0 for one pooled plan, 1 when every
    group is internally homogeneous in risk cost. Volatility added = exposure-weighted
    share CV(K) - share CV(1).
    """
    rows = []
    for k in sorted(partitions):
        _, m = segmentation_metrics(cells, partitions[k], predicted_rate, finest=finest, **metric_kw)
        rows.append({"k": k, **m})
    fr = pl.DataFrame(rows)
    r1 = float(fr["residual_cross_subsidy_pct"][0]) if fr["k"][0] == 1 else float("nan")
    if fr["k"][0] != 1:
        _, m1 = segmentation_metrics(cells, np.zeros(cells.height, np.int64), predicted_rate, finest=finest, **metric_kw)
        r1 = m1["residual_cross_subsidy_pct"]
    removed = (1.0 - fr["residual_cross_subsidy_pct"] / r1 if r1 > 0 else fr["residual_cross_subsidy_pct"] * 0.0).to_numpy()
    ks = fr["k"].to_numpy()
    k_rec = int(ks[recommend_k(removed, min_marginal) - 1]) if ks.size else 1
    fr = fr.with_columns(
        pl.Series("cross_subsidy_removed", removed),
        (pl.col("share_cv_weighted") - pl.col("share_cv_weighted").first()).alias("volatility_added"),
        (pl.col("k") == k_rec).alias("recommended"),
    ).drop("n_groups")
    return fr, k_rec
