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


# ----------------------------------------------------------------------------- the platform's subsidy
def _loop_oracle(paid, members, benefit, fee, cap, annual, ppy):
    """Per projection year: cost, members' payments and platform, from the paid claims of one path (explicit loop)."""
    out, cum = {}, 0.0
    for t, k in enumerate(paid):
        if t % ppy == 0:
            cum = 0.0
        per_claim = (1 + fee) * benefit / members
        share_unc = k * min(per_claim, cap)
        share = min(share_unc, max(annual - cum, 0.0))
        cum += share
        y = t // ppy
        c, mp, _ = out.get(y, (0.0, 0.0, False))
        out[y] = (c + (1 + fee) * benefit * k, mp + share * members, cum >= annual)
    return out


@pytest.mark.parametrize(("cap", "annual"), [(0.05, 1000.0), (10.0, 60.0), (0.3, 40.0)])
def test_projected_subsidy_matches_a_loop_over_one_path(cap, annual):
    from engine.projection import caps_cost_projected, groups_from_table, project

    g = groups_from_table({"group": ["a"], "members": [200_000.0], "rate": [0.002], "benefit": [100_000.0]})
    res = project(g, horizon=48, n_scenarios=1, seed=3, periods_per_year=24, fee=0.08, waiting_periods=0,
                  reporting_lag_periods=0, per_claimant_cap=cap, annual_cap=annual, claimants_exit=False,
                  lapse=0.0, joiners=0.0)
    per = res.periods
    assert per["members"].to_list() == pytest.approx([200_000.0] * 48)
    want = _loop_oracle(per["paid_claims"].to_list(), 200_000.0, 100_000.0, 0.08, cap, annual, 24)
    got = caps_cost_projected(per)
    assert got["year"].to_list() == [0, 1]
    for r in got.iter_rows(named=True):
        cost, members_paid, reached = want[r["year"]]
        assert r["annual_cap_binds_prob"] == (1.0 if reached else 0.0)
        assert r["cost_cny"] == pytest.approx(cost, rel=1e-12)
        assert r["members_paid_cny"] == pytest.approx(members_paid, rel=1e-12)
        assert r["platform_paid_cny"] == pytest.approx(cost - members_paid, rel=1e-9, abs=1e-6)
        assert r["platform_paid_pct_of_cost"] == pytest.approx(100 * (cost - members_paid) / cost, rel=1e-9)


def test_realised_subsidy_sums_the_history_by_pool_and_calendar_year():
    import datetime as dt

    from engine.projection import caps_cost_realised

    h = pl.DataFrame({
        "plan_id": ["p", "p", "p", "q"],
        "notice_date": [dt.date(2019, 12, 28), dt.date(2020, 1, 14), dt.date(2020, 1, 28), dt.date(2020, 1, 14)],
        "cost_with_fee_cny": [108.0, 216.0, 54.0, 10.0],
        "members_paid_cny": [8.0, 16.0, 4.0, 10.0],
        "platform_paid_per_claimant_cap_cny": [100.0, 150.0, 50.0, 0.0],
        "platform_paid_annual_cap_cny": [0.0, 50.0, None, 0.0],
    })
    got = caps_cost_realised(h, "plan_id")
    assert got.select("plan", "year").rows() == [("p", 2019), ("p", 2020), ("q", 2020)]
    p20 = got.row(1, named=True)
    assert (p20["cost_cny"], p20["members_paid_cny"], p20["platform_paid_cny"]) == (270.0, 20.0, 250.0)
    assert p20["platform_paid_pct_of_cost"] == pytest.approx(100 * 250 / 270)
    assert got.row(2, named=True)["platform_paid_pct_of_cost"] == 0.0


@pytest.mark.parametrize(("annual", "binds"), [(150.0, True), (300.0, False)])
def test_probability_that_the_annual_cap_binds_agrees_with_the_deterministic_flag(annual, binds):
    """A large pool: the annual share after the per-claimant cap is 216 CNY (per claim 0.54 < cap 1, 16.7 claims a
    period x 0.54 x 24); the flag says whether 216 exceeds the cap, the projection P(binds in a year) follows it."""
    from engine.projection import caps_cost_projected, groups_from_table, project

    g = groups_from_table({"group": ["a"], "members": [200_000.0], "rate": [0.002], "benefit": [100_000.0]})
    res = project(g, horizon=48, n_scenarios=400, seed=11, periods_per_year=24, fee=0.08, waiting_periods=0,
                  reporting_lag_periods=0, per_claimant_cap=1.0, annual_cap=annual, claimants_exit=False,
                  lapse=0.0, joiners=0.0)
    p = caps_cost_projected(res.periods)["annual_cap_binds_prob"].to_list()
    table = pl.DataFrame({"age": [30], "members": [200_000.0], "rate": [0.002]})
    plan = {"name": "a", "eligibility": {"age": [0, 59]}, "fee": 0.08, "waiting_days": 0, "sharing_days": [14, 28],
            "benefit": 100_000, "caps": {"per_claimant": 1.0, "annual": annual}}
    ps = plans_from_dict({"plans": [plan]}, "a.toml")
    row = compare_plans(table, ps, pooled=ps).plans.filter(pl.col("level") == "plan").row(0, named=True)
    assert row["annual_cap_binding"] is binds
    # Poisson(400 claims a year): P(annual share < 150) = P(N < 278) and P(N >= 556) are both below 1e-9
    assert p == ([1.0, 1.0] if binds else [0.0, 0.0])
