"""The caps' cost: which cap binds, the platform's subsidy per plan and year, leverage before and after the caps.

Oracles are written from the formulas (hand computations and explicit loops), never from engine code.
"""

from __future__ import annotations

import polars as pl
import pytest

from engine.plans.compare import compare_plans
from engine.plans.planset import plans_from_dict

# 1000 members aged 30 at 0.012 claims a year, 500 aged 50 at 0.048; 24 periods a year, fee 8 %:
# expected claims a period m = 0.5 + 1.0 = 1.5; share at today's mix s = (162000 + 108000) / 1500 = 180 CNY
TABLE = pl.DataFrame({"age": [30, 50], "members": [1000.0, 500.0], "rate": [0.012, 0.048], "group": ["A", "B"]})


def _pool(caps):
    plan = {"name": "pool", "eligibility": {"age": [0, 59]}, "fee": 0.08, "waiting_days": 90, "sharing_days": [14, 28],
            "benefit": [{"age": [0, 39], "amount": 300000}, {"age": [40, 59], "amount": 100000}], "caps": caps}
    return plans_from_dict({"plans": [plan]}, "pool.toml")


def _plan_row(caps):
    res = compare_plans(TABLE, _pool(caps), pooled=_pool(caps))
    return res.plans.filter((pl.col("planset") == "pooled") & (pl.col("level") == "plan")).row(0, named=True)


def test_per_claimant_cap_binds_and_then_the_annual_cap_does_not():
    # s1 = min(180, 0.1 x 1.5) = 0.15 a period = 3.6 a year < 188: only the per-claimant cap binds
    p = _plan_row({"per_claimant": 0.1, "annual": 188.0})
    assert p["share_after_per_claimant_cap_cny"] == pytest.approx(0.15)
    assert p["share_after_caps_cny"] == pytest.approx(0.15)
    assert (p["per_claimant_cap_binding"], p["annual_cap_binding"], p["cap_binding"]) == (True, False, True)


def test_annual_cap_binds_without_a_per_claimant_cap():
    # s = 180 a period = 4,320 a year > 188: the annual cap binds, s2 = 188 / 24
    p = _plan_row({"annual": 188.0})
    assert p["share_after_per_claimant_cap_cny"] == pytest.approx(180.0)
    assert p["share_after_caps_cny"] == pytest.approx(188.0 / 24)
    assert (p["per_claimant_cap_binding"], p["annual_cap_binding"], p["cap_binding"]) == (False, True, True)


def test_no_cap_binds_when_the_caps_are_high():
    p = _plan_row({"per_claimant": 1000.0, "annual": 10_000.0})
    assert (p["per_claimant_cap_binding"], p["annual_cap_binding"], p["cap_binding"]) == (False, False, False)
    assert p["leverage_after_caps"] == pytest.approx(p["leverage"])


def test_leverage_before_and_after_the_caps():
    p = _plan_row({"annual": 188.0})
    mean_benefit = (1000 * 300000 + 500 * 100000) / 1500
    assert p["leverage"] == pytest.approx(mean_benefit / (24 * 180.0))
    assert p["leverage_after_caps"] == pytest.approx(mean_benefit / 188.0)  # a year's capped payment is 188 CNY
