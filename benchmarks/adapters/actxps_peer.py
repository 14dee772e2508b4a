"""Peer: actxps (``ExposedDF.expose_cm``, calendar-month exposure records, then a group-by).

What actxps cannot express, and how the benchmark works around it (documented in
docs/benchmarks.md):

* attained age: actxps exposes by policy/calendar period only; age must be joined
  afterwards (here: age at the start of each month record, computed by us, untimed
  semantics identical to the polars peer but timed as part of the work);
* waiting period: no notion of it; we shift the issue date to ``join + waiting_days``;
* termination at the first eligible claim and the study window must be prepared by hand
  (status ``Claim`` and ``term_date`` = last at-risk day).

Exposure is a fraction of each calendar month; it is converted back to days
(fraction x days in the month) to compare the total with fentan.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.adapters.common import age_at, clean, clipped, warm


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import actxps as xp

    m, c = clean(data)
    warm(lambda: _cells(m.head(1000), c, cfg))
    t0 = time.perf_counter()
    cells = _cells(m, c, cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cells": cells.height, "exposure_days": float(cells["exposure_days"].sum()),
            "version": getattr(xp, "__version__", None) or _version()}


def _version() -> str | None:
    from importlib.metadata import version

    return version("actxps")


def _cells(m: pl.DataFrame, c: pl.DataFrame, cfg: dict[str, Any]) -> pl.DataFrame:
    import actxps as xp

    s = cfg["study"]
    by = [b for b in s["by"] if b != "age"]
    pol = (
        clipped(m, c, cfg)
        .select(
            pol_num=pl.col("member_id"),
            issue_date=pl.col("join_date") + pl.duration(days=int(s["waiting_days"])),
            term_date=pl.when(pl.col("hi") < pl.lit(s["end"])).then(pl.col("hi")),
            status=pl.when(pl.col("first_claim") == pl.col("hi")).then(pl.lit("Claim"))
            .when(pl.col("hi") < pl.lit(s["end"])).then(pl.lit("Exit")).otherwise(pl.lit("Active")),
            birth_date="birth_date", **{b: b for b in by},
        )
        .collect()
    )
    ex = xp.ExposedDF.expose_cm(pol, end_date=s["end"], start_date=s["start"], target_status="Claim",
                                default_status="Active")
    d = ex.data if isinstance(ex.data, pl.DataFrame) else pl.from_pandas(ex.data)
    per = "cal_mth" if "cal_mth" in d.columns else [x for x in d.columns if x.startswith("cal_")][0]
    d = d.with_columns(pl.col(per).cast(pl.Date).alias("period"))
    return (
        d.with_columns(age=age_at("period"),
                       days=pl.col("exposure") * (pl.col("period").dt.month_end() - pl.col("period")).dt.total_days().add(1))
        .group_by("period", "age", *by).agg(exposure_days=pl.col("days").sum())
    )
