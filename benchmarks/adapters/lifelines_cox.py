"""Peer: lifelines CoxPH for duration (select) effects on a sample of member rows.

Time scale: months since joining, left-truncated at the start of each member's at-risk
interval in the window (``entry_col``), event = first eligible claim; covariates sex,
city_tier, channel and age. The duration effect is the baseline hazard (the select
curve) that fentan's select factors estimate by band on cells from every member.
lifelines fits ``[peers] lifelines_sample`` members (CoxPH is O(rows log rows) per Newton
step in memory); the full-size time is extrapolated linearly (``est_full_s``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.adapters.common import warm


def cox(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    from lifelines import CoxPHFitter

    rows = pl.read_parquet(data / "member_rows.parquet")
    cap = int(cfg["peers"]["lifelines_sample"])
    full = rows.height
    if full > cap:
        rows = rows.sample(cap, seed=0)
    df = (rows.select("entry_months", "exit_months", "event", "age", sex=(pl.col("sex") == "M").cast(pl.Int8),
                      tier=pl.col("city_tier"), **{f"ch_{v}": (pl.col("channel") == v).cast(pl.Int8)
                                                   for v in ("subsidy", "referral", "employer")})
          .to_pandas())
    warm(lambda: CoxPHFitter().fit(df.head(5000), duration_col="exit_months", event_col="event",
                                   entry_col="entry_months"))
    t0 = time.perf_counter()
    cph = CoxPHFitter().fit(df, duration_col="exit_months", event_col="event", entry_col="entry_months")
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "rows": rows.height, "rows_full": full, "events": int(df["event"].sum()),
           "coef": {k: float(v) for k, v in cph.params_.items()}}
    if full > rows.height:
        out.update(sample=True, est_full_s=wall * full / rows.height)
    return out
