"""Operating tempo: properties of the frontier, oracles for its metrics, the recommendation."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.projection._project import groups_from_table
from engine.projection._tempo import TempoCriteria, tempo, tempo_schedules

GROUPS = groups_from_table({"group": ["low", "high"], "members": [160_000, 40_000], "rate": [0.001, 0.004],
                            "benefit": [300_000, 100_000]})
BASE = dict(target_members=5e6, horizon=72, waiting_periods=3, reporting_lag_periods=1, seed=3)


def test_zero_elasticity_retention_independent_of_tempo_and_no_spiral():
    r = tempo(GROUPS, growth=[0.0, 0.05, 0.2, 0.6], n_scenarios=100, elasticity=0.0, lapse=0.2, **BASE)
    t = r.table
    for col in ("retained_1y", "retained_3y", "retained_5y"):
        vals = t[col].to_numpy()
        assert np.allclose(vals, vals[0], rtol=1e-12, atol=0), col
    # oracle: a cohort survives K periods of base lapse and, once eligible, of claims
    h = 1 - 0.8 ** (1 / 12)
    mix = np.array([0.8, 0.2])
    q = np.array([0.001, 0.004]) / 12
    surv = [(1 - h) ** 12 * (1 - q) ** (12 - 3)]
    assert t["retained_1y"][0] == pytest.approx(float(np.sum(mix * surv[0])), rel=1e-12)
    assert (t["spiral_prob"] == 0).all()


def _det_surprise(g: float | None = None, T: int | None = None, **kw) -> float:
    form = {"growth": [g]} if T is None else {"periods_to_target": [T]}
    r = tempo(GROUPS, n_scenarios=1, **form, **{**BASE, **kw})
    return float(r.table["det_peak_surprise"][0])


@settings(max_examples=15, deadline=None)
@given(st.data(), st.sampled_from([0.0, 1.5, 3.0]), st.sampled_from([0.05, 0.1, 0.2, 0.5]))
def test_faster_growth_never_lowers_the_peak_surprise(data, eps, speed):
    # Tempos as whole periods to the same target, growth phases at least as long as the members'
    # learning time 1/speed and ending 12 periods before the horizon. A shorter burst surprises
    # less (expectations never learned the diluted share) and a growth rate whose time to target
    # is not a whole number of periods ends with a partial step: docs/tempo.md, "Limits".
    lo = math.ceil(1 / speed)
    t1, t2 = data.draw(st.integers(lo, 60)), data.draw(st.integers(lo, 60))
    slow, fast = max(t1, t2), min(t1, t2)
    kw = dict(elasticity={"base": eps, "adverse_selection": 0.5}, expectations=speed)
    assert _det_surprise(T=fast, **kw) >= _det_surprise(T=slow, **kw) - 1e-12


def test_faster_growth_always_dilutes_more():
    r = tempo(GROUPS, periods_to_target=[60, 30, 12, 4, 1], n_scenarios=1, **BASE)
    d = r.table["dilution_min_share_ratio"].to_numpy()
    assert np.all(np.diff(d) < 0) and d[0] < 1.0


def test_no_growth_no_surprise_from_a_steady_start():
    assert _det_surprise(0.0) == pytest.approx(1.0, abs=1e-12)
    assert _det_surprise(0.1) > _det_surprise(0.02) >= 1.0


def test_education_speed_removes_the_surprise():
    # speed 1: expectations catch up every period; only the one-period rise of the share is left
    r = tempo(GROUPS, growth=[0.2], n_scenarios=1, expectations=1.0, **BASE)
    p = r.paths["det_share_cny"].to_numpy()
    s1 = float(r.table["det_peak_surprise"][0])
    assert s1 == pytest.approx(max(1.0, float((p[1:] / p[:-1]).max())), rel=1e-12)
    # past the hump (growth lasting longer than the learning time 1/speed), faster education, less
    # surprise, down to that residual (slower learners who never learned the diluted share are not
    # surprised by its return: docs/tempo.md, "Limits")
    others = [_det_surprise(0.2, expectations=v) for v in (0.1, 0.3, 0.6, 0.9)]
    assert all(b < a for a, b in zip(others, others[1:])) and others[-1] > s1
    # with no growth there is none at all, and with speed 1 a slower tempo leaves less
    assert _det_surprise(0.0, expectations=1.0) == pytest.approx(1.0, abs=1e-12)
    assert _det_surprise(0.05, expectations=1.0) < s1


def test_deterministic_path_oracle_surprise_and_settling():
    r = tempo(GROUPS, growth=[0.1], n_scenarios=1, expectations=0.2, **BASE)
    p = r.paths
    # expectations follow the documented recursion on the expected-value path
    x = p["det_expected_share_cny"].to_numpy()
    sh = p["det_share_cny"].to_numpy()
    assert x[0] == pytest.approx(sh[0])
    assert np.allclose(x[1:], x[:-1] + 0.2 * (sh[:-1] - x[:-1]), rtol=1e-12)
    assert r.table["det_peak_surprise"][0] == pytest.approx(float((sh / x).max()), rel=1e-12)
    k = r.table["periods_to_sustainable"][0]
    dev = np.abs(sh / r.sustainable_share_cny - 1) > 0.05
    assert not dev[k:].any() and dev[k - 1]


def test_schedule_forms():
    # growth: the planned membership grows at g to the target, then base exits are replaced
    s = tempo_schedules(100.0, 0.01, 10, growth=[0.5], target_members=400.0)
    _, _, _, j = s[0]
    plan = np.concatenate([[100.0], np.minimum(100 * 1.5 ** np.arange(10), 400)])  # P_-1 = P_0 = N_0
    assert np.allclose(j, plan[1:] - 0.99 * plan[:-1]) and j[-1] == pytest.approx(4.0)
    assert j[0] == pytest.approx(1.0)  # period 0 only replaces exits
    # time to target T <=> g = R^(1/T) - 1
    (_, _, g2, _), = tempo_schedules(100.0, 0.0, 10, periods_to_target=[2], target_members=400.0)
    assert g2 == pytest.approx(1.0)
    # multiples of a base schedule
    (_, k, _, j3), = tempo_schedules(100.0, 0.0, 4, multiples=[2.5], base_joiners=[1, 2, 3])
    assert k == 2.5 and list(j3) == [2.5, 5.0, 7.5, 0.0]
    with pytest.raises(ConfigError, match="exactly one"):
        tempo_schedules(1.0, 0.0, 3, growth=[0.1], multiples=[1.0])
    with pytest.raises(ConfigError, match="target_members"):
        tempo_schedules(1.0, 0.0, 3, growth=[0.1])


def test_recommendation_and_binding_criterion():
    # a large plan (4M members, ~530 claims a period): the surprise is the tempo's, not Poisson noise
    big = GROUPS.with_columns(pl.col("members") * 20)
    kw = dict(n_scenarios=50, elasticity=1.0, expectations=0.1, **{**BASE, "target_members": 1e8})
    r = tempo(big, growth=[0.0, 0.05, 0.1, 0.3], criteria={"max_surprise_p95": 0.5, "max_spiral_prob": 0.05}, **kw)
    t = r.table
    ok = t["meets_criteria"].to_list()
    assert ok[0] and not ok[-1]
    assert r.recommended == t["tempo"][max(i for i, v in enumerate(ok) if v)]
    nxt = t.filter(pl.col("speed") > float(t.filter(pl.col("tempo") == r.recommended)["speed"][0]))
    if nxt.height:
        assert nxt["fails"][0] and nxt["fails"][0].split(", ")[0] in r.binding
    # a lax criterion recommends the fastest tempo; an impossible one nothing
    lax = tempo(GROUPS, growth=[0.0, 0.3], criteria={"max_surprise_p95": 100.0, "max_spiral_prob": 1.0}, **kw)
    assert lax.recommended == "g=0.3" and "no criterion binds" in lax.binding
    none = tempo(GROUPS, growth=[0.0, 0.3], criteria={"max_surprise_p95": 0.0}, **kw)
    assert none.recommended is None
    crit = TempoCriteria(max_surprise_p95=0.5, max_spiral_prob=0.05, min_retained_1y=0.9)
    assert crit.failures({"peak_surprise_p95": 1.6, "spiral_prob": 0.05, "retained_1y": 0.8,
                          "peak_lapse_annual": 0.1}) == ["max_surprise_p95", "max_spiral_prob", "min_retained_1y"]
    with pytest.raises(ConfigError, match="criteria.bogus"):
        tempo(GROUPS, growth=[0.1], criteria={"bogus": 1}, **kw)


def test_seeded_and_independent_of_the_other_tempos():
    kw = dict(n_scenarios=40, elasticity=1.0, **BASE)
    a = tempo(GROUPS, growth=[0.05, 0.2], **kw).table.filter(pl.col("tempo") == "g=0.2")
    b = tempo(GROUPS, growth=[0.2], **kw).table
    assert a.equals(b)


def test_multiples_and_time_to_target_forms_run():
    r = tempo(GROUPS, multiples=[0.5, 1.0, 2.0], joiners={"per_period": [20_000] * 24, "then": "stop"},
              n_scenarios=20, **{k: v for k, v in BASE.items() if k != "target_members"})
    assert r.table["tempo"].to_list() == ["x0.5", "x1", "x2"]
    r2 = tempo(GROUPS, periods_to_target=[48, 12], n_scenarios=20, **BASE)
    assert r2.table["tempo"].to_list() == ["T=48", "T=12"]  # slowest first
    assert r2.table["periods_to_target"].to_list() == [48, 12]
    g = r2.table["growth_per_period"].to_numpy()
    assert g == pytest.approx([25 ** (1 / 48) - 1, 25 ** (1 / 12) - 1])


def test_result_object_and_outputs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    r = tempo(GROUPS, growth=[0.0, 0.1], n_scenarios=20, **BASE)
    assert r.summary.height == 2 and "Operating tempo" in r._repr_html_()
    assert r.plot_frontier() is not None and r.plot_paths() is not None
    out = r.write(tmp_path / "t")
    for f in ("tempo.parquet", "tempo_paths.parquet", "tempo.png", "tempo.html", "recommendation.json"):
        assert (out / f).exists()
    assert pl.read_parquet(out / "tempo.parquet").height == 2
    assert "data:image/png;base64," in (out / "tempo.html").read_text(encoding="utf-8")


def test_plan_must_be_named_when_several():
    g = pl.concat([GROUPS, GROUPS.with_columns(pl.lit("b").alias("plan"))])
    with pytest.raises(ConfigError, match="name one"):
        tempo(g, growth=[0.1], n_scenarios=5, **BASE)
    assert tempo(g, plan="b", growth=[0.1], n_scenarios=5, **BASE).assumptions["plan"] == "b"
    assert math.isfinite(tempo(g, plan="all", growth=[0.1], n_scenarios=5, **BASE).sustainable_share_cny)


def test_sensitivity_to_elasticity_and_education_speed():
    from engine.projection._tempo import tempo_sensitivity

    big = GROUPS.with_columns(pl.col("members") * 20)
    kw = dict(growth=[0.0, 0.05, 0.1, 0.2, 0.4], n_scenarios=30, **{**BASE, "target_members": 1e8})
    s = tempo_sensitivity(big, elasticities=[0.5, 2.0], education_speeds=[0.05, 0.5], **kw)
    assert s.height == 4 and set(s.columns) >= {"recommended", "binding", "recommended_speed"}
    # each cell is exactly the single run with those assumptions
    one = tempo(big, elasticity={"base": 2.0}, expectations={"speed": 0.5}, **kw)
    row = s.filter((pl.col("elasticity") == 2.0) & (pl.col("education_speed") == 0.5)).row(0, named=True)
    assert row["recommended"] == one.recommended and row["binding"] == one.binding
    # every cell's recommendation meets the criteria it was judged by
    ok = s.filter(pl.col("recommended").is_not_null())
    assert (ok["peak_surprise_p95"] <= 1.5).all() and (ok["spiral_prob"] < 0.05).all()
    with pytest.raises(ConfigError, match="at least one"):
        tempo_sensitivity(big, elasticities=[], education_speeds=[0.1], **kw)


def test_as_given_start_runs_and_differs_from_a_steady_start():
    launch = GROUPS.with_columns(waiting_members=pl.col("members") * 0.5)
    a = tempo(launch, growth=[0.0, 0.1], n_scenarios=10, start="as_given", **BASE)
    b = tempo(launch, growth=[0.0, 0.1], n_scenarios=10, **BASE)
    assert a.table["det_peak_surprise"][0] != b.table["det_peak_surprise"][0]
    assert b.table["det_peak_surprise"][0] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError, match="start"):
        tempo(launch, growth=[0.1], n_scenarios=10, start="cold", **BASE)


def test_instant_education_limit_leaves_no_surprise():
    # speed 1 on ever shorter periods (same annual tempo, waiting 3 months, lag 1 month): the surprise
    # left, the one-period rise, shrinks in proportion to the period length -> none in the limit
    left = []
    for ppy in (12, 52, 104):
        k = ppy / 12
        r = tempo(GROUPS, periods_to_target=[round(24 * k)], target_members=5e6, horizon=round(48 * k), n_scenarios=1,
                  expectations=1.0, periods_per_year=ppy, waiting_periods=round(3 * k), reporting_lag_periods=round(k),
                  seed=0)
        left.append(float(r.table["det_peak_surprise"][0]) - 1.0)
    assert left[0] > left[1] > left[2] > 0
    assert 0.15 < left[1] / left[0] < 0.35 and 0.35 < left[2] / left[1] < 0.65  # ~ 12/52 and 52/104
