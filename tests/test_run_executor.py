"""``engine.run(config, executor=)`` (issue 22, part B, item 2).

The member passes of a run (exposure, share history, decomposition windows, members sharing at the
end) run one task per partition on the executor and sum integer counts in the driver: every output
of a thread pool and of a spawned process pool is byte-identical to the run without an executor
(``run.json`` records wall times: exempt). A process pool that forks is refused before any work.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.cells import process_pool
from engine.errors import ConfigError
from tests.kits.runconfig import small_run_config


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "run.json":
            data = p.read_bytes()
            if p.name == "model.json":
                meta = json.loads(data)
                meta.pop("fit_date", None)
                data = json.dumps(meta, sort_keys=True).encode()
            out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12,000 members written as 5 uneven files (one empty): five partitions, five tasks."""
    from engine.synth import generate

    root = tmp_path_factory.mktemp("run_executor")
    plat = generate(12_000, 23, dirty=0.003, level=6.0)
    plat.write(root / "data")
    members = pl.read_parquet(root / "data" / "members.parquet")
    (root / "members").mkdir()
    for i, (a, b) in enumerate([(0, 100), (100, 100), (100, 7000), (7000, 11000), (11000, members.height)]):
        members.slice(a, b - a).write_parquet(root / "members" / f"part-{i}.parquet")
    (root / "run.toml").write_text(small_run_config("members", "data/claims.parquet", seed=3))
    return root


@pytest.fixture(scope="module")
def plain(platform: Path) -> dict[str, str]:
    res = engine.run(platform / "run.toml", platform / "out-plain", quiet=True)
    assert res.account["members"]["read"] == res.account["members"]["used"] + res.account["members"]["set_aside_total"]
    return _digests(platform / "out-plain")


@pytest.mark.parametrize("kind", ["threads", "spawned"])
def test_executor_outputs_are_byte_identical(platform: Path, plain: dict[str, str], kind: str) -> None:
    ex = ThreadPoolExecutor(max_workers=3) if kind == "threads" else process_pool(2)
    with ex:
        engine.run(platform / "run.toml", platform / f"out-{kind}", quiet=True, executor=ex)
    got = _digests(platform / f"out-{kind}")
    assert set(got) == set(plain)
    assert "history.parquet" in got and "decomposition.parquet" in got and "cells.parquet" in got
    assert [k for k in plain if plain[k] != got[k]] == []


def test_forking_pool_and_non_executor_refused(platform: Path) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as ex:
        with pytest.raises(ConfigError, match="forks"):
            engine.run(platform / "run.toml", platform / "out-fork", quiet=True, executor=ex)
    with pytest.raises(ConfigError, match="executor"):
        engine.run(platform / "run.toml", platform / "out-bad", quiet=True, executor=2)
    assert not (platform / "out-fork").exists() and not (platform / "out-bad").exists()
