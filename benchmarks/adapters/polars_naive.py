"""Peer: the usual polars approach, explode every member into member-months then group.

Same conventions as fentan where a hand-written query can follow them (waiting period,
exit day excluded, termination at the first eligible claim); attained age is taken at
the start of each month piece (a birthday inside the month is not split, as most
hand-written explode queries do), so cells differ by age but the total at-risk days match.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.adapters.common import age_at, clean, clipped, warm


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    m, c = clean(data)
    warm(lambda: _cells(m.head(1000), c, cfg))
    t0 = time.perf_counter()
    mm = _cells(m, c, cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cells": mm.height, "exposure_days": int(mm["exposure_days"].sum())}


def _cells(m: pl.DataFrame, c: pl.DataFrame, cfg: dict[str, Any]) -> pl.DataFrame:
    by = [b for b in cfg["study"]["by"] if b != "age"]
    return (
        clipped(m, c, cfg)
        .with_columns(period=pl.date_ranges(pl.col("lo").dt.truncate("1mo"), pl.col("hi"), "1mo"))
        .explode("period")
        .with_columns(s=pl.max_horizontal("lo", "period"), e=pl.min_horizontal("hi", pl.col("period").dt.month_end()))
        .with_columns(age=age_at("s"), days=(pl.col("e") - pl.col("s")).dt.total_days() + 1)
        .group_by("period", "age", *by).agg(exposure_days=pl.col("days").sum())
        .collect()
    )
