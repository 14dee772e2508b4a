"""Stochastic projection of cost shares to the sustainable share (``engine.project``).

A cohort projection per plan and group: deterministic (expected values) and Monte
Carlo (Poisson claim counts, vectorised over scenarios x groups, seeded, chunked).
Model equations: :mod:`engine.projection.dynamics` and ``docs/projection.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin, print_frame
from engine.data._coerce import api_input
from engine.projection.dynamics import BLOCK, QUANTITIES, Model, compile_model, detect_spiral, deterministic, simulate, \
    stationary_shares
from engine.errors import ResourceError
from engine.plans.sharing import leverage
from engine.projection.assumptions import (Elasticity, Expectations, Joiners, Lapse, ProjectionAssumptions, SpiralRule,
                                      groups_from_table, make_assumptions, prepare_groups,
                                      select_factors_from_table, trend_from_table)
from engine.conventions import FEE, REPORTING_LAG_DAYS, WAITING_DAYS

__all__ = ["project", "ProjectionResult", "groups_from_table", "Joiners", "Lapse", "Expectations", "Elasticity",
           "SpiralRule", "ProjectionAssumptions"]

#: refuse to keep more than this many bytes of simulated paths (scenarios x periods x plans x 8 per path)
MAX_SHARE_BYTES = 4 * 1024**3
#: per-scenario paths kept (the share, for its quantiles)
PATHS = ("share",)


@dataclass
class ProjectionResult(ResultMixin):
    """Output of :func:`project`.

    Attributes
    ----------
    periods : polars.DataFrame
        One row per (plan, period): Monte Carlo means (members, eligible_members,
        ..., share_mean_cny), share quantiles (share_p5/p50/p95_cny), the
        probability that the annual cap binds, and the deterministic path (``det_*``).
    plans : polars.DataFrame
        One row per plan: sustainable and stationary shares, leverage, death-spiral flag and period.
    leverage : polars.DataFrame
        One row per (plan, period, benefit band): benefit / annualised share.
    bands : polars.DataFrame
        One row per (plan, benefit band): stationary member weight and sustainable leverage.
    groups : polars.DataFrame
        The validated groups table used.
    assumptions : ProjectionAssumptions
        Every assumption, defaults filled in.
    share_scenarios : numpy.ndarray
        Simulated shares, shape (horizon, n_scenarios, plans), CNY per member per period.
    """

    periods: pl.DataFrame
    plans: pl.DataFrame
    leverage: pl.DataFrame
    bands: pl.DataFrame
    groups: pl.DataFrame
    assumptions: ProjectionAssumptions
    share_scenarios: np.ndarray = field(repr=False)

    @property
    def summary(self) -> pl.DataFrame:
        """The per-plan table (alias of ``plans``)."""
        return self.plans

    def print_summary(self, decimals: int = 4) -> None:
        """Print the per-plan table with rich, floats to ``decimals`` significant digits."""
        rows = [{"plan": r["plan"], "members now": round(r["members_start"]), "members end": round(r["members_end"]),
                 "share end (mean)": r["share_end_mean_cny"], "share end (P95)": r["share_end_p95_cny"],
                 "sustainable share": r["sustainable_share_cny"], "leverage": r["sustainable_leverage_max"],
                 "death spiral": f"period {r['death_spiral_period']}" if r["death_spiral"] else "no"}
                for r in self.plans.iter_rows(named=True)]
        print_frame(pl.DataFrame(rows), f"share projection, CNY per member per period ({self.assumptions.horizon} periods, "
                    f"{self.assumptions.n_scenarios} scenarios, seed {self.assumptions.seed})", decimals)

    def _key_numbers(self) -> dict[str, Any]:
        a = self.assumptions
        out: dict[str, Any] = {"horizon (periods)": a.horizon, "scenarios": a.n_scenarios, "seed": a.seed}
        for r in self.plans.iter_rows(named=True):
            out[f"{r['plan']}: sustainable share (CNY)"] = float(r["sustainable_share_cny"])
        return out

    def plot_share(self, plan: str | None = None, ax: Any = None) -> Any:
        """Plot the mean share with its P5-P95 band and the sustainable share; returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        plan = plan if plan is not None else str(self.plans["plan"][0])
        d = self.periods.filter(pl.col("plan") == plan)
        x = d["period"].to_numpy()
        ax.fill_between(x, d["share_p5_cny"].to_numpy(), d["share_p95_cny"].to_numpy(), alpha=0.3, label="P5-P95")
        ax.plot(x, d["share_mean_cny"].to_numpy(), label="mean")
        sus = float(self.plans.filter(pl.col("plan") == plan)["sustainable_share_cny"][0])
        ax.axhline(sus, linestyle="--", color="k", label="sustainable")
        ax.set_xlabel("period")
        ax.set_ylabel("share per member (CNY)")
        ax.set_title(f"plan {plan}")
        ax.legend()
        return ax


@api_input(frames=("groups",))
def project(
    groups: pl.DataFrame | pl.LazyFrame,
    *,
    horizon: int = 120,
    n_scenarios: int = 1000,
    seed: int = 0,
    periods_per_year: int = 12,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    waiting_periods: int | None = None,
    reporting_lag_periods: int | None = None,
    per_claimant_cap: float | None = None,
    annual_cap: float | None = None,
    select_factors: Sequence[float] | Mapping[str, Sequence[float]] | pl.DataFrame | None = None,
    claimants_exit: bool = True,
    incidence_trend: Sequence[float] | Mapping[str, Sequence[float]] | pl.DataFrame | None = None,
    joiners: Joiners | float | Sequence[float] | Callable[[int], float] | Mapping[str, Any] | None = None,
    lapse: Lapse | float | Mapping[str, Any] | None = None,
    expectations: Expectations | float | Mapping[str, Any] | None = None,
    elasticity: Elasticity | float | Mapping[str, Any] | None = None,
    spiral: SpiralRule | Mapping[str, Any] | None = None,
    chunk_size: int = 2048,
) -> ProjectionResult:
    """Project the cost share of each plan, deterministically and by Monte Carlo.

    Parameters
    ----------
    groups : polars DataFrame
        One row per (plan, group); see :func:`engine.projection.assumptions.prepare_groups`
        (``group``, ``members``, ``rate``, ``benefit_cny`` required; ``plan``,
        ``waiting_members``, ``risk``, ``channel``, ``joiner_mix``,
        ``elasticity``, ``ageing_annual`` optional). :func:`groups_from_table` builds it.
    horizon : int
        Number of sharing periods projected.
    n_scenarios : int
        Monte Carlo scenarios.
    seed : int
        Seed; same seed, same bytes, whatever ``chunk_size``.
    periods_per_year : int
        Sharing periods per year (12 monthly, 24 twice a month).
    fee : float
        Management fee as a share of the claims paid (default :data:`engine.conventions.FEE`).
    waiting_days, reporting_lag_days : int
        The waiting period and the reporting lag in days (defaults in :mod:`engine.conventions`).
    waiting_periods, reporting_lag_periods : int or None
        The same in whole sharing periods; None (default) converts the days with
        :func:`engine.conventions.days_to_periods` (90 days = 3 monthly periods, 30 days = 1).
        Members wait ``waiting_periods`` after joining before they can claim; claims
        incurred in period t are paid (shared) in t + ``reporting_lag_periods``.
    per_claimant_cap, annual_cap : float or None
        CNY per member per claim, and CNY per member per projection year
        (Xianghubao: 0.1 and 188); the excess is paid by the platform.
    select_factors : sequence, mapping group -> sequence, or DataFrame, optional
        Incidence multipliers by tenure (completed periods since joining); the last
        entry applies thereafter. None = no select effect. A duration-band table
        (``engine.select_factors`` output) is converted by
        :func:`engine.projection.assumptions.select_factors_from_table`.
    claimants_exit : bool
        A claimant's cover ends with the claim (critical illness paid once).
    incidence_trend : sequence, mapping group -> sequence, or DataFrame, optional
        Incidence multiplier by projection year (0, 1, ...; last thereafter), on top
        of the ``ageing_annual`` drift: e.g. an age-shift table. A DataFrame has
        ``year``, ``factor`` and optionally ``group``.
    joiners, lapse, expectations, elasticity, spiral :
        Membership dynamics; see :class:`Joiners`, :class:`Lapse`,
        :class:`Expectations`, :class:`Elasticity`, :class:`SpiralRule`.
        A bare number means ``per_period``, ``base_annual``, ``speed`` and
        ``base`` respectively.
    chunk_size : int
        Scenarios simulated at once (rounded up to a multiple of 256); bounds memory.

    Returns
    -------
    ProjectionResult

    Notes
    -----
    Share of plan p in period t (equal sharing, docs/domain.md)::

        share_t = sum_g paid_{g,t} * min((1 + fee) * B_g / N_{p,t}, per_claimant_cap)

    then capped at ``annual_cap`` minus the share already paid in the year.
    ``paid_{g,t}`` is the number of claims incurred in ``t - lag``, Poisson with
    mean ``sum_{tau >= w} n_{g,tau} * rate_g * select_tau * (1 + ageing_g)^(t/ppy) * trend_g[t // ppy] / ppy``.
    Without caps, lag or dynamics a closed pool gives ``(1 + fee) * rate * B / ppy``.
    Leverage = ``B / (ppy * share)``. Sustainable share, stationary share and the
    death-spiral rule: :func:`engine.projection.dynamics.stationary_shares` and
    :func:`engine.projection.dynamics.detect_spiral`.

    Examples
    --------
    >>> g = groups_from_table({"group": ["low", "high"], "members": [80_000, 20_000],
    ...                        "rate": [0.0005, 0.002], "benefit": [300_000, 100_000]})
    >>> res = project(g, horizon=24, n_scenarios=200, joiners={"per_period": 2000, "then": "replace"})
    >>> res.plans["sustainable_share_cny"][0] > 0
    True
    """
    if isinstance(select_factors, pl.DataFrame) or hasattr(select_factors, "summary"):  # a SelectFactors too
        select_factors = select_factors_from_table(select_factors, periods_per_year)
    if isinstance(incidence_trend, pl.DataFrame):
        incidence_trend = trend_from_table(incidence_trend)
    elif isinstance(incidence_trend, Mapping):
        incidence_trend = {k: list(v) for k, v in incidence_trend.items()}
    elif incidence_trend is not None:
        incidence_trend = list(incidence_trend)
    kw: dict[str, Any] = dict(incidence_trend=incidence_trend, horizon=horizon, n_scenarios=n_scenarios, seed=seed,
                              periods_per_year=periods_per_year, fee=fee, waiting_periods=waiting_periods,
                              waiting_days=waiting_days, reporting_lag_days=reporting_lag_days,
                              reporting_lag_periods=reporting_lag_periods, per_claimant_cap=per_claimant_cap,
                              annual_cap=annual_cap, claimants_exit=claimants_exit, chunk_size=chunk_size,
                              select_factors=(dict(select_factors) if isinstance(select_factors, Mapping)
                                              else list(select_factors) if select_factors is not None else None))
    for k, v in (("joiners", joiners), ("lapse", lapse), ("expectations", expectations),
                 ("elasticity", elasticity), ("spiral", spiral)):
        if v is not None:
            kw[k] = v
    return project_assumptions(groups, make_assumptions(**kw))


@api_input(frames=("groups",))
def project_assumptions(groups: pl.DataFrame | pl.LazyFrame, a: ProjectionAssumptions) -> ProjectionResult:
    """:func:`project` with the assumptions already validated."""
    g = prepare_groups(groups, risk_flag_scores=a.elasticity.risk_flag_scores)
    m = compile_model(g, a)
    need = 8 * len(PATHS) * a.horizon * a.n_scenarios * m.P
    if need > MAX_SHARE_BYTES:
        raise ResourceError(f"n_scenarios: {a.n_scenarios} scenarios x {a.horizon} periods x {m.P} plans need "
                            f"{need / 1024**3:.1f} GiB of simulated paths (limit {MAX_SHARE_BYTES / 1024**3:.0f} GiB)")
    det = deterministic(m)
    sums, paths = _monte_carlo(m)
    periods = _periods_frame(m, det, sums, paths["share"])
    plans, bands = _plans_frames(m, det, periods, sums)
    return ProjectionResult(periods, plans, _leverage_frame(m, periods), bands, g, a, paths["share"])


def _monte_carlo(m: Model) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Simulate all scenarios chunk by chunk; per-plan means (H, P) and the paths in :data:`PATHS` (H, S, P)."""
    a = m.a
    S, H, P = a.n_scenarios, a.horizon, m.P
    nb = math.ceil(S / BLOCK)
    seqs = np.random.SeedSequence(a.seed).spawn(nb)
    per_chunk = max(1, math.ceil(a.chunk_size / BLOCK))
    paths = {k: np.empty((H, S, P)) for k in PATHS}
    totals = np.zeros((H, len(QUANTITIES), P))
    for c0 in range(0, nb, per_chunk):
        blocks = range(c0, min(nb, c0 + per_chunk))
        r0, r1 = c0 * BLOCK, min(S, blocks[-1] * BLOCK + BLOCK)
        gens = [(np.random.default_rng(seqs[b]), slice(b * BLOCK - r0, min(S, (b + 1) * BLOCK) - r0)) for b in blocks]

        def draw(mean: np.ndarray, gens: list = gens) -> np.ndarray:
            out = np.empty_like(mean)
            for gen, sl in gens:
                out[sl] = gen.poisson(mean[sl])
            return out

        def rec(t: int, q: dict[str, np.ndarray], gens: list = gens, r0: int = r0, r1: int = r1) -> None:
            for k in PATHS:
                paths[k][t, r0:r1] = q[k]
            stacked = np.stack([q[k] for k in QUANTITIES], axis=1)
            for _, sl in gens:
                totals[t] += stacked[sl].sum(axis=0)

        simulate(m, r1 - r0, draw, rec)
    means = {k: totals[:, i, :] / S for i, k in enumerate(QUANTITIES)}
    return means, paths


def _long(x: np.ndarray) -> np.ndarray:
    """(H, P) -> plan-major flat vector matching the periods frame rows."""
    return np.ascontiguousarray(x.T).reshape(-1)


def _periods_frame(m: Model, det: dict[str, np.ndarray], mc: dict[str, np.ndarray], shares: np.ndarray) -> pl.DataFrame:
    a = m.a
    H, P = a.horizon, m.P
    q = np.quantile(shares, [0.05, 0.5, 0.95], axis=1, method="inverted_cdf")
    mean = shares.mean(axis=1)
    sd = shares.std(axis=1, ddof=1) if a.n_scenarios > 1 else np.zeros((H, P))
    period = np.tile(np.arange(H, dtype=np.int32), P)
    cols: dict[str, Any] = {
        "plan": np.repeat(np.array(m.plans, dtype=object), H).tolist(),
        "period": period,
        "year": (period // a.periods_per_year).astype(np.int32),
        "members": _long(mc["members"]),
        "eligible_members": _long(mc["eligible"]),
        "waiting_members": _long(mc["members"] - mc["eligible"]),
        "joiners": _long(mc["joiners"]),
        "lapses": _long(mc["lapses"]),
        "claimant_exits": _long(mc["claimant_exits"]),
        "expected_claims": _long(mc["expected_claims"]),
        "claims": _long(mc["claims"]),
        "paid_claims": _long(mc["paid_claims"]),
        "share_mean_cny": _long(mean),
        "share_sd_cny": _long(sd),
        "share_p5_cny": _long(q[0]),
        "share_p50_cny": _long(q[1]),
        "share_p95_cny": _long(q[2]),
        "annual_share_mean_cny": _long(mean * a.periods_per_year),
        "share_uncapped_mean_cny": _long(mc["share_uncapped"]),
        "expected_share_mean_cny": _long(mc["expected_share"]),
        "annual_cap_binds_prob": _long(mc["cap_binds"]),
        "annual_cap_reached_prob": _long(mc["cap_reached"]),
        "platform_paid_mean_cny": _long(mc["platform_paid"]),
        "members_paid_mean_cny": _long(mc["members_paid"]),
        "cost_mean_cny": _long(mc["members_paid"] + mc["platform_paid"]),
        "det_annual_cap_binds": _long(det["cap_binds"]).astype(bool),
        "det_members": _long(det["members"]),
        "det_eligible_members": _long(det["eligible"]),
        "det_expected_claims": _long(det["expected_claims"]),
        "det_joiners": _long(det["joiners"]),
        "det_lapses": _long(det["lapses"]),
        "det_claimant_exits": _long(det["claimant_exits"]),
        "det_share_cny": _long(det["share"]),
        "det_expected_share_cny": _long(det["expected_share"]),
    }
    df = pl.DataFrame(cols, schema_overrides={"plan": pl.String})
    return df.with_columns(
        eligible_ratio=pl.when(pl.col("members") > 0).then(pl.col("eligible_members") / pl.col("members")))


def _plans_frames(m: Model, det: dict[str, np.ndarray], periods: pl.DataFrame,
                  mc: dict[str, np.ndarray]) -> tuple[pl.DataFrame, pl.DataFrame]:
    a = m.a
    ppy, H = a.periods_per_year, a.horizon
    sus, stat, weights = stationary_shares(m, 0.0)
    sus_end, _, _ = stationary_shares(m, float(H - 1))
    if bool(np.any(m.ageing != 0)) or m.trend.shape[0] > 1:
        sus_t = np.stack([stationary_shares(m, float(t))[0] for t in range(H)])
    else:
        sus_t = np.broadcast_to(sus, (H, m.P))
    rule = a.spiral
    window = rule.window or ppy
    rows, band_rows = [], []
    last = periods.filter(pl.col("period") == H - 1)
    for p, name in enumerate(m.plans):
        sel = m.plan_idx == p
        bens = np.unique(m.benefit[sel])
        thr = dict(window=window, members_drop=rule.members_drop, share_rise=rule.share_rise,
                   overshoot=rule.overshoot, persistence=rule.persistence, min_periods=rule.min_periods)
        t_sp = detect_spiral(det["members"][:, p], det["share"][:, p], det["lapses"][:, p], sus_t[:, p], **thr)
        t_mc = detect_spiral(mc["members"][:, p], mc["share"][:, p], mc["lapses"][:, p], sus_t[:, p], **thr)
        lev = leverage(bens, sus[p], ppy) if sus[p] > 0 else None
        end = last.filter(pl.col("plan") == name).row(0, named=True)
        rows.append({
            "plan": name, "groups": int(sel.sum()), "benefit_bands": int(bens.size),
            "members_start": float(m.n0[sel].sum()), "members_end": end["members"], "det_members_end": end["det_members"],
            "share_end_mean_cny": end["share_mean_cny"], "share_end_p95_cny": end["share_p95_cny"],
            "share_end_cv": end["share_sd_cny"] / end["share_mean_cny"] if end["share_mean_cny"] > 0 else None,
            "sustainable_share_cny": float(sus[p]), "sustainable_annual_share_cny": float(sus[p] * ppy),
            "sustainable_leverage_min": float(lev.min()) if lev is not None else None,
            "sustainable_leverage_max": float(lev.max()) if lev is not None else None,
            "stationary_share_cny": float(stat[p]), "sustainable_share_end_cny": float(sus_end[p]),
            "death_spiral": t_sp is not None, "death_spiral_period": t_sp,
            "death_spiral_mc_mean": t_mc is not None, "death_spiral_mc_mean_period": t_mc,
        })
        for b in bens:
            wb = float(weights[sel & (m.benefit == b)].sum())
            band_rows.append({"plan": name, "benefit_cny": float(b), "stationary_member_weight": wb,
                              "sustainable_leverage": float(leverage(b, sus[p], ppy)) if sus[p] > 0 else None})
    plans = pl.DataFrame(rows, schema_overrides={"death_spiral_period": pl.Int32, "share_end_cv": pl.Float64,
                                                 "sustainable_leverage_min": pl.Float64,
                                                 "sustainable_leverage_max": pl.Float64,
                                                 "death_spiral_mc_mean_period": pl.Int32})
    return plans, pl.DataFrame(band_rows, schema_overrides={"sustainable_leverage": pl.Float64})


def _leverage_frame(m: Model, periods: pl.DataFrame) -> pl.DataFrame:
    ppy = m.a.periods_per_year
    bands = pl.DataFrame({"plan": [m.plans[i] for i in m.plan_idx], "benefit_cny": m.benefit}).unique().sort(
        "plan", "benefit_cny")

    def lev(col: str) -> pl.Expr:
        return pl.when(pl.col(col) > 0).then(leverage(pl.col("benefit_cny"), pl.col(col), ppy))

    return (periods.select("plan", "period", "share_mean_cny", "share_p95_cny", "det_share_cny")
            .join(bands, on="plan").sort("plan", "benefit_cny", "period")
            .select("plan", "period", "benefit_cny", leverage_mean=lev("share_mean_cny"),
                    leverage_p95=lev("share_p95_cny"), det_leverage=lev("det_share_cny")))
