"""fentan exposure CLI, and the fast grid path vs the generic event path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

import engine.cells as cells_mod
from engine.cli.main import main
from engine.exposure import exposure
from test_exposure import KW, _random_members

D = dt.date


@pytest.fixture()
def files(tmp_path):
    m, c = _random_members(800, 5)
    # dirty rows for validation: an unknown member's claim and a member exiting before joining
    bad = m.head(1).with_columns(pl.lit("bad").alias("member_id"), pl.lit(D(2010, 1, 1)).alias("exit_date"))
    m = pl.concat([m, bad])
    c = pl.concat([c, c.head(1).with_columns(pl.lit("zz").alias("claim_id"), pl.lit("ghost").alias("member_id"))])
    (tmp_path / "m").mkdir()
    m.slice(0, 400).write_parquet(tmp_path / "m" / "part-0.parquet")
    m.slice(400).write_parquet(tmp_path / "m" / "part-1.parquet")
    c.write_parquet(tmp_path / "c.parquet")
    return tmp_path, m, c


def test_cli_writes_cells_and_rejected(files, capsys):
    tmp, m, c = files
    out, rej = tmp / "cells.parquet", tmp / "rej.parquet"
    code = main(["exposure", "--members", str(tmp / "m"), "--claims", str(tmp / "c.parquet"), "--start", "2018-03-15",
                 "--end", "2020-11-20", "--period", "quarter", "--by", "age,sex,tier", "--out", str(out),
                 "--rejected-claims", str(rej), "--batch-size", "300"])
    assert code == 0
    got = pl.read_parquet(out)
    clean = m.filter(pl.col("member_id") != "bad")
    want = exposure(clean, c.filter(pl.col("member_id") != "ghost"), period="quarter", by=("age", "sex", "tier"), **KW)
    assert got.equals(want)
    r = pl.read_parquet(rej)
    assert int(got["claims"].sum()) + r.height == c.height
    assert "unknown_member" in r["reason"].to_list()
    text = capsys.readouterr().out
    assert "claims:" in text and "set aside" in text


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--period", "week"], "--period"),
        (["--waiting-days", "x"], "--waiting-days"),
        (["--by", "age,region"], "--by"),
        (["--by", "age,age"], "--by"),
        (["--duration-bands", "3,6"], "--duration-bands"),
        (["--batch-size", "0"], "--batch-size"),
        (["--end", "2017-01-01"], "--end"),
    ],
)
def test_cli_bad_arguments_name_the_option(files, capsys, extra, needle):
    tmp, _, _ = files
    args = ["exposure", "--members", str(tmp / "m"), "--claims", str(tmp / "c.parquet"), "--start", "2018-01-01",
            "--end", "2019-12-31", "--out", str(tmp / "x.parquet")]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "x.parquet").exists()


@pytest.mark.parametrize("by", [("age", "sex"), ("tier",), (), ("channel", "age")])
@pytest.mark.parametrize("period", ["month", "year"])
def test_fast_path_equals_generic_path(monkeypatch, by, period):
    m, c = _random_members(1500, 7)
    fast = exposure(m, c, by=by, period=period, **KW)
    monkeypatch.setattr(cells_mod, "FAST_GRID_MAX", 0)  # the fast path declines: same cells
    assert exposure(m, c, by=by, period=period, **KW).equals(fast)
    monkeypatch.setattr(cells_mod, "FAST_GRID_MAX", 20_000_000)
    orig = cells_mod.accumulate

    def generic(*a, **k):
        return orig(*a, **k, force_generic=True)

    monkeypatch.setattr("engine.exposure.accumulate", generic)
    slow = exposure(m, c, by=by, period=period, **KW)
    assert fast.equals(slow)


def test_engine_exposure_is_callable_after_submodule_import():
    import engine
    import engine.exposure as mod

    m, c = _random_members(50, 9)
    assert engine.exposure(m, c, **KW).equals(mod.exposure(m, c, **KW))


def test_threaded_halves_equal_one_pass(monkeypatch):
    import engine.exposure as mod

    m, c = _random_members(2000, 11)
    for by in [("age", "sex"), ("duration_band", "tier")]:
        one = exposure(m, c, by=by, **KW)
        monkeypatch.setattr(mod, "PARALLEL_MIN", 10)
        assert exposure(m, c, by=by, batch_size=900, **KW).equals(one)
        monkeypatch.setattr(mod, "PARALLEL_MIN", 100_000)
