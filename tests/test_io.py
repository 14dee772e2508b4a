"""Reading inputs (file, glob, hive directory), type normalisation and errors; `fentan validate` CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import main
from engine.errors import InputFileError, SchemaError
from engine.data.io import read_claims, read_members, write_parquet
from tests.kits.cli_error import error_line

D = dt.date


def members(ids: list[object], **extra: list[object]) -> pl.DataFrame:
    n = len(ids)
    data: dict[str, object] = {
        "member_id": ids,
        "birth_date": [D(1990, 1, 1)] * n,
        "sex": ["M", "F", "m", " f "][:n] if n <= 4 else ["M"] * n,
        "join_date": [D(2019, 1, 1)] * n,
        "exit_date": [None] * n,
    }
    data.update(extra)
    return pl.DataFrame(data, schema_overrides={"exit_date": pl.Date})


def claims(ids: list[str], member_ids: list[object]) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "claim_id": ids,
            "member_id": member_ids,
            "event_date": [D(2020, 1, 1)] * n,
            "amount": [300_000] * n,  # int amounts are cast to Float64
            "approved_date": [D(2020, 2, 1)] * n,
            "cause": ["cancer"] * n,
        }
    )


def test_single_file_normalises_dtypes(tmp_path: Path) -> None:
    f = tmp_path / "m.parquet"
    members([1, 2, 3, 4]).write_parquet(f)
    lf = read_members(f)
    assert isinstance(lf, pl.LazyFrame)
    df = lf.collect()
    assert df.schema["member_id"] == pl.String
    assert df.schema["birth_date"] == pl.Date
    assert df["member_id"].to_list() == ["1", "2", "3", "4"]
    assert df["sex"].to_list() == ["M", "F", "M", "F"]  # stripped and upper-cased


def test_claims_amount_cast_and_timestamps_to_dates(tmp_path: Path) -> None:
    c = claims(["a", "b"], [1, 2]).with_columns(pl.col("event_date").cast(pl.Datetime("us")))
    f = tmp_path / "c.parquet"
    c.write_parquet(f)
    df = read_claims(f).collect()
    assert df.schema["amount"] == pl.Float64
    assert df.schema["event_date"] == pl.Date
    assert df["event_date"].to_list() == [D(2020, 1, 1)] * 2
    assert df.schema["member_id"] == pl.String


def test_glob_and_list(tmp_path: Path) -> None:
    members(["a", "b"]).write_parquet(tmp_path / "part-1.parquet")
    members(["c"]).write_parquet(tmp_path / "part-2.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    df = read_members(str(tmp_path / "part-*.parquet")).collect()
    assert sorted(df["member_id"].to_list()) == ["a", "b", "c"]
    df2 = read_members([tmp_path / "part-1.parquet", tmp_path / "part-2.parquet"]).collect()
    assert df2.height == 3


def test_directory_with_hive_partitions_and_mixed_id_types(tmp_path: Path) -> None:
    p1 = tmp_path / "plan_id=main" / "city_tier=1"
    p2 = tmp_path / "plan_id=elder" / "city_tier=4"
    p1.mkdir(parents=True)
    p2.mkdir(parents=True)
    members([101, 102]).write_parquet(p1 / "data.parquet")  # integer ids
    members(["A7"]).write_parquet(p2 / "data.parquet")  # string ids
    df = read_members(tmp_path).collect().sort("member_id")
    assert df.schema["member_id"] == pl.String
    assert df["member_id"].to_list() == ["101", "102", "A7"]
    assert df.schema["plan_id"] == pl.String
    assert df.schema["city_tier"] == pl.Int64
    got = dict(zip(df["member_id"].to_list(), zip(df["plan_id"].to_list(), df["city_tier"].to_list(), strict=True), strict=True))
    assert got == {"101": ("main", 1), "102": ("main", 1), "A7": ("elder", 4)}


def test_int_and_string_ids_match_across_files(tmp_path: Path) -> None:
    from engine.data.validation import validate

    members([5, 6]).write_parquet(tmp_path / "m.parquet")
    claims(["c1", "c2"], ["5", "6"]).write_parquet(tmp_path / "c.parquet")
    res = validate(read_members(tmp_path / "m.parquet"), read_claims(tmp_path / "c.parquet"), as_of=D(2022, 1, 1))
    assert res.account["claims"]["used"] == 2


def test_float_id_is_a_schema_error_naming_file_and_column(tmp_path: Path) -> None:
    f = tmp_path / "float_ids.parquet"
    members([1.0, 2.0]).write_parquet(f)
    with pytest.raises(SchemaError) as err:
        read_members(f)
    msg = str(err.value)
    assert "float_ids.parquet" in msg and "'member_id'" in msg
    assert "\n" not in msg


def test_float_id_in_one_partition_names_that_file(tmp_path: Path) -> None:
    members(["a"]).write_parquet(tmp_path / "good.parquet")
    members([3.0]).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(SchemaError, match=r"bad\.parquet.*'member_id'"):
        read_members(tmp_path)


def test_string_date_is_a_schema_error(tmp_path: Path) -> None:
    f = tmp_path / "str_dates.parquet"
    members(["a"]).with_columns(pl.lit("2019-01-01").alias("join_date")).write_parquet(f)
    with pytest.raises(SchemaError, match=r"str_dates\.parquet.*'join_date'"):
        read_members(f)


def test_string_amount_is_a_schema_error(tmp_path: Path) -> None:
    f = tmp_path / "c.parquet"
    claims(["a"], ["1"]).with_columns(pl.lit("300000").alias("amount")).write_parquet(f)
    with pytest.raises(SchemaError, match=r"'amount'"):
        read_claims(f)


def test_missing_required_column(tmp_path: Path) -> None:
    f = tmp_path / "m.parquet"
    members(["a"]).drop("sex").write_parquet(f)
    with pytest.raises(SchemaError, match=r"m\.parquet.*'sex'"):
        read_members(f)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "empty_dir", "no_glob_match"])
def test_bad_input_files(tmp_path: Path, kind: str) -> None:
    good = tmp_path / "good.parquet"
    members(["a", "b", "c"]).write_parquet(good)
    target: Path | str
    if kind == "missing":
        target = tmp_path / "nope.parquet"
    elif kind == "empty":
        target = tmp_path / "empty.parquet"
        target.write_bytes(b"")
    elif kind == "text":
        target = tmp_path / "text.parquet"
        target.write_text("member_id,sex\n1,M\n")
    elif kind == "truncated":
        target = tmp_path / "trunc.parquet"
        data = good.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif kind == "empty_dir":
        target = tmp_path / "emptydir"
        target.mkdir()
    else:
        target = str(tmp_path / "x-*.parquet")
    with pytest.raises(InputFileError) as err:
        read_members(target)
    assert str(Path(str(target)).name) in str(err.value) or str(target) in str(err.value)
    assert "\n" not in str(err.value)


def test_write_parquet_is_atomic_and_deterministic(tmp_path: Path) -> None:
    df = members(["a", "b"])
    a = write_parquet(df, tmp_path / "x" / "a.parquet")
    b = write_parquet(df, tmp_path / "x" / "b.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["a.parquet", "b.parquet"]  # no temp files left


# ----------------------------------------------------------------------------- CLI
def _write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    m = members(["a", "b", "c", "d"]).with_columns(
        pl.Series("sex", ["M", "F", "X", "F"]),  # c: unknown sex
    )
    c = claims(["c1", "c2", "c3", "c4"], ["a", "c", "zz", "b"])
    mp, cp = tmp_path / "members.parquet", tmp_path / "claims.parquet"
    m.write_parquet(mp)
    c.write_parquet(cp)
    return mp, cp


def test_cli_validate_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mp, cp = _write_inputs(tmp_path)
    out = tmp_path / "out"
    code = main(["validate", "--members", str(mp), "--claims", str(cp), "--out", str(out), "--as-of", "2022-01-01"])
    assert code == 0
    assert "row account" in capsys.readouterr().out
    acc = json.loads((out / "account.json").read_text())
    one_file = {"skipped": {}}
    assert acc["members"] == {"read": 4, "used": 3, "set_aside": {"unknown_sex": 1}, "files": one_file}
    assert acc["claims"] == {"read": 4, "used": 2, "set_aside": {"member_set_aside": 1, "unknown_member": 1},
                             "files": one_file}
    rm = pl.read_parquet(out / "rejected_members.parquet")
    assert rm["member_id"].to_list() == ["c"] and rm["reason"].to_list() == ["unknown_sex"]
    rc = pl.read_parquet(out / "rejected_claims.parquet").sort("claim_id")
    assert rc["claim_id"].to_list() == ["c2", "c3"]
    assert rc["reason"].to_list() == ["member_set_aside", "unknown_member"]


def test_cli_validate_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mp, cp = _write_inputs(tmp_path)
    assert main(["validate", "--members", str(mp), "--claims", str(cp), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_validate_no_usable_member_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mp = tmp_path / "m.parquet"
    members(["a"]).with_columns(pl.lit("?").alias("sex")).write_parquet(mp)
    cp = tmp_path / "c.parquet"
    claims(["c1"], ["a"]).write_parquet(cp)
    out = tmp_path / "out"
    assert main(["validate", "--members", str(mp), "--claims", str(cp), "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "validate", str(mp), "no usable member row", "unknown_sex: 1")
    assert (out / "account.json").exists()


@pytest.mark.parametrize("problem", ["missing", "float_id", "bad_date_arg"])
def test_cli_validate_user_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    mp, cp = _write_inputs(tmp_path)
    args = ["validate", "--members", str(mp), "--claims", str(cp), "--out", str(tmp_path / "o")]
    if problem == "missing":
        args[2] = str(tmp_path / "absent.parquet")
        needles = (args[2], "no such file")
    elif problem == "float_id":
        members([1.0]).write_parquet(mp)
        needles = (str(mp), "'member_id'", "Float64", "expected a string or integer id")
    else:
        args += ["--as-of", "31/12/2021"]
        needles = ("--as-of", "'31/12/2021'", "is not a date (YYYY-MM-DD)")
    assert main(args) == 2
    error_line(capsys, "validate", *needles)  # exactly one line


def test_equals_sign_in_a_parent_directory_is_not_a_partition(tmp_path: Path) -> None:
    base = tmp_path / "run=3" / "members"
    (base / "city_tier=2").mkdir(parents=True)
    members(["a"]).write_parquet(base / "city_tier=2" / "p.parquet")
    members(["b"]).write_parquet(base / "flat.parquet")
    for target in (base, str(base / "**" / "*.parquet"), [base / "flat.parquet"], base / "city_tier=2" / "p.parquet"):
        df = read_members(target).collect()
        assert "run" not in df.columns, target
    df = read_members(base).collect().sort("member_id")
    assert df["city_tier"].to_list() == [2, None]
    df = read_members(str(tmp_path / "run=3" / "members" / "city_tier=*" / "*.parquet")).collect()
    assert df["city_tier"].to_list() == [2]


def test_empty_list_of_paths(tmp_path: Path) -> None:
    with pytest.raises(InputFileError):
        read_members([])


def test_read_toml_names_the_file_and_the_rule(tmp_path) -> None:
    """One TOML reader for every configuration, plan and tempo file: each failure is one line naming the file."""
    from engine.data.io import read_toml
    from engine.errors import ConfigError

    good = tmp_path / "a.toml"
    good.write_text('x = 1\n[t]\ny = "z"\n', encoding="utf-8")
    assert read_toml(good) == {"x": 1, "t": {"y": "z"}}
    cases = {
        tmp_path / "absent.toml": "no such plan file",
        tmp_path: "is a directory, not a plan file",
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("x = = 1\n", encoding="utf-8")
    cases[bad] = "not valid TOML"
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    cases[latin] = "not a UTF-8 text file"
    for path, rule in cases.items():
        with pytest.raises(ConfigError) as err:
            read_toml(path, "plan")
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and rule in msg and "\n" not in msg, msg
