"""Vectorised cohort dynamics of the share projection (internal to ``engine.projection._project``).

State: members ``n[s, g, tau]`` by scenario s, group g and tenure bucket tau
(completed periods since joining; the last bucket holds every longer tenure).
One period t, in this order (all arrays over scenarios x groups at once):

1. joiners enter tenure 0 (schedule, or the previous period's exits under "replace");
2. sharing members ``N_p`` of plan p = all members; eligible = tenure >= w;
3. expected claims ``m_g = sum_{tau >= w} n[g, tau] * mu[g, tau]`` with
   ``mu = rate_g * select[tau] * (1 + ageing_g) ** (t / ppy) * trend_g[t // ppy] / ppy``;
4. claims incurred ``K_g ~ Poisson(m_g)`` (deterministic path: ``K_g = m_g``);
5. claims paid in t are those incurred in ``t - lag``; the share is
   ``sum_g paid_g * min((1 + fee) * B_g / N_p, per_claimant_cap)``, then the
   annual cap truncates the cumulative share of the (projection) year; the
   excess is the platform's;
6. claimants leave (cover ends with the claim), pro rata over eligible tenures;
7. lapses: ``h = min(base_g * tenure_factor[tau] * (share / max(expected, floor)) ** eps_g, max_hazard)``,
   applied as expected fractions given the scenario's share path;
8. expectations: ``expected <- expected + speed * (share - expected)``;
9. tenures advance by one period.

Random numbers: scenarios are laid out in fixed blocks of ``BLOCK`` rows; block b
draws from ``default_rng(SeedSequence(seed).spawn(n_blocks)[b])`` period after
period, so the result does not depend on how blocks are grouped into chunks.
Sums over plans use ``np.add.reduceat`` and sums over scenarios are taken per
block in block order, so the bytes do not depend on the chunk size either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.projection.assumptions import ProjectionAssumptions
from engine.plans.sharing import capped_share, member_share

BLOCK = 256

#: per-plan quantities recorded each period (scenario rows x plans)
QUANTITIES = ("members", "eligible", "joiners", "expected_claims", "claims", "paid_claims", "share",
              "share_uncapped", "platform_paid", "cap_binds", "lapses", "claimant_exits", "expected_share", "members_paid",
              "cap_reached")


@dataclass
class Model:
    """The groups and assumptions compiled to arrays (G groups sorted by plan, T tenure buckets)."""

    plans: list[str]
    plan_idx: np.ndarray      # (G,) plan of each group
    starts: np.ndarray        # (P,) first group of each plan (groups are contiguous by plan)
    benefit: np.ndarray       # (G,)
    rate: np.ndarray          # (G,) annual incidence
    eps: np.ndarray           # (G,) lapse elasticity
    ageing: np.ndarray        # (G,) annual drift of incidence
    mix: np.ndarray           # (G,) joiner mix, normalised within each plan
    n0: np.ndarray            # (G, T) initial members by tenure
    mu0: np.ndarray           # (G, T) per-period claim probability before ageing, 0 in the waiting period
    hbase: np.ndarray         # (G, T) base lapse hazard per period (before the max_hazard cap)
    joiners: np.ndarray       # (H, G) scheduled joiners
    replace: np.ndarray       # (H, P) 1.0 where the plan recruits its previous period's exits
    trend: np.ndarray         # (Y, G) incidence multiplier by projection year (last row thereafter)
    a: ProjectionAssumptions

    @property
    def G(self) -> int:
        return int(self.benefit.size)

    @property
    def P(self) -> int:
        return len(self.plans)

    def by_plan(self, x: np.ndarray) -> np.ndarray:
        """Sum a (S, G) array over the groups of each plan -> (S, P)."""
        return np.add.reduceat(x, self.starts, axis=1)

    def age_factor(self, t: float) -> np.ndarray:
        """Incidence multiplier of period t: annual drift times the trend table's factor for t's year."""
        year = min(int(t // self.a.periods_per_year), self.trend.shape[0] - 1)
        return (1.0 + self.ageing) ** (t / self.a.periods_per_year) * self.trend[year]


def _by_tenure(spec: list[float] | None, T: int, what: str) -> np.ndarray:
    """A per-tenure table of length T: entry tau, the last entry thereafter (1 if empty)."""
    vals = [1.0] if not spec else list(spec)
    if any((not np.isfinite(v)) or v < 0 for v in vals):
        raise ConfigError(f"{what}: factors must be finite and >= 0")
    out = np.array([vals[min(i, len(vals) - 1)] for i in range(T)], dtype=np.float64)
    return out


def compile_model(groups: pl.DataFrame, a: ProjectionAssumptions) -> Model:
    """Turn the validated groups table (``prepare_groups``) and assumptions into arrays."""
    ppy, w, H = a.periods_per_year, a.waiting_periods, a.horizon
    sel = a.select_factors
    sel_len = max((len(v) for v in sel.values()), default=0) if isinstance(sel, dict) else len(sel or [])
    T = max(w, sel_len, len(a.lapse.tenure_factors), 1) + 1
    plans_col = groups["plan"].to_list()
    plans = list(dict.fromkeys(plans_col))
    plan_idx = np.array([plans.index(p) for p in plans_col], dtype=np.int64)
    starts = np.array([plans_col.index(p) for p in plans], dtype=np.int64)
    G = groups.height
    rate = groups["rate"].to_numpy().astype(np.float64)
    benefit = groups["benefit_cny"].to_numpy().astype(np.float64)
    names = groups["group"].to_list()
    # select factors per group and tenure; zero incidence inside the waiting period
    mu0 = np.empty((G, T))
    for g in range(G):
        if isinstance(sel, dict):
            if names[g] not in sel and "*" not in sel:
                raise ConfigError(f"select_factors: no entry for group '{names[g]}' (and no '*')")
            spec = sel.get(names[g], sel.get("*"))
        else:
            spec = sel
        mu0[g] = rate[g] * _by_tenure(spec, T, "select_factors") / ppy
    mu0[:, :w] = 0.0
    if float(mu0.max(initial=0.0)) >= 1.0:
        raise ConfigError("rate: rate * select factor / periods_per_year must be < 1 (a per-period probability)")
    # initial members: waiting members spread evenly over tenures 0..w-1, the rest past every select period
    n0 = np.zeros((G, T))
    waiting = groups["waiting_members"].to_numpy()
    if w > 0:
        n0[:, :w] = (waiting / w)[:, None]
    elif float(waiting.sum()) > 0:
        raise ConfigError("waiting_members: must be 0 when waiting_periods is 0")
    n0[:, T - 1] += groups["members"].to_numpy() - waiting
    # lapses
    base = a.lapse.base_annual
    chans = groups["channel"].to_list()
    if isinstance(base, Mapping):
        missing = [c for c in chans if c not in base and "*" not in base]
        if missing:
            raise ConfigError(f"lapse.base_annual: no rate for channel '{missing[0]}' (and no '*')")
        ann = np.array([base.get(c, base.get("*")) for c in chans], dtype=np.float64)
    else:
        ann = np.full(G, float(base))
    if np.any((ann < 0) | (ann >= 1)):
        raise ConfigError("lapse.base_annual: annual lapse probabilities must be in [0, 1)")
    hper = 1.0 - (1.0 - ann) ** (1.0 / ppy)
    hbase = hper[:, None] * _by_tenure(a.lapse.tenure_factors, T, "lapse.tenure_factors")[None, :]
    # elasticity with adverse selection
    if "elasticity" in groups.columns:
        eps = groups["elasticity"].to_numpy().astype(np.float64)
    else:
        eps = a.elasticity.base * groups["risk"].to_numpy() ** (-a.elasticity.adverse_selection)
    # joiner mix (within plan) and schedule
    mixraw = groups["joiner_mix"].to_numpy().astype(np.float64)
    tot = np.add.reduceat(mixraw, starts)[plan_idx]
    mix = np.divide(mixraw, tot, out=np.full(G, 0.0), where=tot > 0)
    joiners, replace = _joiner_schedule(a, plans, plan_idx, mixraw, mix, H)
    trend = _trend_table(a.incidence_trend, names)
    if float(mu0.max(initial=0.0)) * float(trend.max()) * float(
            ((1.0 + groups["ageing_annual"].to_numpy()) ** (H / ppy)).max()) >= 1.0:
        raise ConfigError("rate: the aged per-period claim probability reaches 1 within the horizon")
    return Model(plans, plan_idx, starts, benefit, rate, eps, groups["ageing_annual"].to_numpy().astype(float),
                 mix, n0, mu0, hbase, joiners, replace, trend, a)


def _trend_table(spec: list[float] | dict[str, list[float]] | None, names: list[str]) -> np.ndarray:
    """(Y, G) incidence multipliers by projection year from a list (all groups) or {group: list, "*": list}."""
    if spec is None:
        return np.ones((1, len(names)))
    cols = []
    for g in names:
        if isinstance(spec, dict):
            if g not in spec and "*" not in spec:
                raise ConfigError(f"incidence_trend: no entry for group '{g}' (and no '*')")
            cols.append(list(spec.get(g, spec.get("*"))))
        else:
            cols.append(list(spec))
    if any(len(c) == 0 for c in cols):
        raise ConfigError("incidence_trend: a factor list is empty")
    Y = max(len(c) for c in cols)
    out = np.array([[c[min(y, len(c) - 1)] for c in cols] for y in range(Y)], dtype=np.float64)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ConfigError("incidence_trend: factors must be finite and >= 0")
    return out


def _joiner_schedule(a: ProjectionAssumptions, plans: list[str], plan_idx: np.ndarray, mixraw: np.ndarray,
                     mix: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    j = a.joiners
    growth = (1.0 + j.growth) ** np.arange(H)

    def series(spec: object, what: str) -> tuple[np.ndarray, np.ndarray]:
        vals = np.zeros(H)
        after = np.ones(H, dtype=bool)
        if spec is None:
            pass
        elif callable(spec):
            vals = np.array([float(spec(t)) for t in range(H)])
            after[:] = False
        elif isinstance(spec, int | float):
            vals[:] = float(spec)
            after[:] = False
        else:
            arr = np.asarray(spec, dtype=np.float64)[:H]
            vals[: arr.size] = arr
            after[: arr.size] = False
        if not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise ConfigError(f"{what}: joiners must be finite and >= 0")
        return vals * growth, after & (j.then == "replace")

    if isinstance(j.per_period, dict):
        unknown = set(j.per_period) - set(plans)
        if unknown:
            raise ConfigError(f"joiners.per_period: plan '{sorted(unknown)[0]}' is not in the groups table")
        out = np.zeros((H, plan_idx.size))
        rep = np.zeros((H, len(plans)))
        for p, name in enumerate(plans):
            vals, after = series(j.per_period.get(name), f"joiners.per_period.{name}")
            out[:, plan_idx == p] = vals[:, None] * mix[plan_idx == p][None, :]
            rep[:, p] = after
        return out, rep
    vals, after = series(j.per_period, "joiners.per_period")
    tot = mixraw.sum()
    gmix = mixraw / tot if tot > 0 else np.full(mixraw.size, 1.0 / mixraw.size)
    return vals[:, None] * gmix[None, :], np.repeat(after.astype(np.float64)[:, None], len(plans), axis=1)


Draw = Callable[[np.ndarray], np.ndarray]


def _squeeze_tenure(x: np.ndarray) -> np.ndarray:
    """(G, T') -> (T', 1, G), or (1, 1, G) when every tenure has the same value."""
    if x.shape[1] == 0 or np.all(x == x[:, :1]):
        return x[:, :1].T[:, None, :].copy()
    return x.T[:, None, :].copy()


def simulate(m: Model, rows: int, draw: Draw, record: Callable[[int, dict[str, np.ndarray]], None]) -> None:
    """Run the dynamics for ``rows`` scenarios; ``draw(mean)`` turns expected into incurred claims.

    ``record(t, q)`` receives, each period, the per-plan quantities ``q[name]`` of
    shape (rows, P) named in :data:`QUANTITIES`. Members are held as ``n[tau, s, g]``
    (tenure first, so sums over tenure add contiguous planes).
    """
    a = m.a
    S, G, P = rows, m.G, m.P
    T = m.n0.shape[1]
    w, lag = a.waiting_periods, a.reporting_lag_periods
    sp = a.expectations
    mu_el = _squeeze_tenure(m.mu0[:, w:])       # (Te, 1, G) eligible tenures, or (1, 1, G)
    mu_const = mu_el.shape[0] == 1
    hb = _squeeze_tenure(m.hbase)               # (T, 1, G) or (1, 1, G)
    elastic = bool(np.any(m.eps != 0))
    n = np.broadcast_to(m.n0.T[:, None, :], (T, S, G)).copy()
    pipe = None
    if lag:
        m_start = np.broadcast_to((m.n0 * m.mu0).sum(axis=1), (S, G))
        pipe = np.stack([draw(np.ascontiguousarray(m_start)) for _ in range(lag)])
    X = None if sp.initial_share_cny is None else np.full((S, P), float(sp.initial_share_cny))
    cum = np.zeros((S, P))
    exits_prev = np.zeros((S, P))
    zeros_sp = np.zeros((S, P))
    for t in range(a.horizon):
        join = np.broadcast_to(m.joiners[t], (S, G))
        if m.replace[t].any():
            join = join + (exits_prev * m.replace[t])[:, m.plan_idx] * m.mix
        n[0] += join
        Ng = n.sum(axis=0)
        Eg = n[w:].sum(axis=0) if w else Ng.copy()
        age = m.age_factor(t)
        mu = mu_el * age
        if mu_const:
            mexp = Eg * mu[0]
        else:
            mexp = (n[w:] * mu).sum(axis=0)
        K = draw(mexp)
        if pipe is not None:
            paid = pipe[t % lag].copy()
            pipe[t % lag] = K
        else:
            paid = K
        N, share_unc, share, excess_amount, binds = _period_shares(m, t, paid, Ng, cum, zeros_sp)
        reached = zeros_sp if a.annual_cap is None else (cum >= a.annual_cap * (1 - 1e-12)).astype(np.float64)
        if a.claimants_exit:
            cex_g = _claimant_exits(n, w, K, mexp, mu, Eg, mu_const)
            cexits = m.by_plan(cex_g)
        else:
            cex_g = None
            cexits = zeros_sp
        if X is None:
            X = share.copy()
        expected_now = X
        lapses = m.by_plan(_lapse(m, n, hb, elastic, Ng, cex_g, share, X))
        X = X + sp.speed * (share - X)
        exits_prev = lapses + cexits
        n[T - 1] += n[T - 2]
        if T > 2:
            n[1:T - 1] = n[0:T - 2]
        n[0] = 0.0
        record(t, {"members": N, "eligible": m.by_plan(Eg), "joiners": m.by_plan(np.ascontiguousarray(join)),
                   "expected_claims": m.by_plan(mexp), "claims": m.by_plan(K), "paid_claims": m.by_plan(paid),
                   "share": share, "share_uncapped": share_unc, "platform_paid": excess_amount, "cap_binds": binds,
                   "lapses": lapses, "claimant_exits": cexits, "expected_share": expected_now, "members_paid": share * N,
                   "cap_reached": reached})


def _period_shares(
    m: Model, t: int, paid: np.ndarray, Ng: np.ndarray, cum: np.ndarray, zeros_sp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sharing members, uncapped and capped share, platform payment and annual-cap flag per plan in period t.

    Notes
    -----
    ``share_unc = sum_g paid_g min((1 + fee) B_g / N_p, cap)``; then
    ``share = min(share_unc, annual_cap - cum)`` with ``cum`` (updated in place)
    reset at the first period of each projection year. The platform pays the
    excess over the caps times N, and the whole cost where nobody shares.
    The annual cap binds in period t when ``share_unc > annual_cap - cum``, on the share
    after the per-claimant cap: the projection's ``annual_cap_binds_prob`` is the mean of
    this flag over the scenarios. The annual cap binds in a projection year when the year-to-date
    share reaches it (``cap_reached`` = cum >= annual_cap after period t; at the year's last period,
    P(annual cap binds in the year), :func:`engine.projection._caps.caps_cost_projected`): the event
    of the plan comparison's deterministic ``annual_cap_binding`` (periods_per_year x share after
    the per-claimant cap > annual cap: the expected path reaches the cap).
    """
    a = m.a
    N = m.by_plan(Ng)
    Np = N[:, m.plan_idx]
    per_claim = member_share(m.benefit, Np, a.fee, empty=0.0)
    capped = capped_share(per_claim, a.per_claimant_cap)
    share_unc = m.by_plan(paid * capped)
    excess_amount = m.by_plan(paid * (per_claim - capped)) * N
    if not bool((Np > 0).all()):  # nobody left to share: the platform pays
        excess_amount += m.by_plan(paid * np.where(Np > 0, 0.0, (1.0 + a.fee) * m.benefit))
    if a.annual_cap is not None:
        if t % a.periods_per_year == 0:
            cum[:] = 0.0
        allowed = np.maximum(a.annual_cap - cum, 0.0)
        binds = (share_unc > allowed).astype(np.float64)
        share = capped_share(share_unc, allowed)  # the annual cap: what is left of it this year
        cum += share
        excess_amount += (share_unc - share) * N
    else:
        binds = zeros_sp
        share = share_unc
    return N, share_unc, share, excess_amount, binds


def _claimant_exits(
    n: np.ndarray, w: int, K: np.ndarray, mexp: np.ndarray, mu: np.ndarray, Eg: np.ndarray, mu_const: bool
) -> np.ndarray:
    """Remove claimants from the eligible tenures of ``n`` (in place); return the exits per scenario and group.

    Notes
    -----
    Each eligible tenure keeps ``max(1 - mu_tau K / mexp, 0)`` of its members.
    """
    S, G = mexp.shape
    frac = np.divide(K, mexp, out=np.zeros((S, G)), where=mexp > 0)
    keep = np.maximum(1.0 - mu * frac, 0.0)
    if mu_const:
        n[w:] *= keep
        return Eg * (1.0 - keep[0])
    before = n[w:].sum(axis=0)
    n[w:] *= keep
    return before - n[w:].sum(axis=0)


def _lapse(
    m: Model,
    n: np.ndarray,
    hb: np.ndarray,
    elastic: bool,
    Ng: np.ndarray,
    cex_g: np.ndarray | None,
    share: np.ndarray,
    X: np.ndarray,
) -> np.ndarray:
    """Remove lapses from ``n`` (in place); return the lapses per scenario and group.

    Notes
    -----
    Hazard ``h = min(h_base (share / max(X, floor))^eps, max_hazard)`` with X
    the expected share (``h = min(h_base, max_hazard)`` without elasticity);
    ``hb`` is the base hazard by tenure from :func:`_squeeze_tenure`.
    """
    a = m.a
    hmax = a.lapse.max_hazard
    if elastic:
        ratio = share / np.maximum(X, a.expectations.floor_cny)
        h = np.minimum(hb * (ratio[:, m.plan_idx] ** m.eps), hmax)
    else:
        h = np.minimum(hb, hmax)
    if hb.shape[0] == 1:
        alive = Ng if cex_g is None else Ng - cex_g
        lap_g = alive * h[0]
        n *= 1.0 - h
        return lap_g
    lap = n * h
    lap_g = lap.sum(axis=0)
    n -= lap
    return lap_g


def deterministic(m: Model) -> dict[str, np.ndarray]:
    """The expected-value path: claims equal their expectation. Returns name -> (H, P)."""
    out = {k: np.empty((m.a.horizon, m.P)) for k in QUANTITIES}

    def rec(t: int, q: dict[str, np.ndarray]) -> None:
        for k in QUANTITIES:
            out[k][t] = q[k][0]

    simulate(m, 1, lambda x: x.copy(), rec)
    return out


def stationary_shares(m: Model, at_period: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sustainable and renewal-stationary shares per plan, with the stationary group weights.

    Notes
    -----
    With no growth the expectation converges to the share, so the lapse ratio is
    1 and each group's per-period exit probability is
    ``o_g = 1 - (1 - q_g) (1 - h_g)`` (``q_g`` the ultimate claim probability if
    claimants exit, ``h_g`` the ultimate base hazard). Replacement joiners with
    the plan's mix ``m_g`` give the equilibrium weights ``n_g ∝ m_g / o_g`` and

    * sustainable share ``S* = (1 + fee) sum_g n_g mu_g B_g / sum_g n_g``, every
      member past the waiting period and select effects (docs/domain.md);
    * stationary share (the renewal steady state, replacements included): a
      joiner's cohort ``c_0 = 1, c_{tau+1} = c_tau (1 - q_tau)(1 - h_tau)``
      (``q = 0`` while waiting), geometric tail after the last bucket;
      ``S_stat = (1 + fee) sum_g m_g B_g sum_tau c_tau mu_tau / sum_g m_g sum_tau c_tau``.

    Elasticity and education speed do not enter: they shape the path and its
    stability, not the fixed point.
    """
    a = m.a
    age = m.age_factor(at_period)
    mu = m.mu0 * age[:, None]
    fee1 = 1.0 + a.fee
    q = mu if a.claimants_exit else np.zeros_like(mu)
    surv = (1.0 - q) * (1.0 - np.minimum(m.hbase, a.lapse.max_hazard))
    o_ult = np.maximum(1.0 - surv[:, -1], 1e-15)
    wts = m.mix / o_ult
    num = np.add.reduceat(wts * mu[:, -1] * m.benefit, m.starts)
    den = np.add.reduceat(wts, m.starts)
    sus = fee1 * np.divide(num, den, out=np.zeros(m.P), where=den > 0)
    T = mu.shape[1]
    c = np.ones_like(mu)
    for tau in range(1, T):
        c[:, tau] = c[:, tau - 1] * surv[:, tau - 1]
    tail = c[:, -1] / o_ult
    count = c[:, :-1].sum(axis=1) + tail
    claims = (c[:, :-1] * mu[:, :-1]).sum(axis=1) + tail * mu[:, -1]
    num2 = np.add.reduceat(m.mix * claims * m.benefit, m.starts)
    den2 = np.add.reduceat(m.mix * count, m.starts)
    stat = fee1 * np.divide(num2, den2, out=np.zeros(m.P), where=den2 > 0)
    weights = wts / np.maximum(np.add.reduceat(wts, m.starts)[m.plan_idx], 1e-300)
    return sus, stat, weights


def detect_spiral(members: np.ndarray, share: np.ndarray, lapses: np.ndarray | None, sustainable: np.ndarray | float,
                  window: int, members_drop: float = 0.05, share_rise: float = 0.05, overshoot: float = 0.10,
                  persistence: float = 0.9, min_periods: int = 3) -> int | None:
    """First period at which the death-spiral rule holds on one plan's path, else None.

    The rule is stated on the membership and share paths only (``lapses`` is not read):
    see :func:`engine.projection._spiral.spiral_period` for the conditions and their thresholds.
    """
    from engine.projection._spiral import spiral_period

    return spiral_period(members, share, sustainable, window=window, members_drop=members_drop,
                         share_rise=share_rise, overshoot=overshoot, persistence=persistence,
                         min_periods=min_periods)
