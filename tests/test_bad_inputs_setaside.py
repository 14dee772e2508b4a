"""Bad-input matrix (issue 10, item 1), the working kinds: bad rows set aside with a reason and the
row account holding (read = used + set aside), one kind at a time and all at once through
``fentan exposure`` and ``fentan run`` over hive partitions."""


from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import polars as pl
import pytest

from tests.kits.badinput import D, Case, Ctx, _run, base  # noqa: F401  (base: fixture)


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



def a_amount_beyond_plausibility(x: Ctx) -> Case:
    """1e308 (and 1e11) CNY: set aside, never an overflow (issue 16)."""
    return Case(x.validate(None, x.add_claims([{"amount": 1e308}, {"amount": 1e11}])),
                aside={"claims": {"implausible_amount": 2}})


def a_csv_empty_fields_are_nulls(x: Ctx) -> Case:
    """In a CSV file an empty field is a null, as in Parquet: required ones set aside, nullable ones fine."""
    r = x.free_rows(4)[1:]  # the first free member is the added claims' claimant
    m = x.set_rows(x.m, r[:1], birth_date=None)
    m = x.set_rows(m, r[1:2], sex=None)
    m = x.set_rows(m, r[2:3], exit_date=None)  # nullable: still a member
    c = x.add_claims([{"amount": None}, {"approved_date": None}])
    mp, cp = x.write_csv(m, "members.csv", "members"), x.write_csv(c, "claims.csv", "claims")
    return Case(x.validate(mp, cp), aside={"members": {"null_birth_date": 1, "null_sex": 1},
                                           "claims": {"null_amount": 1}})


def a_csv_nonfinite_amount(x: Ctx) -> Case:
    """``nan`` and ``inf`` are numbers in a CSV file, set aside as in Parquet."""
    c = x.add_claims([{"amount": float("nan")}, {"amount": float("inf")}])
    return Case(x.validate(None, x.write_csv(c, "claims.csv", "claims")), aside={"claims": {"nonfinite_amount": 2}})


ASIDE_KINDS = [v for k, v in dict(globals()).items() if k.startswith("a_")]


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


def test_matrix_has_enough_set_aside_kinds() -> None:
    assert len(ASIDE_KINDS) >= 15
    assert len({f.__name__ for f in ASIDE_KINDS}) == len(ASIDE_KINDS)


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
    code, out, err = _run(x.run(x.config("[study]\nfactors = [\"city_tier\"]\n[segmentation]\nmin_claims = 20.0\n",
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


# --------------------------------------------------------------------------- issue 16, item 2: dates after the as-of date
def _late_rows(x: Ctx) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One join in 2030 (a typo for 2020), one exit after the as-of date, one event and one approval after it."""
    r = x.free_rows(2)
    m = x.set_rows(x.m, r[:1], join_date=D(2030, 1, 1), exit_date=None)
    m = m.with_columns(pl.when(pl.int_range(pl.len()).is_in(r[1:2])).then(pl.lit(D(2029, 5, 1)))
                       .otherwise(pl.col("exit_date")).alias("exit_date"))
    c = x.add_claims([{"event_date": D(2029, 3, 1), "approved_date": None},
                      {"event_date": D(2021, 6, 1), "approved_date": D(2029, 4, 1)}])
    return m, c


def test_dates_after_the_as_of_date_set_aside_validate(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    m, c = _late_rows(x)
    code, out, err = _run(x.validate(m, c), capsys)
    assert code == 0, err
    acc = json.loads((tmp_path / "out" / "account.json").read_text())
    assert acc["members"]["set_aside"] == {"join_after_as_of": 1, "exit_after_as_of": 1}
    assert acc["claims"]["set_aside"] == {"event_after_as_of": 1, "approval_after_as_of": 1}
    assert acc["as_of"] == {"date": "2022-06-30", "source": "--as-of"}
    for what in ("members", "claims"):
        assert acc[what]["read"] == x.rows[what] == acc[what]["used"] + sum(acc[what]["set_aside"].values())


def test_one_late_join_never_moves_the_study_window(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    """No as-of date in the config: it is derived from the claims, printed, and kept in the account."""
    x = Ctx(tmp_path, *base)
    m, c = _late_rows(x)
    mp, cp = x.write(m, "members.parquet", "members"), x.write(c, "claims.parquet", "claims")
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nmembers = "{mp}"\nclaims = "{cp}"\n[projection]\nscenarios = 20\nhorizon = 12\n'
                   "[output]\nreport = false\nmodels = false\n[segmentation]\nmin_expected_claims = 5.0\n")
    code, out, err = _run(["run", str(cfg), "--out", str(tmp_path / "run-out")], capsys)
    assert code == 0, err
    last = x.c.select(pl.coalesce("approved_date", "event_date").max()).item()
    first = x.c["event_date"].min()
    acc = json.loads((tmp_path / "run-out" / "account.json").read_text())
    w = acc["window"]
    assert w["as_of"] == last.isoformat() and w["study_end"] == last.isoformat()
    assert w["as_of_source"].startswith("latest claim approval date") and w["study_end_source"] == "the as-of date"
    assert w["study_start"] == first.replace(day=1).isoformat() and "earliest claim event" in w["study_start_source"]
    assert f"as-of date {last}" in out and "latest claim approval date" in out
    assert acc["members"]["set_aside"] == {"join_after_as_of": 1, "exit_after_as_of": 1}
    assert acc["claims"]["set_aside"].get("event_after_as_of") == 1
    assert acc["claims"]["set_aside"].get("approval_after_as_of") == 1
    for what in ("members", "claims"):
        assert acc[what]["read"] == x.rows[what] and acc[what]["identity_holds"]


def test_amount_bound_follows_the_configured_benefit(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    """In a run the bound is 10 x the largest benefit of the plans; no warning reaches stderr."""
    x = Ctx(tmp_path, *base)
    c = x.add_claims([{"amount": 1e308}, {"amount": 5_000_000.0}, {"amount": 900_000.0}])
    (tmp_path / "p.toml").write_text('[planset]\nname = "p"\n[[plans]]\nname = "a"\nbenefit = 300000\n')
    cfg = x.config('[plans]\nfiles = ["p.toml"]\n', claims=x.write(c, "claims.parquet", "claims"))
    code, out, err = _run(x.run(cfg), capsys)
    assert code == 0, err
    assert err == ""  # no numpy / overflow warning
    acc = json.loads((tmp_path / "run-out" / "account.json").read_text())
    assert acc["claims"]["set_aside"]["implausible_amount"] == 2  # 1e308 and 5e6 > 10 x 300,000; 900,000 kept
    assert acc["claims"]["read"] == x.rows["claims"] and acc["claims"]["identity_holds"]


# --------------------------------------------------------------------------- issue 16, item 5: null rating factors
def test_null_rating_factors_are_the_missing_level_in_every_command(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    m = x.m.with_columns(pl.when(pl.int_range(pl.len()) % 40 == 0).then(None).otherwise(pl.col("city_tier")).alias("city_tier"),
                         pl.when(pl.int_range(pl.len()) % 55 == 0).then(None).otherwise(pl.col("channel")).alias("channel"))
    mp = x.write(m, "members.parquet", "members")
    code, out, err = _run(x.exposure(mp, None, "--by", "age,sex,city_tier,channel"), capsys)
    assert code == 0, err
    cells = pl.read_parquet(tmp_path / "cells.parquet")
    assert "missing" in cells["city_tier"].to_list() and "missing" in cells["channel"].to_list()
    assert cells["city_tier"].null_count() == 0
    code, out, err = _run(x.run(x.config(members=mp)), capsys)
    assert code == 0, err
    run_cells = pl.read_parquet(tmp_path / "run-out" / "cells.parquet")
    for f in ("city_tier", "channel"):
        assert sorted(run_cells[f].unique().to_list()) == sorted(cells[f].unique().to_list())  # the same levels
    acc = json.loads((tmp_path / "run-out" / "account.json").read_text())
    assert acc["members"]["set_aside"] == {} and acc["members"]["read"] == x.rows["members"]
    # the missing level carries its own exposure: the totals are those of the data without nulls
    full = run_cells["exposure_years"].sum()
    miss = run_cells.filter(pl.col("city_tier") == "missing")["exposure_years"].sum()
    assert 0 < miss < full
