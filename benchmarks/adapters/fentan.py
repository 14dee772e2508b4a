"""fentan's own stages (the engine under test); see :mod:`benchmarks.adapters`."""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.adapters.common import as_of, clean, member_rows, study, warm


def generate(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Synthetic platform (engine.synth) written once into the cache, then validated and reduced.

    Writes members/claims.parquet (raw, dirty rows included), members/claims_clean.parquet,
    cells.parquet (by the study keys), cells_dur.parquet (plus duration_band) and
    member_rows.parquet (for the member-level peers).
    """
    from engine.cells._exposure import exposure
    from engine.synth import generate as synth
    from engine.data.validation import validate

    t0 = time.perf_counter()
    data.mkdir(parents=True, exist_ok=True)
    plat = synth(n, int(cfg["data"]["seed"]), dirty=float(cfg["data"]["dirty"]))
    plat.members.write_parquet(data / "members.parquet")
    plat.claims.write_parquet(data / "claims.parquet")
    del plat
    res = validate(pl.scan_parquet(data / "members.parquet"), pl.scan_parquet(data / "claims.parquet"), as_of=as_of(cfg))
    m, c = res.members.collect(), res.claims.collect()
    m.write_parquet(data / "members_clean.parquet")
    c.write_parquet(data / "claims_clean.parquet")
    kw = study(cfg)
    exposure(m, c, **kw).write_parquet(data / "cells.parquet")
    exposure(m, c, **{**kw, "by": (*kw["by"], "duration_band")}).write_parquet(data / "cells_dur.parquet")
    member_rows(m, c, cfg).write_parquet(data / "member_rows.parquet")
    (data / "READY").write_text(f"{n}\n")
    return {"wall_s": time.perf_counter() - t0, "members_clean": m.height, "claims_clean": c.height}


def read_validate(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Read the raw Parquet files and validate them (engine.read_members/read_claims + validate)."""
    from engine.data.io import read_claims, read_members
    from engine.data.validation import validate

    t0 = time.perf_counter()
    res = validate(read_members(data / "members.parquet"), read_claims(data / "claims.parquet"), as_of=as_of(cfg))
    m, c = res.members.collect(), res.claims.collect()
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "members_clean": m.height, "claims_clean": c.height}


def _exposure(data: Path, cfg: dict[str, Any], extra: tuple[str, ...]) -> dict[str, Any]:
    """The user path: ``exposure(read_members(file), read_claims(file), ...)``, reading timed.

    The clean Parquet files are scanned lazily inside the timed work, so the peak RSS is
    what fentan itself needs (no member frame is held before exposure starts).
    """
    from engine.cells._exposure import exposure
    from engine.data.io import read_claims, read_members

    kw = study(cfg)
    by = (*kw["by"], *extra)
    m_path, c_path = data / "members_clean.parquet", data / "claims_clean.parquet"
    warm(lambda: exposure(read_members(m_path).head(1000), read_claims(c_path), **{**kw, "by": by}))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cells = exposure(read_members(m_path), read_claims(c_path), **{**kw, "by": by})
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "input": "parquet_lazy", "input_rss_mb": round(base, 1), "cells": cells.height,
            "exposure_days": int(cells["exposure_days"].sum()), "claims": int(cells["claims"].sum())}


def exposure(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Exposure cells by period x study keys (attained age, waiting period, claim termination), from Parquet."""
    return _exposure(data, cfg, ())


def exposure_duration(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Exposure cells with an extra ``duration_band`` key (input of select factors), from Parquet."""
    return _exposure(data, cfg, ("duration_band",))


def exposure_inmem(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Exposure on member and claim DataFrames already in memory (loaded untimed; as inside ``fentan run``)."""
    from engine.cells._exposure import exposure

    m, c = clean(data)
    kw = study(cfg)
    warm(lambda: exposure(m.head(1000), c, **kw))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cells = exposure(m, c, **kw)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "input": "dataframe", "input_rss_mb": round(base, 1), "cells": cells.height,
            "exposure_days": int(cells["exposure_days"].sum()), "claims": int(cells["claims"].sum())}


def glm(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """PoissonGLM on cells: sex + city_tier + channel + age B-spline (6 df)."""
    from engine.estimators.glm import PoissonGLM

    cells = pl.read_parquet(data / "cells.parquet")
    warm(lambda: PoissonGLM(factors=["sex", "city_tier", "channel"], age="spline").fit(cells.head(5000)))
    t0 = time.perf_counter()
    model = PoissonGLM(factors=["sex", "city_tier", "channel"], age="spline").fit(cells)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cells": cells.height, "n_iter": int(model.n_iter_),
            "coef": {k: float(v) for k, v in zip(model.feature_names_, model.coef_)}}


def segmentation(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """RiskSegmenter(method="tree") on the cells (default incidence model, K frontier 1..8)."""
    from engine.segmentation.segmenter import RiskSegmenter

    cells = pl.read_parquet(data / "cells.parquet")
    warm(lambda: RiskSegmenter(method="tree", min_claims=0.0).fit(cells.head(5000)))
    t0, c0 = time.perf_counter(), time.process_time()
    seg = RiskSegmenter(method="tree").fit(cells)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "work_cpu_s": round(time.process_time() - c0, 3), "cells": cells.height,
            "n_groups": int(seg.n_groups_)}


def select(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Select (duration-band) factors on cells, GLM route adjusted for age band and sex."""
    from engine.estimators.select import SelectFactors

    cells = pl.read_parquet(data / "cells_dur.parquet")
    warm(lambda: SelectFactors(route="glm").fit(cells.head(5000)))
    t0 = time.perf_counter()
    sf = SelectFactors(route="glm").fit(cells)
    wall = time.perf_counter() - t0
    s = sf.summary
    return {"wall_s": wall, "cells": cells.height, "factors": dict(zip(s[s.columns[0]].cast(pl.String).to_list(),
                                                                        [float(x) for x in s["factor"]]))
            if "factor" in s.columns else {}}


def _projection(scenarios: int, cfg: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.bench_projection import make_groups
    from engine.projection._project import project

    p = cfg["projection"]
    groups = make_groups(int(p["groups"]), int(p["plans"]))
    kw = dict(horizon=int(p["horizon"]), n_scenarios=scenarios, seed=0, waiting_periods=3,
              reporting_lag_periods=1, per_claimant_cap=0.1, annual_cap=188.0,
              joiners={"per_period": 50_000, "growth": -0.02, "then": "replace"},
              lapse={"base_annual": {"organic": 0.1, "subsidy": 0.3, "referral": 0.15, "employer": 0.05}},
              expectations={"speed": 0.1}, elasticity={"base": 1.5, "adverse_selection": 1.0})
    t0, c0 = time.perf_counter(), time.process_time()
    project(groups, **kw)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "scenarios": scenarios,
            "horizon": int(p["horizon"]), "groups": int(p["groups"])}


def projection(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """engine.project: scenarios x horizon x groups of config [projection] (10,000 x 120 x 50)."""
    return _projection(int(cfg["projection"]["scenarios"]), cfg)


def projection_small(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The quick-mode projection workload (quick_scenarios x horizon x groups)."""
    return _projection(int(cfg["projection"]["quick_scenarios"]), cfg)


def run(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """``fentan run`` end to end (engine.pipeline.runner.run) on the raw files, default configuration."""
    from engine.pipeline.runner import run as fentan_run

    toml = data / "run.toml"
    toml.write_text(f'[data]\nmembers = "{data / "members.parquet"}"\nclaims = "{data / "claims.parquet"}"\n'
                    f"as_of = {as_of(cfg).isoformat()}\n", encoding="utf-8")
    t0 = time.perf_counter()
    res = fentan_run(toml, data / "run-out", force=True, quiet=True)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "stage_s": dict(res.timings)}


def cells_scaling(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """GLM and segmentation time against the number of cells (same members, finer or coarser keys).

    The cells of the largest platform are re-aggregated to 1, 3, 12 and 36 periods (the
    period key is relabelled), so the claims and exposure stay the same and only the
    number of rows changes.
    """
    from engine.estimators.glm import PoissonGLM
    from engine.segmentation.segmenter import RiskSegmenter

    cells = pl.read_parquet(data / "cells.parquet")
    keys = [c for c in cells.columns if c in ("period", *cfg["study"]["by"])]
    sums = [c for c in cells.columns if c not in keys]
    periods = sorted(cells["period"].unique().to_list())
    warm(lambda: RiskSegmenter(method="tree", min_claims=0.0).fit(cells.head(5000)))
    warm(lambda: PoissonGLM(factors=["sex", "city_tier", "channel"], age="spline").fit(cells.head(5000)))
    out = []
    for k in (1, 3, 12, len(periods)):
        lab = {p: dt.date(2000 + i * k // len(periods), 1, 1) for i, p in enumerate(periods)}
        cc = (cells.with_columns(pl.col("period").replace_strict(lab, return_dtype=pl.Date))
              .group_by(keys).agg(pl.col(sums).sum()).sort(keys))
        t0 = time.perf_counter()
        PoissonGLM(factors=["sex", "city_tier", "channel"], age="spline").fit(cc)
        t1 = time.perf_counter()
        try:
            RiskSegmenter(method="tree").fit(cc)
            seg: float | None = time.perf_counter() - t1
        except Exception:  # noqa: BLE001 - recorded, not hidden
            seg = None
        out.append({"periods": k, "cells": cc.height, "glm_s": t1 - t0, "segmentation_s": seg})
    return {"wall_s": sum(r["glm_s"] for r in out), "points": out}


def generate_partitioned(n: int, data: Path, cfg: dict[str, Any], parts: int | None = None) -> dict[str, Any]:
    """10^8-style platform: ``parts`` (default ``partitions_1e8``) Parquet files of clean synthetic members.

    Each partition is an independent synthetic platform (seed = base seed + i) whose ids
    are prefixed with the partition number; claims of all partitions go into one file.
    """
    from engine.synth import generate as synth

    parts = int(cfg["data"]["partitions_1e8"] if parts is None else parts)
    t0 = time.perf_counter()
    (data / "members").mkdir(parents=True, exist_ok=True)
    claims = []
    step = -(-n // parts)
    for i in range(parts):
        k = min(step, n - i * step)
        plat = synth(k, int(cfg["data"]["seed"]) + i, dirty=0.0)
        pre = pl.lit(f"P{i:03d}")
        plat.members.with_columns(member_id=pre + pl.col("member_id")).write_parquet(
            data / "members" / f"part-{i:04d}.parquet")
        claims.append(plat.claims.with_columns(member_id=pre + pl.col("member_id"), claim_id=pre + pl.col("claim_id")))
        del plat
    pl.concat(claims).write_parquet(data / "claims.parquet")
    (data / "READY").write_text(f"{n}\n")
    return {"wall_s": time.perf_counter() - t0, "partitions": parts}


def exposure_stream(n: int, data: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Exposure over the partition files, one lazy frame per file (streamed; read time included)."""
    from engine.cells._exposure import exposure as expo
    from engine.data.io import read_claims, read_members

    files = sorted((data / "members").glob("*.parquet"))
    t0 = time.perf_counter()
    cells = expo([read_members(f) for f in files], read_claims(data / "claims.parquet"), **study(cfg))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "files": len(files), "cells": cells.height, "exposure_days": int(cells["exposure_days"].sum())}
