"""Replay from public figures: the expected claims agree with the calendar projection, a synthetic platform's
level and select curve are recovered within their intervals at the nominal rate, the shipped Xianghubao config runs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.projection.calendar import project_calendar
from engine.errors import ConfigError, DataError
from engine.calibration import build_model, replay
from engine.calibration._model import Aggregate, select_curve

D = dt.date
START, END = D(2019, 1, 1), D(2020, 12, 31)
POINTS = pl.DataFrame({"date": [D(2019, 1, 1), D(2019, 7, 1), D(2020, 3, 1), D(2020, 12, 31)],
                       "members": [0.0, 2e6, 3e6, 2.6e6]})
GROUPS = pl.DataFrame({"group": ["young", "old"], "weight": [0.7, 0.3], "benefit_cny": [3e5, 1e5],
                       "rate": [6e-4, 3e-3]})
TRUTH = {"level": 0.8, "s0": 0.3, "tau_months": 6.0}


def _template() -> list[Aggregate]:
    """What the synthetic platform publishes: claimants of every month-end period, the 2020 annual share."""
    from engine.projection.calendar import calendar_periods

    cal = calendar_periods(START, END, "monthly")
    ags = [Aggregate("claimants_period", d, 0.0, 0.0, f"claimants {d}") for d in cal["notice_date"][3:]]
    ags.append(Aggregate("annual_share", D(2020, 12, 31), 0.0, 0.005, "annual share 2020"))
    return ags


def test_replay_model_agrees_with_the_calendar_projection_without_select() -> None:
    m = build_model(POINTS, _template(), start=START, end=END, groups=GROUPS, sharing_days="monthly",
                    waiting_days=90, reporting_lag_days=20, base_lapse_annual=0.1)
    mu = m.mu(0.8, 1.0, 6.0)
    from engine.projection.membership import membership_from_curve

    c = membership_from_curve(POINTS, START, END, base_lapse_annual=0.1)
    g = GROUPS.select("group", pl.lit(0.0).alias("members"), (pl.col("rate") * 0.8).alias("rate"), "benefit_cny",
                      pl.col("weight").alias("joiner_mix"))
    r = project_calendar(g, start=START, end=END, sharing_days="monthly", waiting_days=90, reporting_lag_days=20,
                         n_scenarios=2, **c.inputs())
    np.testing.assert_allclose(mu.sum(axis=0), r.periods["claims_paid"].to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((mu * m.cost).sum(axis=0), r.periods["det_share_cny"].to_numpy(), rtol=1e-9,
                               atol=1e-12)


def _synthetic(seed: int) -> list[Aggregate]:
    m = build_model(POINTS, _template(), start=START, end=END, groups=GROUPS, sharing_days="monthly",
                    model_error=0.0)
    y = m.simulate(m.mu(TRUTH["level"], TRUTH["s0"], TRUTH["tau_months"]), np.random.default_rng(seed))
    return [Aggregate(a.kind, a.date, float(v), a.rounding, a.label) for a, v in zip(m.aggregates, y, strict=True)]


def test_synthetic_platform_level_and_select_recovered_at_the_nominal_rate() -> None:
    """10 seeds, 90% profile intervals: P(fewer than 7 covers | coverage 0.9) = 1.3%."""
    cover = {"level": 0, "s0": 0}
    for seed in range(10):
        r = replay(POINTS, _synthetic(seed), start=START, end=END, groups=GROUPS, sharing_days="monthly",
                   fit=("level", "s0"), level=0.5, s0=0.8, tau_months=TRUTH["tau_months"], model_error=0.0,
                   level_ci=0.9, n_boot=0, seed=seed)
        p = {row["param"]: row for row in r.params.iter_rows(named=True)}
        for k in cover:
            lo, hi = p[k]["profile_lower"], p[k]["profile_upper"]
            cover[k] += (lo is None or lo <= TRUTH[k]) and (hi is None or TRUTH[k] <= hi)
        assert abs(np.log(p["level"]["estimate"] / TRUTH["level"])) < 0.3
    assert cover["level"] >= 7 and cover["s0"] >= 7, cover


def test_replay_result_tables_and_drivers() -> None:
    import matplotlib

    matplotlib.use("Agg")
    r = replay(POINTS, _synthetic(99), start=START, end=END, groups=GROUPS, sharing_days="monthly",
               tau_months=6.0, model_error=0.0, n_boot=15, seed=1)
    # the drivers multiply to share / sustainable share in every period with eligible members
    p = r.periods.filter(pl.col("select").is_not_nan() & (pl.col("share_cny") > 0))
    prod = (p["dilution"] * p["waiting"] * p["select"] * p["reporting_lag"]).to_numpy()
    np.testing.assert_allclose(prod, (p["share_cny"] / p["sustainable_share_cny"]).to_numpy(), rtol=1e-9)
    assert r.fit.height == len(_template()) and set(r.params["param"]) == {"level", "s0", "tau_months"}
    y20 = r.years.filter(pl.col("year") == 2020).row(0, named=True)
    assert y20["annual_share_lower_cny"] <= y20["annual_share_cny"] <= y20["annual_share_upper_cny"]
    assert r.summary.equals(r.params) and "Replay" in r._repr_html_()
    assert r.plot_shares() is not None and r.plot_fit() is not None
    np.testing.assert_allclose(select_curve(np.array([0.0, 1e9]), 0.3, 6.0), [0.3, 1.0])
    # seeded: the same seed gives the same bootstrap
    r2 = replay(POINTS, _synthetic(99), start=START, end=END, groups=GROUPS, sharing_days="monthly",
                tau_months=6.0, model_error=0.0, n_boot=15, seed=1)
    assert r.params.equals(r2.params) and r.years.equals(r2.years)


def test_replay_errors() -> None:
    with pytest.raises(ConfigError, match="fit"):
        replay(POINTS, _template(), start=START, end=END, groups=GROUPS, sharing_days="monthly", fit=("incidence",),
               n_boot=0)
    with pytest.raises(DataError, match="not a notice date"):
        build_model(POINTS, [Aggregate("claimants_period", D(2019, 5, 5), 1.0)], start=START, end=END,
                    groups=GROUPS, sharing_days="monthly")
    with pytest.raises(DataError, match="groups"):
        build_model(POINTS, _template(), start=START, end=END, groups=GROUPS.drop("weight"))


@pytest.mark.slow
def test_shipped_xianghubao_config_runs_from_the_cli(tmp_path, capsys) -> None:
    from engine.cli.main import main

    assert main(["replay", "xianghubao_public", "--out", str(tmp_path / "out"), "--boot", "5"]) == 0
    out = capsys.readouterr().out
    assert "2020" in out and "2021" in out and "annual_share" in out and "observed" in out
    years = pl.read_parquet(tmp_path / "out" / "years.parquet")
    fit = pl.read_parquet(tmp_path / "out" / "fit.parquet")
    assert fit.height == 5 and {2019, 2020, 2021} <= set(years["year"].to_list())
    assert (tmp_path / "out" / "report.md").read_text().count("|") > 20


def test_engine_replay_is_callable_even_after_submodule_import() -> None:
    import engine
    import engine.calibration as mod

    assert callable(engine.replay) and mod.replay is replay
    with pytest.raises(ConfigError, match="fit"):
        engine.replay(POINTS, _template(), start=START, end=END, groups=GROUPS, sharing_days="monthly",
                      fit=("incidence",), n_boot=0)
