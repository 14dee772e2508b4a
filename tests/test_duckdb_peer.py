"""The DuckDB peer of the benchmarks (benchmarks/adapters/duckdb_peer.py) gives fentan's cells.

The benchmark checks this at 10^6 and 10^7 members; here a small platform with many claims plus
the edge cases of docs/exposure.md (a 29 February birthday, a claim in the waiting period, a first
eligible claim before the study, two claims on the first day, an exit inside the study) is run
through both, and the cells must be the same: keys, day counts and claims exact, amounts to 1e-12.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from engine.cells import exposure
from engine.conventions import DAYS_PER_YEAR, WAITING_DAYS
from engine.synth import generate

duckdb_peer = pytest.importorskip("benchmarks.adapters.duckdb_peer")
pytest.importorskip("duckdb")

START, END = dt.date(2019, 1, 1), dt.date(2021, 12, 31)


def _edge_cases(template: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    d = dt.date
    rows = [  # member_id, birth, join, exit
        ("E1", d(1996, 2, 29), d(2018, 6, 1), None),
        ("E2", d(1980, 3, 1), d(2019, 12, 10), d(2021, 5, 2)),
        ("E3", d(1970, 12, 31), d(2018, 1, 1), None),
        ("E4", d(1990, 1, 1), d(2019, 1, 1), d(2021, 12, 31)),
    ]
    members = pl.DataFrame(
        {"member_id": [r[0] for r in rows], "birth_date": [r[1] for r in rows], "sex": ["F", "M", "F", "M"],
         "join_date": [r[2] for r in rows], "exit_date": [r[3] for r in rows]},
        schema_overrides={"exit_date": pl.Date})
    claims = pl.DataFrame({  # claim_id, member, event: waiting period, first (twice), after first, before the study
        "claim_id": ["X1", "X2", "X3", "X4", "X5", "X6"], "member_id": ["E2", "E2", "E2", "E2", "E3", "E1"],
        "event_date": [d(2020, 1, 5), d(2020, 6, 1), d(2020, 6, 1), d(2020, 8, 1), d(2018, 12, 1), d(2020, 2, 29)],
        "amount": [1.0, 300000.0, 100000.0, 5.0, 7.0, 300000.0]})
    members = members.select(pl.col(c).cast(t) for c, t in template.select(members.columns).schema.items())
    return members, claims


def test_duckdb_peer_gives_fentans_cells(tmp_path) -> None:
    plat = generate(20000, seed=11, level=50.0)
    em, ec = _edge_cases(plat.members)
    members = pl.concat([plat.members.select(em.columns), em])
    claims = pl.concat([plat.claims.select(ec.columns), ec.with_columns(pl.col(c).cast(t) for c, t in
                                                                         plat.claims.select(ec.columns).schema.items())])
    (tmp_path / "m").mkdir()
    members.slice(0, 9000).write_parquet(tmp_path / "m" / "a.parquet")
    members.slice(9000).write_parquet(tmp_path / "m" / "b.parquet")
    claims.write_parquet(tmp_path / "c.parquet")
    ours = exposure(members, claims, start=START, end=END, waiting_days=WAITING_DAYS, by=("age", "sex"))
    assert ours["claims"].sum() > 50  # many claims end cover
    for variant in duckdb_peer.VARIANTS:
        out = tmp_path / f"{variant}.parquet"
        duckdb_peer.run(str(tmp_path / "m"), str(tmp_path / "c.parquet"), START.isoformat(), END.isoformat(),
                        WAITING_DAYS, str(out), DAYS_PER_YEAR, variant=variant)
        theirs = pl.read_parquet(out).with_columns(pl.col("age").cast(ours.schema["age"]))
        keys = ["period", "age", "sex"]
        assert theirs.select(keys).equals(ours.select(keys)), variant
        for col in ("exposure_days", "sharing_days", "claims"):
            assert (theirs[col].cast(pl.Int64) == ours[col]).all(), (variant, col)
        rel = ((theirs["amount"] - ours["amount"]).abs() / ours["amount"].abs().clip(1.0)).max()
        assert rel <= 1e-12, variant


def test_suite_peer_checks_its_cells_against_fentans(tmp_path) -> None:
    """``python -m benchmarks.run``'s DuckDB peer: timed, and checked against fentan's cells by the suite's keys
    summed to period, age and sex; a cell of fentan's changed by one day fails the check."""
    from benchmarks.adapters.common import load_config, study

    cfg = load_config()
    plat = generate(20000, seed=12, level=50.0)
    kw = study(cfg)
    plat.members.write_parquet(tmp_path / "members_clean.parquet")
    plat.claims.write_parquet(tmp_path / "claims_clean.parquet")
    cells = exposure(plat.members, plat.claims, **kw)
    assert {"city_tier", "channel"} <= set(cells.columns)  # the suite splits by more keys than the query
    cells.write_parquet(tmp_path / "cells.parquet")
    rec = duckdb_peer.exposure(plat.members.height, tmp_path, cfg)
    assert rec["identical"] and rec["wall_s"] > 0 and rec["keys"] == "period, age, sex"
    assert rec["exposure_days"] == int(cells["exposure_days"].sum()) and rec["claims"] == int(cells["claims"].sum()) > 50
    cells.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.col("exposure_days") + 1)
                       .otherwise(pl.col("exposure_days")).alias("exposure_days")).write_parquet(tmp_path / "cells.parquet")
    with pytest.raises(AssertionError, match="exposure_days"):
        duckdb_peer.exposure(plat.members.height, tmp_path, cfg)
