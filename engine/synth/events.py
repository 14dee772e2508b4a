"""Claim events of the synthetic platform: the true hazard and exact Poisson thinning.

The true incidence of member i on day d (claims per exposure-year) is

    lambda_i(d) = level * q(age_i(d), sex_i) * m_i * sel_i(d) * anti_i(d)

with q the CI2020 reference rate, m_i the planted risk multiplier, sel the select
factor (waiting period and ``select_months`` after it) and anti the
anti-selection factor (channel ``antiselection_channel``, the first
``antiselection_days`` after the waiting period).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.conventions import DAYS_PER_YEAR
from engine.data.reference import reference_basis
from engine.synth.config import CAUSES, CHANNELS, SynthConfig
from engine.synth.population import Population, attained_age, day_number

MAX_AGE = 105


def rate_table(cfg: SynthConfig) -> np.ndarray:
    """``level`` x reference rate as an array [sex (0 = F, 1 = M), age 0..105]."""
    ref = reference_basis("ci2020", cfg.reference_table).sort("sex", "age")
    q = np.zeros((2, MAX_AGE + 1))
    for s, code in ((0, "F"), (1, "M")):
        part = ref.filter(ref["sex"] == code)
        q[s, part["age"].to_numpy()] = part["rate"].to_numpy()
    return cfg.level * q


def select_days(cfg: SynthConfig) -> int:
    """Length in days of the select period after the waiting period (months x 30.4375, rounded)."""
    return int(round(cfg.select_months * 30.4375))


def true_hazard(
    pop: Population, idx: np.ndarray, local_day: np.ndarray, cfg: SynthConfig, q: np.ndarray
) -> np.ndarray:
    """True annual incidence lambda_i(d) of members ``idx`` on local days ``local_day``.

    Notes
    -----
    sel = select_factor if d - join < waiting + select_days else 1;
    anti = antiselection_factor if channel is the anti-selection channel and
    waiting <= d - join < waiting + antiselection_days else 1.
    """
    age = np.minimum(attained_age(pop.birth[idx], local_day + day_number(cfg.start)), MAX_AGE)
    s = local_day - pop.join[idx]
    rate = q[pop.male[idx].astype(np.int64), age] * pop.multiplier[idx]
    sel = np.where(s < cfg.waiting_days + select_days(cfg), cfg.select_factor, 1.0)
    anti = np.ones_like(rate)
    if cfg.antiselection_channel is not None:
        a = CHANNELS.index(cfg.antiselection_channel)
        window = (pop.channel[idx] == a) & (s >= cfg.waiting_days) & (s < cfg.waiting_days + cfg.antiselection_days)
        anti = np.where(window, cfg.antiselection_factor, 1.0)
    return rate * sel * anti


def _range_max(q: np.ndarray) -> np.ndarray:
    """rm[s, a0, a1] = max(q[s, a0..a1]) for a0 <= a1 (loop over 106 ages, not members)."""
    n = q.shape[1]
    rm = np.zeros((2, n, n))
    for a0 in range(n):
        rm[:, a0, a0:] = np.maximum.accumulate(q[:, a0:], axis=1)
    return rm


@dataclass
class Events:
    """Claim arrays, sorted by (event day, member)."""

    member: np.ndarray  # member index
    event: np.ndarray  # local day
    approved: np.ndarray  # local day
    amount: np.ndarray  # CNY
    cause: np.ndarray  # index in CAUSES


def draw_events(pop: Population, cfg: SynthConfig, rng: np.random.Generator) -> Events:
    """Simulate every claim event (waiting period included) by thinning; may shorten exits.

    Notes
    -----
    Over member i's observed membership [join_i, min(exit_i, end + 1)) a
    dominating constant rate lambda*_i = max_age q x m_i x max(sel x anti) bounds
    lambda_i(d). Candidates: N_i ~ Poisson(lambda*_i T_i / 365.25) uniform times;
    each is kept with probability lambda_i(d) / lambda*_i (Lewis-Shedler thinning,
    exact for a piecewise-constant hazard). Several claims per member are possible.
    With ``exit_on_claim`` the member leaves on the approval day of its first
    eligible claim, and its later events (after that exit) are dropped.
    """
    n_days = day_number(cfg.end) - day_number(cfg.start) + 1
    q = rate_table(cfg)
    n = pop.join.size
    stop = np.minimum(pop.exit, n_days)
    dur = (stop - pop.join).astype(float)
    sex = pop.male.astype(np.int64)
    a0 = np.minimum(attained_age(pop.birth, pop.join + day_number(cfg.start)), MAX_AGE)
    a1 = np.minimum(attained_age(pop.birth, stop - 1 + day_number(cfg.start)), MAX_AGE)
    qmax = _range_max(q)[sex, a0, np.maximum(a1, a0)]
    smax = np.full(n, max(cfg.select_factor, 1.0))
    if cfg.antiselection_channel is not None:
        f = cfg.antiselection_factor
        anti = pop.channel == CHANNELS.index(cfg.antiselection_channel)
        smax = np.where(anti, max(cfg.select_factor, 1.0, cfg.select_factor * f, f), smax)
    lam_max = qmax * pop.multiplier * smax
    counts = rng.poisson(lam_max * dur / DAYS_PER_YEAR)
    idx = np.repeat(np.arange(n, dtype=np.int64), counts)
    t = pop.join[idx] + rng.random(idx.size) * dur[idx]
    day = np.minimum(np.floor(t).astype(np.int64), stop[idx] - 1)
    keep = rng.random(idx.size) * lam_max[idx] < true_hazard(pop, idx, day, cfg, q)
    idx, day = idx[keep], day[keep]
    lo, hi = cfg.lag_days
    approved = day + rng.integers(lo, hi + 1, size=idx.size)
    cp = np.asarray(cfg.cause_probs, dtype=float)
    cause = rng.choice(len(CAUSES), size=idx.size, p=cp / cp.sum())
    order = np.lexsort((day, idx))
    idx, day, approved, cause = idx[order], day[order], approved[order], cause[order]
    if cfg.exit_on_claim and idx.size:
        elig = day >= pop.join[idx] + cfg.waiting_days
        e_idx = idx[elig]
        first = np.unique(e_idx, return_index=True)[1]
        pop.exit[e_idx[first]] = np.minimum(pop.exit[e_idx[first]], approved[elig][first])
        stay = day < pop.exit[idx]
        idx, day, approved, cause = idx[stay], day[stay], approved[stay], cause[stay]
    age = attained_age(pop.birth[idx], day + day_number(cfg.start))
    amount = np.where(age < cfg.benefit_age_limit, cfg.benefit_young_cny, cfg.benefit_old_cny)
    order = np.lexsort((idx, day))
    return Events(idx[order], day[order], approved[order], amount[order], cause[order])
