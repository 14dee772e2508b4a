"""Peer: vectorised pandas/numpy member-month exposure (np.repeat instead of a Python loop).

Same conventions as :mod:`benchmarks.adapters.polars_naive` (waiting period, exit
excluded, termination at the first eligible claim, age at the start of each month piece).
The per-member interval ``lo..hi`` is computed with pandas too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.adapters.common import clean, warm


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    m0, c0 = clean(data)
    warm(lambda: _cells(m0.head(1000).to_pandas(), c0.select("member_id", "event_date").to_pandas(), cfg))
    m = m0.to_pandas()
    c = c0.select("member_id", "event_date").to_pandas()
    del m0, c0
    t0 = time.perf_counter()
    cells = _cells(m, c, cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cells": int(cells.size), "exposure_days": int(cells.sum())}


def _cells(m: Any, c: Any, cfg: dict[str, Any]) -> Any:
    import pandas as pd

    s = cfg["study"]
    by = [b for b in s["by"] if b != "age"]
    w = pd.Timedelta(days=int(s["waiting_days"]))
    start, end = pd.Timestamp(s["start"]), pd.Timestamp(s["end"])
    for col in ("birth_date", "join_date", "exit_date"):
        m[col] = pd.to_datetime(m[col])
    c["event_date"] = pd.to_datetime(c["event_date"])
    j = c.merge(m[["member_id", "join_date", "exit_date"]], on="member_id")
    ok = (j["event_date"] >= j["join_date"] + w) & (j["exit_date"].isna() | (j["event_date"] < j["exit_date"]))
    first = j[ok].groupby("member_id")["event_date"].min().rename("first_claim")
    m = m.merge(first, left_on="member_id", right_index=True, how="left")
    lo = (m["join_date"] + w).clip(lower=start)
    hi = (m["exit_date"] - pd.Timedelta(days=1)).fillna(end)
    hi = hi.where(m["first_claim"].isna() | (hi < m["first_claim"]), m["first_claim"]).clip(upper=end)
    keep = (lo <= hi).to_numpy()
    lo_d = lo.to_numpy()[keep].astype("datetime64[D]")
    hi_d = hi.to_numpy()[keep].astype("datetime64[D]")
    birth = m["birth_date"].to_numpy()[keep].astype("datetime64[D]")
    m_lo = lo_d.astype("datetime64[M]")
    k = (hi_d.astype("datetime64[M]") - m_lo).astype(np.int64) + 1
    idx = np.repeat(np.arange(lo_d.size), k)
    off = np.arange(idx.size) - np.repeat(np.cumsum(k) - k, k)
    month = m_lo[idx] + off.astype("timedelta64[M]")
    sd = np.maximum(lo_d[idx], month.astype("datetime64[D]"))
    ed = np.minimum(hi_d[idx], (month + 1).astype("datetime64[D]") - 1)
    days = (ed - sd).astype(np.int64) + 1
    sy, by_ = sd.astype("datetime64[Y]"), birth[idx].astype("datetime64[Y]")
    s_m = (sd.astype("datetime64[M]") - sy.astype("datetime64[M]")).astype(np.int64)
    s_d = (sd - sd.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
    b = birth[idx]
    b_m = (b.astype("datetime64[M]") - by_.astype("datetime64[M]")).astype(np.int64)
    b_d = (b - b.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
    age = (sy.astype(np.int64) - by_.astype(np.int64)) - ((s_m * 32 + s_d) < (b_m * 32 + b_d))
    frame = {"period": month, "age": age, "exposure_days": days}
    for col in by:
        frame[col] = m[col].to_numpy()[keep][idx]
    return pd.DataFrame(frame).groupby(["period", "age", *by], observed=True, sort=True)["exposure_days"].sum()
