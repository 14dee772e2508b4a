"""Assumptions of the synthetic platform, all in one configurable dataclass.

Every number here that is not taken from ``/work/shared/reference`` (the
Xianghubao rules and the CI2020 table) is an *assumption*, documented in
``docs/data.md``; change it with ``generate(..., name=value)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.conventions import BENEFIT_BANDS, FEE, WAITING_DAYS
from engine.errors import ConfigError

#: Planted risk groups: (label, name). Assignment rule in :func:`risk_group_codes`.
RISK_GROUPS: tuple[tuple[int, str], ...] = (
    (1, "employer"),
    (2, "tier1-3 organic/subsidy/referral"),
    (3, "tier4-5 organic/referral"),
    (4, "tier4-5 subsidy"),
)
CHANNELS: tuple[str, ...] = ("organic", "subsidy", "referral", "employer")
CITY_TIERS: tuple[int, ...] = (1, 2, 3, 4, 5)
CAUSES: tuple[str, ...] = ("cancer", "heart", "stroke", "organ_failure", "other")


def default_age_weights() -> tuple[float, ...]:
    """Relative weights of the age at joining, years 0..59 (an assumption).

    Notes
    -----
    18% children (0-17, enrolled by their parents; infants under 1 less often),
    82% adults 18-59 with a normal bell centred at 33, s.d. 9 (internet users are
    concentrated at 25-45), renormalised on 18-59.
    """
    ages = np.arange(60, dtype=float)
    child = np.where(ages < 18, 1.0, 0.0)
    child[0] = 0.5
    child = 0.18 * child / child.sum()
    adult = np.where(ages >= 18, np.exp(-0.5 * ((ages - 33.0) / 9.0) ** 2), 0.0)
    adult = 0.82 * adult / adult.sum()
    return tuple(float(x) for x in child + adult)


@dataclass(frozen=True)
class SynthConfig:
    """All assumptions of :func:`engine.synth.generate` (see docs/data.md).

    Attributes are grouped: plan rules (from the reference), growth, population
    mix, incidence, lapse, claims, identifiers.
    """

    # plan rules (reference/README.md: Xianghubao main plan)
    start: dt.date = dt.date(2018, 10, 16)
    end: dt.date = dt.date(2021, 12, 31)
    waiting_days: int = WAITING_DAYS
    fee: float = FEE
    benefit_young_cny: float = BENEFIT_BANDS[0][2]
    benefit_old_cny: float = BENEFIT_BANDS[1][2]
    benefit_age_limit: int = BENEFIT_BANDS[1][0]  # 300k up to age 39, 100k from 40
    exit_at_60: bool = True  # members leave on their 60th birthday
    plan_id: str | None = "main"

    # growth: daily join intensity = mix of exp(-t/tau) kernels and a flat floor
    join_burst_share: float = 0.30
    join_burst_tau_days: float = 30.0
    join_wave_share: float = 0.62
    join_wave_tau_days: float = 300.0
    join_floor_share: float = 0.08
    full_scale_peak_members: float = 100e6  # reference: about 100 million at the peak

    # population mix
    age_weights: tuple[float, ...] = field(default_factory=default_age_weights)
    male_share: float = 0.52
    tier_probs: tuple[float, ...] = (0.08, 0.17, 0.25, 0.27, 0.23)
    channel_probs: tuple[float, ...] = (0.45, 0.25, 0.20, 0.10)

    # incidence
    reference_table: str = "CI4"
    level: float = 0.5  # mutual-aid members vs the insured CI2020 table
    group_multipliers: tuple[float, ...] = (0.55, 1.0, 1.7, 2.9)
    select_factor: float = 0.6  # waiting period and first select_months after it
    select_months: int = 12
    antiselection_channel: str | None = "referral"
    antiselection_factor: float = 1.5  # just after the waiting period
    antiselection_days: int = 90

    # lapse: monthly hazard = base * channel_base + slope * elasticity(group) * share_cny_month
    lapse_base_monthly: float = 0.008
    lapse_share_slope: float = 0.002
    lapse_channel_base: tuple[float, ...] = (1.0, 2.0, 1.0, 0.5)  # subsidy "water" leaves faster
    lapse_group_elasticity: tuple[float, ...] = (1.5, 1.0, 0.8, 0.6)  # low risk more price-elastic
    exit_on_claim: bool = True  # a paid member leaves on the approval day

    # claims
    lag_days: tuple[int, int] = (20, 90)  # approval lag, uniform integer days
    cause_probs: tuple[float, ...] = (0.62, 0.14, 0.10, 0.06, 0.08)

    # dirty rows
    dirty: float = 0.0

    def replace(self, **overrides: Any) -> SynthConfig:
        """Return a copy with ``overrides``; an unknown name raises :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"synth: unknown parameter(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **overrides)

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the parameter when a value is invalid."""
        if self.end < self.start:
            raise ConfigError(f"synth: end {self.end} is before start {self.start}")
        if self.waiting_days < 0:
            raise ConfigError("synth: waiting_days must be >= 0")
        if not 0.0 <= self.dirty < 0.5:
            raise ConfigError(f"synth: dirty must be in [0, 0.5), got {self.dirty}")
        if self.level <= 0:
            raise ConfigError(f"synth: level must be > 0, got {self.level}")
        for name, n in (("age_weights", 60), ("tier_probs", 5), ("channel_probs", 4), ("cause_probs", len(CAUSES))):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (n,) or (v < 0).any() or v.sum() <= 0:
                raise ConfigError(f"synth: {name} must be {n} non-negative weights with a positive sum")
        for name in ("group_multipliers", "lapse_group_elasticity"):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (len(RISK_GROUPS),) or (v <= 0).any():
                raise ConfigError(f"synth: {name} must be {len(RISK_GROUPS)} positive numbers")
        if len(self.lapse_channel_base) != 4 or min(self.lapse_channel_base) <= 0:
            raise ConfigError("synth: lapse_channel_base must be 4 positive numbers")
        lo, hi = self.lag_days
        if not 0 <= lo <= hi:
            raise ConfigError(f"synth: lag_days must be (min, max) with 0 <= min <= max, got {self.lag_days}")
        if self.antiselection_channel is not None and self.antiselection_channel not in CHANNELS:
            raise ConfigError(f"synth: antiselection_channel must be one of {CHANNELS} or None")
        if self.join_burst_tau_days <= 0 or self.join_wave_tau_days <= 0:
            raise ConfigError("synth: join_*_tau_days must be > 0")
        shares = (self.join_burst_share, self.join_wave_share, self.join_floor_share)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ConfigError("synth: join_*_share must be non-negative with a positive sum")
        for name in ("select_factor", "antiselection_factor", "male_share", "fee", "lapse_base_monthly", "lapse_share_slope"):
            if getattr(self, name) < 0:
                raise ConfigError(f"synth: {name} must be >= 0")


def risk_group_codes(tier: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Planted risk group (1..4) from city tier (1..5) and channel code (index in CHANNELS).

    Notes
    -----
    employer (any tier) -> 1; tiers 1-3 otherwise -> 2; tiers 4-5 organic or
    referral -> 3; tiers 4-5 subsidy -> 4. The subsidy channel raises risk only in
    tiers 4-5: an interaction of tier and channel.
    """
    employer = channel == CHANNELS.index("employer")
    subsidy = channel == CHANNELS.index("subsidy")
    high_tier = tier >= 4
    g = np.where(employer, 1, np.where(~high_tier, 2, np.where(subsidy, 4, 3)))
    return g.astype(np.int64)
