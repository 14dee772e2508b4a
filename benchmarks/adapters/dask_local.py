"""fentan's exposure on a local Dask cluster (2 worker processes, 1 thread each) against one process.

The same clean members, cut into ``FILES`` Parquet files (cached beside the platform, untimed), are
reduced to cells twice in this process: once without an executor (one process, as ``fentan
exposure``), once with ``--engine dask --workers 2``'s executor
(:func:`engine.cells._engines.executor_for`). The cells must be identical. The record's ``wall_s``
is the Dask run; ``one_process_s`` the run without executor; ``overhead_ratio`` their ratio
(> 1: Dask is slower); ``cluster_start_s`` the untimed cluster start (a local cluster is started
once per ``fentan`` command). Peak RSS is the driver's only (the workers are other processes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.adapters.common import study, warm

#: the members are cut into this many Parquet files (one task per file)
FILES = 8
WORKERS = 2


def _parts(data: Path) -> list[Path]:
    """The clean members cut into FILES files (written once)."""
    d = data / f"members_clean_{FILES}"
    files = [d / f"part-{i}.parquet" for i in range(FILES)]
    if not (d / "READY").exists():
        d.mkdir(exist_ok=True)
        m = pl.read_parquet(data / "members_clean.parquet")
        step = -(-m.height // FILES)
        for i, f in enumerate(files):
            m.slice(i * step, step).write_parquet(f)
        del m
        (d / "READY").write_text(f"{FILES}\n")
    return files


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Exposure cells by period x study keys from FILES Parquet files: Dask local (2 workers) vs one process."""
    from engine.cells._engines import executor_for
    from engine.cells._exposure import exposure as fentan_exposure
    from engine.data.io import read_claims

    files = _parts(data)
    kw = study(cfg)
    claims = read_claims(data / "claims_clean.parquet").collect()

    def cells(executor: Any = None) -> pl.DataFrame:
        return fentan_exposure([pl.scan_parquet(f) for f in files], claims, executor=executor, **kw)

    warm(lambda: fentan_exposure(pl.scan_parquet(files[0]).head(1000), claims, **kw))
    t0 = time.perf_counter()
    one = cells()
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with executor_for("dask", workers=WORKERS) as ex:
        start_s = time.perf_counter() - t0
        # every worker imports fentan on its first task: warm them all, untimed
        warm(lambda: fentan_exposure([pl.scan_parquet(f).head(100) for f in files], claims, executor=ex, **kw))
        t0 = time.perf_counter()
        got = cells(ex)
        wall = time.perf_counter() - t0
    if not got.equals(one):
        raise AssertionError("the Dask cells differ from the one-process cells")
    return {"wall_s": wall, "one_process_s": round(one_s, 4), "overhead_ratio": round(wall / one_s, 3),
            "cluster_start_s": round(start_s, 3), "workers": WORKERS, "threads_per_worker": 1, "files": FILES,
            "identical": True, "cells": got.height, "exposure_days": int(got["exposure_days"].sum()),
            "claims": int(got["claims"].sum())}
