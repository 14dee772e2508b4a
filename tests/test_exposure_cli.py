"""fentan exposure CLI, and the fast grid path (engine.cells._accumulate) vs the reference event path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.cli.main import main
from engine.cells._exposure import exposure
from tests.kits.random_members import KW, _random_members

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
                 "--rejected-claims", str(rej), "--batch-size", "300", "--as-of", "2030-12-31"])
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


def _generic_cells(m: pl.DataFrame, c: pl.DataFrame, by, period) -> pl.DataFrame:
    """Sharing and at-risk days with the reference event implementation (tests/kits/oracle_cells.py)."""
    from engine.cells.calendar import Calendar, KeySpec, encode_static
    from tests.kits.oracle_cells import Members, accumulate
    from engine.cells.dates import day_number
    from engine.cells._exposure import classify_claims

    static = [b for b in by if b not in ("age", "duration", "duration_band")]
    dim = "duration" if "duration" in by else ("band" if "duration_band" in by else None)
    spec = KeySpec(age="age" in by, dim=dim, edges=np.array([0, 3, 6, 12, 24]))
    cal = Calendar(day_number(KW["start"]), day_number(KW["end"]), period)
    first = (classify_claims(m, c, waiting_days=KW["waiting_days"]).filter("eligible").group_by("member_id")
             .agg(pl.col("event_date").min().alias("first")))
    mm = m.join(first, on="member_id", how="left", maintain_order="left")
    day = lambda col: mm[col].cast(pl.Int64).fill_null(2**31 - 1).to_numpy()  # noqa: E731
    sid, n_sid, decode = encode_static(mm, static)
    acc = accumulate(cal, Members(day("birth_date"), day("join_date"), day("exit_date"), day("first"), sid, n_sid),
                     spec, KW["waiting_days"])
    cols = {"period": pl.Series("period", cal.first[acc["p"]].astype(np.int32)).cast(pl.Date)}
    if spec.age:
        cols["age"] = pl.Series("age", acc["age"]).cast(pl.Int32)
    if dim:
        cols["dim"] = pl.Series("dim", acc["dim"]).cast(pl.Int32)
    out = pl.concat([pl.DataFrame(cols), decode(np.asarray(acc["sid"])),
                     pl.DataFrame({"exposure_days": acc["exposure_days"], "sharing_days": acc["sharing_days"]})],
                    how="horizontal")
    return out


@pytest.mark.parametrize("by", [("age", "sex"), ("tier",), (), ("channel", "age"), ("age", "duration_band", "sex"),
                                ("duration", "age")])
@pytest.mark.parametrize("period", ["month", "year"])
def test_fast_path_equals_reference_events(by, period):
    """engine.cells._accumulate (used by exposure) vs the reference event implementation (tests/kits/oracle_cells.py)."""
    m, c = _random_members(1500, 7)
    fast = exposure(m, c, by=by, period=period, **KW)
    ref = _generic_cells(m, c, by, period)
    if "duration_band" in by:
        from engine.cells._exposure import band_labels

        labels = band_labels([0, 3, 6, 12, 24])
        ref = ref.with_columns(pl.col("dim").map_elements(lambda i: labels[i], return_dtype=pl.String)
                               .alias("duration_band")).drop("dim")
    elif "duration" in by:
        ref = ref.rename({"dim": "duration"})
    keys = ["period", *by]
    want = ref.select(*keys, "exposure_days", "sharing_days").sort(keys, nulls_last=True)
    want = want.group_by(keys, maintain_order=True).agg(pl.col("exposure_days", "sharing_days").sum())
    got = fast.select(*keys, "exposure_days", "sharing_days")
    assert got.equals(want.cast(dict(got.schema)))


def test_engine_exposure_is_callable_after_submodule_import():
    import engine
    import engine.cells._exposure as mod

    m, c = _random_members(50, 9)
    assert engine.exposure(m, c, **KW).equals(mod.exposure(m, c, **KW))


def test_threaded_parts_equal_one_pass(monkeypatch):
    import engine.cells._accumulate as fast_mod
    import engine.cells._batch as mod

    m, c = _random_members(2000, 11)
    for by in [("age", "sex"), ("duration_band", "tier"), ("duration", "age", "channel")]:
        one = exposure(m, c, by=by, **KW)
        monkeypatch.setattr(mod, "PARALLEL_MIN", 10)
        assert exposure(m, c, by=by, batch_size=900, **KW).equals(one)
        monkeypatch.setattr(mod, "MAX_MEMBERS", 128)  # several parts per batch, two threads
        monkeypatch.setattr(fast_mod, "MAX_MEMBERS", 128)
        assert exposure(m, c, by=by, **KW).equals(one)
        assert exposure(m.lazy(), c.lazy(), by=by, batch_size=700, **KW).equals(one)
        monkeypatch.setattr(mod, "PARALLEL_MIN", 100_000)
        monkeypatch.setattr(mod, "MAX_MEMBERS", 4_000_000)
        monkeypatch.setattr(fast_mod, "MAX_MEMBERS", 4_000_000)


def test_dense_sink_equals_batch_frames(monkeypatch):
    """The dense cell sink and its fallback (batch frames summed by polars) give identical cells."""
    import engine.cells._sink as sink_mod

    m, c = _random_members(1500, 13)
    m = m.with_columns(pl.when(pl.col("tier") == 2).then(None).otherwise(pl.col("channel")).alias("channel"))
    for by in [("age", "sex"), ("channel", "duration_band", "age", "tier"), ("duration", "sex"), ()]:
        dense = exposure(m, c, by=by, batch_size=400, **KW)
        monkeypatch.setattr(sink_mod, "MAX_DENSE", 0)
        frames = exposure(m, c, by=by, batch_size=400, **KW)
        monkeypatch.setattr(sink_mod, "MAX_DENSE", 40_000_000)
        assert dense.equals(frames)


def test_static_encoding_beyond_the_sampled_values():
    """A value first seen after the sampled rows: the one-pass static encoding falls back, same cells."""
    from engine.cells.calendar import encode_static

    n = 60_000
    df = pl.DataFrame({"a": ["x"] * (n - 1) + ["y"], "b": [1] * n, "c": [None] * (n - 1) + ["z"]})
    sid, k, decode = encode_static(df, ["a", "b", "c"])
    back = decode(sid)
    assert back.equals(df.with_columns(pl.col("b").cast(pl.Int64)))
    assert k >= 4


def test_member_columns_as_keys_are_not_read_twice():
    """`by` may name member_id or a date column: cells by member, identical across batch sizes."""
    m, c = _random_members(600, 17)
    a = exposure(m, c, by=("member_id",), **KW)
    assert a.equals(exposure(m, c, by=("member_id",), batch_size=128, **KW))
    assert a.group_by("member_id").agg(pl.col("exposure_days").sum()).height <= m.height
    j = exposure(m, c, by=("join_date", "age"), **KW)
    assert j["exposure_days"].sum() == a["exposure_days"].sum()
