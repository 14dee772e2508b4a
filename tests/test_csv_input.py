"""CSV members and claims files (issue 18, item 8): the same contract, errors and row account as Parquet.

The same small platform written as Parquet and as CSV (one file, a glob, hive partitions, gzip)
gives identical contract frames, identical validation accounts and identical exposure cells.
Bad CSV values are in the bad-input matrix (tests/test_bad_inputs*.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.cli.main import main
from engine.data.io import read_claims, read_members, resolve_paths
from engine.errors import InputFileError, SchemaError

D = dt.date
AS_OF = D(2022, 6, 30)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame, pl.DataFrame]:
    """A small synthetic platform with a few dirty rows, written as Parquet and as CSV in several layouts."""
    from engine.synth import generate

    d = tmp_path_factory.mktemp("csv")
    plat = generate(3000, seed=5, level=4.0)
    m = plat.members.with_columns(  # dirty rows: set aside the same way from both formats
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("X")).otherwise(pl.col("sex")).alias("sex"),
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit(None, dtype=pl.Date)).otherwise(pl.col("join_date"))
        .alias("join_date"))
    c = plat.claims
    m.write_parquet(d / "members.parquet")
    c.write_parquet(d / "claims.parquet")
    m.write_csv(d / "members.csv")
    c.write_csv(d / "claims.csv")
    (d / "members.csv.gz").write_bytes(gzip.compress((d / "members.csv").read_bytes()))
    for i, part in enumerate(m.partition_by("channel", maintain_order=True)):
        (d / "hive" / f"channel={part['channel'][0]}").mkdir(parents=True)
        part.drop("channel").write_csv(d / "hive" / f"channel={part['channel'][0]}" / f"part-{i}.csv")
        part.write_csv(d / f"members-{i}.csv")
    return d, m, c


def _same_rows(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.schema
    assert a.sort("member_id").equals(b.sort("member_id"))


@pytest.mark.parametrize("layout", ["members.csv", "members.csv.gz", "members-*.csv", "hive"])
def test_csv_layouts_read_as_the_parquet_file(platform, layout: str) -> None:  # type: ignore[no-untyped-def]
    d, _, _ = platform
    ref = read_members(d / "members.parquet").collect()
    got = read_members(str(d / layout)).collect()
    _same_rows(got.select(ref.columns), ref)


def test_claims_csv_reads_as_parquet(platform) -> None:  # type: ignore[no-untyped-def]
    d, _, _ = platform
    assert read_claims(d / "claims.csv").collect().equals(read_claims(d / "claims.parquet").collect())


def test_same_account_and_same_cells_from_csv_and_parquet(platform) -> None:  # type: ignore[no-untyped-def]
    d, _, _ = platform
    out = {}
    for ext in ("parquet", "csv"):
        v = engine.validate(read_members(d / f"members.{ext}"), read_claims(d / f"claims.{ext}"), as_of=AS_OF)
        cells = engine.exposure(v.members, v.claims, start=D(2019, 1, 1), end=D(2021, 12, 31),
                                by=("age", "sex", "channel", "duration_band"))
        out[ext] = (v.account, v.rejected_members, v.rejected_claims, cells)
    (acc_p, rm_p, rc_p, cells_p), (acc_c, rm_c, rc_c, cells_c) = out["parquet"], out["csv"]
    assert acc_p == acc_c
    assert acc_c["members"]["set_aside"] == {"null_join_date": 1, "unknown_sex": 1}
    assert acc_c["members"]["read"] == acc_c["members"]["used"] + 2
    assert rm_p.equals(rm_c) and rc_p.equals(rc_c)
    assert cells_p.equals(cells_c)
    assert cells_c["claims"].sum() > 0


def test_cli_validate_reads_csv_with_the_same_account(platform, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    d, _, _ = platform
    accounts = []
    for ext in ("parquet", "csv"):
        out = tmp_path / ext
        code = main(["validate", "--members", str(d / f"members.{ext}"), "--claims", str(d / f"claims.{ext}"),
                     "--out", str(out), "--quiet", "--as-of", AS_OF.isoformat()])
        assert code == 0, capsys.readouterr().err
        accounts.append(json.loads((out / "account.json").read_text()))
    assert accounts[0] == accounts[1]


def test_directory_listing_takes_csv_and_names_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("member_id\n1\n")
    (tmp_path / "b.CSV").write_text("member_id\n2\n")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in resolve_paths(tmp_path)] == ["a.csv", "b.CSV"]


def test_bad_date_names_file_column_line_and_value(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("member_id,birth_date,sex,join_date,exit_date\n"
                 "a,1980-01-01,M,2019-01-01,\n"
                 "b,1980-13-01,F,2019-01-01,\n")
    with pytest.raises(SchemaError, match=r"m\.csv: column 'birth_date', line 3: '1980-13-01' is not a date \(YYYY-MM-DD\)"):
        read_members(f)


def test_empty_field_is_null_and_text_ids_stay_as_written(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("member_id,birth_date,sex,join_date,exit_date,tier\n"
                 "007,1980-01-01,m,2019-01-01,,1\n")
    df = read_members(f).collect()
    assert df.row(0) == ("007", D(1980, 1, 1), "M", D(2019, 1, 1), None, 1)


def test_mixed_formats_refused_even_as_a_list(tmp_path: Path) -> None:
    pl.DataFrame({"member_id": ["a"]}).write_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("member_id\nb\n")
    with pytest.raises(InputFileError, match="mixes CSV and Parquet"):
        read_members([tmp_path / "a.parquet", tmp_path / "b.csv"])


def test_run_dry_run_reads_csv_with_the_same_account(platform, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``fentan run`` (its memory guard included) takes CSV data paths; the dry run's account equals Parquet's."""
    d, _, _ = platform
    accounts = []
    for ext in ("parquet", "csv"):
        cfg = tmp_path / f"{ext}.toml"
        cfg.write_text(f'[data]\nmembers = "{d}/members.{ext}"\nclaims = "{d}/claims.{ext}"\nas_of = {AS_OF}\n',
                       encoding="utf-8")
        code = main(["run", str(cfg), "--out", str(tmp_path / f"out-{ext}"), "--dry-run", "--format", "json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        accounts.append(out)
    assert accounts[0] == accounts[1] and accounts[0].strip()


def test_excel_export_with_bom_and_crlf(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_bytes(b"\xef\xbb\xbfmember_id,birth_date,sex,join_date,exit_date\r\na,1980-01-01,M,2019-01-01,\r\n")
    assert read_members(f).collect().row(0) == ("a", D(1980, 1, 1), "M", D(2019, 1, 1), None)


def test_empty_csv_file_given_alone_is_named(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(b"")
    with pytest.raises(InputFileError, match=r"m\.csv: the file is empty \(0 bytes\)"):
        read_members(tmp_path / "m.csv")
