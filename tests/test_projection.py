"""Closed-form checks of the share projection (issue 6, part 5)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

import engine.projection._project as projection
from engine.errors import ConfigError, ResourceError
from engine.projection._project import groups_from_table, project

CLOSED = dict(fee=0.08, periods_per_year=12, waiting_periods=3, lapse=0.0, elasticity=0.0)


def closed_pool(members=50_000.0, rate=0.002, benefit=300_000.0):
    return groups_from_table({"group": ["g"], "members": [members], "rate": [rate], "benefit": [benefit]})


# --- closed pool, constant incidence -------------------------------------------------------------

@pytest.mark.parametrize("lag,exit_", [(0, True), (0, False), (1, False), (3, False)])
def test_closed_pool_deterministic_share_is_closed_form(lag, exit_):
    lam, B = 0.002, 300_000.0
    res = project(closed_pool(rate=lam, benefit=B), horizon=36, n_scenarios=1, reporting_lag_periods=lag,
                  claimants_exit=exit_, **CLOSED)
    expected = 1.08 * lam * B / 12
    np.testing.assert_allclose(res.periods["det_share_cny"].to_numpy(), expected, rtol=1e-12)
    # leverage = B / (12 * monthly share)
    lev = res.leverage["det_leverage"].to_numpy()
    np.testing.assert_allclose(lev, B / (12 * expected), rtol=1e-12)
    # the sustainable share of a closed pool is the same closed form
    assert res.plans["sustainable_share_cny"][0] == pytest.approx(expected, rel=1e-12)
    if exit_:  # claimants are replaced by joiners who wait w periods
        assert res.plans["stationary_share_cny"][0] < expected
    else:
        assert res.plans["stationary_share_cny"][0] == pytest.approx(expected, rel=1e-12)


def test_closed_pool_monte_carlo_mean_within_ci():
    lam, B, N = 0.002, 300_000.0, 50_000.0
    S, H = 2000, 12
    res = project(closed_pool(N, lam, B), horizon=H, n_scenarios=S, reporting_lag_periods=0,
                  claimants_exit=False, seed=3, **CLOSED)
    expected = 1.08 * lam * B / 12
    sd_one = 1.08 * B * np.sqrt(lam / 12 * N) / N  # sd of one period's share (Poisson)
    mean_all = res.share_scenarios.mean()
    assert abs(mean_all - expected) < 4 * sd_one / np.sqrt(S * H)
    per_period = res.periods["share_mean_cny"].to_numpy()
    assert np.all(np.abs(per_period - expected) < 4.5 * sd_one / np.sqrt(S))
    # CV of one period's share ~ 1 / sqrt(expected claims) (docs/domain.md)
    cv = res.periods["share_sd_cny"].to_numpy() / per_period
    # sampling sd of one period's CV estimate s / xbar from S Poisson(mu) draws (delta method):
    # var(s)/sigma^2 = (2 + 1/mu) / (4S), var(xbar)/mu^2 = 1/(S mu), cov term -1/(S mu) -> (1/2 + 1/(4 mu)) / S;
    # the H periods are independent in a closed pool
    mu = lam / 12 * N
    sd_cv = np.sqrt((0.5 + 0.25 / mu) / S / H)
    np.testing.assert_allclose(cv.mean(), 1 / np.sqrt(mu), rtol=4 * sd_cv)  # 4 sd = 1.9%, was a flat 5%


def test_monte_carlo_quantiles_match_poisson_quantiles():
    lam, B, N = 0.0015, 100_000.0, 40_000.0   # 5 expected claims a period: a very discrete distribution
    S, H = 4000, 6
    res = project(closed_pool(N, lam, B), horizon=H, n_scenarios=S, reporting_lag_periods=0,
                  claimants_exit=False, seed=11, **CLOSED)
    mean = lam / 12 * N
    unit = 1.08 * B / N
    for q, col in ((0.05, "share_p5_cny"), (0.5, "share_p50_cny"), (0.95, "share_p95_cny")):
        exact = stats.poisson.ppf(q, mean) * unit
        got = res.periods[col].to_numpy()
        # sample quantile of 4000 draws of a discrete law: the exact atom, or its neighbour
        assert np.all(np.abs(got - exact) <= unit * 1.0000001), (col, got, exact)
        assert np.mean(np.isclose(got, exact)) >= 0.5
    # pooled draws: the empirical CDF is within the 99.9% KS band of the Poisson CDF
    counts = np.rint(res.share_scenarios.ravel() / unit).astype(int)
    np.testing.assert_allclose(counts * unit, res.share_scenarios.ravel(), rtol=1e-12)
    ks = max(abs(np.mean(counts <= k) - stats.poisson.cdf(k, mean)) for k in range(0, 25))
    assert ks < 1.95 / np.sqrt(counts.size)


# --- growth dilution ------------------------------------------------------------------------------

@pytest.mark.parametrize("g,w", [(0.05, 3), (0.10, 6), (0.02, 1)])
def test_steady_growth_eligible_ratio_tends_to_power_law(g, w):
    H = 400
    groups = groups_from_table({"group": ["x"], "members": [0.0], "rate": [0.001], "benefit": [100_000.0]})
    kw = dict(horizon=H, n_scenarios=1, waiting_periods=w, claimants_exit=False, lapse=0.0,
              joiners={"per_period": 100.0, "growth": g})
    d = project(groups, reporting_lag_periods=0, **kw).periods
    J = 100.0 * (1 + g) ** np.arange(H)
    N = np.cumsum(J)                                   # members after t+1 cohorts joined
    E = np.concatenate([np.zeros(w), N[: H - w]])      # cohorts past the waiting period
    ratio = d["det_eligible_members"].to_numpy() / d["det_members"].to_numpy()
    np.testing.assert_allclose(ratio, E / N, rtol=1e-9)
    # finite-history ratio -> (1+g)^-w, with an error of order (1+g)^-t
    assert abs(ratio[-1] - (1 + g) ** -w) < 2 * (1 + g) ** -(H - w)
    # the share understates the closed-pool share by the same factor
    closed = 1.08 * 0.001 * 100_000.0 / 12
    np.testing.assert_allclose(d["det_share_cny"].to_numpy(), closed * E / N, rtol=1e-9)
    # a reporting lag of L periods: claims of t - L shared among the members of t -> (1+g)^-(w+L)
    L = 2
    d2 = project(groups, reporting_lag_periods=L, **kw).periods
    lagged = np.concatenate([np.zeros(L), (E / N)[: H - L] * N[: H - L]]) / N
    np.testing.assert_allclose(d2["det_share_cny"].to_numpy(), closed * lagged, rtol=1e-9)
    assert abs(d2["det_share_cny"][-1] / closed - (1 + g) ** -(w + L)) < 4 * (1 + g) ** -(H - w - L)


# --- sustainable share ----------------------------------------------------------------------------

def test_sustainable_share_mix_equilibrium_closed_form():
    # two channels with different lapses; replacement joiners in the joiner mix; no waiting or select
    g = pl.DataFrame({"group": ["a", "b"], "members": [1000.0, 1000.0], "rate": [0.001, 0.004],
                      "benefit_cny": [300_000.0, 100_000.0], "channel": ["organic", "subsidy"],
                      "joiner_mix": [3.0, 1.0]})
    la = {"organic": 0.1, "subsidy": 0.4}
    res = project(g, horizon=600, n_scenarios=1, waiting_periods=0, reporting_lag_periods=0, lapse=la,
                  joiners={"then": "replace"}, elasticity=2.0)
    h = {k: 1 - (1 - v) ** (1 / 12) for k, v in la.items()}
    mu = np.array([0.001, 0.004]) / 12
    o = 1 - (1 - mu) * (1 - np.array([h["organic"], h["subsidy"]]))
    wts = np.array([0.75, 0.25]) / o
    expected = 1.08 * (wts * mu * np.array([300_000.0, 100_000.0])).sum() / wts.sum()
    assert res.plans["sustainable_share_cny"][0] == pytest.approx(expected, rel=1e-12)
    # the projected share of the stationary system converges to it
    assert res.periods["det_share_cny"][-1] == pytest.approx(expected, rel=1e-6)
    lev = res.bands.sort("benefit_cny")["sustainable_leverage"].to_numpy()
    np.testing.assert_allclose(lev, np.array([100_000.0, 300_000.0]) / (12 * expected), rtol=1e-12)


def test_stationary_share_with_waiting_and_select_matches_long_run():
    g = groups_from_table({"group": ["a", "b"], "members": [20_000.0, 5_000.0], "rate": [0.001, 0.003],
                           "benefit": [300_000.0, 300_000.0], "channel": ["organic", "referral"]})
    kw = dict(horizon=900, n_scenarios=1, waiting_periods=3, reporting_lag_periods=1,
              select_factors=[0, 0, 0, 0.5, 0.7, 0.9, 1.0], lapse={"base_annual": {"organic": 0.2, "referral": 0.5},
                                                                  "tenure_factors": [3.0, 2.0, 1.0]},
              joiners={"then": "replace"}, elasticity=1.0)
    res = project(g, **kw)
    p = res.plans.row(0, named=True)
    assert res.periods["det_share_cny"][-1] == pytest.approx(p["stationary_share_cny"], rel=1e-6)
    # replacements spend time in the waiting period: stationary < sustainable
    assert p["stationary_share_cny"] < p["sustainable_share_cny"]


def test_ageing_raises_sustainable_share_at_horizon_end():
    g = closed_pool().with_columns(ageing_annual=pl.lit(0.05))
    res = project(g, horizon=25, n_scenarios=1, **CLOSED)
    p = res.plans.row(0, named=True)
    assert p["sustainable_share_end_cny"] == pytest.approx(p["sustainable_share_cny"] * 1.05 ** 2, rel=1e-12)


# --- death spiral ---------------------------------------------------------------------------------

SPIRAL_GROUPS = pl.DataFrame({"group": ["low", "high"], "members": [90_000.0, 10_000.0], "rate": [0.0005, 0.004],
                              "benefit_cny": [300_000.0, 300_000.0]})
SPIRAL_KW = dict(horizon=72, n_scenarios=50, waiting_periods=3, reporting_lag_periods=1, lapse=0.05,
                 joiners={"per_period": [20_000.0] * 12}, expectations={"speed": 0.05})


def test_zero_elasticity_means_no_death_spiral():
    res = project(SPIRAL_GROUPS, elasticity={"base": 0.0, "adverse_selection": 2.0}, **SPIRAL_KW)
    assert not res.plans["death_spiral"][0]
    assert res.plans["death_spiral_period"][0] is None


def test_elasticity_without_adverse_selection_converges():
    res = project(SPIRAL_GROUPS, elasticity={"base": 3.0, "adverse_selection": 0.0}, **SPIRAL_KW)
    assert not res.plans["death_spiral"][0]


def test_strong_elasticity_with_adverse_selection_spirals():
    res = project(SPIRAL_GROUPS, elasticity={"base": 3.0, "adverse_selection": 2.0}, **SPIRAL_KW)
    p = res.plans.row(0, named=True)
    assert p["death_spiral"] and p["death_spiral_period"] is not None
    assert p["death_spiral_mc_mean"]  # the Monte Carlo mean path spirals too
    t = p["death_spiral_period"]
    d = res.periods.sort("period")
    m, s = d["det_members"].to_numpy(), d["det_share_cny"].to_numpy()
    assert 3 <= t < 72
    # the rule's conditions hold at the reported period (window = one year), checked independently
    a = t
    while a > max(t - 12, 0) and m[a] < m[a - 1]:
        a -= 1
    c = a + (t - a) // 2
    assert t - a >= 3 and m[t] < 0.95 * m[a] and s[t] > 1.05 * s[a]
    assert np.log(m[t] / m[c]) / (t - c) <= 0.9 * np.log(m[c] / m[a]) / (c - a)
    assert (s[t] > 1.10 * p["sustainable_share_cny"]
            or np.log(s[t] / s[c]) / (t - c) >= 0.9 * np.log(s[c] / s[a]) / (c - a))
    # membership collapses: the low-risk members leave, the share ends far above the sustainable share
    assert m[-1] < 0.2 * m.max() and s[-1] > 3 * p["sustainable_share_cny"]
    # and it is not detected one period earlier
    res2 = project(SPIRAL_GROUPS, elasticity={"base": 3.0, "adverse_selection": 2.0},
                   **{**SPIRAL_KW, "horizon": t})
    assert not res2.plans["death_spiral"][0]


def test_spiral_rule_on_hand_made_paths():
    """The projection's rule is engine.projection._spiral.spiral_period (matrix in tests/test_spiral.py); lapses are not read."""
    from engine.projection.dynamics import detect_spiral

    H = 30
    members = np.r_[np.full(10, 1000.0), 1000.0 * 0.9 ** np.arange(1, 21)]
    share = np.r_[np.full(10, 10.0), 10.0 * 1.08 ** np.arange(1, 21)]   # rising at a constant pace
    t = detect_spiral(members, share, None, 10.0, window=12)
    # the fall starts after period 9; three periods of fall are needed, all conditions hold at once
    assert t == 9 + 3
    conv = np.r_[np.full(10, 10.0), 10.0 + 2.0 * (1 - 0.7 ** np.arange(1, 21))]  # converging to 12
    assert detect_spiral(members, conv, None, 10.0, window=12, overshoot=0.5) is None
    t_over = detect_spiral(members, conv, None, 10.0, window=12, overshoot=0.1)
    assert conv[11] > 11.0 and t_over == 12  # above 1.1 x 10 from period 11, judged after three periods of fall
    assert detect_spiral(np.full(H, 1000.0), share, None, 10.0, window=12) is None  # membership flat


# --- caps -----------------------------------------------------------------------------------------

def test_annual_cap_binds_in_every_scenario_when_far_below_the_cost():
    res = project(closed_pool(), horizon=24, n_scenarios=300, reporting_lag_periods=0, claimants_exit=False,
                  annual_cap=200.0, **CLOSED)
    d = res.periods.sort("period")
    monthly = 1.08 * 0.002 * 300_000 / 12  # 54 CNY: the cap (200) is exhausted in the 4th month
    assert d["annual_cap_binds_prob"][0] < 0.01 and d["annual_cap_binds_prob"][11] == 1.0
    yearly = res.share_scenarios[:12].sum(axis=0)
    assert np.all(yearly <= 200.0 + 1e-9)
    assert d["det_share_cny"][3] == pytest.approx(200.0 - 3 * monthly)
    assert d["platform_paid_mean_cny"][11] == pytest.approx(d["share_uncapped_mean_cny"][11] * 50_000, rel=1e-9)


def test_per_claimant_cap():
    res = project(closed_pool(members=1_000_000.0), horizon=3, n_scenarios=1, reporting_lag_periods=0,
                  claimants_exit=False, per_claimant_cap=0.1, **CLOSED)
    # each claim costs 1.08 * 300,000 / 1e6 = 0.324 per member, capped at 0.1
    claims = 0.002 / 12 * 1_000_000
    assert res.periods["det_share_cny"][0] == pytest.approx(0.1 * claims, rel=1e-12)


# --- reproducibility and chunking -----------------------------------------------------------------

def _mc(**kw):
    g = groups_from_table({"plan": ["A", "A", "B"], "group": ["x", "y", "z"], "members": [3000.0, 2000.0, 800.0],
                           "rate": [0.002, 0.004, 0.003], "benefit": [300_000.0, 100_000.0, 300_000.0]})
    base = dict(horizon=15, n_scenarios=700, seed=5, joiners={"per_period": 100.0}, lapse=0.2, elasticity=1.0,
                annual_cap=188.0, per_claimant_cap=0.5)
    return project(g, **{**base, **kw})


def test_same_seed_same_bytes_whatever_the_chunk_size(tmp_path):
    from engine.data.io import write_parquet

    ref = _mc(chunk_size=2048)
    for cs in (1, 300, 512):
        other = _mc(chunk_size=cs)
        assert np.array_equal(other.share_scenarios, ref.share_scenarios)
        assert other.periods.equals(ref.periods) and other.plans.equals(ref.plans)
    write_parquet(ref.periods, tmp_path / "a.parquet")
    write_parquet(_mc(chunk_size=256).periods, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert not np.array_equal(_mc(seed=6).share_scenarios, ref.share_scenarios)


def test_scenarios_are_a_prefix_stable_stream():
    # the first 256-scenario block is the same whatever the number of scenarios
    a, b = _mc(n_scenarios=300), _mc(n_scenarios=700)
    assert np.array_equal(a.share_scenarios[:, :256], b.share_scenarios[:, :256])


def test_memory_bound_refuses_oversized_runs(monkeypatch):
    monkeypatch.setattr(projection, "MAX_SHARE_BYTES", 1000)
    with pytest.raises(ResourceError, match="n_scenarios"):
        _mc()


# --- input errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(fee=-0.1), "fee"),
    (dict(lapse={"base_annual": 0.1, "speed": 1}), "lapse.speed: unknown key"),
    (dict(lapse={"base_annual": {"organic": 0.1}}), "lapse.base_annual: no rate for channel 'all'"),
    (dict(joiners={"per_period": {"Z": 10.0}}), "plan 'Z'"),
    (dict(elasticity={"base": -1}), "elasticity.base"),
    (dict(select_factors={"nope": [1.0]}), "select_factors: no entry for group"),
    (dict(horizon=0), "horizon"),
])
def test_config_errors_name_the_key(kw, match):
    with pytest.raises(ConfigError, match=match):
        project(closed_pool(), n_scenarios=2, **kw)


@pytest.mark.parametrize("frame,match", [
    (pl.DataFrame({"group": ["a"], "members": [1.0], "rate": [0.1]}), "'benefit_cny' is required"),
    (pl.DataFrame({"group": ["a"], "members": [1.0], "rate": [-0.1], "benefit": [1.0]}), "'rate'.*out of range"),
    (pl.DataFrame({"group": ["a", "a"], "members": [1.0, 2.0], "rate": [0.1, 0.1], "benefit": [1.0, 1.0]}),
     "appears twice"),
    (pl.DataFrame({"group": ["a"], "members": [1.0], "rate": [0.1], "benefit": [1.0], "risk": ["mid"]}),
     "flag 'mid'"),
    (pl.DataFrame({"group": ["a"], "members": [1.0], "rate": ["x"], "benefit": [1.0]}), "'rate' must be"),
    (pl.DataFrame({"group": ["a"], "members": [1.0], "waiting_members": [2.0], "rate": [0.1], "benefit": [1.0]}),
     "exceeds"),
])
def test_groups_errors_name_the_column(frame, match):
    with pytest.raises(ConfigError, match=match):
        project(frame, n_scenarios=2)


def test_risk_flags_drive_adverse_selection():
    g = pl.DataFrame({"group": ["a", "b"], "members": [100.0, 100.0], "rate": [0.001, 0.001],
                      "benefit": [1.0, 1.0], "risk": ["low", "high"]})
    from engine.projection.dynamics import compile_model
    from engine.projection.assumptions import make_assumptions, prepare_groups

    a = make_assumptions(elasticity={"base": 2.0, "adverse_selection": 1.0})
    m = compile_model(prepare_groups(g), a)
    np.testing.assert_allclose(m.eps, [2.0 / 0.5, 2.0 / 2.0])


def test_per_plan_joiner_schedules_and_replacement():
    g = groups_from_table({"plan": ["A", "B"], "group": ["a", "b"], "members": [1000.0, 1000.0],
                           "rate": [0.001, 0.001], "benefit": [100_000.0, 100_000.0]})
    res = project(g, horizon=6, n_scenarios=1, lapse=0.3,
                  joiners={"per_period": {"A": [50.0, 50.0, 50.0], "B": [10.0]}, "then": "replace"})
    d = res.periods.sort("plan", "period")
    a, b = d.filter(pl.col("plan") == "A"), d.filter(pl.col("plan") == "B")
    np.testing.assert_allclose(a["det_joiners"].to_numpy()[:3], 50.0)
    assert b["det_joiners"][0] == 10.0
    exits_b = (b["det_lapses"] + b["det_claimant_exits"]).to_numpy()
    np.testing.assert_allclose(b["det_joiners"].to_numpy()[1:], exits_b[:-1], rtol=1e-12)
    exits_a = (a["det_lapses"] + a["det_claimant_exits"]).to_numpy()
    np.testing.assert_allclose(a["det_joiners"].to_numpy()[3:], exits_a[2:-1], rtol=1e-12)
    # the Monte Carlo members of a replacing plan stay near constant
    assert abs(b["members"][-1] / b["members"][1] - 1) < 0.02


def test_select_factor_table_from_duration_bands():
    from engine.projection.assumptions import select_factors_from_table

    tab = pl.DataFrame({"duration_band": ["0-2", "3-5", "6-11", "12+"], "duration_from": [0, 3, 6, 12],
                        "duration_to": [3, 6, 12, None], "factor": [None, 0.6, 0.8, 1.0]})
    got = select_factors_from_table(tab, 12)
    assert got == [0, 0, 0, 0.6, 0.6, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 1.0]
    assert select_factors_from_table(tab, 24)[6:8] == [0.6, 0.6] and select_factors_from_table(tab, 4) == [
        0, 0.6, 0.8, 0.8, 1.0]
    # used by project: the deterministic share of a closed pool follows the factors
    res = project(closed_pool(), horizon=14, n_scenarios=1, reporting_lag_periods=0, claimants_exit=False,
                  select_factors=tab, lapse=0.0, waiting_periods=0)
    base = 1.08 * 0.002 * 300_000 / 12
    np.testing.assert_allclose(res.periods["det_share_cny"].to_numpy(), base * 1.0, rtol=1e-12)  # tenure ultimate
    g = closed_pool().with_columns(waiting_members=pl.lit(0.0))
    res2 = project(g.with_columns(members=pl.lit(0.0)), horizon=14, n_scenarios=1, reporting_lag_periods=0,
                   claimants_exit=False, select_factors=tab, lapse=0.0, waiting_periods=3,
                   joiners={"per_period": [1000.0]})
    s = res2.periods["det_share_cny"].to_numpy()
    np.testing.assert_allclose(s[3:6] / base, [0.6, 0.6, 0.6], rtol=1e-12)
    np.testing.assert_allclose(s[12:] / base, 1.0, rtol=1e-12)


def test_chunking_bounds_working_memory():
    import tracemalloc

    g = groups_from_table({"group": [f"g{i}" for i in range(40)], "members": [1000.0] * 40,
                           "rate": [0.002] * 40, "benefit": [100_000.0] * 40})
    peaks = {}
    for cs in (256, 4096):
        tracemalloc.start()
        res = project(g, horizon=4, n_scenarios=4096, chunk_size=cs, waiting_periods=6, lapse=0.1)
        peaks[cs] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del res
    # the (tenure x chunk x groups) state dominates: 16 x smaller chunks, several x less memory
    assert peaks[256] * 4 < peaks[4096], peaks


def test_incidence_trend_by_year():
    trend = pl.DataFrame({"year": [0, 1, 2], "factor": [1.0, 1.2, 1.5]})
    res = project(closed_pool(), horizon=40, n_scenarios=1, reporting_lag_periods=0, incidence_trend=trend,
                  **CLOSED)
    s = res.periods["det_share_cny"].to_numpy()
    base = 1.08 * 0.002 * 300_000 / 12
    np.testing.assert_allclose(s[:12], base)
    np.testing.assert_allclose(s[12:24], base * 1.2, rtol=1e-12)
    np.testing.assert_allclose(s[24:], base * 1.5, rtol=1e-12)
    assert res.plans["sustainable_share_end_cny"][0] == pytest.approx(base * 1.5, rel=1e-12)
    # per group, combined with the annual drift
    g = groups_from_table({"group": ["a", "b"], "members": [1000.0, 1000.0], "rate": [0.001, 0.001],
                           "benefit": [100_000.0, 100_000.0], "ageing_annual": [0.1, 0.0]})
    res2 = project(g, horizon=13, n_scenarios=1, reporting_lag_periods=0, claimants_exit=False,
                   incidence_trend={"a": [1.0, 2.0],
                   "*": [1.0]}, **CLOSED)
    unit = 1.08 * 0.001 * 100_000 / 12
    assert res2.periods["det_share_cny"][12] == pytest.approx(unit * (2.0 * 1.1 + 1.0) / 2, rel=1e-12)
    with pytest.raises(ConfigError, match="incidence_trend: years must be 0, 1, 2"):
        project(closed_pool(), n_scenarios=1, incidence_trend=pl.DataFrame({"year": [0, 2], "factor": [1.0, 1.0]}))
