"""Plan size for a stable share: closed form against the Monte Carlo projection."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from engine.errors import ConfigError
from engine.plans.size import eligible_fraction, members_for_cv, plan_size, share_cv
from engine.projection._project import groups_from_table, project

RATE, BEN, MIX = 0.002, [300_000.0, 100_000.0], [0.3, 0.7]
PPY, W, LAG, G_RATE, LAPSE = 12, 3, 1, 0.02, 0.2


def test_one_benefit_is_one_over_sqrt_claims():
    # 100 expected claims a period -> CV 10% (shared/domain.md)
    r = plan_size({"members": [1.0], "rate": [0.0012], "benefit": [300_000]}, target_cv=0.1)
    row = r.table.row(0, named=True)
    assert row["expected_claims_needed"] == pytest.approx(100.0)
    assert row["members_for_target_cv"] == pytest.approx(100.0 / (0.0012 / 12))
    assert row["benefit_dispersion"] == pytest.approx(1.0)
    # CV halves when members quadruple
    assert share_cv(4e6, [1], [1e-4], [1]) == pytest.approx(0.5 * share_cv(1e6, [1], [1e-4], [1]))


def test_mixed_benefits_closed_form_by_hand():
    f, mu = np.array(MIX), RATE / PPY
    a2 = float(np.sum(f * mu * np.array(BEN) ** 2))
    a1 = float(np.sum(f * mu * np.array(BEN)))
    need = members_for_cv(0.2, MIX, [mu, mu], BEN)
    assert need == pytest.approx(a2 / a1**2 / 0.04)
    assert share_cv(need, MIX, [mu, mu], BEN) == pytest.approx(0.2)
    # kappa = E_c[B^2] / E_c[B]^2 = (0.3*9 + 0.7*1) / (0.3*3 + 0.7*1)^2 (in 1e5 units)
    r = plan_size({"members": MIX, "rate": [RATE] * 2, "benefit": BEN}, target_cv=0.2)
    assert r.table["benefit_dispersion"][0] == pytest.approx(3.4 / 1.6**2)


def test_eligible_fraction_cases():
    assert eligible_fraction(0.05, 3) == pytest.approx(1.05**-3)  # domain formula
    assert eligible_fraction(0.0, 3, 0, 0.01) == pytest.approx(0.99**3)  # stationary renewal
    assert eligible_fraction(0.0, 0, 2) == 1.0
    assert eligible_fraction(0.0, 3) == 1.0  # closed stationary pool
    with pytest.raises(ConfigError):
        eligible_fraction(-0.05, 3, 0, 0.01)  # shrinking faster than exits: no steady state


def _projected(final_members: float, n_scenarios: int, horizon: int = 300):
    j0 = final_members * (1 - 1 / (1 + G_RATE)) / (1 + G_RATE) ** (horizon - 1)  # ~ final size
    g = groups_from_table({"group": ["hi", "lo"], "members": [0.0, 0.0], "rate": [RATE, RATE], "benefit": BEN,
                           "joiner_mix": MIX})
    return project(g, horizon=horizon, n_scenarios=n_scenarios, seed=7, periods_per_year=PPY, waiting_periods=W,
                   reporting_lag_periods=LAG, joiners={"per_period": j0, "growth": G_RATE}, lapse=LAPSE,
                   claimants_exit=True)


def test_effective_eligible_fraction_matches_deterministic_path():
    res = _projected(1e5, 1)
    last = res.periods.row(-1, named=True)
    mu = RATE / PPY
    h = 1 - (1 - LAPSE) ** (1 / PPY)
    o = 1 - (1 - h) * (1 - mu)
    # waiting members lapse but cannot claim: o_w = h. The pool started empty 300 periods
    # ago, so the steady state holds up to r^300 ~ 1e-5 of the oldest cohorts.
    assert last["det_eligible_members"] / last["det_members"] == pytest.approx(eligible_fraction(G_RATE, W, 0, o, h),
                                                                               rel=1e-5)
    e = eligible_fraction(G_RATE, W, LAG, o, h)
    det_share = 1.08 * sum(f * e * mu * b for f, b in zip(MIX, BEN))
    assert last["det_share_cny"] == pytest.approx(det_share, rel=1e-5)


@pytest.mark.parametrize("size", [2e4, 2e5, 2e6])
def test_closed_form_cv_matches_monte_carlo(size):
    S = 2000
    res = _projected(size, S, horizon=240)
    last = res.periods.row(-1, named=True)
    x = res.share_scenarios[-1, :, 0]
    cv_mc = float(x.std(ddof=1) / x.mean())
    ps = plan_size({"members": [MIX[0] * last["members"], MIX[1] * last["members"]], "rate": [RATE] * 2,
                    "benefit": BEN}, periods_per_year=PPY, growth_per_period=G_RATE, waiting_periods=W,
                   reporting_lag_periods=LAG, lapse_annual=LAPSE, claimants_exit=True, target_cv=0.1)
    cv = ps.table["share_cv"][0]
    # standard error of a sample CV by the delta method with the sample's own moments
    m, s = x.mean(), x.std(ddof=1)
    k4 = float(np.mean((x - m) ** 4)) / s**4
    se = cv_mc * math.sqrt((k4 - 1) / (4 * S) + cv_mc**2 / S)
    assert abs(cv_mc - cv) < 4 * se, (cv_mc, cv, se)
    # and the members the closed form asks for do give the target CV
    n_star = ps.table["members_for_target_cv"][0]
    assert share_cv(n_star, MIX, [RATE / PPY] * 2, BEN, ps.table["eligible_fraction"][0]) == pytest.approx(0.1)


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="target_cv"):
        plan_size({"members": [1.0], "rate": [0.001], "benefit": [1.0]}, target_cv=0)
    with pytest.raises(ConfigError, match="rate"):
        plan_size({"members": [1.0], "benefit": [1.0]})
    with pytest.raises(ConfigError, match="no expected claims"):
        plan_size({"members": [1.0], "rate": [0.0], "benefit": [1.0]})


def test_result_object():
    r = plan_size(pl.DataFrame({"plan": ["a", "b"], "members": [1e6, 1e5], "rate": [0.001, 0.002],
                                "benefit_cny": [3e5, 1e5]}))
    assert r.summary.height == 2 and "<table" in r._repr_html_()
    import matplotlib
    matplotlib.use("Agg")
    assert r.plot_cv() is not None


def test_eligible_fraction_with_waiting_exits_by_direct_sum():
    g, w, o, ow = 0.03, 4, 0.02, 0.01
    rw, r = (1 - ow) / (1 + g), (1 - o) / (1 + g)
    counts = [rw**t if t < w else rw**w * r ** (t - w) for t in range(5000)]
    assert eligible_fraction(g, w, 0, o, ow) == pytest.approx(sum(counts[w:]) / sum(counts), rel=1e-12)
    assert eligible_fraction(0.0, w, 0, 0.02, 0.0) == pytest.approx(
        (1 / 0.02) / (w + 1 / 0.02), rel=1e-12)  # stationary: r_w = 1
