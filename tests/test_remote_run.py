"""``fentan run`` on remote paths (issue 22, item 3): members and claims in an S3 bucket.

The same synthetic platform (members in three Parquet files, one of them empty) is written to a local
directory and to a bucket of a local S3 emulator (moto server on 127.0.0.1). ``fentan run`` over the
``s3://`` URIs, with the endpoint and credentials in ``[data] storage_options``, gives every output
file byte-identical to the run over the local copy (``run.json`` records wall times and the input
sizes, ``config.toml`` the paths: compared apart); the memory guard and the run record read the
remote footers and sizes, and no secret reaches the outputs. With ``--scratch s3://...`` validation's
tasks run on the pool with their id buckets in the bucket: the same bytes again.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import main
from tests.kits.cli_error import error_line
from tests.kits.runconfig import small_run_config

pytest.importorskip("moto")
from tests.kits.servers import moto_s3  # noqa: E402

BUCKET = "runlake"
CUTS = (0.0, 0.4, 0.4, 1.0)  # three files, the second empty


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("run.json", "config.toml")}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    """(local root, storage options): the same platform on disk and in ``s3://runlake``."""
    import pyarrow.fs as pafs

    from engine.synth import generate

    root = tmp_path_factory.mktemp("remote_run")
    plat = generate(30_000, 5, dirty=0.01, level=6.0)
    m, h = plat.members, plat.members.height
    files = {}
    for i, (a, b) in enumerate(zip(CUTS, CUTS[1:])):
        buf = io.BytesIO()
        m.slice(int(a * h), int(b * h) - int(a * h)).write_parquet(buf)
        files[f"members/part-{i}.parquet"] = buf.getvalue()
    buf = io.BytesIO()
    plat.claims.write_parquet(buf)
    files["claims/claims.parquet"] = buf.getvalue()
    with moto_s3() as opts:
        s3 = pafs.S3FileSystem(endpoint_override=opts["aws_endpoint_url"].removeprefix("http://"), scheme="http",
                               access_key="testing", secret_key="testing", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir(BUCKET)
        for key, data in files.items():
            with s3.open_output_stream(f"{BUCKET}/{key}") as fh:
                fh.write(data)
            (root / "data" / key).parent.mkdir(parents=True, exist_ok=True)
            (root / "data" / key).write_bytes(data)
        yield root, opts


def _options_toml(opts: dict[str, str]) -> str:
    return "storage_options = { " + ", ".join(f'{k} = "{v}"' for k, v in sorted(opts.items())) + " }\n"


def test_run_from_s3_equals_local_run(lake, monkeypatch) -> None:
    root, opts = lake
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)  # the configuration alone reaches the store
    (root / "local.toml").write_text(small_run_config(root / "data/members", root / "data/claims"))
    (root / "remote.toml").write_text(small_run_config(f"s3://{BUCKET}/members/", f"s3://{BUCKET}/claims",
                                                       extra=_options_toml(opts)))
    assert main(["run", str(root / "local.toml"), "--out", str(root / "out-local"), "--quiet"]) == 0
    assert main(["run", str(root / "remote.toml"), "--out", str(root / "out-s3"), "--quiet"]) == 0
    local, remote = _digests(root / "out-local"), _digests(root / "out-s3")
    assert len(local) > 20 and local == remote
    # validation's tasks on a pool, their id buckets below a scratch prefix of the bucket: the same bytes
    assert main(["run", str(root / "remote.toml"), "--out", str(root / "out-scratch"), "--quiet",
                 "--engine", "threads", "--workers", "2", "--scratch", f"s3://{BUCKET}/scratch/"]) == 0
    assert _digests(root / "out-scratch") == local
    assert f'scratch = "s3://{BUCKET}/scratch/"' in (root / "out-scratch/config.toml").read_text()
    rec_l = json.loads((root / "out-local/run.json").read_text())
    rec_r = json.loads((root / "out-s3/run.json").read_text())
    # the run record lists the remote inputs with their sizes, the memory guard read their footers
    assert rec_r["inputs"]["members"]["path"] == f"s3://{BUCKET}/members/"
    for what in ("members", "claims"):
        assert rec_r["inputs"][what]["files"] == rec_l["inputs"][what]["files"]
        assert rec_r["inputs"][what]["bytes"] == rec_l["inputs"][what]["bytes"] > 0
    for key in ("member_rows", "claim_rows", "member_row_bytes", "claim_row_bytes", "need_bytes"):
        assert rec_r["memory"][key] == rec_l["memory"][key]
    assert rec_r["memory"]["member_rows"] == pl.read_parquet(root / "data/members").height
    # the secret key never reaches an output
    secret = opts["aws_secret_access_key"]
    for p in (root / "out-s3").rglob("*"):
        if p.is_file() and p.suffix in (".json", ".toml", ".html"):
            assert f'"{secret}"' not in p.read_text(encoding="utf-8"), p


def test_run_memory_guard_refuses_remote_inputs(lake, capsys) -> None:
    root, opts = lake
    (root / "guard.toml").write_text(small_run_config(f"s3://{BUCKET}/members/", f"s3://{BUCKET}/claims",
                                                      extra=_options_toml(opts)))
    assert main(["run", str(root / "guard.toml"), "--out", str(root / "out-guard"), "--quiet",
                 "--memory-limit", "1MB"]) == 2
    error_line(capsys, "run", f"s3://{BUCKET}/claims", "claim rows", "memory limit")
    assert not (root / "out-guard" / "cells.parquet").exists()


def test_one_filesystem_per_store_for_the_memory_guard_and_run_record(lake, monkeypatch) -> None:
    """Listing, the memory guard's footers and the run record's sizes of a 3-file remote directory build one
    pyarrow filesystem (per store root and storage options), not one per file."""
    import pyarrow.fs as pafs

    from engine.data import remote
    from engine.data.io import resolve_paths
    from engine.pipeline.memguard import estimate_inputs

    root, opts = lake
    for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    built: list[dict[str, str]] = []
    real = pafs.S3FileSystem
    monkeypatch.setattr(pafs, "S3FileSystem", lambda **kw: built.append(kw) or real(**kw))
    monkeypatch.setattr(remote, "_STORES", {})
    members = f"s3://{BUCKET}/members/"
    files = resolve_paths(members, opts)
    assert len(files) == 3
    rows = estimate_inputs(members, f"s3://{BUCKET}/claims", storage_options=opts)[0]
    sizes = [remote.file_size(f, opts) for f in files]
    assert rows == pl.read_parquet(root / "data/members").height
    assert sizes == [(root / "data/members" / f"part-{i}.parquet").stat().st_size for i in range(3)]
    assert len(built) == 1
    remote.file_size(files[0], {**opts, "aws_region": "eu-west-1"})  # other options: another filesystem
    assert len(built) == 2
