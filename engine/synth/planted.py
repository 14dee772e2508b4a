"""Planted risk groups, generated directly as cells (and as members for assignment at a date).

A test bed for segmentation: members fall in a few groups with a flat incidence
inside each group, defined by rules on attained age, city tier and channel (at
least one group is an interaction of age and channel). The benefit changes at
age 40 (300,000 below, 100,000 from 40), as on Xianghubao. Everything is seeded.

Example
-------
>>> from engine.synth.planted import planted_platform
>>> p = planted_platform(1_000_000, seed=3, design="age_channel")
>>> p.cells.height, p.members.height
(4560, 1000000)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.conventions import DAYS_PER_YEAR
from engine.errors import ConfigError

#: Group designs: (name, rule, rate per mille); a row belongs to the first rule it matches.
#: Rules use the plan-rules format of ``RiskSegmenter(method="rules")``.
DESIGNS: dict[str, list[tuple[str, dict[str, Any], float]]] = {
    "age_channel": [  # employer members are riskier only below 40 (age x channel)
        ("young employer", {"age": [None, 39], "channel": ["employer"]}, 1.2),
        ("young", {"age": [None, 39]}, 0.4),
        ("middle", {"age": [40, 49]}, 1.6),
        ("older", {"age": [50, None]}, 3.2),
    ],
    "bands_tier": [  # tier matters in the middle band, subsidy members only from 50
        ("young", {"age": [None, 34]}, 0.4),
        ("middle tier 1-2", {"age": [35, 49], "city_tier": [1, 2]}, 0.8),
        ("middle", {"age": [35, 49]}, 1.6),
        ("older subsidy", {"age": [50, None], "channel": ["subsidy"]}, 3.2),
        ("older", {"age": [50, None]}, 2.0),
    ],
    "tier_channel": [  # tier 4-5 riskier in the middle band only, employer and referral members safer from 47
        ("young", {"age": [None, 32]}, 0.5),
        ("middle tier 4-5", {"age": [33, 46], "city_tier": [4, 5]}, 2.2),
        ("middle", {"age": [33, 46]}, 1.1),
        ("older employer referral", {"age": [47, None], "channel": ["employer", "referral"]}, 1.6),
        ("older", {"age": [47, None]}, 3.0),
    ],
    "crossing": [  # subsidy members are riskier when young and safer when older: no main effect to find first
        ("young subsidy", {"age": [None, 44], "channel": ["subsidy"]}, 2.0),
        ("young", {"age": [None, 44]}, 0.5),
        ("older subsidy", {"age": [45, None], "channel": ["subsidy"]}, 1.0),
        ("older", {"age": [45, None]}, 2.8),
    ],
}

CHANNELS = ("organic", "referral", "employer", "subsidy")
CHANNEL_P = (0.40, 0.25, 0.20, 0.15)
TIER_P = (0.15, 0.20, 0.25, 0.20, 0.20)
YEARS = (2019, 2020, 2021)
AT = dt.date(2021, 12, 31)


@dataclass
class PlantedPlatform:
    """Cells, members and the truth of a planted-groups platform.

    Attributes
    ----------
    cells : yearly cells (period, age, sex, city_tier, channel) with exposure_years,
        exposure_days, claims, amount, and ``heldout_claims`` (an independent draw on
        the same exposure, for out-of-sample scoring), ``true_rate`` and ``true_group``.
    members : one row per member: member_id, birth_date, sex, city_tier, channel,
        join_date and ``true_group`` at ``at`` (from the attained age on that date).
    at : the date whose attained age defines a member's group (31 December 2021).
    design : the rules, names and rates (per mille) of the groups.
    """

    cells: pl.DataFrame
    members: pl.DataFrame
    at: dt.date
    design: list[tuple[str, dict[str, Any], float]]


def planted_group(design: list[tuple[str, dict[str, Any], float]], frame: pl.DataFrame) -> np.ndarray:
    """Group index (0-based, first matching rule) of every row of ``frame``."""
    g = np.full(frame.height, -1, np.int64)
    for i, (_, rule, _) in enumerate(design):
        m = np.ones(frame.height, bool)
        for f, cond in rule.items():
            v = frame.get_column(f).to_numpy()
            if f == "age":
                lo, hi = cond
                m &= (v >= (lo if lo is not None else -1)) & (v <= (hi if hi is not None else 10**6))
            else:
                m &= np.isin(v, cond)
        g[(g < 0) & m] = i
    if (g < 0).any():
        raise ConfigError("design: some rows match no group (the last rule must catch the rest)")
    return g


def planted_platform(n_members: int = 1_000_000, seed: int = 0, design: str = "age_channel",
                     ages: tuple[int, int] = (22, 59)) -> PlantedPlatform:
    """Generate a planted-groups platform as cells (3 whole years) and members.

    Parameters
    ----------
    n_members : members, each observed for the whole of 2019-2021.
    seed : seed of ``numpy.random.default_rng`` (keys of members, claims, held-out claims).
    design : a key of :data:`DESIGNS`.
    ages : range of attained ages on 31 December 2021.

    Notes
    -----
    Members' keys (attained age on 31 December 2021, sex, city tier, channel) are
    multinomial: age weights exp(-((a - 38) / 12)^2 / 2), sex 1:1, tiers
    :data:`TIER_P`, channels :data:`CHANNEL_P`. In year y a member counts in the
    cell of age a - (2021 - y) with one exposure-year (no exits, claims do not end
    cover: the counts are Poisson), claims ~ Poisson(rate_g x exposure) with the
    rate of the member's group in that cell; the amount is 300,000 per claim
    below 40 and 100,000 from 40.
    """
    if design not in DESIGNS:
        raise ConfigError(f"design: '{design}' is not one of {', '.join(DESIGNS)}")
    rules = DESIGNS[design]
    rng = np.random.default_rng(seed)
    a = np.arange(ages[0], ages[1] + 1)
    wa = np.exp(-0.5 * ((a - 38.0) / 12.0) ** 2)
    keys = (pl.DataFrame({"age_at": a.astype(np.int32)})
            .join(pl.DataFrame({"sex": ["F", "M"]}), how="cross")
            .join(pl.DataFrame({"city_tier": np.arange(1, 6, dtype=np.int32)}), how="cross")
            .join(pl.DataFrame({"channel": list(CHANNELS)}), how="cross"))
    p = (np.repeat(wa / wa.sum(), 40) * np.tile(np.repeat([0.5, 0.5], 20), a.size)
         * np.tile(np.repeat(TIER_P, 4), 2 * a.size) * np.tile(CHANNEL_P, 10 * a.size))
    n = rng.multinomial(n_members, p / p.sum())
    keys = keys.with_columns(pl.Series("n", n))
    frames = []
    rates = np.array([r for *_, r in rules]) / 1000.0
    for y in YEARS:
        c = keys.with_columns((pl.col("age_at") - (2021 - y)).cast(pl.Int32).alias("age"),
                              pl.lit(dt.date(y, 1, 1)).alias("period"))
        frames.append(c)
    cells = pl.concat(frames).filter(pl.col("n") > 0)
    g = planted_group(rules, cells)
    e = cells["n"].to_numpy().astype(float)
    rate = rates[g]
    claims = rng.poisson(rate * e)
    held = rng.poisson(rate * e)
    age = cells["age"].to_numpy()
    cells = cells.select("period", "age", "sex", "city_tier", "channel").with_columns(
        pl.Series("exposure_days", np.round(e * DAYS_PER_YEAR).astype(np.int64)),
        pl.Series("exposure_years", e), pl.Series("claims", claims.astype(np.int64)),
        pl.Series("amount", claims * np.where(age <= 39, 300_000.0, 100_000.0)),
        pl.Series("heldout_claims", held.astype(np.int64)), pl.Series("true_rate", rate),
        pl.Series("true_group", g.astype(np.int32)),
    )
    members = _members(keys, rules, rng)
    return PlantedPlatform(cells=cells, members=members, at=AT, design=rules)


def _members(keys: pl.DataFrame, rules: list, rng: np.random.Generator) -> pl.DataFrame:
    """One row per member, with a birth date giving the key's attained age on 31 December 2021."""
    n = keys["n"].to_numpy()
    idx = np.repeat(np.arange(keys.height), n)
    m = keys.select("age_at", "sex", "city_tier", "channel")[idx]
    birth_year = 2021 - m["age_at"].to_numpy()
    doy = rng.integers(0, 365, idx.size)
    start = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    birth = pl.Series("birth_date", start + doy.astype("timedelta64[D]"))
    out = m.with_columns(birth.cast(pl.Date), pl.lit(dt.date(2018, 10, 1)).alias("join_date"),
                         pl.Series("member_id", np.arange(idx.size, dtype=np.int64)))
    g = planted_group(rules, out.rename({"age_at": "age"}))
    return out.drop("age_at").with_columns(pl.Series("true_group", g.astype(np.int32))).select(
        "member_id", "birth_date", "sex", "city_tier", "channel", "join_date", "true_group")
