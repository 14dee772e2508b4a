"""Cells from members/claims for the segmentation tests (helpers; no tests here).

Uses ``engine.exposure`` when it is installed; otherwise a small vectorised
stand-in (one period = the whole window; keys age, sex and member factors),
following docs/domain.md section 4: at risk from join + waiting days to exit
(exclusive) or the first eligible claim (inclusive), attained age split at
birthdays (29 February -> 1 March), claims counted in the cell of their event day.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from engine.synth.population import attained_age, birthday_at, day_number


def _days(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Int32).to_numpy().astype(np.int64)


def standin_cells(members: pl.DataFrame, claims: pl.DataFrame, start: dt.date, end: dt.date,
                  waiting_days: int = 90, factors: tuple[str, ...] = ("city_tier", "channel")) -> pl.DataFrame:
    """Cells (age, sex, factors) over [start, end] (inclusive) with one period; vectorised over members."""
    m = members.sort("member_id")
    birth = _days(m["birth_date"])
    a = np.maximum(_days(m["join_date"]) + waiting_days, day_number(start))
    ex = m["exit_date"].cast(pl.Int32).fill_null(day_number(end) + 1).to_numpy().astype(np.int64)
    b = np.minimum(ex, day_number(end) + 1)
    # first eligible claim per member: event day in [a, b)
    idx = pl.DataFrame({"member_id": m["member_id"], "_a": a, "_b": b, "_i": np.arange(m.height)})
    c = claims.join(idx, on="member_id", how="inner").with_columns(pl.col("event_date").cast(pl.Int32).alias("_e"))
    c = c.filter((pl.col("_e") >= pl.col("_a")) & (pl.col("_e") < pl.col("_b")))
    first = c.group_by("_i").agg(pl.col("_e").min())
    fi = first["_i"].to_numpy()
    fe = first["_e"].to_numpy().astype(np.int64)
    b[fi] = np.minimum(b[fi], fe + 1)
    age0 = attained_age(birth, a)
    keys = {"sex": m["sex"].to_numpy(), **{f: m[f].to_numpy() for f in factors}}
    parts = []
    for k in range(0, 8):
        lo = a if k == 0 else np.maximum(a, birthday_at(birth, age0 + k))
        hi = np.minimum(b, birthday_at(birth, age0 + k + 1))
        days = np.maximum(hi - lo, 0)
        keep = days > 0
        if not keep.any():
            continue
        parts.append(pl.DataFrame({"age": (age0 + k)[keep].astype(np.int32), **{n: v[keep] for n, v in keys.items()},
                                   "exposure_days": days[keep], "claims": np.zeros(keep.sum(), np.int64)}))
    cl_age = attained_age(birth[fi], fe)
    parts.append(pl.DataFrame({"age": cl_age.astype(np.int32), **{n: v[fi] for n, v in keys.items()},
                               "exposure_days": np.zeros(fi.size, np.int64), "claims": np.ones(fi.size, np.int64)}))
    by = ["age", "sex", *factors]
    out = pl.concat(parts, how="vertical_relaxed").group_by(by).agg(pl.col("exposure_days", "claims").sum())
    return out.with_columns((pl.col("exposure_days") / 365.25).alias("exposure_years")).sort(by)


def platform_cells(members: pl.DataFrame, claims: pl.DataFrame, start: dt.date, end: dt.date) -> tuple[pl.DataFrame, float | None, str]:
    """(cells, window_years or None, which builder was used)."""
    try:
        from engine.cells._exposure import exposure
    except ImportError:
        cells = standin_cells(members, claims, start, end)
        return cells, ((end - start).days + 1) / 365.25, "stand-in"
    res = exposure(members, claims, start=start, end=end, period="year",
                   by=("age", "sex", "city_tier", "channel"))
    cells = getattr(res, "cells", res[0] if isinstance(res, tuple) else res)
    return cells, ((end - start).days + 1) / 365.25, "engine.exposure"
