"""Remote input paths (issue 22, item 3): s3:// read through pyarrow.fs listing and polars, against a local
S3 emulator (moto server on 127.0.0.1, started by a fixture).

The same partitioned tree is written locally and to a bucket; everything read from the bucket must equal
what is read from the local copy: the listing (files and skipped files with their reasons, under the
Hive/Spark rules), the members, the exposure cells (bit-identical) and `fentan exposure`'s output.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine
from engine.cli.main import main
from engine.data.io import read_claims, read_members, resolve_paths
from engine.data.listing import list_input
from engine.data.remote import filesystem, is_remote, storage_options
from engine.errors import ConfigError, InputFileError
from tests.kits.cli_error import error_line
from tests.kits.random_members import KW, _random_members

pytest.importorskip("moto")
from tests.kits.servers import moto_s3  # noqa: E402

N = 2000
MEMBERS, CLAIMS = _random_members(N, seed=7)
BUCKET = "lake"
CUTS = [0, 500, 500, 1300, N]  # uneven, one empty file


def _tree() -> dict[str, bytes]:
    """The files of the lake: hive-partitioned members (one 0-byte file), claims, and files to skip."""
    import io

    def pq(df: pl.DataFrame) -> bytes:
        buf = io.BytesIO()
        df.write_parquet(buf)
        return buf.getvalue()

    files = {f"members/batch={i}/part-{i}.parquet": pq(MEMBERS.slice(a, b - a))
             for i, (a, b) in enumerate(zip(CUTS, CUTS[1:])) if b > a}
    files["members/batch=1/part-1.parquet"] = b""  # the empty slice as a 0-byte file: skipped
    files["members/_SUCCESS"] = b""
    files["members/_temporary/0/part-9.parquet"] = pq(MEMBERS.head(3))
    files["members/.old/part-0.parquet"] = pq(MEMBERS.head(3))
    files["members/batch=0/README.txt"] = b"notes"
    files["claims/claims.parquet"] = pq(CLAIMS)
    files["csv/members.csv"] = MEMBERS.head(3).write_csv().encode()
    return files


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[str, Path, dict[str, str]]:
    """(``s3://lake``, the local copy, storage options): the same tree in a bucket and on disk."""
    local = tmp_path_factory.mktemp("lake")
    with moto_s3() as opts:
        import pyarrow.fs as pafs

        s3 = pafs.S3FileSystem(endpoint_override=opts["aws_endpoint_url"].removeprefix("http://"), scheme="http",
                               access_key="testing", secret_key="testing", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir(BUCKET)
        for key, data in _tree().items():
            with s3.open_output_stream(f"{BUCKET}/{key}") as fh:
                fh.write(data)
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(data)
        yield f"s3://{BUCKET}", local, opts


def _rel(listing, root: str) -> tuple[list[str], dict[str, str]]:
    files = [str(f)[len(root):] for f in listing.files]
    return files, {k[len(root):]: v for k, v in listing.skipped.items()}


def test_is_remote() -> None:
    assert is_remote("s3://b/k") and is_remote("gs://b/k") and is_remote("hdfs://nn:8020/data")
    assert not is_remote("members.parquet") and not is_remote("/data/x") and not is_remote("file:///data/x")
    assert not is_remote(Path("s3://b/k"))  # a Path is local (its text lost the second '/')


@pytest.mark.parametrize("sub", ["members", "members/batch=2/part-2.parquet", "members/*/part-*.parquet",
                                 "members/**/*.parquet", "members/batch=[!1]/*.parquet", "members/batch=?/part-?.parquet",
                                 "members/**"])
def test_listing_same_rules_as_local(lake, sub) -> None:
    uri, local, opts = lake
    got = _rel(list_input(f"{uri}/{sub}", opts), uri)
    want = _rel(list_input(str(local / sub)), str(local))
    assert got == want
    if sub == "members":  # the rules did apply: every kind of skip is there
        reasons = set(got[1].values())
        assert {r.split(" (")[0] for r in reasons} >= {"hidden", "metadata", "empty file", "not a data file name"}
        assert len(got[0]) == 3


def test_members_and_claims_read_the_same(lake) -> None:
    uri, local, opts = lake
    m_remote = read_members(f"{uri}/members", storage_options=opts).collect()
    m_local = read_members(str(local / "members")).collect()
    assert m_remote.height == N  # every row of the data files, none of the skipped ones
    assert_frame_equal(m_remote, m_local, check_exact=True)
    assert sorted(m_remote["batch"].unique().to_list()) == [0, 2, 3]  # hive column from the object keys
    c_remote = read_claims(f"{uri}/claims/claims.parquet", storage_options=opts).collect()
    assert_frame_equal(c_remote, read_claims(str(local / "claims" / "claims.parquet")).collect(), check_exact=True)


def test_exposure_bit_identical(lake, monkeypatch) -> None:
    uri, local, opts = lake
    by = ("age", "sex", "channel")
    want = engine.exposure(MEMBERS, CLAIMS, by=by, **KW)
    files = resolve_paths(f"{uri}/members", opts)
    assert all(isinstance(f, str) and f.startswith("s3://lake/members/batch=") for f in files)
    parts = [pl.scan_parquet(f, storage_options=opts) for f in files]  # one task per file, read where it runs
    claims = read_claims(f"{uri}/claims", storage_options=opts)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        for executor in (None, ex):
            got = engine.exposure(parts, claims.collect(), by=by, executor=executor, **KW)
            assert got.equals(want)
    # the environment alone reaches the store (as on the command line)
    for k, v in {"AWS_ENDPOINT_URL": opts["aws_endpoint_url"], "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    got = engine.exposure(read_members(f"{uri}/members").collect(), claims.collect(), by=by, **KW)
    assert got.equals(want)


def test_cli_exposure_from_s3(lake, tmp_path, monkeypatch, capsys) -> None:
    uri, local, opts = lake
    common = ["--start", str(KW["start"]), "--end", str(KW["end"]), "--by", "age,sex,batch", "--quiet"]
    assert main(["exposure", "--members", str(local / "members"), "--claims", str(local / "claims"),
                 "--out", str(tmp_path / "local.parquet"), *common]) == 0
    for k, v in {"AWS_ENDPOINT_URL": opts["aws_endpoint_url"], "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    assert main(["exposure", "--members", f"{uri}/members", "--claims", f"{uri}/claims",
                 "--out", str(tmp_path / "remote.parquet"), *common]) == 0
    assert (tmp_path / "remote.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()
    assert main(["exposure", "--members", f"{uri}/members", "--claims", f"{uri}/nothing-here",
                 "--out", str(tmp_path / "x.parquet"), *common]) == 2
    error_line(capsys, "exposure", "s3://lake/nothing-here", "no such file or directory")


def test_remote_errors(lake) -> None:
    uri, _, opts = lake
    with pytest.raises(InputFileError, match=r"^s3://lake/nope: no such file or directory$"):
        list_input(f"{uri}/nope", opts)
    with pytest.raises(InputFileError, match="glob matches no file"):
        list_input(f"{uri}/nope/*.parquet", opts)
    with pytest.raises(InputFileError, match="glob matches no data file"):
        list_input(f"{uri}/members/*.txt", opts)
    for csv in (f"{uri}/csv", f"{uri}/csv/members.csv"):
        with pytest.raises(InputFileError, match=r"^s3://lake/csv/members\.csv: remote CSV files are not read; convert"):
            list_input(csv, opts)
    with pytest.raises(ConfigError, match="storage_options.aws_region: expected text"):
        storage_options("s3://x", {"aws_region": ["a"]})


def test_storage_options_precedence(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", "cn-north-1")
    got = storage_options("s3://b/k", {"access_key_id": "ak", "aws_allow_http": False})
    assert got == {"aws_endpoint_url": "http://minio:9000", "aws_region": "cn-north-1", "aws_access_key_id": "ak",
                   "aws_allow_http": "false"}
    assert storage_options("gs://b/k") == {}  # the AWS variables are for s3:// only
    with pytest.raises(InputFileError, match=r"^s3://b/k/: cannot open the store \(.*secret_key"):
        filesystem("s3://b/k/", got)  # a key id without its secret
    fs, path = filesystem("s3://b/k/", {**got, "aws_secret_access_key": "sk"})
    assert type(fs).__name__ == "S3FileSystem" and path == "b/k"
