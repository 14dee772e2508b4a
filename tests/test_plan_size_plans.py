"""Plan size in the comparison (members_for_target_cv) and in the optimiser (a constraint in members)."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from engine.plans.compare import compare_plans
from engine.errors import ConfigError
from engine.plans.optimise import optimise_plans
from engine.plans.size import plan_size
from engine.plans.planset import plans_from_dict


def _plan(name, ages, benefit):
    return {"name": name, "eligibility": {"age": list(ages)}, "benefit": benefit, "fee": 0.08,
            "waiting_days": 90, "sharing_days": [14, 28]}


POOLED = plans_from_dict({"plans": [_plan("pool", (0, 59), [{"age": [0, 39], "amount": 300000},
                                                             {"age": [40, 59], "amount": 100000}])]}, "pool.toml")
VERTICAL = plans_from_dict({"plans": [_plan("young", (0, 39), 300000), _plan("old", (40, 59), 100000)]}, "vert.toml")
TABLE = pl.DataFrame({"age": [30, 50], "members": [1000.0, 500.0], "rate": [0.012, 0.048], "group": ["A", "B"]})


def _row(res, planset, plan):
    return res.plans.filter((pl.col("planset") == planset) & (pl.col("plan") == plan)
                            & (pl.col("level") == "plan")).row(0, named=True)


def test_compare_members_for_target_cv_by_hand():
    # pooled plan, 24 periods/year: m_A = 0.5, m_B = 1.0 claims/period, B = 300k / 100k.
    # N* = N sum(m B^2) / (sum m B)^2 / cv^2 = 1500 * (0.5*9 + 1) / (0.5*3 + 1)^2 / 0.01 (B in 1e5)
    res = compare_plans(TABLE, VERTICAL, pooled=POOLED, target_share_cv=0.1)
    assert _row(res, "pooled", "pool")["members_for_target_cv"] == pytest.approx(1500 * 5.5 / 6.25 / 0.01)
    # one benefit: 100 claims needed; "young" has 0.5 claims/period from 1000 members
    assert _row(res, "vertical", "young")["members_for_target_cv"] == pytest.approx(100 / 0.5 * 1000)
    # group rows carry their plan's value
    g = res.plans.filter((pl.col("planset") == "vertical") & (pl.col("group") == "A"))
    assert g["members_for_target_cv"][0] == pytest.approx(200_000)


def test_compare_agrees_with_plan_size_with_growth_waiting_and_lag():
    g, lag = 0.04, 1
    res = compare_plans(TABLE, VERTICAL, pooled=POOLED, target_share_cv=0.05, growth_per_period=g,
                        reporting_lag_periods=lag)
    ppy = 24.0
    w = 90 * ppy / 365.25
    ps = plan_size({"members": TABLE["members"], "rate": TABLE["rate"], "benefit": [300000, 100000]},
                   target_cv=0.05, periods_per_year=ppy, growth_per_period=g, waiting_periods=w,
                   reporting_lag_periods=lag)
    assert _row(res, "pooled", "pool")["members_for_target_cv"] == pytest.approx(
        ps.table["members_for_target_cv"][0], rel=1e-12)
    with pytest.raises(ConfigError, match="target_share_cv"):
        compare_plans(TABLE, VERTICAL, target_share_cv=0)


TEMPLATE = plans_from_dict({"plans": [{
    "name": "t", "eligibility": {"age": [0, 4]}, "fee": 0.1, "sharing_days": [28], "waiting_days": 0,
    "benefit": [{"age": [0, 2], "amount": 1000}, {"age": [3, 4], "amount": 500}]}]}, "t.toml")[0]


def _table():
    rng = np.random.default_rng(3)
    return pl.DataFrame([{"age": a, "members": float(rng.integers(50, 400)), "rate": float(rng.uniform(0.05, 1.5))}
                         for a in range(5)])


def _need(t, lo, hi, cv, ppy=12.0):
    d = t.filter((pl.col("age") >= lo) & (pl.col("age") <= hi))
    ben = [1000.0 if a <= 2 else 500.0 for a in d["age"]]
    return plan_size({"members": d["members"], "rate": d["rate"], "benefit": ben}, target_cv=cv,
                     periods_per_year=ppy).table["members_for_target_cv"][0]


def test_optimiser_member_constraint_against_enumeration():
    t = _table()
    cv, scale = 0.08, 3.0
    res = optimise_plans(t, TEMPLATE, max_plans=4, min_claims_per_period=0.0, target_share_cv=cv, members_scale=scale)
    ages = list(range(5))
    for k in range(1, 5):
        feasible = []
        for cuts in itertools.combinations(range(1, 5), k - 1):
            bounds = (0, *cuts, 5)
            bands = [(ages[a], ages[b - 1]) for a, b in zip(bounds, bounds[1:])]
            members = [float(t.filter((pl.col("age") >= lo) & (pl.col("age") <= hi))["members"].sum())
                       for lo, hi in bands]
            if all(scale * n >= _need(t, lo, hi, cv) for n, (lo, hi) in zip(members, bands)):
                feasible.append(bands)
        row = res.tradeoff.filter(pl.col("k") == k).row(0, named=True)
        assert row["feasible"] == bool(feasible), k
        if feasible:
            for s in res.solutions[k]:
                assert s.members_for_target_cv == pytest.approx(_need(t, s.age_min, s.age_max, cv))
                assert scale * s.members >= s.members_for_target_cv
            assert "members_for_target_cv" in res.plans(k).columns
            assert row["min_members_ratio"] == pytest.approx(
                min(scale * sp.members / sp.members_for_target_cv for sp in res.solutions[k])) and \
                row["min_members_ratio"] >= 1
    # without the constraint more K are feasible
    free = optimise_plans(t, TEMPLATE, max_plans=4, min_claims_per_period=0.0)
    assert free.tradeoff["feasible"].sum() >= res.tradeoff["feasible"].sum()
    assert free.tradeoff["feasible"].sum() > res.tradeoff["feasible"].sum()


def test_cli_plans_target_cv_and_member_constraint(tmp_path):
    from pathlib import Path

    from engine.cli.main import main
    from tests.test_compare import _cells

    root = Path(__file__).resolve().parents[1]
    cells = tmp_path / "cells.parquet"
    _cells().write_parquet(cells)
    args = ["plans", str(root / "configs" / "vertical.toml"), "--cells", str(cells), "--pooled",
            str(root / "configs" / "xianghubao.toml"), "--quiet", "--optimise", "2", "--min-claims", "0"]
    assert main([*args, "--out", str(tmp_path / "a"), "--target-cv", "0.2"]) == 0
    a = pl.read_parquet(tmp_path / "a" / "plans.parquet")
    assert main([*args, "--out", str(tmp_path / "b"), "--target-cv", "0.1"]) == 0
    b = pl.read_parquet(tmp_path / "b" / "plans.parquet")
    assert np.allclose(b["members_for_target_cv"].to_numpy(), 4 * a["members_for_target_cv"].to_numpy(),
                       equal_nan=True)  # null for a plan nobody is eligible for
    # a tiny operating scale makes every K infeasible under the member constraint
    assert main([*args, "--out", str(tmp_path / "c"), "--members-scale", "1e-6"]) == 0
    assert not pl.read_parquet(tmp_path / "c" / "optimise_tradeoff.parquet")["feasible"].any()
    assert main([*args, "--out", str(tmp_path / "d"), "--members-scale", "1e12"]) == 0
    assert pl.read_parquet(tmp_path / "d" / "optimise_tradeoff.parquet")["feasible"].all()
