"""Engines of the executor seam (issue 22, item 3): threads, spawned processes and Dask, chosen by
``--engine`` / ``[run] engine``; a real ``dask scheduler`` and ``dask worker`` attached with ``--address``.

The exposure cells must be bit-identical to the run without an executor, whatever the engine and the
split of the members into files (1, 3, 8 files; uneven and empty ones), and the row account must
balance. Each cluster is started once per module (a local Dask cluster costs several seconds).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine
from engine.cells._engines import ENGINES, check_engine, executor_for
from engine.cli.main import main
from engine.errors import ConfigError
from tests.kits.cli_error import error_line
from tests.kits.random_members import KW, _random_members

pytest.importorskip("distributed")
from tests.kits.servers import dask_cluster, free_port  # noqa: E402
from tests.kits.partitions import scan_parts

N = 3000
BYS = [("age", "sex"), ("age", "duration_band", "tier", "channel")]
SPLITS = {
    "1 file": [0, N],
    "3 files": [0, 1000, 2000, N],
    "8 files": list(np.linspace(0, N, 9).astype(int)),
    "uneven and empty": [0, 0, 7, 7, 2950, N, N],
}


@functools.cache
def _data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(members, claims), built on first use, not at import: a mutation run forks each mutant from a
    process that has imported this file, and polars work there would hold its thread pool."""
    return _random_members(N, seed=2222)


def _members() -> pl.DataFrame:
    return _data()[0]


def _claims() -> pl.DataFrame:
    return _data()[1]


@functools.cache
def _want(by: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cells and rejected claims of one process, without an executor."""
    return engine.exposure(_members(), _claims(), by=by, return_rejected=True, **KW)


@pytest.fixture(scope="module")
def pools():
    """The three engines that take several workers: a thread pool, spawned processes, a local Dask cluster
    (processes, 2 workers of 1 thread each)."""
    with executor_for("threads", workers=3) as th, executor_for("processes", workers=2) as pr, \
            executor_for("dask", workers=2) as dk:
        yield {"threads": th, "processes": pr, "dask": dk}


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real `dask scheduler` and one `dask worker` (1 thread) on 127.0.0.1, as a user would start them."""
    with dask_cluster(n_workers=1, log_dir=tmp_path_factory.mktemp("dask-logs")) as address:
        yield address


def _files(tmp_path, cuts) -> list[pl.LazyFrame]:
    return scan_parts(tmp_path, _members(), cuts)


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("name", ["threads", "processes", "dask"])
def test_bit_identical(pools, name, split, tmp_path) -> None:
    parts = _files(tmp_path, SPLITS[split])
    for by in BYS:
        cells, rejected = engine.exposure(parts, _claims(), by=by, return_rejected=True, executor=pools[name], **KW)
        want_cells, want_rejected = _want(by)
        assert_frame_equal(cells, want_cells, check_exact=True)
        assert cells.equals(want_cells)
        assert_frame_equal(rejected, want_rejected, check_exact=True)
        # the claims account: every claim is used in a cell or set aside with its reason
        assert int(cells["claims"].sum()) + rejected.height == _claims().height
        assert rejected["reason"].null_count() == 0


def test_dask_workers_setup(pools) -> None:
    """The local cluster's workers are processes of one thread, polars sized to the cores they share."""
    import os

    ex = pools["dask"]
    client = ex._client
    info = client.scheduler_info()["workers"]
    assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    want = max((os.cpu_count() or 1) // 2, 1)
    assert set(client.run(pl.thread_pool_size).values()) == {want}


def _tree(tmp_path) -> tuple[str, str]:
    d = tmp_path / "members"
    d.mkdir(exist_ok=True)
    for i, (a, b) in enumerate(zip(SPLITS["8 files"], SPLITS["8 files"][1:])):
        _members().slice(a, b - a).write_parquet(d / f"part-{i}.parquet")
    _claims().write_parquet(tmp_path / "claims.parquet")
    return str(d), str(tmp_path / "claims.parquet")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[str, str, bytes]:
    """(members directory of 8 files, claims file, the bytes `fentan exposure` writes in one process)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("tree")
    members, claims = _tree(root)
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(_cli(members, claims, root / "one.parquet")) == 0
    _account(text.getvalue())
    return members, claims, (root / "one.parquet").read_bytes()


def _cli(members: str, claims: str, out, *extra: str) -> list[str]:
    return ["exposure", "--members", members, "--claims", claims, "--start", str(KW["start"]),
            "--end", str(KW["end"]), "--waiting-days", str(KW["waiting_days"]), "--by", "age,sex,channel",
            "--batch-size", "700", "--out", str(out), *extra]


def _account(text: str) -> None:
    """The printed row account balances: members read = used + set aside; claims read = used + set aside."""
    m = re.search(r"members: ([\d,]+) read, ([\d,]+) used, ([\d,]+) set aside", text)
    c = re.search(r"claims: ([\d,]+) read = ([\d,]+) used \+ ([\d,]+) set aside", text)
    assert m and c, text
    (mr, mu, ms), (cr, cu, cs) = ([int(x.replace(",", "")) for x in g.groups()] for g in (m, c))
    assert (mr, mr, cr) == (N, mu + ms, cu + cs)


def test_cli_address_of_a_running_cluster(scheduler, tree, tmp_path, capsys) -> None:
    """`fentan exposure --engine dask --address tcp://...`: the same bytes as one process."""
    members, claims, one = tree
    assert main(_cli(members, claims, tmp_path / "dask.parquet", "--engine", "dask", "--address", scheduler)) == 0
    _account(capsys.readouterr().out)
    assert (tmp_path / "dask.parquet").read_bytes() == one


@pytest.mark.parametrize("flags", [["--engine", "threads", "--workers", "2"],
                                   pytest.param(["--engine", "processes", "--workers", "2"], marks=pytest.mark.slow)])
def test_cli_engines_same_bytes(flags, tree, tmp_path) -> None:
    members, claims, one = tree
    assert main(_cli(members, claims, tmp_path / "pool.parquet", "--quiet", *flags)) == 0
    assert (tmp_path / "pool.parquet").read_bytes() == one


@pytest.mark.slow
def test_cli_local_dask_cluster(tree, tmp_path, capsys) -> None:
    """`--engine dask --workers 2` starts (and stops) its own local cluster, without warnings on stderr."""
    members, claims, one = tree
    assert main(_cli(members, claims, tmp_path / "dask.parquet", "--engine", "dask", "--workers", "2")) == 0
    out = capsys.readouterr()
    _account(out.out)
    assert "WARNING" not in out.err
    assert (tmp_path / "dask.parquet").read_bytes() == one


def test_dask_workers_read_s3(pools) -> None:
    """Scans of s3:// files run on the Dask workers: the storage options travel with the scan."""
    pytest.importorskip("moto")
    import pyarrow.fs as pafs

    from engine.data.io import resolve_paths
    from tests.kits.servers import moto_s3

    with moto_s3() as opts:
        s3 = pafs.S3FileSystem(endpoint_override=opts["aws_endpoint_url"].removeprefix("http://"), scheme="http",
                               access_key="testing", secret_key="testing", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir("lake")
        for i, (a, b) in enumerate(zip(SPLITS["3 files"], SPLITS["3 files"][1:])):
            with s3.open_output_stream(f"lake/members/part-{i}.parquet") as fh:
                _members().slice(a, b - a).write_parquet(fh)
        parts = [pl.scan_parquet(f, storage_options=opts) for f in resolve_paths("s3://lake/members", opts)]
        assert len(parts) == 3
        by = BYS[1]
        cells, rejected = engine.exposure(parts, _claims(), by=by, return_rejected=True, executor=pools["dask"], **KW)
    assert cells.equals(_want(by)[0]) and rejected.equals(_want(by)[1])


@pytest.mark.parametrize("flags, needles", [
    (["--engine", "spark"], ["--engine", "must be one of", "local, threads, processes, dask", "spark"]),
    (["--address", "tcp://127.0.0.1:8786"], ["--address", "only with engine 'dask'"]),
    (["--engine", "dask", "--address", "tcp://h:1", "--workers", "2"], ["--workers", "not with --address"]),
    (["--engine", "threads", "--workers", "0"], ["--workers", "positive integer"]),
    (["--engine", "threads", "--workers", "two"], ["--workers", "'two' is not an integer"]),
    (["--workers", "4"], ["--workers", "engine 'local' runs in one process"]),
])
def test_cli_bad_engine_flags(flags, needles, tmp_path, capsys) -> None:
    members, claims = _tree(tmp_path)
    assert main(_cli(members, claims, tmp_path / "x.parquet", *flags)) == 2
    error_line(capsys, "exposure", *needles)
    assert not (tmp_path / "x.parquet").exists()


def test_unreachable_address(monkeypatch, tmp_path, capsys) -> None:
    import engine.cells._engines as eng

    monkeypatch.setattr(eng, "CONNECT_TIMEOUT_S", 2)
    members, claims = _tree(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(_cli(members, claims, tmp_path / "x.parquet", "--engine", "dask", "--address", address)) == 2
    error_line(capsys, "exposure", "--address", f"no Dask scheduler answers at {address}", "within 2 s")


def test_missing_extra(monkeypatch, tmp_path, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the dask extra were not installed
    members, claims = _tree(tmp_path)
    assert main(_cli(members, claims, tmp_path / "x.parquet", "--engine", "dask")) == 2
    error_line(capsys, "exposure", "--engine dask needs distributed", "pip install 'fentan[dask]'")


def test_worker_fentan_version_checked(scheduler, monkeypatch) -> None:
    import engine._version

    monkeypatch.setattr(engine._version, "__version__", "99.0")
    with pytest.raises(ConfigError, match=r"^--engine: the Dask worker tcp://127\.0\.0\.1:\d+ has fentan 0\.1\.0; "
                                          r"every worker needs fentan 99\.0 installed"):
        with executor_for("dask", address=scheduler):
            pass


def test_worker_without_fentan(scheduler, monkeypatch) -> None:
    import engine.cells._engines as eng

    monkeypatch.setattr(eng, "_DIST", "fentan-not-installed-anywhere")  # the workers look this name up
    with pytest.raises(ConfigError, match=r"^--engine: the Dask worker tcp://127\.0\.0\.1:\d+ does not have "
                                          r"fentan-not-installed-anywhere installed; every worker needs"):
        with executor_for("dask", address=scheduler):
            pass


def test_check_engine_rules() -> None:
    assert ENGINES[0] == "local" and check_engine(None, None, None) == "local"
    assert check_engine(" DASK ", "tcp://h:8786", None) == "dask"
    with pytest.raises(ConfigError, match=r"^run\.address: expected a scheduler address"):
        check_engine("dask", "nowhere", None, where="run.")
    with executor_for("local") as ex:
        assert ex is None
    with executor_for("threads", workers=2) as ex:
        assert isinstance(ex, ThreadPoolExecutor) and ex._max_workers == 2


def _run_args(config, **flags) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), **{k: flags.get(k) for k in ("engine", "address", "workers")})


def test_run_config_engine_keys(tmp_path) -> None:
    """`[run] engine / workers` open the engine of `fentan run`; the flags win; bad keys are named."""
    from engine.cli._engine_flags import run_executor
    from tests.kits.runconfig import small_run_config

    cfg = tmp_path / "run.toml"
    cfg.write_text(small_run_config(plans=False, extra='\n[run]\nengine = "threads"\nworkers = 2\n'))
    with run_executor(_run_args(cfg)) as ex:
        assert isinstance(ex, ThreadPoolExecutor) and ex._max_workers == 2
    with run_executor(_run_args(cfg, engine="local")) as ex:
        assert ex is None
    dry = _run_args(cfg, engine="dask", workers="2")
    dry.dry_run = True  # nothing computed: no cluster started
    with run_executor(dry) as ex:
        assert ex is None
    for extra, needles in [('engine = "spark"', "run.engine"), ('engine = "threads"\naddress = "tcp://h:1"', "address"),
                           ("workers = 0", "run.workers"), ('engine = "dask"\naddress = "h"', "scheduler address")]:
        cfg.write_text(small_run_config(plans=False, extra=f"\n[run]\n{extra}\n"))
        with pytest.raises(ConfigError, match=re.escape(needles)) as err:
            with run_executor(_run_args(cfg)):
                pass
        assert str(err.value).startswith(f"{cfg}: run")


def test_run_config_storage_options_not_written(tmp_path) -> None:
    from engine.pipeline.config import config_from_dict, to_toml

    cfg = config_from_dict({"data": {"members": "s3://lake/members", "claims": "s3://lake/claims.parquet",
                                     "storage_options": {"aws_endpoint_url": "http://minio:9000",
                                                         "aws_secret_access_key": "s3cr3t"}}},
                           "run.toml", tmp_path)
    assert cfg.data.members == "s3://lake/members"  # a remote path is not resolved against the config's folder
    text = to_toml(cfg)
    assert "s3cr3t" not in text and "http://minio:9000" in text


@pytest.mark.skipif("executor" not in inspect.signature(engine.run).parameters,
                    reason="fentan run passes the engine's executor to engine.run(config, executor=) (issue 22, part B)")
def test_cli_run_engine_dask(scheduler, tmp_path) -> None:
    from tests.kits.runconfig import small_run_config

    pytest.importorskip("matplotlib")
    members, claims = _tree(tmp_path)
    cfg = tmp_path / "run.toml"
    cfg.write_text(small_run_config(members, claims, plans=False, extra="\n[output]\nreport = false\n\n[study]\nfactors = [\"tier\", \"channel\"]\n"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert main(["run", str(cfg), "--out", str(tmp_path / "dask"), "--quiet", "--engine", "dask",
                 "--address", scheduler]) == 0
    tables = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.parquet"))
    assert "cells.parquet" in map(str, tables)
    for f in tables:  # every table of the run, byte for byte
        assert (tmp_path / "dask" / f).read_bytes() == (tmp_path / "one" / f).read_bytes(), f
