"""Members of the synthetic platform: joins, ages, factors, lapses (vectorised numpy).

Dates are int64 day numbers since 1970-01-01 throughout; no loop over members.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from engine.conventions import DAYS_PER_YEAR
from engine.cells.dates import EPOCH, attained_age, birthday, civil_from_days, day_number, days_from_civil, md_code  # noqa: F401 (re-exported)
from engine.synth.config import CHANNELS, SynthConfig, risk_group_codes


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month (1-12) and day (1-31) of int64 day numbers (:func:`engine.cells.dates.civil_from_days`).

    Many dates over a short span are converted once per distinct day, then looked up.
    """
    days = np.asarray(days, dtype=np.int64)
    if days.size > 100_000:  # many dates over a short span: compute the span once, then look up
        lo, hi = int(days.min()), int(days.max())
        if hi - lo < days.size // 10:
            y, m, d = civil_from_days(np.arange(lo, hi + 1, dtype=np.int64))
            i = days - lo
            return y[i], m[i], d[i]
    return civil_from_days(days)


def birthday_at(birth: np.ndarray, age: int) -> np.ndarray:
    """Day number of the ``age``-th birthday (29 February -> 1 March in a common year)."""
    yb, mb, db = ymd(birth)
    return birthday(yb + age, md_code(mb, db))


def month_index(local_day: np.ndarray, start: dt.date) -> np.ndarray:
    """Calendar-month index (0 = month of ``start``) of local days (days since ``start``)."""
    y, m, _ = ymd(local_day + day_number(start))
    return (y - start.year) * 12 + (m - start.month)


def join_weights(cfg: SynthConfig, n_days: int) -> np.ndarray:
    """Daily join probabilities over the window (sum 1).

    Notes
    -----
    w(t) = s_b k_b(t) + s_w k_w(t) + s_f / n, with k(t) = exp(-t/tau) / sum_t exp(-t/tau)
    over the window: a launch burst, a longer wave and a flat floor.
    """
    t = np.arange(n_days, dtype=float)
    kb = np.exp(-t / cfg.join_burst_tau_days)
    kw = np.exp(-t / cfg.join_wave_tau_days)
    w = cfg.join_burst_share * kb / kb.sum() + cfg.join_wave_share * kw / kw.sum() + cfg.join_floor_share / n_days
    return w / w.sum()


@dataclass
class Population:
    """Member arrays (local days = days since ``start``)."""

    join: np.ndarray  # local day of joining
    birth: np.ndarray  # absolute day number
    male: np.ndarray  # bool
    tier: np.ndarray  # int64 1..5
    channel: np.ndarray  # int64 index in CHANNELS
    group: np.ndarray  # int64 1..4
    multiplier: np.ndarray  # float64 true risk multiplier (non-age, non-select part)
    exit: np.ndarray  # local day of exit (first day no longer a member); >= n_days means none observed


def draw_population(n: int, cfg: SynthConfig, rng: np.random.Generator) -> Population:
    """Joins, birth dates, sex and rating factors; exits are filled by :func:`draw_exits`."""
    n_days = day_number(cfg.end) - day_number(cfg.start) + 1
    join = np.sort(rng.choice(n_days, size=n, p=join_weights(cfg, n_days))).astype(np.int64)
    aw = np.asarray(cfg.age_weights, dtype=float)
    age_years = rng.choice(60, size=n, p=aw / aw.sum())
    age_days = np.floor((age_years + rng.random(n)) * DAYS_PER_YEAR).astype(np.int64)
    age_days = np.maximum(age_days, 30)  # eligible from 30 days old
    birth = join + day_number(cfg.start) - age_days
    # guard: the age at joining must stay below 60 by the calendar convention
    too_old = attained_age(birth, join + day_number(cfg.start)) >= 60
    birth = np.where(too_old, birth + 2, birth)
    male = rng.random(n) < cfg.male_share
    tp = np.asarray(cfg.tier_probs, dtype=float)
    tier = rng.choice(5, size=n, p=tp / tp.sum()).astype(np.int64) + 1
    cp = np.asarray(cfg.channel_probs, dtype=float)
    channel = rng.choice(len(CHANNELS), size=n, p=cp / cp.sum()).astype(np.int64)
    group = risk_group_codes(tier, channel)
    mult = np.asarray(cfg.group_multipliers, dtype=float)[group - 1]
    exit_ = np.full(n, np.iinfo(np.int64).max // 4, dtype=np.int64)
    return Population(join, birth, male, tier, channel, group, mult, exit_)


def expected_share_path(
    pop: Population, cfg: SynthConfig, annual_cost: np.ndarray, n_months: int
) -> tuple[np.ndarray, np.ndarray]:
    """A rough expected monthly share (CNY per member) and members sharing, month by month.

    Parameters
    ----------
    pop : the population (joins and factors).
    annual_cost : per member, the expected annual claims cost at joining (level x
        reference rate x multiplier x benefit), ignoring ageing.
    n_months : months in the window.

    Returns
    -------
    share : float array (n_months,) of (1 + fee) x cost_m / sharing_m.
    sharing : float array (n_months,) of expected members sharing (no ageing out).

    Notes
    -----
    Cohorts are join months c with n_c joiners and mean cost k_c. Survivors S_c
    start at n_c in month c. In month m the eligible cohorts are those joined at
    least ceil(waiting / 30.4375) months before; cohorts still within
    ``select_months`` after the waiting period claim at ``select_factor``.
    cost_m = sum_eligible S_c k_c sel_c / 12; share_m = (1 + fee) cost_m / sum_c S_c;
    then S_c <- S_c exp(-h_m) with h_m = mean(base_i) + mean(slope_i) share_m.
    The loop runs over months, never over members.
    """
    cohort = month_index(pop.join, cfg.start)
    n_c = np.bincount(cohort, minlength=n_months).astype(float)[:n_months]
    cost_c = np.bincount(cohort, weights=annual_cost, minlength=n_months)[:n_months]
    k_c = np.divide(cost_c, n_c, out=np.zeros_like(cost_c), where=n_c > 0)
    base_mean = cfg.lapse_base_monthly * float(np.mean(np.asarray(cfg.lapse_channel_base)[pop.channel]))
    slope_mean = cfg.lapse_share_slope * float(np.mean(np.asarray(cfg.lapse_group_elasticity)[pop.group - 1]))
    wait_m = int(np.ceil(cfg.waiting_days / 30.4375))
    surv = np.zeros(n_months)
    share = np.zeros(n_months)
    sharing = np.zeros(n_months)
    idx = np.arange(n_months)
    for m in range(n_months):
        surv[m] += n_c[m]
        age_m = m - idx  # months since joining for each cohort
        elig = (age_m >= wait_m) & (idx <= m)
        sel = np.where(age_m < wait_m + cfg.select_months, cfg.select_factor, 1.0)
        cost = float(np.sum(surv * k_c * sel * elig)) / 12.0
        sharing[m] = surv[: m + 1].sum()
        share[m] = (1.0 + cfg.fee) * cost / sharing[m] if sharing[m] > 0 else 0.0
        surv[: m + 1] *= np.exp(-(base_mean + slope_mean * share[m]))
    return share, sharing


def draw_exits(pop: Population, cfg: SynthConfig, share: np.ndarray, rng: np.random.Generator) -> None:
    """Fill ``pop.exit`` by exact inversion of each member's piecewise-constant lapse hazard.

    Notes
    -----
    Member i's daily hazard on day d of month m(d) is
    h_i(d) = (b_i * base + e_i * slope * share_m) / days_in_month(m), b_i by channel,
    e_i by risk group. With E_i ~ Exp(1) and H_i the cumulative hazard, the lapse
    day is the first d with H_i(d) - H_i(join_i) >= E_i (``searchsorted``; one pass
    per distinct (b, e) pair, never per member). The exit is the earlier of the
    lapse and, if ``exit_at_60``, the 60th birthday.
    """
    n_days = day_number(cfg.end) - day_number(cfg.start) + 1
    days = np.arange(n_days, dtype=np.int64)
    mi = month_index(days, cfg.start)
    y, m, _ = ymd(days + day_number(cfg.start))
    # true days in month (the window may cut the first/last month)
    nxt = days_from_civil(y + (m == 12), np.where(m == 12, 1, m + 1), np.ones_like(m))
    dim = (nxt - days_from_civil(y, m, np.ones_like(m))).astype(float)
    hb = cfg.lapse_base_monthly / dim
    hs = cfg.lapse_share_slope * share[mi] / dim
    e_draw = rng.exponential(size=pop.join.size)
    exit_ = np.empty(pop.join.size, dtype=np.int64)
    bvec = np.asarray(cfg.lapse_channel_base, dtype=float)
    evec = np.asarray(cfg.lapse_group_elasticity, dtype=float)
    key = pop.channel * 10 + pop.group
    for k in np.unique(key):
        sel = key == k
        b = bvec[k // 10]
        e = evec[k % 10 - 1]
        cum = np.concatenate([[0.0], np.cumsum(b * hb + e * hs)])
        exit_[sel] = np.searchsorted(cum, cum[pop.join[sel]] + e_draw[sel], side="left")
    if cfg.exit_at_60:
        b60 = birthday_at(pop.birth, 60) - day_number(cfg.start)
        exit_ = np.minimum(exit_, b60)
    pop.exit = exit_
