"""Random members and claims for the exposure tests, and the study window they are checked on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

D = dt.date


def _random_members(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    base = np.datetime64("2017-01-01")
    join = base + rng.integers(0, 1600, n).astype("timedelta64[D]")
    birth = join - rng.integers(365 * 18, 365 * 70, n).astype("timedelta64[D]")
    stay = rng.integers(0, 1200, n)
    exit_ = np.where(rng.random(n) < 0.5, join + stay.astype("timedelta64[D]"), np.datetime64("NaT"))
    m = pl.DataFrame({"member_id": [f"m{i}" for i in range(n)], "birth_date": birth, "sex": rng.choice(["M", "F"], n),
                      "join_date": join, "exit_date": exit_, "tier": rng.integers(1, 4, n),
                      "channel": rng.choice(["organic", "subsidy", "referral", "employer"], n)})
    m = m.with_columns(pl.col("birth_date", "join_date", "exit_date").cast(pl.Date))
    k = n // 3
    who = rng.integers(0, n, k)
    ev = join[who] + rng.integers(-30, 900, k).astype("timedelta64[D]")
    c = pl.DataFrame({"claim_id": [f"c{i}" for i in range(k)], "member_id": [f"m{i}" for i in who],
                      "event_date": ev, "amount": rng.integers(1, 30, k) * 1e4}).with_columns(pl.col("event_date").cast(pl.Date))
    return m, c


KW = dict(start=D(2018, 3, 15), end=D(2020, 11, 20), waiting_days=90)
