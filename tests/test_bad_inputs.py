"""Bad-input matrix (issue 10, item 1), the error kinds: every kind of unusable input through the real CLI.

The kinds whose rows are set aside are in test_bad_inputs_setaside.py; the kit in tests/kits/badinput.py.

Each kind either
- fails with exit code 2 and exactly ONE line on stderr, ``fentan <cmd>: error: ...``, that
  names the file / column / key and the rule (never a traceback, never "internal error"), or
- works, with the bad rows set aside under the right ``reason`` and the row account holding
  (read = used + set aside, for members and for claims), checked against the expected
  counts of the rows this test corrupted (the base platform is clean).

Commands exercised: ``fentan validate``, ``fentan exposure`` and ``fentan run`` (in process via
``engine.cli.main.main``), plus a few through a subprocess (``python -m engine.cli.main`` and
the ``fentan`` entry point) to prove the process exits non-zero without a traceback.
"""


from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.kits.badinput import Case, Ctx, _one_error_line, _run, base, big  # noqa: F401  (base, big: fixtures)


def k_missing_file(x: Ctx) -> Case:
    return Case(x.validate(str(x.tmp / "nowhere.parquet")), error=("nowhere.parquet", "no such file"))


def k_empty_file_0_bytes(x: Ctx) -> Case:
    (x.tmp / "empty.parquet").write_bytes(b"")
    return Case(x.validate(str(x.tmp / "empty.parquet")), error=("empty.parquet", "empty (0 bytes)"))


def k_parquet_with_0_member_rows(x: Ctx) -> Case:
    return Case(x.validate(x.m.head(0)), error=("members.parquet", "holds no member rows"))


def k_csv_renamed_parquet(x: Ctx) -> Case:
    p = x.tmp / "members.parquet"
    x.m.head(20).write_csv(p)
    return Case(x.validate(str(p)), error=("members.parquet", "not a readable Parquet file"))


def k_truncated_parquet(x: Ctx) -> Case:
    p = Path(x.write(x.m, "full.parquet"))
    data = p.read_bytes()
    (x.tmp / "trunc.parquet").write_bytes(data[: len(data) * 2 // 3])
    return Case(x.validate(str(x.tmp / "trunc.parquet")), error=("trunc.parquet", "not a readable Parquet file"))


def k_corrupt_parquet_pages(x: Ctx) -> Case:
    """Footer intact, data pages overwritten: found when the data is decoded, the file is named."""
    p = x.tmp / "corrupt.parquet"
    x.m.write_parquet(p, compression="zstd", statistics=False)
    data = bytearray(p.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = (data[i] * 31 + 7) % 256
    p.write_bytes(bytes(data))
    return Case(x.validate(str(p)), error=(f"{p}: ", "the data cannot be decoded, the file is corrupt"))


def k_missing_required_column(x: Ctx) -> Case:
    return Case(x.validate(x.m.drop("join_date")), error=("members.parquet", "missing required column", "'join_date'"))


def k_claims_file_given_as_members(x: Ctx) -> Case:
    cp = x.write(x.c, "claims.parquet", "claims")
    return Case(x.validate(cp, cp), error=("claims.parquet", "missing required column", "'birth_date'"))


def k_string_date(x: Ctx) -> Case:
    m = x.m.with_columns(pl.col("birth_date").cast(pl.String))
    return Case(x.validate(m), error=("members.parquet", "'birth_date'", "expected a date"))


def k_float_id(x: Ctx) -> Case:
    m = x.m.with_columns((pl.int_range(pl.len()) + 0.0).alias("member_id"))
    return Case(x.validate(m), error=("members.parquet", "'member_id'", "float id"))


def k_string_amount(x: Ctx) -> Case:
    c = x.c.with_columns(pl.col("amount").cast(pl.String))
    return Case(x.validate(None, c), error=("claims.parquet", "'amount'", "expected a number"))


def k_mixed_contract_types_across_partitions(x: Ctx) -> Case:
    d = x.parts([x.m.head(1000), x.m.slice(1000).with_columns(pl.col("join_date").cast(pl.String))], "mdir", "members")
    return Case(x.validate(d), error=("part=2", "'join_date'", "expected a date"))


def k_mixed_factor_types_across_partitions(x: Ctx) -> Case:
    bad = x.m.slice(1000).with_columns(pl.concat_list(pl.col("city_tier")).alias("city_tier"))
    d = x.parts([x.m.head(1000), bad], "mdir", "members")
    return Case(x.validate(d), error=("mdir", "partitions cannot be combined", "'city_tier'", "part=2"))


def k_glob_matches_nothing(x: Ctx) -> Case:
    return Case(x.validate(str(x.tmp / "members-*.parquet")), error=("members-*.parquet", "glob matches no file"))


def k_directory_without_parquet(x: Ctx) -> Case:
    (x.tmp / "nodata").mkdir()
    (x.tmp / "nodata" / "_SUCCESS").write_text("")
    return Case(x.validate(str(x.tmp / "nodata")), error=("nodata", "no .parquet file"))


def k_all_members_set_aside_validate(x: Ctx) -> Case:
    return Case(x.validate(x.m.with_columns(pl.lit("X").alias("sex"))),
                error=("members.parquet", "no usable member row", "unknown_sex"))


def k_all_members_set_aside_exposure(x: Ctx) -> Case:
    return Case(x.exposure(x.m.with_columns(pl.lit(None, dtype=pl.Date).alias("join_date"))),
                error=("members.parquet", "no usable member row", "null_join_date"))


def k_all_members_set_aside_run(x: Ctx) -> Case:
    mp = x.write(x.m.with_columns(pl.col("join_date").alias("exit_date"), pl.col("exit_date").alias("join_date"))
                 .filter(pl.col("exit_date").is_not_null() & (pl.col("exit_date") < pl.col("join_date"))), "bad.parquet")
    return Case(x.run(x.config(members=mp), "--dry-run"), error=("bad.parquet", "no usable member row", "exit_before_join"))


def k_empty_study_window_exposure(x: Ctx) -> Case:
    return Case(x.exposure(start="2021-01-01", end="2020-01-01"), error=("--end", "before --start"))


def k_empty_study_window_run(x: Ctx) -> Case:
    return Case(x.run(x.config("[study]\nstart = 2021-01-01\nend = 2020-01-01\n")),
                error=("run.toml", "study: end must not be before start"))


def k_study_window_without_members_exposure(x: Ctx) -> Case:
    return Case(x.exposure(start="1990-01-01", end="1995-12-31"), error=("members.parquet", "no member is at risk", "1990-01-01"))


def k_study_window_without_members_run(x: Ctx) -> Case:
    return Case(x.run(x.config("[study]\nstart = 1990-01-01\nend = 1995-12-31\n")),
                error=("members.parquet", "no exposure in the study window", "1990-01-01"))


def k_config_wrong_key(x: Ctx) -> Case:
    return Case(x.run(x.config("[segmentation]\nmax_grups = 4\n")), error=("run.toml", "segmentation.max_grups", "unknown key"))


def k_config_wrong_type(x: Ctx) -> Case:
    return Case(x.run(x.config("[study]\nwaiting_days = \"ninety\"\n")), error=("run.toml", "study.waiting_days", "integer"))


def k_config_not_toml(x: Ctx) -> Case:
    p = x.tmp / "run.toml"
    p.write_text("[data\nmembers = 1\n")
    return Case(x.run(str(p)), error=("run.toml", "not valid TOML"))


def k_config_data_file_missing(x: Ctx) -> Case:
    return Case(x.run(x.config(members=str(x.tmp / "gone" / "members.parquet"))), error=("gone/members.parquet", "no such file"))


def k_config_unknown_factor_column(x: Ctx) -> Case:
    return Case(x.run(x.config("[study]\nfactors = [\"city_tier\", \"region\"]\n"), "--dry-run"),
                error=("run.toml", "study.factors", "'region'"))


def k_unknown_plan_file_reference(x: Ctx) -> Case:
    return Case(x.run(x.config("[plans]\npooled = \"no-such-plan.toml\"\n")), error=("run.toml", "plans.pooled", "no such plan file", "no-such-plan.toml"))


def k_plan_eligibility_unknown_column(x: Ctx) -> Case:
    (x.tmp / "p.toml").write_text('[planset]\nname = "p"\n[[plans]]\nname = "a"\neligibility = { region = ["north"] }\n'
                                  "benefit = 100000\n")
    return Case(x.run(x.config('[plans]\nfiles = ["p.toml"]\n', big=True)), error=("region", "p.toml", "eligibility"))


def k_overlapping_plan_eligibility(x: Ctx) -> Case:
    (x.tmp / "overlap.toml").write_text(
        '[planset]\nname = "o"\nallow_overlap = false\n'
        '[[plans]]\nname = "young"\neligibility = { age = [0, 39] }\nbenefit = 300000\n'
        '[[plans]]\nname = "older"\neligibility = { age = [30, 59] }\nbenefit = 100000\n')
    return Case(x.run(x.config('[plans]\nfiles = ["overlap.toml"]\n', big=True)),
                error=("overlap.toml", "allow_overlap", "'young' and 'older' overlap"))


def k_output_not_writable_validate(x: Ctx) -> Case:
    (x.tmp / "file.txt").write_text("a regular file")
    argv = x.validate()
    argv[argv.index("--out") + 1] = str(x.tmp / "file.txt" / "sub")
    return Case(argv, error=("file.txt", "not writable"))


def k_output_not_writable_exposure(x: Ctx) -> Case:
    (x.tmp / "file.txt").write_text("a regular file")
    argv = x.exposure()
    argv[argv.index("--out") + 1] = str(x.tmp / "file.txt" / "sub" / "cells.parquet")
    return Case(argv, error=("--out", "file.txt", "cannot write here"))


def k_output_not_writable_run(x: Ctx) -> Case:
    (x.tmp / "file.txt").write_text("a regular file")
    return Case(["run", x.config(), "--out", str(x.tmp / "file.txt" / "sub"), "--quiet"],
                error=(f"--out {x.tmp / 'file.txt' / 'sub'}: ", "file.txt is not a directory", "not writable"))


def k_bad_as_of_argument(x: Ctx) -> Case:
    return Case(x.validate(None, None, "--as-of", "31/12/2021"), error=("--as-of", "31/12/2021"))


def k_unknown_by_column(x: Ctx) -> Case:
    return Case(x.exposure(None, None, "--by", "age,region"), error=("--by", "'region'"))


def k_reserved_reason_column_clash(x: Ctx) -> Case:
    m = x.m.with_columns(pl.lit("a").alias("reason"), pl.lit("b").alias("reason_input"))
    return Case(x.validate(m), error=("members.parquet", "'reason'", "reserved"))


def k_corrupt_partition_in_directory(x: Ctx) -> Case:
    """One partition of three has corrupt pages: that file is named."""
    d = x.parts([x.m.head(1000), x.m.slice(1000, 1000), x.m.slice(2000)], "mdir", "members")
    p = Path(d) / "part=2" / "data.parquet"
    x.m.slice(1000, 1000).write_parquet(p, compression="zstd", statistics=False)
    data = bytearray(p.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = (data[i] * 31 + 7) % 256
    p.write_bytes(bytes(data))
    return Case(x.validate(d), error=("part=2/data.parquet", "corrupt"))


def k_corrupt_claims_file(x: Ctx) -> Case:
    p = x.tmp / "claims.parquet"
    pl.concat([x.c] * 20).write_parquet(p, compression="zstd", statistics=False)
    data = bytearray(p.read_bytes())
    for i in range(8, len(data) // 2):
        data[i] = (data[i] * 31 + 7) % 256
    p.write_bytes(bytes(data))
    return Case(x.validate(None, str(p)), error=(f"{p}: ", "the data cannot be decoded, the file is corrupt"))


# --------------------------------------------------------------------------- issue 16, item 4: no internal error for user input
def _plan(x: Ctx, when: str) -> str:
    (x.tmp / "p.toml").write_text('[planset]\nname = "p"\n[[plans]]\nname = "a"\nbenefit = 100000\n'
                                  f"eligibility = {{ when = '{when}' }}\n")
    return x.config('[plans]\nfiles = ["p.toml"]\n')


def k_expression_600_or_terms_dry_run(x: Ctx) -> Case:
    return Case(x.run(_plan(x, " or ".join(f"age == {i}" for i in range(1200))), "--dry-run"),
                error=("p.toml", "eligibility.when", "too large", "at most 1,000"))


def k_expression_400_nested_parentheses(x: Ctx) -> Case:
    return Case(x.run(_plan(x, "(" * 400 + "age > 30" + ")" * 400)), error=("p.toml", "eligibility.when", "nested too deeply"))


def k_expression_too_long(x: Ctx) -> Case:
    return Case(x.run(_plan(x, "age > 30 and channel in {" + ", ".join(f'"c{i:05d}"' for i in range(3000)) + "}"),
                      "--dry-run"), error=("p.toml", "eligibility.when", "too long"))


def k_struct_column_as_factor(x: Ctx) -> Case:
    m = x.m.with_columns(pl.struct("city_tier", "channel").alias("geo"))
    return Case(x.run(x.config('[study]\nfactors = ["geo"]\n', members=x.write(m, "members.parquet", "members")), "--dry-run"),
                error=("run.toml", "study.factors", "'geo'", "Struct"))


def k_list_column_as_factor_exposure(x: Ctx) -> Case:
    m = x.m.with_columns(pl.concat_list("channel").alias("tags"))
    return Case(x.exposure(m, None, "--by", "age,tags"), error=("--by", "'tags'", "List"))


def k_config_path_is_a_directory(x: Ctx) -> Case:
    (x.tmp / "conf.d").mkdir()
    return Case(x.run(str(x.tmp / "conf.d")), error=("conf.d", "is a directory"))



# --------------------------------------------------------------------------- issue 16, item 6: strict config types, before any data
def _cfg_no_data(x: Ctx, text: str) -> str:
    """A configuration whose data files do not exist: an error naming the key proves it came first."""
    return x.config(text, members=str(x.tmp / "absent" / "m.parquet"), claims=str(x.tmp / "absent" / "c.parquet"))


def k_config_number_as_string(x: Ctx) -> Case:
    return Case(x.run(_cfg_no_data(x, '[study]\nwaiting_days = "90"\n')),
                error=("run.toml", "study.waiting_days", "valid integer", "'90' (a string)"))


def k_config_boolean_as_number(x: Ctx) -> Case:
    return Case(x.run(_cfg_no_data(x, "[study]\nwaiting_days = true\n")),
                error=("run.toml", "study.waiting_days", "valid integer", "True (a boolean)"))


def k_config_string_as_boolean(x: Ctx) -> Case:
    return Case(x.run(_cfg_no_data(x, '[study]\nterminate_on_claim = "no"\n')),
                error=("run.toml", "study.terminate_on_claim", "valid boolean"))


def k_config_float_as_string(x: Ctx) -> Case:
    return Case(x.run(_cfg_no_data(x, '[history]\nfee = "0.08"\n')), error=("run.toml", "history.fee", "valid number"))


def k_config_projection_extra_checked_first(x: Ctx) -> Case:
    return Case(x.run(_cfg_no_data(x, '[projection]\nscenarios = 20\nhorizon = 12\nextra = { fee = "x" }\n')),
                error=("run.toml", "projection.extra", "fee"))


def k_csv_impossible_date(x: Ctx) -> Case:
    mp = x.write_csv(x.m, "members.csv", edit=x.text_at("birth_date", 5, "2019-02-30"))
    return Case(x.validate(mp), error=("members.csv", "column 'birth_date'", "line 7", "'2019-02-30' is not a date (YYYY-MM-DD)"))


def k_csv_non_iso_date(x: Ctx) -> Case:
    mp = x.write_csv(x.m, "members.csv", edit=x.text_at("exit_date", 0, "03/02/2019"))
    return Case(x.validate(mp), error=("members.csv", "column 'exit_date'", "line 2", "not a date (YYYY-MM-DD)"))


def k_csv_claim_date_with_time(x: Ctx) -> Case:
    cp = x.write_csv(x.c, "claims.csv", edit=x.text_at("event_date", 3, "2020-06-01T10:00:00"))
    return Case(x.validate(None, cp), error=("claims.csv", "column 'event_date'", "line 5", "not a date"))


def k_csv_amount_with_thousands_separator(x: Ctx) -> Case:
    cp = x.write_csv(x.c, "claims.csv", edit=x.text_at("amount", 2, "100,000"))
    return Case(x.validate(None, cp), error=("claims.csv", "column 'amount'", "line 4", "'100,000' is not a number"))


def k_csv_missing_required_column(x: Ctx) -> Case:
    return Case(x.validate(x.write_csv(x.m.drop("sex"), "members.csv")),
                error=("members.csv", "missing required column", "'sex'"))


def k_csv_not_utf8(x: Ctx) -> Case:
    p = x.tmp / "members.csv"
    x.m.head(20).write_csv(p)
    p.write_bytes(p.read_bytes() + b"M9\xff\xfe,1990-01-01,M,2019-01-01,,p,1,app\n")
    return Case(x.validate(str(p)), error=("members.csv", "not a readable CSV file"))


def k_csv_and_parquet_in_one_directory(x: Ctx) -> Case:
    x.write(x.m.head(1000), "mdir/part-0.parquet")
    x.write_csv(x.m.slice(1000), "mdir/part-1.csv")
    return Case(x.validate(str(x.tmp / "mdir")), error=("part-1.csv", "part-0.parquet", "mixes CSV and Parquet"))


def k_csv_bad_date_in_a_partition(x: Ctx) -> Case:
    x.write_csv(x.m.head(1000), "mdir/part=1/data.csv")
    x.write_csv(x.m.slice(1000), "mdir/part=2/data.csv", edit=x.text_at("join_date", 9, "2019-1-5"))
    return Case(x.validate(str(x.tmp / "mdir")), error=("part=2/data.csv", "column 'join_date'", "line 11", "not a date"))


ERROR_KINDS = [v for k, v in dict(globals()).items() if k.startswith("k_")]


@pytest.mark.parametrize("kind", ERROR_KINDS, ids=[f.__name__[2:] for f in ERROR_KINDS])
def test_error_kind_exits_2_with_one_line(kind, tmp_path, base, big, capsys) -> None:  # type: ignore[no-untyped-def]
    case = kind(Ctx(tmp_path, *base, big=big))
    code, out, err = _run(case.argv, capsys)
    assert "Traceback" not in out + err
    assert code == 2, (code, err)
    line = _one_error_line(err, case.argv[0])
    for needle in case.error:
        assert needle in line, f"{needle!r} not in {line!r}"
    if case.argv[0] == "run":  # a failed run leaves nothing under the final output name
        assert not (tmp_path / "run-out").exists()


def test_matrix_has_at_least_25_error_kinds() -> None:
    assert len(ERROR_KINDS) >= 25
    assert len({f.__name__ for f in ERROR_KINDS}) == len(ERROR_KINDS)


# --------------------------------------------------------------------------- real processes: no traceback
def _fentan_cmd() -> list[str]:
    exe = shutil.which("fentan") or str(Path(sys.executable).with_name("fentan"))
    assert os.path.exists(exe), "the fentan console script is not installed (pip install -e '.[test]')"
    return [exe]


@pytest.mark.parametrize("how", ["module", "entry_point"])
@pytest.mark.parametrize("kind", [k_corrupt_parquet_pages, k_missing_file, k_config_wrong_key],
                         ids=["corrupt_parquet", "missing_file", "config_wrong_key"])
def test_subprocess_exits_2_without_traceback(kind, how, tmp_path, base) -> None:  # type: ignore[no-untyped-def]
    case = kind(Ctx(tmp_path, *base))
    cmd = [sys.executable, "-m", "engine.cli.main"] if how == "module" else _fentan_cmd()
    env = {k: v for k, v in os.environ.items() if k != "FENTAN_DEBUG"}
    proc = subprocess.run([*cmd, *case.argv], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    line = _one_error_line(proc.stderr, case.argv[0])
    assert all(n in line for n in case.error)

