"""The operating tempo of a replayed platform (Xianghubao out of the box): docs/tempo.md, section "Xianghubao".

Fast: the shipped replay's point estimates (no bootstrap), a reduced horizon and few scenarios.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.calibration import tempo_from_replay
from engine.calibration._tempo import load_tempo_config, replay_tempo_inputs
from engine.calibration.config import replay_from_config
from engine.cli.main import main
from engine.errors import ConfigError
from engine.projection.membership import membership_from_curve

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "xianghubao_tempo.toml"
FAST = dict(years_to_target=[1.0, 3.0], horizon=48, n_scenarios=20, seed=3,
            elasticity={"base": 1.0, "adverse_selection": 1.0}, expectations={"speed": 0.1, "floor_cny": 0.5})


@pytest.fixture(scope="module")
def rep():
    res, _ = replay_from_config(ROOT / "configs" / "xianghubao_public.toml", n_boot=0)
    return res


@pytest.fixture(scope="module")
def sweep(rep):
    return tempo_from_replay(rep, elasticities=[0.5, 2.0], education_speeds=[0.1, 0.5], **FAST)


def test_inputs_follow_the_replay(rep) -> None:
    inp = replay_tempo_inputs(rep, periods_per_year=24, horizon=144)
    g = inp["groups"]
    theta = rep.facts["theta"]
    base = rep.inputs["groups"]["base_rate"].to_numpy()
    assert np.allclose(g["rate"].to_numpy(), theta["level"] * base, rtol=1e-12)
    assert np.allclose(g["waiting_members"].to_numpy(), g["members"].to_numpy())
    assert math.isclose(float(g["members"].sum()), inp["launch_members"], rel_tol=1e-12)
    # the launch pool is the curve's first half-month: 12 million in 10 days, then about 0.2 million a day
    assert 12e6 < inp["launch_members"] < 14e6
    j = np.asarray(inp["actual_joiners"])
    assert j.size == 144 and j[0] == 0.0 and np.all(j >= 0)
    assert inp["target_members"] == float(rep.inputs["points"]["members"].max())
    # every joiner of the curve is in the launch pool or in the schedule (periods of 365.25 / 24 days)
    c = membership_from_curve(rep.inputs["points"], rep.inputs["start"], rep.inputs["end"],
                              base_lapse_annual=rep.inputs["base_lapse_annual"])
    n = inp["curve_periods"]
    assert math.isclose(inp["launch_members"] + j[:n].sum(), float(c.daily["joiners"].sum()), rel_tol=1e-9)
    proj = inp["projection"]
    assert proj["waiting_periods"] == 6 and proj["reporting_lag_periods"] == 2 and proj["annual_cap"] is None
    sel, w = proj["select_factors"], proj["waiting_periods"]
    assert sel[-1] == 1.0 and all(a <= b + 1e-12 for a, b in zip(sel[w:], sel[w + 1:], strict=False))


def test_table_shape_and_the_actual_curve_placed(sweep) -> None:
    t = sweep.table
    assert t.height == 3 and t["kind"].to_list().count("actual") == 1
    assert t["speed"].to_list() == sorted(t["speed"].to_list())
    act = t.filter(pl.col("kind") == "actual").row(0, named=True)
    p = sweep.placement
    # the actual curve reached its peak in about 17 months: some 34 half-month periods on its planned path
    assert 30 <= p["actual_periods_to_target"] <= 36
    assert act["periods_to_target"] == p["actual_periods_to_target"]
    a = sweep.assumptions
    assert math.isclose(p["actual_growth_per_period"],
                        (a["target_members"] / a["launch_members"]) ** (1 / p["actual_periods_to_target"]) - 1,
                        rel_tol=1e-12)
    planned = sweep.frontier.table
    slow = planned.filter(pl.col("tempo") == p["planned_slower_neighbour"])["speed"][0]
    fast = planned.filter(pl.col("tempo") == p["planned_faster_neighbour"])["speed"][0]
    assert slow <= p["actual_growth_per_period"] < fast
    assert p["actual_meets_criteria"] == act["meets_criteria"]


def test_sensitivity_grid(sweep) -> None:
    s = sweep.sensitivity
    assert s.height == 4
    assert s.select("elasticity", "education_speed").rows() == [(0.5, 0.1), (0.5, 0.5), (2.0, 0.1), (2.0, 0.5)]
    for c in ("recommended", "binding", "recommended_years_to_target", "least_surprise", "least_surprise_p95",
              "least_surprise_years_to_target", "actual_peak_surprise_p95",
              "actual_spiral_prob", "actual_meets_criteria"):
        assert c in s.columns
    assert s["actual_peak_surprise_p95"].is_finite().all()
    # faster education leaves less surprise on the actual curve, at either elasticity
    for e in (0.5, 2.0):
        col = s.filter(pl.col("elasticity") == e)["actual_peak_surprise_p95"].to_list()
        assert col[1] < col[0]


def test_recommendation_meets_the_criteria(rep) -> None:
    lenient = {"max_surprise_p95": 3.0, "max_spiral_prob": 1.0}
    r = tempo_from_replay(rep, criteria=lenient, **FAST)
    planned = r.frontier.table
    assert r.recommended is not None
    row = planned.filter(pl.col("tempo") == r.recommended).row(0, named=True)
    assert row["meets_criteria"] and row["peak_surprise_p95"] <= 4.0 and row["spiral_prob"] < 1.0
    faster = planned.filter(pl.col("speed") > row["speed"])
    assert not faster["meets_criteria"].any()  # the recommendation is the fastest that passes
    assert r.placement["recommended_periods_to_target"] == row["periods_to_target"]


def test_seeded(rep, sweep) -> None:
    again = tempo_from_replay(rep, elasticities=[0.5, 2.0], education_speeds=[0.1, 0.5], **FAST)
    assert again.table.equals(sweep.table)
    assert again.sensitivity.equals(sweep.sensitivity)
    other = tempo_from_replay(rep, **{**FAST, "seed": 4})
    assert not other.table["peak_surprise_p95"].equals(sweep.table["peak_surprise_p95"])


def test_shipped_config_reads() -> None:
    meta, kw = load_tempo_config(CONFIG)
    assert Path(meta["replay"]).name == "xianghubao_public.toml" and meta["replay_boot"] == 0
    assert kw["elasticities"] and kw["education_speeds"] and kw["multiples"] == [1.0]
    assert kw["expectations"]["floor_cny"] == 0.5
    shipped, _ = load_tempo_config("xianghubao_tempo")  # the shipped name, as for the replay
    assert Path(shipped["path"]).name == "xianghubao_tempo.toml"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xhb.toml"
    cfg.write_text(f'replay = "{(ROOT / "configs" / "xianghubao_public.toml").as_posix()}"\n'
                   "[tempo]\nyears_to_target = [1.0, 2.0]\nhorizon = 30\nscenarios = 5\n"
                   "[tempo.sensitivity]\nelasticity = [1.0]\neducation_speed = [0.1]\n"
                   "[projection.expectations]\nfloor_cny = 0.5\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["tempo", str(cfg), "--out", str(out), "--quiet"]) == 0
    for f in ("tempo.parquet", "tempo_replay.parquet", "tempo_actual.parquet", "placement.json",
              "tempo_sensitivity.parquet", "tempo.png", "tempo_replay.png"):
        assert (out / f).exists(), f
    assert pl.read_parquet(out / "tempo_replay.parquet").height == 3
    cfg.write_text('replay = "xianghubao_public"\n[tempo]\nnope = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="tempo.nope: unknown key"):
        load_tempo_config(cfg)
    assert main(["tempo", str(cfg), "--out", str(tmp_path / "o2")]) == 2
    assert "tempo.nope" in capsys.readouterr().err


def test_launch_start_puts_every_member_at_tenure_zero() -> None:
    """start="launch": the whole pool leaves the wait together; the first share is w + lag periods in."""
    from engine.projection import tempo

    groups = pl.DataFrame({"group": ["a"], "members": [1e6], "waiting_members": [1e6], "rate": [0.01],
                           "benefit_cny": [1e5]})
    kw = dict(multiples=[0.0], joiners={"per_period": [0.0] * 12}, horizon=12, n_scenarios=5, seed=0,
              waiting_periods=3, reporting_lag_periods=1, lapse={"base_annual": 0.0})
    launch = tempo(groups, start="launch", **kw).paths["det_share_cny"].to_list()
    assert launch[:4] == [0.0] * 4 and launch[4] > 0
    given = tempo(groups, start="as_given", **kw).paths["det_share_cny"].to_list()
    assert given[2] > 0  # as given: the waiting members spread over the wait, some eligible after one period
    with pytest.raises(ConfigError, match="'steady', 'as_given' or 'launch'"):
        tempo(groups, start="later", **kw)
