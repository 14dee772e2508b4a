"""``fentan run`` is byte-identical for the same data and seed: across reruns (in other processes
with one and with two polars and BLAS threads, ``OPENBLAS_NUM_THREADS``), and across a different partitioning and row order of the
same input files (issue 10, item 3).

Exemptions, by design (docs/batch.md, "Determinism"):
- ``run.json`` records wall-clock times, versions and the input paths: not compared;
- ``config.toml`` records the resolved input paths (and the configuration file's path in its
  first line): identical across reruns; across layouts only those lines may differ;
- ``models/*/model.json`` record ``fit_date`` (today's date): compared without that field.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.cli.main import main

from tests.kits.runconfig import small_run_config

REPO = Path(__file__).resolve().parents[1]


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(root))
            data = p.read_bytes()
            if rel.startswith("models/") and rel.endswith("model.json"):
                meta = json.loads(data)
                meta.pop("fit_date", None)  # the date of the fit: by design
                data = json.dumps(meta, sort_keys=True).encode()
            out[rel] = hashlib.sha256(data).hexdigest()
    return out


def _partition(members: pl.DataFrame, claims: pl.DataFrame, root: Path, seed: int) -> tuple[Path, Path]:
    """Same rows, other layout: members hive-partitioned by city_tier (the column only in the
    directory names), several files per partition, rows shuffled; claims split in 4 shuffled files."""
    rng = np.random.default_rng(seed)
    m = members.sample(fraction=1.0, shuffle=True, seed=seed)
    c = claims.sample(fraction=1.0, shuffle=True, seed=seed + 1)
    mdir, cdir = root / "members", root / "claims"
    for tier in m["city_tier"].unique().to_list():
        g = m.filter(pl.col("city_tier") == tier).drop("city_tier")
        part = rng.integers(0, 3, g.height)
        d = mdir / f"city_tier={tier}"
        d.mkdir(parents=True)
        for i in range(3):  # written in reverse order of their names
            g.filter(pl.Series(part == 2 - i)).write_parquet(d / f"part-{2 - i}.parquet")
    cdir.mkdir(parents=True)
    part = rng.integers(0, 4, c.height)
    for i in range(4):
        c.filter(pl.Series(part == i)).write_parquet(cdir / f"chunk-{i}.parquet")
    return mdir, cdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("determinism")
    plat = generate(12_000, 21, dirty=0.003, level=6.0)
    plat.write(root / "data")
    cfg = root / "run.toml"
    cfg.write_text(small_run_config(seed=5))
    members = pl.read_parquet(root / "data" / "members.parquet")
    claims = pl.read_parquet(root / "data" / "claims.parquet")
    mdir, cdir = _partition(members, claims, root / "parts", seed=7)
    cfg2 = root / "parts" / "run.toml"  # another file in another directory: its path must not leak
    cfg2.write_text(small_run_config(mdir, cdir, seed=5))
    out = {name: root / f"out-{name}" for name in ("a", "b", "c", "parts")}
    assert main(["run", str(cfg), "--out", str(out["a"]), "--quiet"]) == 0
    # the reruns: other processes with one, then two polars and BLAS threads (float sums and matrix
    # products must not depend on threads)
    for name, n in (("b", "1"), ("c", "2")):
        env = {**os.environ, "POLARS_MAX_THREADS": n, "OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": n,
               "MKL_NUM_THREADS": n}
        subprocess.run([sys.executable, "-m", "engine.cli.main", "run", str(cfg), "--out", str(out[name]), "--quiet"],
                       check=True, cwd=REPO, env=env, timeout=300)
    assert main(["run", str(cfg2), "--out", str(out["parts"]), "--quiet"]) == 0
    return out


@pytest.mark.parametrize("other", ["b", "c"], ids=["1_thread", "2_threads"])
def test_rerun_is_byte_identical(runs: dict[str, Path], other: str) -> None:
    a, b = _digests(runs["a"]), _digests(runs[other])
    assert set(a) == set(b)
    for name in ("report.html", "summary.json", "cells.parquet", "select_factors.parquet", "segments.parquet",
                 "frontier.parquet", "decomposition.parquet", "calibration.parquet", "config.toml",
                 "models/glm/model.json", "models/segmentation/groups.parquet"):
        assert name in a, name  # every output is covered, including the once-unstable ones
    diff = sorted(k for k in a if a[k] != b[k] and k != "run.json")
    assert diff == []


def test_other_partitioning_and_row_order_is_byte_identical(runs: dict[str, Path]) -> None:
    a, p = _digests(runs["a"]), _digests(runs["parts"])
    assert set(a) == set(p)
    diff = sorted(k for k in a if a[k] != p[k] and k not in ("run.json", "config.toml"))
    assert diff == []
    # config.toml: only the input paths and the header naming the configuration file differ
    la = (runs["a"] / "config.toml").read_text().splitlines()
    lp = (runs["parts"] / "config.toml").read_text().splitlines()
    assert len(la) == len(lp)
    changed = [(x.split(" = ")[0], y.split(" = ")[0]) for x, y in zip(la, lp) if x != y]
    assert changed == [("# resolved configuration (from " + str(runs["a"].parent / "run.toml") + ")",
                        "# resolved configuration (from " + str(runs["parts"].parent / "parts" / "run.toml") + ")"),
                       ("members", "members"), ("claims", "claims")]


def test_the_data_really_differ_in_layout(runs: dict[str, Path]) -> None:
    """Guard against a vacuous comparison: the partitioned run read other files, same row account."""
    ra = json.loads((runs["a"] / "run.json").read_text())
    rp = json.loads((runs["parts"] / "run.json").read_text())
    assert ra["inputs"]["members"]["files"] == 1 and rp["inputs"]["members"]["files"] > 5
    assert rp["inputs"]["claims"]["files"] == 4
    for key in ("started_utc", "finished_utc", "seconds", "versions"):
        assert key in ra
    acc_a = json.loads((runs["a"] / "account.json").read_text())
    assert acc_a == json.loads((runs["parts"] / "account.json").read_text())
    assert acc_a["members"]["set_aside_total"] > 0  # dirty rows exercise the rejected files' order


def test_rejected_rows_in_canonical_order(runs: dict[str, Path]) -> None:
    for name in ("rejected/rejected_members.parquet", "rejected/rejected_claims.parquet"):
        df = pl.read_parquet(runs["parts"] / name)
        assert df.height > 0
        assert df.equals(df.sort(df.columns, nulls_last=True, maintain_order=True)), name
