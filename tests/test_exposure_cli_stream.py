"""``fentan exposure`` streams (issue 22): validation file by file, then exposure file by file.

Oracle: the in-memory path (every member validated in one frame, null factors filled in the
member rows, one exposure call): same cells, exact, and the same claims set aside.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine
from engine.cli.main import main
from engine.data.factor_levels import fill_missing
from engine.synth import generate

KW = dict(start="2019-01-01", end="2021-06-30")
PLAT = generate(4000, seed=7, level=300.0, dirty=0.03)
# a rating factor with nulls (the level "missing") and an integer one
MEMBERS = PLAT.members.with_columns(
    pl.when(pl.int_range(pl.len()) % 17 == 0).then(None).otherwise(pl.col("channel")).alias("channel"))
CLAIMS = PLAT.claims
N = MEMBERS.height


def _oracle(by: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    import datetime as dt

    res = engine.validate(MEMBERS, CLAIMS)
    members = fill_missing(res.members.collect(), [b for b in by if b in MEMBERS.columns and b != "sex"])
    cells, rejected = engine.exposure(members, res.claims.collect(), start=dt.date(2019, 1, 1),
                                      end=dt.date(2021, 6, 30), by=by, return_rejected=True)
    return cells, pl.concat([res.rejected_claims, rejected], how="diagonal_relaxed")


@pytest.mark.parametrize("cuts", [[0, N], [0, 1000, 1000, 2500, N], list(np.linspace(0, N, 9).astype(int))])
@pytest.mark.parametrize("by", [["age", "sex", "channel"], ["age", "duration_band", "city_tier"]])
def test_streaming_cli_equals_in_memory(cuts, by, tmp_path) -> None:
    (tmp_path / "m").mkdir()
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        MEMBERS.slice(a, b - a).write_parquet(tmp_path / "m" / f"part-{i}.parquet")
    CLAIMS.write_parquet(tmp_path / "c.parquet")
    out, rej = tmp_path / "cells.parquet", tmp_path / "rej.parquet"
    code = main(["exposure", "--members", str(tmp_path / "m"), "--claims", str(tmp_path / "c.parquet"),
                 "--start", KW["start"], "--end", KW["end"], "--by", ",".join(by), "--out", str(out),
                 "--rejected-claims", str(rej), "--quiet"])
    assert code == 0
    want_cells, want_rej = _oracle(by)
    assert_frame_equal(pl.read_parquet(out), want_cells, check_exact=True)
    assert_frame_equal(pl.read_parquet(rej), want_rej, check_exact=True)
    got = pl.read_parquet(out)
    assert int(got["claims"].sum()) + pl.read_parquet(rej).height == CLAIMS.height  # every claim accounted for
    if "channel" in by:
        assert "missing" in got["channel"].to_list()
