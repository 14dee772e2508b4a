"""Streaming validation with a scratch location (issue 22): the id buckets on S3, the tasks on any executor.

With ``scratch=`` (``[run] scratch``, ``--scratch``), validation writes its duplicate-id buckets below
an ``s3://`` prefix (a moto server on 127.0.0.1 here) in a unique sub-directory, so its tasks may run
on workers that share no disk with the driver. On a thread pool and on a local Dask cluster the result
is identical to the local one; the sub-directory is gone afterwards, also after an error; an
unwritable scratch location is one line naming the key, exit code 2.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from polars.testing import assert_frame_equal

import engine
from engine.cli.main import main
from engine.data import _scratch
from engine.data import _validation_stream as vs
from engine.data.io import read_claims, read_members
from engine.errors import ConfigError
from engine.synth import generate
from tests.kits.cli_error import error_line
from tests.kits.partitions import write_parts
from tests.kits.runconfig import small_run_config

pytest.importorskip("moto")
from tests.kits.servers import moto_s3  # noqa: E402

BUCKET = "scratch"
PLAT = generate(3000, seed=23, level=300.0, dirty=0.03)
CUTS = [0, 1000, 1000, 2200, PLAT.members.height]  # four files, one empty


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(s3 filesystem, storage options, data directory): an empty bucket and the platform in local files."""
    import pyarrow.fs as pafs

    root = tmp_path_factory.mktemp("scratch")
    (root / "members").mkdir()
    write_parts(root / "members", PLAT.members, CUTS)
    PLAT.claims.write_parquet(root / "claims.parquet")
    with moto_s3() as opts:
        s3 = pafs.S3FileSystem(endpoint_override=opts["aws_endpoint_url"].removeprefix("http://"), scheme="http",
                               access_key="testing", secret_key="testing", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir(BUCKET)
        yield s3, opts, root


def _inputs(root):
    return read_members(root / "members"), read_claims(root / "claims.parquet")


def _left(s3) -> list[str]:
    """The files left in the bucket, and any validation sub-directory (the store may keep the empty prefix
    given as a directory)."""
    import pyarrow.fs as pafs

    return [i.path for i in s3.get_file_info(pafs.FileSelector(BUCKET, recursive=True))
            if i.type != pafs.FileType.Directory or _scratch.PREFIX in i.path]


def _same(got: engine.ValidationResult, want: engine.ValidationResult) -> None:
    assert got.account == want.account
    for what in ("rejected_members", "rejected_claims"):
        assert_frame_equal(getattr(got, what), getattr(want, what), check_exact=True)
    assert_frame_equal(got.members.collect(), want.members.collect(), check_exact=True)
    assert_frame_equal(got.claims.collect(), want.claims.collect(), check_exact=True)
    assert got.member_fingerprint == want.member_fingerprint


def _spy(monkeypatch) -> list[list[str]]:
    """The bucket files found in each scratch sub-directory just before it is removed."""
    import pyarrow.fs as pafs

    seen: list[list[str]] = []
    real = _scratch._remove

    def spy(store: _scratch.BucketDir) -> None:
        fs, path = store._fs()
        seen.append(sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path))))
        real(store)

    monkeypatch.setattr(_scratch, "_remove", spy)
    return seen


@pytest.mark.parametrize("engine_name", ["threads", "dask"])
def test_scratch_on_s3_same_as_local(store, engine_name, monkeypatch) -> None:
    from engine.cells._engines import executor_for

    s3, opts, root = store
    want = engine.validate(*_inputs(root), stream=True, fingerprint=True)
    seen = _spy(monkeypatch)
    with executor_for(engine_name, workers=2) as ex:
        got = engine.validate(*_inputs(root), executor=ex, fingerprint=True, scratch=f"s3://{BUCKET}/run/",
                              scratch_options=opts)
    _same(got, want)
    n = len(CUTS) - 1
    assert seen == [sorted([".probe", *(f"{i}.{k}.npy" for i in range(n) for k in ("ends", "hash", "row"))])]
    assert _left(s3) == []  # the sub-directory is gone


def test_buckets_read_back_by_range(store) -> None:
    """A bucket range read from S3 (header, then a byte range) equals the slice of the array written."""
    import numpy as np

    _, opts, _ = store
    hashes = np.arange(1000, dtype=np.uint64) * np.uint64(2654435761)
    rows = np.arange(1000, dtype=np.uint32)
    with _scratch.bucket_dir(f"s3://{BUCKET}/x", opts) as d, _scratch.bucket_dir() as local:
        for where in (d, local):
            counts = vs.write_buckets(hashes, rows, where, 0, 16)
            assert sum(counts) == 1000
        for lo, hi in ((0, 1), (3, 9), (15, 16), (0, 16)):
            for a, b in zip(vs.read_buckets(d, 0, lo, hi), vs.read_buckets(local, 0, lo, hi), strict=True):
                assert a.dtype == b.dtype and a.tolist() == b.tolist()


def test_scratch_removed_after_an_error(store, monkeypatch) -> None:
    s3, opts, root = store

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(vs, "bucket_task", boom)
    with ThreadPoolExecutor(2) as ex, pytest.raises(RuntimeError, match="boom"):
        engine.validate(*_inputs(root), executor=ex, scratch=f"s3://{BUCKET}/err", scratch_options=opts)
    assert _left(s3) == []


def test_unwritable_scratch_is_one_line_naming_the_key(store, tmp_path, capsys, monkeypatch) -> None:
    _, opts, root = store
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="^scratch: cannot write to s3://no-such-bucket/x"):
        engine.validate(*_inputs(root), scratch="s3://no-such-bucket/x", scratch_options=opts)
    options = "storage_options = { " + ", ".join(f'{k} = "{v}"' for k, v in sorted(opts.items())) + " }\n"
    cfg = tmp_path / "run.toml"
    cfg.write_text(small_run_config(root / "members", root / "claims.parquet",
                                    extra=options + '[run]\nscratch = "s3://no-such-bucket/x"\n'))
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error_line(capsys, "run", "run.toml: run.scratch", "s3://no-such-bucket/x")
    assert not (tmp_path / "out").exists()
    (tmp_path / "a-file").write_text("")
    assert main(["exposure", "--members", str(root / "members"), "--claims", str(root / "claims.parquet"),
                 "--start", "2020-01-01", "--end", "2020-12-31", "--out", str(tmp_path / "cells.parquet"),
                 "--scratch", str(tmp_path / "a-file")]) == 2
    error_line(capsys, "exposure", "--scratch", str(tmp_path / "a-file"))

