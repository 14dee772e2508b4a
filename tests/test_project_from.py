"""``fentan project --from DIR``: project a run, plans or segmentation output without a hand-written groups table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import main

FAST = ["--horizon", "12", "--scenarios", "20", "--quiet"]


def test_from_a_run_projects_its_plans(small_demo, tmp_path: Path, capsys) -> None:
    run = small_demo.out / "run"
    out = tmp_path / "p"
    assert main(["project", "--from", str(run), "--out", str(out), *FAST]) == 0
    assert capsys.readouterr().err == ""
    groups = pl.read_parquet(out / "projection_groups.parquet")
    projected = set(pl.read_parquet(out / "projection_plans.parquet")["plan"])
    assert projected == set(groups["plan"]) == set(pl.read_parquet(run / "projection_plans.parquet")["plan"])
    plans = pl.read_parquet(run / "plans.parquet").filter(pl.col("level") == "plan")
    for r in plans.filter(pl.col("planset") == "pooled").iter_rows(named=True):
        g = groups.filter(pl.col("plan") == f"pooled/{r['plan']}")
        assert g["members"].sum() == pytest.approx(r["members"])
        claims = (g["members"] * g["rate"]).sum() / r["periods_per_year"]
        assert claims == pytest.approx(r["expected_claims_per_period"], rel=1e-9)

    a = json.loads((out / "projection_assumptions.json").read_text())
    assert a["periods_per_year"] == int(plans["periods_per_year"][0])  # the plans' sharing frequency
    # the run's plans share one fee and caps (configs/xianghubao.toml, vertical.toml): they are the defaults,
    # with the per-claimant cap scaled as the run scaled it (the demo: to its platform's size)
    caps = json.loads((run / "summary.json").read_text())["facts"]["caps"]
    assert caps["scale_caps_to_members"] == small_demo.result["params"]["peak_members"]
    assert (a["fee"], a["annual_cap"]) == (0.08, 188.0)
    assert a["per_claimant_cap"] == pytest.approx(0.1 * caps["per_claimant_cap_scale"], rel=1e-12)
    # claims-weighted benefits: the sustainable shares are the run's own
    mine = dict(pl.read_parquet(out / "projection_plans.parquet").select("plan", "sustainable_share_cny").iter_rows())
    theirs = dict(pl.read_parquet(run / "projection_plans.parquet").select("plan", "sustainable_share_cny").iter_rows())
    for plan, share in theirs.items():
        assert mine[plan] == pytest.approx(share, rel=0.01), plan


def test_from_a_plans_output(small_demo, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    out = tmp_path / "plans"
    assert main(["plans", str(root / "vertical.toml"), "--pooled", str(root / "xianghubao.toml"),
                 "--cells", str(small_demo.out / "run" / "cells.parquet"), "--out", str(out), "--quiet"]) == 0
    assert main(["project", "--from", str(out), "--out", str(tmp_path / "p"), *FAST]) == 0
    plans = pl.read_parquet(out / "plans.parquet").filter(pl.col("level") == "plan", pl.col("members") > 0)
    want = {f"{r['planset']}/{r['plan']}" for r in plans.iter_rows(named=True)}
    assert set(pl.read_parquet(tmp_path / "p" / "projection_groups.parquet")["plan"]) == want


@pytest.mark.parametrize("kind", ["segment", "model"])
def test_from_a_segmentation_needs_a_benefit(small_demo, tmp_path: Path, capsys, kind: str) -> None:
    src = tmp_path / "seg"
    if kind == "segment":  # what `fentan segment --out` writes
        src.mkdir()
        shutil.copy(small_demo.out / "run" / "segments.parquet", src / "segments.parquet")
    else:  # a saved segmentation model directory
        shutil.copytree(small_demo.out / "run" / "models" / "segmentation", src)
    assert main(["project", "--from", str(src), "--out", str(tmp_path / "x"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--benefit" in err[0] and "Traceback" not in err[0]
    assert main(["project", "--from", str(src), "--benefit", "300000", "--out", str(tmp_path / "p"), *FAST]) == 0
    groups = pl.read_parquet(tmp_path / "p" / "projection_groups.parquet")
    seg = pl.read_parquet(next(src.glob("*.parquet")) if kind == "segment" else src / "groups.parquet")
    assert set(groups["plan"]) == {"segments"} and groups.height == seg.filter(pl.col("members") > 0).height
    assert (groups["benefit_cny"] == 300_000.0).all()
    assert main(["project", "--from", str(src), "--benefit", "300000", "--plan-per-group", "--out",
                 str(tmp_path / "v"), *FAST]) == 0
    vertical = pl.read_parquet(tmp_path / "v" / "projection_groups.parquet")
    assert vertical["plan"].to_list() == vertical["group"].to_list() == groups["group"].to_list()


def test_from_errors_are_one_line(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, needle in [
        (["--from", str(tmp_path / "missing")], "not a directory"),
        (["--from", str(empty)], "plans.parquet"),
        (["--groups", str(tmp_path / "g.parquet"), "--benefit", "1000"], "--benefit"),
        (["--groups", str(tmp_path / "g.parquet"), "--plan-per-group"], "--plan-per-group"),
    ]:
        assert main(["project", *argv, "--out", str(tmp_path / "o"), *FAST]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    with pytest.raises(SystemExit) as exc:  # --groups and --from exclude each other
        main(["project", "--groups", "g.parquet", "--from", str(empty), "--out", "o"])
    assert exc.value.code == 2
