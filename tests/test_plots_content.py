"""Every plot draws what it says: axis labels with units, the number of series, and the data plotted.

Each figure is read back from matplotlib (lines, collections, bars, images, tick labels)
and compared with the table or function it is drawn from.
"""

from __future__ import annotations

import datetime as dt

import matplotlib
import numpy as np
import polars as pl
import pytest

import engine

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _ticks(labels) -> list[str]:
    return [t.get_text() for t in labels]


def _cells(seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(a, s, t) for a in range(30, 40) for s in "FM" for t in (1, 2, 3)]
    df = pl.DataFrame(rows, schema=["age", "sex", "city_tier"], orient="row")
    e = rng.uniform(500, 1500, df.height)
    rate = 0.002 * np.exp(0.05 * (df["age"].to_numpy() - 30)) * (1 + 0.2 * df["city_tier"].to_numpy())
    return df.with_columns(pl.Series("exposure_years", e), pl.Series("claims", rng.poisson(rate * e)))


def test_plot_incidence_draws_rates_intervals_and_reference() -> None:
    inc = engine.incidence(_cells(), by=["age", "sex"])
    ax = engine.plot_incidence(inc)
    assert ax.get_xlabel() == "age" and ax.get_ylabel() == "incidence per exposure-year" and ax.get_yscale() == "log"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert sorted(lines) == ["reference sex=F", "reference sex=M", "sex=F", "sex=M"]
    assert len(ax.collections) == 2  # one interval band per sex
    for sex, band in zip("FM", ax.collections, strict=True):
        g = inc.filter(pl.col("sex") == sex).sort("age")
        np.testing.assert_array_equal(lines[f"sex={sex}"].get_xdata(), g["age"].to_numpy())
        np.testing.assert_allclose(lines[f"sex={sex}"].get_ydata(), g["rate"].to_numpy())
        np.testing.assert_allclose(lines[f"reference sex={sex}"].get_ydata(), g["expected_rate"].to_numpy())
        assert lines[f"reference sex={sex}"].get_linestyle() == "--"
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx(g["rate_lower"].min()) and y.max() == pytest.approx(g["rate_upper"].max())


def test_plot_lorenz_and_calibration_draw_the_curves() -> None:
    rng = np.random.default_rng(1)
    e = rng.gamma(2.0, 200.0, 300)
    r = rng.lognormal(np.log(1e-3), 0.6, 300)
    d = rng.poisson(r * e)
    from engine.estimators.metrics import plot_calibration, plot_lorenz

    ax = plot_lorenz(d, r, e, label="m")
    assert ax.get_xlabel().startswith("cumulative exposure share") and ax.get_ylabel() == "cumulative claims share"
    diag, curve = ax.get_lines()
    np.testing.assert_array_equal(diag.get_xydata(), [[0, 0], [1, 1]])
    x, y = engine.lorenz_curve(d, r, e)
    np.testing.assert_allclose(curve.get_xdata(), x)
    np.testing.assert_allclose(curve.get_ydata(), y)
    assert curve.get_label() == f"m (Gini {engine.gini(d, r, e):.3f})"

    table = engine.calibration_table(d, r, e)
    ax = plot_calibration(table)
    assert ax.get_xlabel() == "predicted rate (claims per exposure-year)"
    assert ax.get_ylabel() == "observed rate (claims per exposure-year)"
    points = ax.containers[0]  # the errorbar: points and Garwood bars
    np.testing.assert_allclose(points.lines[0].get_xdata(), table["predicted_rate"].to_numpy())
    np.testing.assert_allclose(points.lines[0].get_ydata(), table["observed_rate"].to_numpy())
    segs = points.lines[2][0].get_segments()
    np.testing.assert_allclose([s[0][1] for s in segs], table["observed_lower"].to_numpy())
    np.testing.assert_allclose([s[1][1] for s in segs], table["observed_upper"].to_numpy())
    assert [ln.get_label() for ln in ax.get_lines()][-1] == "perfect calibration"


def test_glm_plot_lorenz_uses_the_models_predictions() -> None:
    cells = _cells(2)
    m = engine.PoissonGLM(factors=("sex", "city_tier"), age="linear").fit(cells)
    ax = m.plot_lorenz(cells)
    assert len(ax.get_lines()) == 2
    x, y = engine.lorenz_curve(cells["claims"].to_numpy(), m.predict_rate(cells), cells["exposure_years"].to_numpy())
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), y)
    assert ax.get_lines()[1].get_label().startswith("PoissonGLM (Gini ")


def test_plot_credibility_draws_observed_and_credibility_rates() -> None:
    rng = np.random.default_rng(3)
    rows = [{"group": g, "period": j, "exposure_years": 2000.0 * (g + 1), "claims": int(rng.poisson(2000 * (g + 1) * r))}
            for g, r in enumerate([0.002, 0.004, 0.008]) for j in range(3)]
    fit = engine.BuhlmannStraub().fit(pl.DataFrame(rows))
    assert fit.a_ > 0
    ax = fit.plot_credibility()
    s = fit.summary
    assert ax.get_ylabel() == "claims per exposure-year" and _ticks(ax.get_xticklabels()) == ["0", "1", "2"]
    observed, cred = ax.collections
    assert observed.get_label() == "observed rate" and cred.get_label() == "credibility rate"
    np.testing.assert_allclose(observed.get_offsets(), np.c_[np.arange(3), s["rate"].to_numpy()])
    np.testing.assert_allclose(cred.get_offsets(), np.c_[np.arange(3), s["credibility_rate"].to_numpy()])
    (collective,) = ax.get_lines()
    assert collective.get_ydata()[0] == pytest.approx(fit.collective_)


def test_plot_share_draws_mean_band_and_sustainable_share() -> None:
    g = pl.DataFrame({"group": ["a"], "members": [1000.0], "rate": [0.002], "benefit_cny": [100_000.0]})
    res = engine.project(g, horizon=6, n_scenarios=20)
    ax = res.plot_share()
    assert ax.get_title() == "plan all" and ax.get_xlabel() == "period" and ax.get_ylabel() == "share per member (CNY)"
    mean, sus = ax.get_lines()
    d = res.periods.filter(pl.col("plan") == "all")
    np.testing.assert_allclose(mean.get_ydata(), d["share_mean_cny"].to_numpy())
    assert sus.get_ydata()[0] == pytest.approx(res.plans["sustainable_share_cny"][0])
    y = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx(d["share_p5_cny"].min()) and y.max() == pytest.approx(d["share_p95_cny"].max())


def test_compare_migration_and_optimise_plots() -> None:
    from tests.test_compare import POOLED, TABLE, VERTICAL

    res = engine.compare_plans(TABLE, VERTICAL, pooled=POOLED)
    ax = res.plot_changes()
    ch = res.changes.sort("group")
    assert ax.get_ylabel() == "annual payment per member (CNY)" and _ticks(ax.get_xticklabels()) == ch["group"].to_list()
    before, after = ax.containers
    assert before.get_label() == "pooled" and after.get_label() == "vertical"
    np.testing.assert_allclose([b.get_height() for b in before], ch["annual_payment_before_cny"].fill_null(0).to_numpy())
    np.testing.assert_allclose([b.get_height() for b in after], ch["annual_payment_after_cny"].fill_null(0).to_numpy())

    ax = res.plot_cross_subsidy()
    xs = res.cross_subsidy.filter(pl.col("plan") == res.cross_subsidy["plan"][0])
    names = sorted(set(xs["payer_group"]))
    assert ax.get_xlabel() == "beneficiary group" and ax.get_ylabel() == "payer group" and "(CNY per" in ax.get_title()
    assert _ticks(ax.get_xticklabels()) == names and _ticks(ax.get_yticklabels()) == names
    grid = ax.images[0].get_array()
    for a, b, v in xs.select("payer_group", "beneficiary_group", "net_cny_per_member_year").iter_rows():
        assert grid[names.index(a), names.index(b)] == pytest.approx(v)

    mig = engine.migrate(TABLE, type(POOLED)(POOLED.plans + VERTICAL.plans))
    ax = mig.plot_history()
    assert ax.get_xlabel() == "round" and ax.get_ylabel() == "members"
    plans = mig.history["plan"].unique(maintain_order=True).to_list()
    assert [ln.get_label() for ln in ax.get_lines()] == [str(p) for p in plans]
    for ln, p in zip(ax.get_lines(), plans, strict=True):
        np.testing.assert_allclose(ln.get_ydata(), mig.history.filter(pl.col("plan") == p)["members"].to_numpy())

    opt = engine.optimise_plans(TABLE, POOLED[0], max_plans=2, min_claims_per_period=0.1)
    ax = opt.plot_tradeoff()
    t = opt.tradeoff.filter(pl.col("feasible"))
    assert ax.get_xlabel() == "number of plans K" and ax.get_ylabel() == "cross-subsidy (CNY per period)"
    (xsub,) = ax.get_lines()
    np.testing.assert_allclose(xsub.get_ydata(), t["cross_subsidy_cny_per_period"].to_numpy())
    twin = [a for a in ax.figure.axes if a is not ax and a.get_ylabel()]
    assert [a.get_ylabel() for a in twin] == ["share CV of the smallest plan"]
    np.testing.assert_allclose(twin[0].get_lines()[0].get_ydata(), t["max_share_cv_approx"].to_numpy())


def test_plot_frontier_marks_each_k_and_the_recommended_one() -> None:
    from engine.segmentation._model import CellPoissonModel
    from tests.kits.segmentation_sim import sim_cells

    cells, _ = sim_cells(seed=1, scale=500, n_periods=2)
    seg = engine.RiskSegmenter(method="cluster", features=["city_tier", "channel"], adjust_for=["age", "sex"],
                               min_marginal_gain=0.05, model=CellPoissonModel()).fit(cells)
    fr = seg.frontier_
    ax = seg.plot_frontier()
    assert ax.get_xlabel() == "share CV per period (exposure-weighted)"
    assert ax.get_ylabel() == "share of removable cross-subsidy removed"
    (curve,) = ax.get_lines()
    np.testing.assert_allclose(curve.get_xdata(), fr["share_cv_weighted"].to_numpy())
    np.testing.assert_allclose(curve.get_ydata(), fr["cross_subsidy_removed"].to_numpy())
    assert [t.get_text() for t in ax.texts] == [f"K={k}" for k in fr["k"]]
    rec = fr.filter(pl.col("recommended"))
    np.testing.assert_allclose(ax.collections[0].get_offsets(), rec.select("share_cv_weighted",
                                                                           "cross_subsidy_removed").to_numpy())
    assert ax.collections[0].get_label() == f"recommended K={seg.recommended_k_}"
