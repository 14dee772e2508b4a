"""Operating tempo (运营节奏): how fast a plan may grow without outrunning its members' expectations.

:func:`tempo` sweeps growth schedules for one plan through the projection's dynamics
(:mod:`engine.projection.dynamics`: joiners, waiting period, reporting lag, adaptive expectations,
price-elastic lapses), seeded, and recommends the fastest tempo that meets configurable
criteria. Model, criteria and limits: ``docs/tempo.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.projection.dynamics import compile_model, deterministic, simulate, stationary_shares
from engine.errors import ConfigError
from engine.projection.assumptions import make_assumptions, prepare_groups
from engine.projection._spiral import spiral_period
from engine.projection._tempo_result import TempoCriteria, TempoResult, _criteria
from engine.data._coerce import api_input

__all__ = ["TempoCriteria", "TempoResult", "tempo", "tempo_schedules", "tempo_sensitivity"]

RETENTION_YEARS = (1, 3, 5)

def tempo_schedules(n0: float, exit_per_period: float, horizon: int, *, growth: Sequence[float] | None = None,
                    periods_to_target: Sequence[float] | None = None, target_members: float | None = None,
                    multiples: Sequence[float] | None = None,
                    base_joiners: Sequence[float] | None = None) -> list[tuple[str, float, float, np.ndarray]]:
    """Joiner schedules (label, speed, growth per period, joiners per period) for each tempo.

    Notes
    -----
    A growth tempo g plans the membership sharing in period t, P_t = min(N_0 (1+g)^t, N_target)
    (P_{-1} = N_0), and recruits J_t = max(P_t - (1 - o) P_{t-1}, 0) joiners in period t
    (J_0 = o N_0: growth starts in period 1), o the base exit probability
    per period: the pool grows at g until it reaches the target, then joiners replace the
    *base* exits only (exits caused by surprise are not replaced). A time to target T
    is the growth ``g = (N_target / N_0)^(1/T) - 1``. A multiple k scales a base schedule:
    J_t = k * base_t. The speed used to order tempos is g, or k for multiples.
    """
    given = [x is not None for x in (growth, periods_to_target, multiples)]
    if sum(given) != 1:
        raise ConfigError("tempo: give exactly one of growth, periods_to_target or multiples")
    out: list[tuple[str, float, float, np.ndarray]] = []
    if multiples is not None:
        if base_joiners is None:
            raise ConfigError("tempo.multiples: needs a base joiners schedule (joiners.per_period)")
        base = np.zeros(horizon)
        arr = np.asarray(base_joiners, dtype=np.float64)[:horizon]
        base[:arr.size] = arr
        for k in multiples:
            if not (math.isfinite(k) and k >= 0):
                raise ConfigError(f"tempo.multiples: must be finite and >= 0, got {k}")
            out.append((f"x{k:g}", float(k), float("nan"), k * base))
        return out
    if target_members is None or not target_members > n0 > 0:
        raise ConfigError("tempo.target_members: must be given and exceed the plan's current members (> 0)")
    if periods_to_target is not None:
        gs = []
        for T in periods_to_target:
            if not T > 0:
                raise ConfigError(f"tempo.periods_to_target: must be > 0, got {T}")
            gs.append(((target_members / n0) ** (1.0 / T) - 1.0, f"T={T:g}"))
    else:
        gs = []
        for g in growth or ():
            if not (math.isfinite(g) and g >= 0):
                raise ConfigError(f"tempo.growth: must be finite and >= 0, got {g}")
            gs.append((float(g), f"g={g:g}"))
    t = np.arange(horizon + 1, dtype=np.float64)
    for g, label in gs:
        plan = np.minimum(n0 * np.exp(t * math.log1p(g)), target_members) if g > 0 else np.full(horizon + 1, n0)
        plan = np.concatenate([[n0], plan[:-1]])  # P_{-1}, P_0, ..., P_{H-1}
        j = np.maximum(plan[1:] - (1.0 - exit_per_period) * plan[:-1], 0.0)
        out.append((label, g, g, j))
    return out


@api_input(frames=("groups",))
def tempo(
    groups: pl.DataFrame,
    *,
    plan: str | None = None,
    growth: Sequence[float] | None = None,
    periods_to_target: Sequence[float] | None = None,
    multiples: Sequence[float] | None = None,
    target_members: float | None = None,
    criteria: TempoCriteria | Mapping[str, Any] | None = None,
    horizon: int = 120,
    n_scenarios: int = 200,
    seed: int = 0,
    settle_tol: float = 0.05,
    start: str = "steady",
    **projection: Any,
) -> TempoResult:
    """Sweep growth schedules for one plan and recommend the fastest acceptable tempo.

    Parameters
    ----------
    groups : polars DataFrame
        The projection's groups table (:func:`engine.groups_from_table`); ``members`` is
        the plan's membership at the start of the sweep.
    plan : str, optional
        The plan swept (required when the table has several).
    growth : sequence of float, optional
        Tempos as membership growth per period until ``target_members``.
    periods_to_target : sequence of float, optional
        Tempos as periods to reach ``target_members``.
    multiples : sequence of float, optional
        Tempos as multiples of the base joiners schedule ``joiners.per_period``.
    target_members : float
        Membership at which growth stops (growth and time-to-target forms).
    criteria : TempoCriteria or mapping
        Acceptance criteria (default: P95 surprise <= 50%, spiral probability < 5%).
    horizon, n_scenarios, seed :
        Periods projected, Monte Carlo scenarios per tempo, seed (each tempo uses the
        same seed, so its row does not depend on the other tempos swept).
    settle_tol : float
        Tolerance of "reached the sustainable share".
    start : {"steady", "as_given", "launch"}
        ``"steady"``: the plan's members start as a mature pool in its renewal steady
        state (tenures, waiting members and group mix such that, with no growth, the
        expected-value path is stationary and the share equals the expectation);
        ``"as_given"``: the groups table's ``members`` and ``waiting_members`` as the
        projection reads them (a start-up transient then mixes with the tempo's effect);
        ``"launch"``: a pool just launched, every member joined in period 0 (tenure 0).
    **projection :
        Any other :func:`engine.project` assumption (``waiting_periods``, ``lapse``,
        ``expectations``, ``elasticity``, ``spiral``, ``joiners`` ...).

    Returns
    -------
    TempoResult

    Notes
    -----
    Growth tempos recruit per group ``J_{g,t} = f_g [P_{t+1} - (1 - o_g) P_t]`` (f_g the
    plan's member mix, o_g the group's steady-state renewal rate: exits per member per
    period, lapses at base and claim exits), so each group grows at g and, once the
    target is reached, its base exits are replaced. Per scenario s the surprise path is ``R_{s,t} = share_{s,t} / max(X_{s,t}, floor)``
    with X the members' expected share (``X_{t+1} = X_t + speed (share_t - X_t)``), the
    quantity that drives lapses ``h = base * R^eps``. Peak surprise = max_t R_{s,t};
    the table gives its mean and P95 over scenarios. Retention after y years is, per group, the
    joiner-weighted mean over cohorts (joining in t0 <= H - y ppy) of the cohort's
    survival ``prod_k (1 - h_{t0+k}(k)) (1 - q_k)``, with q the expected claim exit
    probability at tenure k (0 while waiting, and when ``claimants_exit`` is false),
    averaged over groups with the member mix f_g; with zero elasticity it does not
    depend on the tempo. A death spiral is
    :func:`engine.projection._spiral.spiral_period` on the scenario's members and share paths.
    The fastest tempo meeting every criterion is recommended; the criterion that binds
    is the one failed by the next faster tempo.
    """
    crit = _criteria(criteria)
    a0 = make_assumptions(horizon=horizon, n_scenarios=n_scenarios, seed=seed, **projection)
    g = prepare_groups(groups, risk_flag_scores=a0.elasticity.risk_flag_scores)
    plan, g = _plan_groups(g, plan)
    m0 = compile_model(g, a0)
    n0 = float(g["members"].sum())
    mix = m0.mix
    hb = np.minimum(m0.hbase[:, -1], a0.lapse.max_hazard)
    q_ult = m0.mu0[:, -1] if a0.claimants_exit else np.zeros(m0.G)
    exit_pp = float(np.sum(mix * (1.0 - (1.0 - hb) * (1.0 - q_ult))))
    base = a0.joiners.per_period
    if start not in ("steady", "as_given", "launch"):
        raise ConfigError(f"tempo.start: must be 'steady', 'as_given' or 'launch', got {start!r}")
    n_ss, o_g = _steady_state(m0)
    mix_members = g["members"].to_numpy() / n0 if n0 > 0 else mix
    if start == "steady":
        exit_pp = float(np.sum(mix_members * o_g))
    if multiples is not None and isinstance(base, Mapping):
        base = base.get(plan)
    if multiples is not None and (base is None or callable(base)):
        raise ConfigError("tempo.multiples: joiners.per_period must be a number or a list for the base schedule")
    base_list = None if base is None else ([float(base)] * horizon if isinstance(base, int | float) else list(base))
    scheds = tempo_schedules(n0, exit_pp, horizon, growth=growth, periods_to_target=periods_to_target,
                             target_members=target_members, multiples=multiples, base_joiners=base_list)
    rows, paths = [], []
    sus = None
    for label, speed, gr, joiners in scheds:
        jspec = {"per_period": joiners.tolist(), "growth": 0.0, "then": a0.joiners.then if multiples is not None
                 else "stop"}
        a = a0.model_copy(update={"joiners": a0.joiners.model_copy(update=jspec)})
        m = compile_model(g, a)
        if start == "steady":
            m.n0 = n_ss
        elif start == "launch":
            m.n0 = np.zeros_like(m.n0)
            m.n0[:, 0] = g["members"].to_numpy()
        if multiples is None:  # per group: grow at g with the member mix, replace each group's own exits
            plan_path = _planned_path(joiners, n0, exit_pp)
            m.joiners = np.maximum(mix_members[None, :] * (plan_path[1:, None] - (1.0 - o_g[None, :])
                                                           * plan_path[:-1, None]), 0.0)
        if sus is None:
            sus = float(stationary_shares(m)[0][0])
        row, path = _one_tempo(m, sus, settle_tol, mix_members)
        ptt = None
        if multiples is None and gr > 0:
            x = math.log(target_members / n0) / math.log1p(gr)
            ptt = math.ceil(x - 1e-9) if x < 1e9 else None
        rows.append({"tempo": label, "speed": speed, "growth_per_period": None if multiples is not None else gr,
                     "periods_to_target": ptt, **row})
        paths.append(path.with_columns(pl.lit(label).alias("tempo")))
    table = pl.DataFrame(rows, schema_overrides={"growth_per_period": pl.Float64, "periods_to_target": pl.Int64,
                                                 "retained_1y": pl.Float64, "retained_3y": pl.Float64,
                                                 "retained_5y": pl.Float64, "periods_to_sustainable": pl.Int64})
    table = table.sort("speed", maintain_order=True)
    fails = [crit.failures(r) for r in table.iter_rows(named=True)]
    table = table.with_columns(pl.Series("meets_criteria", [not f for f in fails]),
                               pl.Series("fails", [", ".join(f) for f in fails], dtype=pl.String))
    recommended, binding = _recommend(table, fails)
    settings = {"plan": plan, "seed": seed, "n_scenarios": n_scenarios, "horizon": horizon,
                "target_members": target_members, "settle_tol": settle_tol,
                "assumptions": a0.model_dump(mode="json", exclude={"joiners"})}
    return TempoResult(table, pl.concat(paths).select("tempo", pl.exclude("tempo")), recommended, binding, crit,
                       float(sus or 0.0), settings)


def _plan_groups(g: pl.DataFrame, plan: str | None) -> tuple[str, pl.DataFrame]:
    """The plan swept (the only one when ``plan`` is None) and its rows of the groups table."""
    plans = g["plan"].unique(maintain_order=True).to_list()
    if plan is None:
        if len(plans) > 1:
            raise ConfigError(f"tempo: plan: the groups table has {len(plans)} plans; name one ({', '.join(plans)})")
        plan = plans[0]
    if plan not in plans:
        raise ConfigError(f"tempo: plan '{plan}' is not in the groups table")
    return plan, g.filter(pl.col("plan") == plan)


@api_input(frames=("groups",))
def tempo_sensitivity(groups: pl.DataFrame, *, elasticities: Sequence[float], education_speeds: Sequence[float],
                      adverse_selection: float | None = None, **kw: Any) -> pl.DataFrame:
    """The recommended tempo for every pair of the two behavioural assumptions.

    Parameters
    ----------
    groups : polars DataFrame
        As for :func:`tempo`.
    elasticities, education_speeds : sequences of float
        Values of ``elasticity.base`` and ``expectations.speed`` crossed (the other
        ``elasticity`` and ``expectations`` settings in ``kw`` are kept).
    adverse_selection : float, optional
        ``elasticity.adverse_selection`` (default: as in ``kw["elasticity"]``, else 0).
    **kw :
        Every other :func:`tempo` argument (tempos, target, criteria, seed ...).

    Returns
    -------
    polars.DataFrame
        One row per (elasticity, education_speed): ``recommended``, ``recommended_speed``
        (growth per period or multiple; null if none), ``binding``, the recommended
        tempo's ``peak_surprise_p95`` and ``spiral_prob``, and the tempo with the lowest P95 peak
        surprise (``least_surprise``, ``least_surprise_p95``), meeting the criteria or not.

    Notes
    -----
    Elasticity and education speed are not published figures (docs/tempo.md, "Limits"):
    the answer is reported as a range over them rather than a point.
    """
    el = kw.pop("elasticity", None)
    el = el.model_dump() if hasattr(el, "model_dump") else el
    el = dict(el) if isinstance(el, Mapping) else ({"base": el} if el is not None else {})
    if adverse_selection is not None:
        el["adverse_selection"] = adverse_selection
    ex = kw.pop("expectations", None)
    ex = ex.model_dump() if hasattr(ex, "model_dump") else ex
    ex = dict(ex) if isinstance(ex, Mapping) else {}
    if not elasticities or not education_speeds:
        raise ConfigError("tempo sensitivity: give at least one elasticity and one education_speed")
    rows = []
    for e in elasticities:
        for v in education_speeds:
            r = tempo(groups, elasticity={**el, "base": float(e)}, expectations={**ex, "speed": float(v)}, **kw)
            rec = r.table.filter(pl.col("tempo") == r.recommended) if r.recommended else None
            least = r.table.sort("peak_surprise_p95", maintain_order=True).row(0, named=True)
            rows.append({"elasticity": float(e), "education_speed": float(v), "recommended": r.recommended,
                         "recommended_speed": float(rec["speed"][0]) if rec is not None else None,
                         "binding": r.binding,
                         "peak_surprise_p95": float(rec["peak_surprise_p95"][0]) if rec is not None else None,
                         "spiral_prob": float(rec["spiral_prob"][0]) if rec is not None else None,
                         "least_surprise": least["tempo"], "least_surprise_p95": least["peak_surprise_p95"]})
    return pl.DataFrame(rows, schema_overrides={"recommended": pl.String, "recommended_speed": pl.Float64,
                                                "peak_surprise_p95": pl.Float64, "spiral_prob": pl.Float64})


def _recommend(table: pl.DataFrame, fails: list[list[str]]) -> tuple[str | None, str]:
    names = table["tempo"].to_list()
    ok = [i for i, f in enumerate(fails) if not f]
    if not ok:
        return None, f"no tempo meets the criteria; the slowest fails {', '.join(fails[0]) or '-'}"
    best = ok[-1]
    if best == len(names) - 1:
        return names[best], "no criterion binds within the sweep: the fastest tempo tried passes"
    nxt = best + 1
    return names[best], f"{', '.join(fails[nxt])} (fails at the next faster tempo {names[nxt]})"


def _steady_state(m: Any) -> tuple[np.ndarray, np.ndarray]:
    """Renewal steady state of each group (members by tenure at the start of a period) and its renewal rate.

    A joiner's cohort c_0 = 1, c_{tau+1} = c_tau (1 - q_tau)(1 - h_tau) (q = 0 while
    waiting), the last bucket holding c_{T-1} / (1 - s_ult). Per member of group g:
    o_g = 1 / (sum_{tau<T-1} c_tau + c_{T-1} / (1 - s_ult)) joiners (= exits) per period.
    """
    a = m.a
    mu = m.mu0 * m.age_factor(0.0)[:, None]
    q = mu if a.claimants_exit else np.zeros_like(mu)
    surv = (1.0 - q) * (1.0 - np.minimum(m.hbase, a.lapse.max_hazard))
    T = mu.shape[1]
    c = np.ones_like(mu)
    for tau in range(1, T):
        c[:, tau] = c[:, tau - 1] * surv[:, tau - 1]
    tail = c[:, -1] / np.maximum(1.0 - surv[:, -1], 1e-15)
    denom = c[:, :-1].sum(axis=1) + tail
    members = m.n0.sum(axis=1)
    J = members / denom
    n = np.zeros_like(mu)
    n[:, 1:T - 1] = J[:, None] * c[:, 1:T - 1]
    n[:, T - 1] = J * tail
    return n, 1.0 / denom


def _planned_path(joiners: np.ndarray, n0: float, exit_pp: float) -> np.ndarray:
    """Planned membership P_{-1}..P_{H-1} implied by a schedule built as J_t = P_t - (1 - o) P_{t-1}."""
    p = np.empty(joiners.size + 1)
    p[0] = n0
    for t, j in enumerate(joiners):
        p[t + 1] = j + (1.0 - exit_pp) * p[t]
    return p


def _one_tempo(m: Any, sus: float, settle_tol: float, mix_members: np.ndarray) -> tuple[dict[str, Any], pl.DataFrame]:
    """Simulate one tempo: deterministic path and seeded Monte Carlo (one plan)."""
    a = m.a
    H, S, ppy = a.horizon, a.n_scenarios, a.periods_per_year
    det = deterministic(m)
    rng = np.random.default_rng(np.random.SeedSequence(a.seed))
    rec = {k: np.empty((H, S)) for k in ("share", "expected_share", "members", "lapses")}

    def record(t: int, q: dict[str, np.ndarray]) -> None:
        for k in rec:
            rec[k][t] = q[k][:, 0]

    simulate(m, S, rng.poisson, record)
    floor = a.expectations.floor_cny
    ratio = rec["share"] / np.maximum(rec["expected_share"], floor)
    peak = ratio.max(axis=0)
    det_ratio = det["share"][:, 0] / np.maximum(det["expected_share"][:, 0], floor)
    lap = np.divide(rec["lapses"], rec["members"], out=np.zeros_like(rec["lapses"]), where=rec["members"] > 0)
    peak_lap = lap.max(axis=0)
    rule = a.spiral
    thr = dict(window=rule.window or ppy, members_drop=rule.members_drop, share_rise=rule.share_rise,
               overshoot=rule.overshoot, persistence=rule.persistence, min_periods=rule.min_periods)
    spirals = sum(spiral_period(rec["members"][:, s], rec["share"][:, s], sus, **thr) is not None for s in range(S))
    ret = _retention(m, ratio, mix_members)
    dev = np.abs(det["share"][:, 0] / sus - 1.0) > settle_tol if sus > 0 else np.ones(H, dtype=bool)
    settle = None if dev[-1] else (int(np.nonzero(dev)[0][-1]) + 1 if dev.any() else 0)
    lap_mean = float(peak_lap.mean())
    row = {"peak_surprise_mean": float(peak.mean()),
           "peak_surprise_p95": float(np.quantile(peak, 0.95, method="inverted_cdf")),
           "det_peak_surprise": float(det_ratio.max()),
           "dilution_min_share_ratio": float(det["share"][:, 0].min() / sus) if sus > 0 else None,
           "peak_lapse_per_period": lap_mean, "peak_lapse_annual": 1.0 - (1.0 - lap_mean) ** ppy,
           **{f"retained_{y}y": ret[y] for y in RETENTION_YEARS},
           "spiral_prob": spirals / S, "periods_to_sustainable": settle,
           "members_end": float(rec["members"][-1].mean()), "det_members_end": float(det["members"][-1, 0])}
    path = pl.DataFrame({"period": np.arange(H, dtype=np.int32), "det_members": det["members"][:, 0],
                         "det_share_cny": det["share"][:, 0], "det_expected_share_cny": det["expected_share"][:, 0],
                         "members_mean": rec["members"].mean(axis=1), "share_mean_cny": rec["share"].mean(axis=1),
                         "surprise_p95": np.quantile(ratio, 0.95, axis=1, method="inverted_cdf"),
                         "sustainable_share_cny": np.full(H, sus)})
    return row, path


def _retention(m: Any, ratio: np.ndarray, mix_members: np.ndarray) -> dict[int, float | None]:
    """Joiner-weighted cohort survival after 1, 3, 5 years, mean over scenarios (see :func:`tempo`).

    Claim exits use the incidence at the start (no ageing or trend).
    """
    a = m.a
    H, ppy = a.horizon, a.periods_per_year
    S = ratio.shape[1]
    T = m.hbase.shape[1]
    q = m.mu0 if a.claimants_exit else np.zeros_like(m.mu0)  # (G, T) expected claim exit by tenure
    J = m.joiners  # (H, G)
    out: dict[int, float | None] = {}
    for y in RETENTION_YEARS:
        K = y * ppy
        n_coh = H - K
        if n_coh <= 0 or float(J[:n_coh].sum()) <= 0:
            out[y] = None
            continue
        w = J[:n_coh]  # (n_coh, G)
        wg = w.sum(axis=0)
        by_group = np.zeros(m.G)
        for gi in np.nonzero(wg > 0)[0]:  # one group at a time: memory n_coh x S
            surv = np.ones((n_coh, S))
            for k in range(K):
                tau = min(k, T - 1)
                r = ratio[k:k + n_coh]  # (n_coh, S): the ratio in period t0 + k
                h = np.minimum(m.hbase[gi, tau] * r ** m.eps[gi], a.lapse.max_hazard)
                surv *= (1.0 - q[gi, tau]) * (1.0 - h)
            by_group[gi] = float((surv * w[:, gi:gi + 1]).sum(axis=0).mean())
        fg = np.where(wg > 0, mix_members, 0.0)
        if fg.sum() <= 0:
            out[y] = None
            continue
        out[y] = float(np.sum(fg * by_group / np.where(wg > 0, wg, 1.0)) / fg.sum())
    return out


def tempo_sections(raw: dict[str, Any], source: Any, tempo_keys: set[str],
                   fixed: Sequence[str] = ("horizon", "n_scenarios", "scenarios", "seed")) -> tuple[dict, dict]:
    """The ``[tempo]`` options and the ``[projection]`` assumptions of a tempo TOML, checked.

    Unknown ``[tempo]`` keys are refused (``scenarios`` is the TOML name of ``n_scenarios``);
    ``fixed`` keys belong to ``[tempo]`` and are refused in ``[projection]``, whose assumptions
    are validated by :func:`make_assumptions`. Errors are one :class:`ConfigError` line naming
    ``source`` and the key.
    """
    t = dict(raw.get("tempo") or {})
    bad = set(t) - tempo_keys
    if bad:
        raise ConfigError(f"{source}: tempo.{sorted(bad)[0]}: unknown key (one of {', '.join(sorted(tempo_keys))})")
    if "scenarios" in t:
        t["n_scenarios"] = t.pop("scenarios")
    kw = dict(raw.get("projection") or {})
    for k in fixed:
        if k in kw:
            raise ConfigError(f"{source}: projection.{k}: set it in [tempo]")
    try:
        make_assumptions(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: projection.{exc}") from None
    return t, kw
