"""Bad-input matrix (issue 10, item 1): every kind of dirty input through the real CLI.

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

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.cli.main import main

D = dt.date
AS_OF = "2022-01-01"


# --------------------------------------------------------------------------- base data
@pytest.fixture(scope="module")
def base() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small clean synthetic platform (members, claims)."""
    from engine.synth import generate

    plat = generate(3000, seed=11, level=4.0)
    return plat.members, plat.claims


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A platform large enough for the whole ``fentan run`` pipeline (written once)."""
    from engine.synth import generate

    d = tmp_path_factory.mktemp("big")
    plat = generate(20000, seed=1, level=3.0)
    plat.members.write_parquet(d / "members.parquet")
    plat.claims.write_parquet(d / "claims.parquet")
    return d / "members.parquet", d / "claims.parquet"


@dataclass
class Case:
    """What a kind runs and what it expects."""

    argv: list[str]
    error: tuple[str, ...] = ()  # needles of the one stderr line (an error kind)
    aside: dict[str, dict[str, int]] | None = None  # expected set-aside counts (a working kind)
    check: Callable[[Path], None] | None = None  # extra checks on the outputs of a working kind
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table (for the account)


class Ctx:
    """Builds the inputs of one kind inside ``tmp``."""

    def __init__(self, tmp: Path, members: pl.DataFrame, claims: pl.DataFrame, big: Any = None) -> None:
        self.tmp, self.m, self.c, self._big = tmp, members, claims, big
        self.rows: dict[str, int] = {}

    # ---- files
    def write(self, df: pl.DataFrame, name: str, role: str | None = None) -> str:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(p)
        if role:
            self.rows[role] = self.rows.get(role, 0) + df.height
        return str(p)

    def parts(self, dfs: list[pl.DataFrame], name: str, role: str, key: str = "part") -> str:
        for i, df in enumerate(dfs):
            self.write(df, f"{name}/{key}={i + 1}/data.parquet", role)
        return str(self.tmp / name)

    # ---- rows
    def free_rows(self, k: int) -> list[int]:
        """Indices of ``k`` members without claims (corrupting them leaves every claim valid)."""
        claimants = self.c["member_id"].implode()
        idx = self.m.with_row_index("_i").filter(~pl.col("member_id").is_in(claimants))["_i"]
        return idx.head(k).to_list()

    def claimant_row(self) -> int:
        """Index of a member with exactly one claim."""
        one = self.c.group_by("member_id").len().filter(pl.col("len") == 1)["member_id"].sort()[0]
        return int(self.m.with_row_index("_i").filter(pl.col("member_id") == one)["_i"][0])

    @staticmethod
    def set_rows(df: pl.DataFrame, rows: list[int], **values: Any) -> pl.DataFrame:
        hit = pl.int_range(pl.len()).is_in(rows)
        return df.with_columns(
            [pl.when(hit).then(pl.lit(v, dtype=df.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()]
        )

    def add_claims(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        full = []
        for i, r in enumerate(rows):
            row = {"claim_id": f"X{i:04d}", "member_id": self.m["member_id"][self.free_rows(1)[0]],
                   "event_date": D(2020, 6, 1), "amount": 100_000.0, "approved_date": D(2020, 8, 1), "cause": "cancer"}
            row.update(r)
            full.append(row)
        return pl.concat([self.c, pl.DataFrame(full, schema=self.c.schema)])

    # ---- commands
    def validate(self, members: pl.DataFrame | str | None = None, claims: pl.DataFrame | str | None = None,
                 *extra: str) -> list[str]:
        mp = members if isinstance(members, str) else self.write(self.m if members is None else members, "members.parquet", "members")
        cp = claims if isinstance(claims, str) else self.write(self.c if claims is None else claims, "claims.parquet", "claims")
        return ["validate", "--members", mp, "--claims", cp, "--out", str(self.tmp / "out"), "--quiet",
                "--as-of", AS_OF, *extra]

    def exposure(self, members: pl.DataFrame | str | None = None, claims: pl.DataFrame | str | None = None,
                 *extra: str, start: str = "2019-01-01", end: str = "2021-12-31") -> list[str]:
        mp = members if isinstance(members, str) else self.write(self.m if members is None else members, "members.parquet", "members")
        cp = claims if isinstance(claims, str) else self.write(self.c if claims is None else claims, "claims.parquet", "claims")
        return ["exposure", "--members", mp, "--claims", cp, "--start", start, "--end", end,
                "--out", str(self.tmp / "cells.parquet"), "--quiet", "--as-of", AS_OF, *extra]

    def config(self, text: str = "", members: str | None = None, claims: str | None = None, big: bool = False) -> str:
        if big:
            members, claims = (str(p) for p in self._big)
        members = members or self.write(self.m, "members.parquet", "members")
        claims = claims or self.write(self.c, "claims.parquet", "claims")
        body = f'[data]\nmembers = "{members}"\nclaims = "{claims}"\nas_of = {AS_OF}\n{text}'
        if "[projection]" not in text:
            body += "\n[projection]\nscenarios = 20\nhorizon = 12\n"
        if "[output]" not in text:
            body += "\n[output]\nreport = false\nmodels = false\n"
        if "[segmentation]" not in text:
            body += "\n[segmentation]\nmin_expected_claims = 5.0\n"
        p = self.tmp / "run.toml"
        p.write_text(body, encoding="utf-8")
        return str(p)

    def run(self, config: str, *extra: str) -> list[str]:
        return ["run", config, "--out", str(self.tmp / "run-out"), "--quiet", *extra]


# --------------------------------------------------------------------------- error kinds
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
    return Case(x.validate(str(p)), error=("corrupt.parquet",))


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
    return Case(["run", x.config(), "--out", str(x.tmp / "file.txt" / "sub"), "--quiet"], error=("file.txt",))


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
    return Case(x.validate(None, str(p)), error=("claims.parquet",))


ERROR_KINDS = [v for k, v in dict(globals()).items() if k.startswith("k_")]


# --------------------------------------------------------------------------- working kinds (rows set aside)
def a_nulls_in_required_columns(x: Ctx) -> Case:
    r = x.free_rows(4)
    m = x.set_rows(x.m, r[:1], member_id=None)
    m = x.set_rows(m, r[1:2], birth_date=None)
    m = x.set_rows(m, r[2:3], sex=None)
    m = x.set_rows(m, r[3:4], join_date=None)
    c = x.add_claims([{"claim_id": None}, {"member_id": None}, {"event_date": None}, {"amount": None}])
    return Case(x.validate(m, c), aside={
        "members": {"null_member_id": 1, "null_birth_date": 1, "null_sex": 1, "null_join_date": 1},
        "claims": {"null_claim_id": 1, "null_member_id": 1, "null_event_date": 1, "null_amount": 1}})


def a_nulls_in_nullable_columns_are_fine(x: Ctx) -> Case:
    m = x.m.with_columns(pl.lit(None, dtype=pl.Date).alias("exit_date"), pl.lit(None, dtype=pl.String).alias("plan_id"))
    c = x.c.with_columns(pl.lit(None, dtype=pl.Date).alias("approved_date"), pl.lit(None, dtype=pl.String).alias("cause"))
    return Case(x.validate(m, c), aside={})


def a_dates_year_1900_birth(x: Ctx) -> Case:
    """1900-01-01 is a placeholder birth date (age 118+ at joining); 1899 is outside the date range."""
    r = x.free_rows(3)
    m = x.set_rows(x.m, r[:2], birth_date=D(1900, 1, 1))
    m = x.set_rows(m, r[2:], birth_date=D(1899, 12, 31))
    return Case(x.validate(m), aside={"members": {"implausible_age": 2, "date_out_of_range": 1}})


def a_dates_year_2200(x: Ctx) -> Case:
    r = x.free_rows(2)
    m = x.set_rows(x.m, r[:1], join_date=D(2200, 1, 1))
    m = x.set_rows(m, r[1:], exit_date=D(2200, 1, 1))
    c = x.add_claims([{"event_date": D(2200, 1, 1)}, {"approved_date": D(2200, 3, 1)}])
    return Case(x.validate(m, c), aside={"members": {"date_out_of_range": 2}, "claims": {"date_out_of_range": 2}})


def a_claim_event_before_1900(x: Ctx) -> Case:
    c = x.add_claims([{"event_date": D(1899, 6, 1)}])
    return Case(x.validate(None, c), aside={"claims": {"date_out_of_range": 1}})


def a_exit_before_join(x: Ctx) -> Case:
    r = x.free_rows(3)
    m = x.m.with_columns(pl.when(pl.int_range(pl.len()).is_in(r)).then(pl.col("join_date") - dt.timedelta(days=1))
                         .otherwise(pl.col("exit_date")).alias("exit_date"))
    return Case(x.validate(m), aside={"members": {"exit_before_join": 3}})


def a_birth_after_join(x: Ctx) -> Case:
    r = x.free_rows(2)
    m = x.m.with_columns(pl.when(pl.int_range(pl.len()).is_in(r)).then(pl.col("join_date") + dt.timedelta(days=10))
                         .otherwise(pl.col("birth_date")).alias("birth_date"))
    return Case(x.validate(m), aside={"members": {"birth_after_join": 2}})


def a_birth_in_the_future(x: Ctx) -> Case:
    r = x.free_rows(1)
    m = x.set_rows(x.m, r, birth_date=D(2023, 5, 1), join_date=D(2023, 6, 1), exit_date=None)
    return Case(x.validate(m), aside={"members": {"birth_in_future": 1}})


def a_unknown_sex_code(x: Ctx) -> Case:
    r = x.free_rows(4)
    m = x.set_rows(x.m, r[:1], sex="U")
    m = x.set_rows(m, r[1:2], sex="male")
    m = x.set_rows(m, r[2:3], sex=" f ")  # normalised to F: kept
    m = x.set_rows(m, r[3:4], sex="m")  # normalised to M: kept
    return Case(x.validate(m), aside={"members": {"unknown_sex": 2}})


def a_duplicate_ids_across_partitions(x: Ctx) -> Case:
    """The claimant's row appears in two partitions: both rows and the claim are set aside."""
    i = x.claimant_row()
    one = x.m.slice(i, 1)
    d = x.parts([x.m, one.with_columns(pl.lit(5).cast(pl.Int64).alias("city_tier"))], "mdir", "members")
    return Case(x.validate(d), aside={"members": {"duplicate_member_id": 2}, "claims": {"member_set_aside": 1}})


def a_int_and_string_ids_across_partitions(x: Ctx) -> Case:
    """Ids stored as int in one partition and as string in another are one String id."""
    m = x.m.with_columns((pl.int_range(pl.len()) + 1).alias("member_id"))
    c = x.c.head(2).with_columns(pl.Series("member_id", ["1", "2000"]))
    d = x.parts([m.head(1000), m.slice(1000).with_columns(pl.col("member_id").cast(pl.String))], "mdir", "members")

    def check(out: Path) -> None:
        assert pl.read_parquet(out / "rejected_claims.parquet").height == 0

    return Case(x.validate(d, c), aside={}, check=check)


def a_claims_for_unknown_members(x: Ctx) -> Case:
    c = x.add_claims([{"member_id": "NOBODY-1"}, {"member_id": "NOBODY-2"}])
    return Case(x.validate(None, c), aside={"claims": {"unknown_member": 2}})


def a_zero_or_negative_amounts(x: Ctx) -> Case:
    c = x.add_claims([{"amount": 0.0}, {"amount": -5000.0}])
    return Case(x.validate(None, c), aside={"claims": {"nonpositive_amount": 2}})


def a_nan_or_inf_amounts(x: Ctx) -> Case:
    c = x.add_claims([{"amount": math.nan}, {"amount": math.inf}, {"amount": -math.inf}])
    return Case(x.validate(None, c), aside={"claims": {"nonfinite_amount": 3}})


def a_duplicate_claim_ids(x: Ctx) -> Case:
    c = x.add_claims([{"claim_id": "DUP"}, {"claim_id": "DUP", "amount": 5.0}, {"claim_id": "COPY"}, {"claim_id": "COPY"}])
    return Case(x.validate(None, c), aside={"claims": {"duplicate_claim_id": 2, "duplicate_claim_row": 1}})


def a_parquet_with_0_claim_rows(x: Ctx) -> Case:
    return Case(x.validate(None, x.c.head(0)), aside={})


def a_very_wide_table(x: Ctx) -> Case:
    """300 extra columns of mixed types: they pass through (also in the set-aside rows)."""
    extra = [pl.lit(i).alias(f"x{i:03d}") if i % 3 else pl.lit(f"v{i}").alias(f"x{i:03d}") for i in range(300)]
    r = x.free_rows(1)
    m = x.set_rows(x.m.with_columns(extra), r, sex="?")

    def check(out: Path) -> None:
        rej = pl.read_parquet(out / "rejected_members.parquet")
        assert rej.width == x.m.width + 300 + 1 and rej["x299"].to_list() == [299]

    return Case(x.validate(m), aside={"members": {"unknown_sex": 1}}, check=check)


def a_unicode_member_ids(x: Ctx) -> Case:
    ids = ["会员-张三-001", "مشترك-٢", "Ωμέγα", "😀-member", "e\u0301cole"]  # CJK, Arabic, Greek, emoji, combining mark
    m = x.m.with_columns(pl.format("成员{}", pl.int_range(pl.len())).alias("member_id"))
    m = m.with_columns(pl.when(pl.int_range(pl.len()) < len(ids)).then(pl.Series(ids + [None] * (m.height - len(ids))))
                       .otherwise(pl.col("member_id")).alias("member_id"))
    c = x.c.head(len(ids)).with_columns(pl.Series("member_id", ids))

    def check(out: Path) -> None:
        assert pl.read_parquet(out / "rejected_claims.parquet").height == 0

    return Case(x.validate(m, c), aside={}, check=check)


def a_input_column_named_reason(x: Ctx) -> Case:
    """A 'reason' column of the platform is kept as 'reason_input' next to fentan's reason."""
    r = x.free_rows(1)
    m = x.set_rows(x.m.with_columns(pl.lit("platform note").alias("reason")), r, sex="Q")
    c = x.add_claims([{"amount": -1.0}]).with_columns(pl.lit("approved").alias("reason"))

    def check(out: Path) -> None:
        for f, why in (("rejected_members.parquet", "unknown_sex"), ("rejected_claims.parquet", "nonpositive_amount")):
            rej = pl.read_parquet(out / f)
            assert rej["reason"].to_list() == [why] and rej["reason_input"].to_list()[0] in ("platform note", "approved")

    return Case(x.validate(m, c), aside={"members": {"unknown_sex": 1}, "claims": {"nonpositive_amount": 1}}, check=check)


def a_timestamps_with_time_zone(x: Ctx) -> Case:
    m = x.m.with_columns(pl.col("join_date").cast(pl.Datetime("us", "Asia/Shanghai")))
    return Case(x.validate(m), aside={})


def a_all_null_exit_column_of_null_type(x: Ctx) -> Case:
    return Case(x.validate(x.m.with_columns(pl.lit(None).alias("exit_date"))), aside={})


ASIDE_KINDS = [v for k, v in dict(globals()).items() if k.startswith("a_")]


# --------------------------------------------------------------------------- the matrix
def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, cmd: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{err}"
    line = lines[0]
    assert line.startswith(f"fentan {cmd}: error: "), line
    assert "internal error" not in line and "Traceback" not in line
    return line


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


@pytest.mark.parametrize("kind", ASIDE_KINDS, ids=[f.__name__[2:] for f in ASIDE_KINDS])
def test_rows_set_aside_and_the_account_holds(kind, tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    case = kind(x)
    code, out, err = _run(case.argv, capsys)
    assert "Traceback" not in out + err
    assert code == 0, err
    out_dir = tmp_path / "out"
    acc = json.loads((out_dir / "account.json").read_text())
    for what in ("members", "claims"):
        a = acc[what]
        assert a["read"] == x.rows[what]
        assert a["read"] == a["used"] + sum(a["set_aside"].values())
        assert a["set_aside"] == (case.aside or {}).get(what, {})
        rej = pl.read_parquet(out_dir / f"rejected_{what}.parquet")
        counts = dict(rej.group_by("reason").len().iter_rows()) if rej.height else {}
        assert counts == a["set_aside"]
    if case.check:
        case.check(out_dir)


def test_matrix_has_at_least_25_kinds() -> None:
    assert len(ERROR_KINDS) + len(ASIDE_KINDS) >= 25
    assert len({f.__name__[2:] for f in ERROR_KINDS + ASIDE_KINDS}) == len(ERROR_KINDS) + len(ASIDE_KINDS)


# --------------------------------------------------------------------------- the same kinds through exposure and run
def _dirty_partitions(x: Ctx) -> str:
    """Every row-level kind at once, spread over hive partitions (one with 300 extra columns, unicode ids)."""
    r = x.free_rows(12)
    m = x.set_rows(x.m, r[:1], member_id=None)
    m = x.set_rows(m, r[1:2], sex="U")
    m = x.set_rows(m, r[2:3], birth_date=D(1900, 1, 1))
    m = x.set_rows(m, r[3:4], join_date=D(2200, 1, 1))
    m = x.set_rows(m, r[4:5], member_id="会员-壹")
    m = m.with_columns(pl.when(pl.int_range(pl.len()).is_in(r[5:6])).then(pl.col("join_date") - dt.timedelta(days=1))
                       .otherwise(pl.col("exit_date")).alias("exit_date"))
    dup = m.slice(x.claimant_row(), 1)
    wide = m.slice(2000).with_columns([pl.lit(i).alias(f"x{i:03d}") for i in range(300)])
    return x.parts([m.head(2000), wide, dup], "mdir", "members")


def _dirty_claims(x: Ctx) -> pl.DataFrame:
    return x.add_claims([{"member_id": "NOBODY"}, {"amount": 0.0}, {"amount": math.nan}, {"claim_id": None},
                         {"member_id": "会员-壹", "event_date": D(2019, 12, 1)}])


def test_exposure_account_holds_on_dirty_partitions(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    d = _dirty_partitions(x)
    argv = x.exposure(d, _dirty_claims(x), start="2018-10-16", end="2021-12-31")
    argv.remove("--quiet")
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    mm = re.search(r"members: ([\d,]+) read, ([\d,]+) used, ([\d,]+) set aside", out)
    cm = re.search(r"claims: ([\d,]+) read = ([\d,]+) used \+ ([\d,]+) set aside", out)
    assert mm and cm, out
    n = [int(v.replace(",", "")) for v in mm.groups()]
    assert n[0] == x.rows["members"] and n[0] == n[1] + n[2] and n[2] == 7  # 5 row kinds + 2 duplicate rows
    k = [int(v.replace(",", "")) for v in cm.groups()]
    assert k[0] == x.rows["claims"] and k[0] == k[1] + k[2]
    cells = pl.read_parquet(tmp_path / "cells.parquet")
    assert int(cells["claims"].sum()) == k[1]


def test_run_account_holds_on_dirty_partitions(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    """The whole pipeline on dirty, wide, unicode, partitioned data: account.json balances."""
    x = Ctx(tmp_path, *base)
    d = _dirty_partitions(x)
    cp = x.write(_dirty_claims(x), "claims.parquet", "claims")
    code, out, err = _run(x.run(x.config("[study]\nfactors = [\"city_tier\"]\n[segmentation]\nmin_expected_claims = 1.0\n",
                                          members=d, claims=cp)), capsys)
    assert "Traceback" not in out + err
    assert code == 0, err
    acc = json.loads((tmp_path / "run-out" / "account.json").read_text())
    assert acc["members"]["read"] == x.rows["members"] and acc["claims"]["read"] == x.rows["claims"]
    for what in ("members", "claims"):
        a = acc[what]
        assert a["identity_holds"] and a["read"] == a["used"] + sum(a["set_aside"].values())
    assert acc["members"]["set_aside"] == {"date_out_of_range": 1, "duplicate_member_id": 2, "exit_before_join": 1,
                                           "implausible_age": 1, "null_member_id": 1, "unknown_sex": 1}
    for reason in ("unknown_member", "nonpositive_amount", "nonfinite_amount", "null_claim_id", "member_set_aside"):
        assert acc["claims"]["set_aside"].get(reason, 0) >= 1, reason


# --------------------------------------------------------------------------- real processes: no traceback
def _fentan_cmd() -> list[str]:
    exe = shutil.which("fentan") or str(Path(sys.executable).with_name("fentan"))
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "engine.cli.main"]


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
