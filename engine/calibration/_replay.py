"""Replay a platform from its public figures: calibrate incidence and select wear-off, then project.

:func:`replay` takes the rules (waiting days, fee, benefits by age band, caps, sharing
days), a membership curve and dated published aggregates, fits the incidence level and a
select wear-off curve by maximum likelihood (:mod:`engine.calibration._model`), gives profile
likelihood intervals for the parameters and a seeded parametric bootstrap for everything
predicted, and returns the dated share path with its fan, the annual shares, the
sustainable share and when it is reached, leverage, the share drivers and the death-spiral
verdict. See docs/replay.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from typing import Any

import numpy as np
import polars as pl

from engine.conventions import FEE, REPORTING_LAG_DAYS, SHARING_DAYS, WAITING_DAYS

from engine.errors import ConfigError, DataError
from engine.calibration._model import PARAMS, Aggregate, ReplayModel, window
from engine.calibration._result import ReplayResult
from engine.data._coerce import api_input

_TRANSFORMS = {"level": (np.log, np.exp), "s0": (np.log, np.exp), "tau_months": (np.log, np.exp)}


def _base_rates(groups: pl.DataFrame, basis: str) -> np.ndarray:
    if "rate" in groups.columns:
        return groups["rate"].cast(pl.Float64).to_numpy()
    from engine.data.reference import reference_basis

    ref = reference_basis("ci2020", basis).group_by("age").agg(pl.col("rate").mean()).sort("age")
    rates = []
    for lo, hi in zip(groups["age_min"].to_list(), groups["age_max"].to_list(), strict=True):
        r = ref.filter((pl.col("age") >= lo) & (pl.col("age") <= hi))["rate"]
        if r.len() == 0:
            raise ConfigError(f"groups: no {basis} rate for ages {lo}-{hi}")
        rates.append(float(r.mean()))
    return np.array(rates)


def _aggregates(aggregates: pl.DataFrame | Sequence[Aggregate]) -> list[Aggregate]:
    if not isinstance(aggregates, pl.DataFrame):
        return list(aggregates)
    for c in ("kind", "date", "value"):
        if c not in aggregates.columns:
            raise DataError(f"aggregates: column '{c}' is required (kind, date, value[, rounding, label])")
    out = []
    for r in aggregates.iter_rows(named=True):
        out.append(Aggregate(str(r["kind"]), r["date"], float(r["value"]), float(r.get("rounding") or 0.0),
                             str(r.get("label") or f"{r['kind']} {r['date']}")))
    return out


@api_input(frames=("points", "groups"), dates=("start", "end"))
def build_model(points: pl.DataFrame, aggregates: Any, *, start: dt.date, end: dt.date, groups: pl.DataFrame,
                sharing_days: Any = SHARING_DAYS, fee: float = FEE, waiting_days: int = WAITING_DAYS,
                reporting_lag_days: int = REPORTING_LAG_DAYS, per_claimant_cap: float | None = None, base_lapse_annual: float = 0.0,
                interpolation: str = "linear", basis: str = "CI4", model_error: float = 0.02,
                select_factors: Any = None) -> ReplayModel:
    """The :class:`ReplayModel` of a replay (calendar, membership from the curve, groups, aggregates)."""
    from engine.projection.membership import membership_from_curve
    from engine.estimators._select_table import select_table

    for c in ("group", "weight", "benefit_cny"):
        if c not in groups.columns:
            raise DataError(f"groups: column '{c}' is required (group, weight, benefit_cny, age_min/age_max or rate)")
    cal = window(start, end, sharing_days)
    curve = membership_from_curve(points, start, end, base_lapse_annual=base_lapse_annual, method=interpolation)
    mix = groups["weight"].cast(pl.Float64).to_numpy()
    if not mix.sum() > 0 or np.any(mix < 0):
        raise DataError("groups: weights must be >= 0 with a positive sum")
    mix = mix / mix.sum()
    inp = curve.inputs()
    return ReplayModel(cal, curve.members0 * mix, inp["joiners"], inp["lapse_annual"], mix,
                       _base_rates(groups, basis), groups["benefit_cny"].cast(pl.Float64).to_numpy(), fee=fee,
                       waiting_days=waiting_days, lag_days=reporting_lag_days, per_claimant_cap=per_claimant_cap,
                       aggregates=_aggregates(aggregates), model_error=model_error,
                       select_table=None if select_factors is None else select_table(select_factors))


class _Fitter:
    """Maximum likelihood over the free parameters on their log scale."""

    def __init__(self, model: ReplayModel, start: dict[str, float], free: Sequence[str]) -> None:
        unknown = set(free) - set(PARAMS)
        if unknown or not free:
            raise ConfigError(f"fit: {sorted(unknown) or 'nothing'} - choose among {', '.join(PARAMS)}")
        for k, v in start.items():
            if not v > 0:
                raise ConfigError(f"{k}: {v} must be > 0")
        self.m, self.start, self.free = model, dict(start), list(free)

    def theta(self, u: np.ndarray, fixed: dict[str, float] | None = None) -> dict[str, float]:
        th = dict(self.start)
        th.update({k: float(_TRANSFORMS[k][1](x)) for k, x in zip(self.free, u, strict=True)})
        th.update(fixed or {})
        return th

    def nll(self, u: np.ndarray, fixed: dict[str, float] | None = None) -> float:
        th = self.theta(u, fixed)
        v = -self.m.loglik(th["level"], th["s0"], th["tau_months"])
        return v if np.isfinite(v) else 1e300

    def fit(self, u0: np.ndarray | None = None, fixed: dict[str, float] | None = None) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        names = [k for k in self.free if k not in (fixed or {})]
        full0 = np.array([_TRANSFORMS[k][0](self.start[k]) for k in self.free]) if u0 is None else np.asarray(u0)
        idx = [self.free.index(k) for k in names]

        def f(v: np.ndarray) -> float:
            u = full0.copy()
            u[idx] = v
            return self.nll(u, fixed)

        if not idx:
            return full0, f(np.zeros(0))
        if len(idx) == 1:  # a profile over one remaining parameter: bounded Brent on the log scale
            from scipy.optimize import minimize_scalar

            x0 = float(full0[idx[0]])
            g = lambda v: f(np.array([v]))  # noqa: E731
            try:  # downhill from the starting value: the local minimum next to the joint optimum
                r1 = minimize_scalar(g, bracket=(x0 - 0.05, x0 + 0.05), method="brent", options={"xtol": 1e-8})
            except (ValueError, RuntimeError):
                r1 = minimize_scalar(g, bounds=(x0 - 8.0, x0 + 8.0), method="bounded", options={"xatol": 1e-7})
            x, fun = np.array([r1.x]), float(r1.fun)
            if g(x0) < fun:
                x, fun = np.array([x0]), g(x0)
        else:  # Powell finds the ridge of level against s0, Nelder-Mead polishes
            r1 = minimize(f, full0[idx], method="Powell", options={"xtol": 1e-6, "ftol": 1e-10})
            r2 = minimize(f, r1.x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxfev": 4000})
            x, fun = (r2.x, float(r2.fun)) if r2.fun <= r1.fun else (r1.x, float(r1.fun))
        u = full0.copy()
        u[idx] = x
        return u, fun

    def profile(self, k: str, u_hat: np.ndarray, nll_hat: float, level: float) -> tuple[float | None, float | None]:
        """Profile-likelihood interval of parameter ``k``: 2 (l_hat - l_p) <= chi2_1(level), on its natural scale."""
        from scipy.optimize import brentq
        from scipy.stats import chi2

        crit = chi2.ppf(level, 1) / 2.0
        j = self.free.index(k)

        def excess(v: float) -> float:
            fixed = {k: float(_TRANSFORMS[k][1](v))}
            _, nll = self.fit(u_hat, fixed)
            return nll - nll_hat - crit

        out: list[float | None] = []
        for sign in (-1.0, 1.0):
            step, lo, bound = 0.05, float(u_hat[j]), None
            for _ in range(12):
                hi = float(u_hat[j]) + sign * step
                if excess(hi) > 0:
                    if excess(lo) < 0:
                        bound = brentq(excess, min(lo, hi), max(lo, hi), xtol=1e-4)
                    break
                lo, step = hi, step * 2.0
            out.append(None if bound is None else float(_TRANSFORMS[k][1](bound)))
        return out[0], out[1]


@api_input(frames=("points", "groups"), dates=("start", "end"))
def replay(
    points: pl.DataFrame,
    aggregates: pl.DataFrame | Sequence[Aggregate],
    *,
    start: dt.date,
    end: dt.date,
    groups: pl.DataFrame,
    sharing_days: Any = SHARING_DAYS,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    per_claimant_cap: float | None = None,
    annual_cap: float | None = None,
    base_lapse_annual: float = 0.0,
    interpolation: str = "linear",
    basis: str = "CI4",
    fit: Sequence[str] = ("level", "s0"),
    level: float = 0.5,
    s0: float = 0.8,
    tau_months: float = 12.0,
    model_error: float = 0.02,
    level_ci: float = 0.9,
    n_boot: int = 100,
    seed: int = 0,
    tolerance: float = 0.05,
    select_factors: Any = None,
) -> ReplayResult:
    """Calibrate incidence and select wear-off to published aggregates, then replay and project the shares.

    Parameters
    ----------
    points : membership curve, ``date``, ``members`` (:mod:`engine.projection.membership`).
    aggregates : ``kind`` (``claimants_period``, ``claimants_cumulative``, ``claimants_year``,
        ``share_period``, ``annual_share``), ``date`` (the notice date; the date up to which;
        any date of the year), ``value``, optional ``rounding`` (half a unit of the last
        published digit) and ``label``.
    start, end : the calendar replayed and projected (the curve must cover ``start``).
    groups : ``group``, ``weight`` (share of the members), ``benefit_cny`` and either
        ``age_min``/``age_max`` (rate = mean of the CI2020 ``basis`` table over those ages,
        both sexes) or ``rate`` (annual, at level 1).
    sharing_days, fee, waiting_days, reporting_lag_days, per_claimant_cap, annual_cap :
        the platform's rules (days; CNY).
    base_lapse_annual, interpolation : membership curve assumptions.
    fit : free parameters among ``level``, ``s0``, ``tau_months``; the others stay at
        their given values (also the starting values).
    level : incidence relative to the basis; s0 : incidence at cover start relative to the
        ultimate; tau_months : wear-off time constant.
    model_error : relative sd of model error added to every aggregate.
    level_ci : confidence level of the intervals.
    n_boot, seed : parametric bootstrap (seeded).
    tolerance : the share "reaches" the sustainable share once within this distance until the end.
    select_factors : a select table (``engine.select_factors`` output, passed unchanged) used
        instead of the fitted curve; then only ``level`` can be fitted.

    Returns
    -------
    ReplayResult

    Notes
    -----
    Incidence of group g at tenure t days: level x rate_g x sel(t), sel(t) = 0 in the wait
    and 1 - (1 - s0) exp(-m / tau) at m = (t - w) / (365.25 / 12) months since cover began.
    The likelihood is the one of :class:`engine.calibration._model.ReplayModel`. Parameter
    intervals: profile likelihood, 2 (l_hat - l_p(v)) <= chi2_1(level_ci) (None when the
    profile stays inside that bound up to e^(+/-100)); bootstrap: n_boot replicate aggregate
    sets drawn from the fitted model (Poisson claims + model error + rounding), refitted;
    their percentile intervals are given for the parameters and, with the Poisson noise of
    the predicted periods added, for every share and annual share. Annual shares are those
    of a member present all year: the sum of the period shares with a notice date in the
    year, at most ``annual_cap``.
    """
    from engine.calibration._output import outputs

    if not 0.0 < level_ci < 1.0 or n_boot < 0:
        raise ConfigError("level_ci must be in (0, 1) and n_boot >= 0")
    if select_factors is not None and set(fit) - {"level"}:
        raise ConfigError("fit: with a select table only 'level' can be fitted")
    m = build_model(points, aggregates, start=start, end=end, groups=groups, sharing_days=sharing_days, fee=fee,
                    waiting_days=waiting_days, reporting_lag_days=reporting_lag_days,
                    per_claimant_cap=per_claimant_cap, base_lapse_annual=base_lapse_annual,
                    interpolation=interpolation, basis=basis, model_error=model_error,
                    select_factors=select_factors)
    if m.W.shape[0] == 0:
        raise DataError("aggregates: nothing to fit")
    fitter = _Fitter(m, {"level": level, "s0": s0, "tau_months": tau_months}, fit)
    u_hat, nll_hat = fitter.fit()
    theta = fitter.theta(u_hat)
    prof = {k: fitter.profile(k, u_hat, nll_hat, level_ci) for k in fitter.free}
    rng = np.random.default_rng(seed)
    mu_hat = m.mu(theta["level"], theta["s0"], theta["tau_months"])
    y_obs = m.y.copy()
    boots = []
    for _ in range(n_boot):
        m.y = m.simulate(mu_hat, rng)
        u_b, _ = fitter.fit(u_hat)
        boots.append(fitter.theta(u_b))
    m.y = y_obs
    res = outputs(m, theta, boots, prof, -nll_hat, fitter.free, rng=rng, level_ci=level_ci,
                  annual_cap=annual_cap, tolerance=tolerance, start=start, end=end)
    res.inputs = {"start": start, "end": end, "fee": fee, "waiting_days": waiting_days,
                  "reporting_lag_days": reporting_lag_days, "per_claimant_cap": per_claimant_cap,
                  "annual_cap": annual_cap, "base_lapse_annual": base_lapse_annual, "points": points,
                  "interpolation": interpolation, "select_factors": select_factors,
                  "groups": groups.select("group", "weight", "benefit_cny").with_columns(
                      base_rate=pl.Series(m.base_rate, dtype=pl.Float64))}
    return res


__all__ = ["ReplayResult", "build_model", "replay"]
