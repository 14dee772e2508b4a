"""Simulated cells with planted risk groups for the segmentation tests (helpers; no tests here)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

CHANNELS = ["employer", "organic", "referral", "subsidy"]


def planted_group(city: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Four planted groups on city_tier x channel with interactions.

    0: tiers 1-2 (x0.6); 1: tiers 3-5 (x1.0); 2: tiers 1-2 & employer (x0.35);
    3: tiers 4-5 & subsidy (x2.2): the channel matters only within some tiers.
    """
    ch = np.asarray(channel)
    g = np.where(city <= 2, 0, 1)
    g = np.where((city >= 4) & (ch == "subsidy"), 3, g)
    g = np.where((city <= 2) & (ch == "employer"), 2, g)
    return g


MULT = np.array([0.6, 1.0, 0.35, 2.2])


def sim_cells(seed: int = 0, scale: float = 500.0, n_periods: int = 12, ages=range(20, 60)) -> tuple[pl.DataFrame, np.ndarray]:
    """Monthly cells (period x age x sex x city_tier x channel) and the true annual rate per cell."""
    rng = np.random.default_rng(seed)
    periods = [dt.date(2020 + (m // 12), m % 12 + 1, 1) for m in range(n_periods)]
    grid = pl.DataFrame({"period": periods}).join(pl.DataFrame({"age": list(ages)}, schema={"age": pl.Int32}), how="cross")
    grid = grid.join(pl.DataFrame({"sex": ["F", "M"]}), how="cross").join(pl.DataFrame({"city_tier": [1, 2, 3, 4, 5]}), how="cross")
    grid = grid.join(pl.DataFrame({"channel": CHANNELS}), how="cross").sort("period", "age", "sex", "city_tier", "channel")
    n = grid.height
    age = grid["age"].to_numpy()
    sexm = grid["sex"].to_numpy() == "M"
    city = grid["city_tier"].to_numpy()
    ch = grid["channel"].to_numpy()
    g = planted_group(city, ch)
    base = 0.0004 * np.exp(0.06 * (age - 20)) * np.where(sexm, 1.1, 1.0)
    rate = base * MULT[g]
    expo = scale * rng.gamma(4.0, 0.25, n)  # member-years per cell
    claims = rng.poisson(rate * expo)
    amount = claims * np.where(age <= 39, 300_000.0, 100_000.0)
    days = np.round(expo * 365.25).astype(np.int64)
    cells = grid.with_columns(
        pl.Series("exposure_days", days), pl.Series("exposure_years", days / 365.25),
        pl.Series("claims", claims.astype(np.int64)), pl.Series("amount", amount),
    )
    return cells, rate
