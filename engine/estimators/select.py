"""Select and duration effects: incidence factors by duration since joining.

Right after the waiting period mutual-aid pools show *anti-selection* (members
who joined because they felt unwell claim more) and later a *select effect*
(recently joined members are healthier than the pool). This module estimates
an incidence factor per duration band relative to a reference band (by default
the last, "ultimate", band) with intervals, by two routes that are
cross-checked in the tests:

``route="glm"``
    Poisson GLM on cells summed to (duration band, adjustment factors):
    ``log E[claims] = log(exposure) + b0 + beta_band + gamma_adjust``, fitted by
    IRLS (Newton) in numpy to a tight tolerance; factor = ``exp(beta_band)``
    with a Wald interval ``exp(beta +- z * se)``. Age/sex are adjusted for as
    categorical factors (age in bands of ``age_width`` years).
``route="lifelines"``
    ``lifelines.PiecewiseExponentialFitter`` with one piece per duration band,
    fitted to a handful of weighted rows built from the cells (left-truncated
    with ``entry`` = the band's start duration, ``weights`` = exposure / events),
    never one row per member. Factor = hazard ratio to the reference band with a
    delta-method interval. Unadjusted (pooled over age/sex).

Notes
-----
For band b with exposure T_b (months) and D_b claims the piecewise-exponential
likelihood is ``D_b log h_b - h_b T_b``, maximised at ``h_b = D_b / T_b``: the
crude rate, which is also the unadjusted GLM's fitted band rate. The weighted
rows reproduce that likelihood exactly: D_b event rows (entry ``lo_b``, exit
``lo_b + delta``) and one censored row (entry ``lo_b``, exit ``hi_b``) with
weight ``(T_b - D_b delta) / (hi_b - lo_b)``. Time is rescaled so that the
pooled hazard is 1 per unit: lifelines' optimiser silently stops far from the
optimum (up to ~35 % off) when hazards are ~1e-3 per month.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine._estimator import Estimator, renamed_param
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.cells._exposure import band_labels
from engine.estimators.crude import garwood_interval

__all__ = ["SelectFactors", "select_factors", "duration_band_expr", "poisson_irls"]

DEFAULT_BANDS: tuple[int, ...] = (0, 3, 6, 12, 24)
_ROUTES = ("glm", "lifelines", "both")
_OPEN_BAND_MONTHS = 12.0  # nominal length of the open last band on the lifelines time axis


def duration_band_expr(bands: Sequence[int] = DEFAULT_BANDS, duration: str = "duration") -> pl.Expr:
    """Polars expression mapping completed months ``duration`` to a band label."""
    b = list(bands)
    labels = band_labels(b)
    d = pl.col(duration)
    expr = pl.when(d >= b[-1]).then(pl.lit(labels[-1]))
    for lo, hi, lab in zip(b[:-1], b[1:], labels[:-1]):
        expr = expr.when((d >= lo) & (d < hi)).then(pl.lit(lab))
    return expr.otherwise(None).alias("duration_band")


_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(\d+)\s*\+\s*$")


def _parse_band(label: str) -> tuple[int, int | None]:
    m = _RANGE.match(label)
    if m:
        return int(m.group(1)), int(m.group(2)) + 1
    m = _OPEN.match(label)
    if m:
        return int(m.group(1)), None
    raise DataError(f"duration_band: label {label!r} is not 'a-b' or 'a+' (months)")


def poisson_irls(
    X: np.ndarray, y: np.ndarray, offset: np.ndarray, tol: float = 1e-12, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson log-link GLM by IRLS (Newton): returns (coefficients, covariance).

    Notes
    -----
    ``eta = X b + offset``, ``mu = exp(eta)``; each step solves
    ``(X' W X) b = X' W z`` with ``W = mu`` and ``z = eta - offset + (y - mu) / mu``,
    until the relative change in deviance is below ``tol``. The covariance is
    ``(X' W X)^-1`` at the solution (dispersion 1).
    """
    n, p = X.shape
    b = np.zeros(p)
    b[0] = math.log(max(y.sum(), 1e-300) / np.exp(offset).sum())
    dev_old = math.inf
    for _ in range(max_iter):
        eta = X @ b + offset
        mu = np.exp(eta)
        z = eta - offset + (y - mu) / mu
        XtW = X.T * mu
        b = np.linalg.solve(XtW @ X, XtW @ z)
        mu = np.exp(X @ b + offset)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2.0 * float(np.sum(np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu)))
        if abs(dev - dev_old) <= tol * max(abs(dev), 1.0):
            break
        dev_old = dev
    else:
        raise ModelError(f"poisson_irls: no convergence in {max_iter} iterations")
    cov = np.linalg.inv((X.T * mu) @ X)
    return b, cov


class SelectFactors(Estimator):
    """Incidence factors by duration band since joining (the estimator contract of :mod:`engine._estimator`).

    Parameters
    ----------
    bands : sequence of int
        Month breakpoints starting the bands, e.g. ``(0, 3, 6, 12, 24)`` gives
        0-2, 3-5, 6-11, 12-23, 24+ (used when cells carry ``duration``; cells
        carrying only ``duration_band`` labels keep their own bands).
    reference : str or None
        Reference band label (default: the last, ultimate, band).
    adjust : sequence of str or None
        Categorical factors adjusted for in the GLM route. ``None`` = those of
        ``("age", "sex")`` present in the cells; ``[]`` = crude.
    age_width : int
        Age is grouped into bands of this many years before adjustment (1 = single ages).
    route : {"glm", "lifelines", "both"}
    level : float
        Interval level (default 0.95).
    expected : str or None
        Optional column of expected claims (reference basis); if given it replaces
        exposure in the GLM offset, so factors are relative A/E.
    duration, claims_col, exposure_col : str
        Column names (``claims`` and ``exposure`` are deprecated aliases of the last two).

    Attributes
    ----------
    summary_ : polars.DataFrame
        See :attr:`summary`.
    coef_, cov_, feature_names_ : GLM coefficients, covariance and names (GLM route).
    lifelines_model_ : the fitted ``PiecewiseExponentialFitter`` (lifelines route).
    """

    def __init__(
        self,
        bands: Sequence[int] = DEFAULT_BANDS,
        reference: str | None = None,
        adjust: Sequence[str] | None = None,
        age_width: int = 5,
        route: str = "glm",
        level: float = 0.95,
        expected: str | None = None,
        duration: str = "duration",
        claims_col: str = "claims",
        exposure_col: str = "exposure_years",
        **renamed: Any,
    ) -> None:
        self.bands = bands
        self.reference = reference
        self.adjust = adjust
        self.age_width = age_width
        self.route = route
        self.level = level
        self.expected = expected
        self.duration = duration
        self.claims_col = claims_col
        self.exposure_col = exposure_col
        self._take_renamed(renamed)

    _fitted_attrs = ("summary_",)
    _renamed_params = {"claims": "claims_col", "exposure": "exposure_col"}
    claims = renamed_param("claims_col")
    exposure = renamed_param("exposure_col")

    def _key_numbers(self) -> dict[str, Any]:
        s = self.summary_
        return {"reference band": self.reference_, "bands": s.get_column("duration_band").n_unique(),
                "routes": ", ".join(s.get_column("route").unique(maintain_order=True).to_list()),
                "adjusted for": ", ".join(self.adjust_) or "(crude)"}

    # ------------------------------------------------------------- prepare
    def _prepare(self, cells: pl.DataFrame) -> pl.DataFrame:
        if isinstance(cells, pl.LazyFrame):
            cells = cells.collect()
        if not isinstance(cells, pl.DataFrame):
            raise DataError(f"select_factors: expected polars cells, got {type(cells).__name__}")
        if "member_id" in cells.columns and self.exposure_col not in cells.columns:
            raise DataError(
                "select_factors: got member rows; build cells first, e.g. "
                "engine.exposure(members, claims, by=['duration', 'age', 'sex'])"
            )
        if self.route not in _ROUTES:
            raise ConfigError(f"route: must be one of {_ROUTES}, got {self.route!r}")
        if not (0.0 < self.level < 1.0):
            raise ConfigError(f"level: must be in (0, 1), got {self.level!r}")
        b = list(self.bands)
        if len(b) < 2 or any(x < 0 for x in b) or any(y <= x for x, y in zip(b[:-1], b[1:])):
            raise ConfigError(f"bands: need >= 2 strictly increasing month breakpoints >= 0, got {self.bands!r}")
        if not isinstance(self.age_width, int) or self.age_width < 1:
            raise ConfigError(f"age_width: must be a positive int, got {self.age_width!r}")
        need = [self.claims_col, self.exposure_col] + ([self.expected] if self.expected else [])
        missing = [c for c in need if c not in cells.columns]
        if missing:
            raise DataError(f"select_factors: cells lack column(s) {missing}")
        for c in need:
            s = cells.get_column(c)
            if not s.dtype.is_numeric() or s.null_count() or (s < 0).any():
                raise DataError(f"select_factors: column {c!r} must be numeric, non-null and >= 0")
        if self.duration in cells.columns:
            cells = cells.with_columns(duration_band_expr(b, self.duration))
            below = cells.filter(pl.col("duration_band").is_null())
            # durations before the first band start are outside the study by the user's choice of bands
            self.excluded_exposure_years_ = float(below.get_column(self.exposure_col).sum())
            self.excluded_claims_ = float(below.get_column(self.claims_col).sum())
            cells = cells.filter(pl.col("duration_band").is_not_null())
        elif "duration_band" not in cells.columns:
            raise DataError(f"select_factors: cells need {self.duration!r} or 'duration_band' (by=['duration', ...])")
        adj = [c for c in ("age", "sex") if c in cells.columns] if self.adjust is None else list(self.adjust)
        miss = [c for c in adj if c not in cells.columns]
        if miss:
            raise DataError(f"adjust: cells lack column(s) {miss}")
        if "age" in adj and self.age_width > 1:
            w = self.age_width
            cells = cells.with_columns(((pl.col("age") // w) * w).alias("age"))
        self.adjust_ = adj
        return cells

    # ----------------------------------------------------------------- fit
    @api_input(frames=("cells",))
    def fit(self, cells: pl.DataFrame) -> SelectFactors:
        """Fit the duration-band factors on cells (see class docstring)."""
        cells = self._prepare(cells)
        e_col = self.exposure_col
        from engine.cells.sums import group_sums  # order-independent float sums: same bytes on every run

        agg = [pl.col(self.claims_col).cast(pl.Float64).alias("claims"),
               pl.col(e_col).cast(pl.Float64).alias("exposure_years")]
        if self.expected:
            agg.append(pl.col(self.expected).cast(pl.Float64).alias("expected"))
        bands = group_sums(cells.select(pl.col("duration_band"), *agg), ["duration_band"],
                           [a.meta.output_name() for a in agg])
        bounds = [_parse_band(x) for x in bands.get_column("duration_band").to_list()]
        bands = bands.with_columns(
            pl.Series("duration_from", [lo for lo, _ in bounds], dtype=pl.Int32),
            pl.Series("duration_to", [hi for _, hi in bounds], dtype=pl.Int32),
        ).sort("duration_from").filter(pl.col("exposure_years") > 0)
        if bands.height < 2:
            raise ModelError("select_factors: fewer than 2 duration bands with exposure")
        labels = bands.get_column("duration_band").to_list()
        ref = labels[-1] if self.reference is None else self.reference
        if ref not in labels:
            raise ConfigError(f"reference: band {ref!r} not among bands with exposure {labels}")
        if bands.filter(pl.col("duration_band") == ref).get_column("claims").item() <= 0:
            raise ModelError(f"reference: band {ref!r} has no claims; choose another reference")
        self.reference_ = ref
        d = bands.get_column("claims").to_numpy()
        e = bands.get_column("exposure_years").to_numpy()
        lo, hi = garwood_interval(d, e, self.level)
        base = bands.with_columns(
            (pl.col("claims") / pl.col("exposure_years")).alias("rate"),
            pl.Series("rate_lower", lo), pl.Series("rate_upper", hi),
            (pl.col("duration_band") == ref).alias("is_reference"),
        )
        parts = []
        if self.route in ("glm", "both"):
            parts.append(self._fit_glm(cells, base, labels, ref))
        if self.route in ("lifelines", "both"):
            parts.append(self._fit_lifelines(base, labels, ref))
        cols = ["duration_band", "duration_from", "duration_to", "exposure_years", "claims", "rate", "rate_lower",
                "rate_upper", "factor", "factor_lower", "factor_upper", "is_reference", "adjusted_for", "route"]
        self.summary_ = pl.concat([p.select(cols) for p in parts])
        return self

    def _z(self) -> float:
        from scipy import stats

        return float(stats.norm.ppf(0.5 + self.level / 2))

    def _fit_glm(self, cells: pl.DataFrame, base: pl.DataFrame, labels: list[str], ref: str) -> pl.DataFrame:
        keys = ["duration_band", *self.adjust_]
        from engine.cells.sums import group_sums  # order-independent float sums: same bytes on every run

        agg = [pl.col(self.claims_col).cast(pl.Float64).alias("_y"),
               pl.col(self.exposure_col).cast(pl.Float64).alias("_e")]
        if self.expected:
            agg.append(pl.col(self.expected).cast(pl.Float64).alias("_x"))
        zero_bands = base.filter(pl.col("claims") == 0).get_column("duration_band").to_list()
        g = group_sums(cells.select(*keys, *agg), keys, [a.meta.output_name() for a in agg]).filter(pl.col("_e") > 0)
        g = g.filter(~pl.col("duration_band").is_in(zero_bands))
        if self.expected:
            g = g.filter(pl.col("_x") > 0)
            off = np.log(g.get_column("_x").to_numpy())
        else:
            off = np.log(g.get_column("_e").to_numpy())
        fitted_bands = [b for b in labels if b not in zero_bands]
        cols, names = [np.ones(g.height)], ["intercept"]
        bcol = g.get_column("duration_band")
        for b in fitted_bands:
            if b != ref:
                cols.append((bcol == b).to_numpy().astype(float))
                names.append(f"duration_band={b}")
        for a in self.adjust_:
            s = g.get_column(a)
            levels = s.unique().sort().to_list()
            for lev in levels[1:]:
                cols.append((s == lev).to_numpy().astype(float))
                names.append(f"{a}={lev}")
        X = np.column_stack(cols)
        y = g.get_column("_y").to_numpy()
        if np.linalg.matrix_rank(X) < X.shape[1]:
            raise ModelError("select_factors: GLM design is rank deficient (a factor level confounded with a band)")
        coef, cov = poisson_irls(X, y, off)
        self.coef_, self.cov_, self.feature_names_ = coef, cov, names
        z = self._z()
        fac, flo, fhi = [], [], []
        for b in labels:
            if b == ref:
                fac.append(1.0), flo.append(1.0), fhi.append(1.0)
            elif b in zero_bands:
                fac.append(0.0), flo.append(0.0), fhi.append(None)
            else:
                i = names.index(f"duration_band={b}")
                se = math.sqrt(cov[i, i])
                fac.append(math.exp(coef[i]))
                flo.append(math.exp(coef[i] - z * se))
                fhi.append(math.exp(coef[i] + z * se))
        adj = ",".join(self.adjust_) + ("|offset=expected" if self.expected else "")
        return base.with_columns(
            pl.Series("factor", fac, dtype=pl.Float64), pl.Series("factor_lower", flo, dtype=pl.Float64),
            pl.Series("factor_upper", fhi, dtype=pl.Float64), pl.lit(adj).alias("adjusted_for"),
            pl.lit("glm").alias("route"),
        )

    def _fit_lifelines(self, base: pl.DataFrame, labels: list[str], ref: str) -> pl.DataFrame:
        from lifelines import PiecewiseExponentialFitter

        kept = base.filter(pl.col("claims") > 0)
        lo = kept.get_column("duration_from").to_numpy().astype(float)
        hi_raw = kept.get_column("duration_to").to_list()
        hi = np.array([h if h is not None else lo_ + _OPEN_BAND_MONTHS for lo_, h in zip(lo, hi_raw)], dtype=float)
        T = kept.get_column("exposure_years").to_numpy() * 12.0  # exposure-months
        D = kept.get_column("claims").to_numpy()
        c = D.sum() / T.sum()  # time unit: pooled hazard = 1 per unit
        origin = lo[0]
        L = hi - lo
        delta = np.minimum(L / 2.0, T / (2.0 * D))
        entry = np.concatenate([lo, lo])
        exit_ = np.concatenate([lo + delta, hi])
        event = np.concatenate([np.ones_like(D), np.zeros_like(D)]).astype(bool)
        weight = np.concatenate([D, (T - D * delta) / L])
        entry, exit_ = (entry - origin) * c, (exit_ - origin) * c
        breakpoints = list((lo[1:] - origin) * c)
        pef = PiecewiseExponentialFitter(breakpoints=breakpoints)
        with warnings.catch_warnings():
            # lifelines warns that weights are not integers; they are exposures by design
            warnings.filterwarnings("ignore", message=".*integer.*")
            pef.fit(exit_, event, entry=entry, weights=weight)
        self.lifelines_model_ = pef
        lam = pef.params_.to_numpy()  # mean time per piece = 1 / hazard (time unit 1/c months)
        V = pef.variance_matrix_.to_numpy()
        hazard_year = (1.0 / lam) * c * 12.0
        vlog = np.diag(V) / lam**2  # var(log hazard) = var(log lambda)
        kl = kept.get_column("duration_band").to_list()
        r = kl.index(ref)
        z = self._z()
        fac, flo, fhi, fit_rate = [], [], [], []
        for b in labels:
            if b not in kl:
                fac.append(0.0), flo.append(0.0), fhi.append(None), fit_rate.append(0.0)
                continue
            i = kl.index(b)
            lf = math.log(hazard_year[i] / hazard_year[r])
            se = 0.0 if i == r else math.sqrt(vlog[i] + vlog[r] - 2 * V[i, r] / (lam[i] * lam[r]))
            fac.append(math.exp(lf)), flo.append(math.exp(lf - z * se)), fhi.append(math.exp(lf + z * se))
            fit_rate.append(hazard_year[i])
        self.lifelines_rate_ = dict(zip(labels, fit_rate))
        return base.with_columns(
            pl.Series("factor", fac, dtype=pl.Float64), pl.Series("factor_lower", flo, dtype=pl.Float64),
            pl.Series("factor_upper", fhi, dtype=pl.Float64), pl.lit("").alias("adjusted_for"),
            pl.lit("lifelines").alias("route"),
        )

    # ------------------------------------------------------------- outputs
    @property
    def summary(self) -> pl.DataFrame:
        """duration_band, duration_from/to (months), exposure_years, claims, crude rate with
        Garwood interval, factor with interval, is_reference, adjusted_for, route."""
        self._check_fitted()
        return self.summary_

    def print_summary(self, decimals: int = 4) -> None:
        """Print the factor table."""
        from rich.console import Console
        from rich.table import Table

        df = self.summary
        t = Table(title=f"duration factors vs {self.reference_} ({self.level:.0%} intervals)")
        for c in df.columns:
            t.add_column(c, justify="right")
        for row in df.iter_rows():
            t.add_row(*["" if v is None else f"{v:.{decimals}g}" if isinstance(v, float) else str(v) for v in row])
        Console().print(t)

    def plot_factors(self, ax: Any = None) -> Any:
        """Factor by duration band with interval bars (one series per route); returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        df = self.summary
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        routes = df.get_column("route").unique(maintain_order=True).to_list()
        for k, r in enumerate(routes):
            s = df.filter(pl.col("route") == r)
            x = np.arange(s.height) + (k - (len(routes) - 1) / 2) * 0.15
            f = s.get_column("factor").to_numpy()
            lo_ = s.get_column("factor_lower").to_numpy()
            hi_ = s.get_column("factor_upper").fill_null(np.nan).to_numpy()
            ax.errorbar(x, f, yerr=[f - lo_, np.nan_to_num(hi_ - f)], fmt="o", capsize=3, label=r)
            ax.set_xticks(np.arange(s.height), s.get_column("duration_band").to_list())
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xlabel("months since joining")
        ax.set_ylabel(f"incidence factor vs {self.reference_}")
        ax.legend()
        return ax


@api_input(frames=("cells",))
def select_factors(cells: pl.DataFrame, **kwargs: Any) -> pl.DataFrame:
    """Duration-band incidence factors as a polars DataFrame.

    Shorthand for ``SelectFactors(**kwargs).fit(cells).summary``; see
    :class:`SelectFactors` for the parameters and the formulas.
    """
    return SelectFactors(**kwargs).fit(cells).summary
