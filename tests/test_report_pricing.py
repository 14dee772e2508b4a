"""Pricing views of the report (engine.report._pricing, engine.report._share_views) against independent oracles.

Every number a view computes is checked against a slow oracle written from the formula (plain Python and
scipy's chi-square quantiles, the CI2020 CSV read directly) or a closed form (a one-factor Poisson GLM
reproduces the one-way relativities and has A/E = 1 on its own levels). Charts are checked by content.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2

from engine.estimators.glm import PoissonGLM
from engine.report._pricing import (actual_expected, ae_chart, age_curve, age_curve_chart, calendar_label,
                                    factor_relativities, groups_view, relativity_chart, relativity_table,
                                    with_expected)
from engine.report._share_views import DRIVER_LABELS, decomposition_charts, decomposition_table, fan_charts
from engine.shares._drivers import DRIVERS

ROOT = Path(__file__).resolve().parents[1]


def _garwood(d: float, e: float, level: float = 0.95) -> tuple[float, float]:
    """Slow oracle: the exact Poisson interval from its definition, one count at a time."""
    a = 1 - level
    lo = 0.0 if d == 0 else chi2.ppf(a / 2, 2 * d) / (2 * e)
    return lo, chi2.ppf(1 - a / 2, 2 * d + 2) / (2 * e)


def _ci4() -> dict[tuple[int, str], float]:
    """CI2020 CI4 annual rates read straight from the shipped CSV (per mille / 1000)."""
    out = {}
    with open(ROOT / "models" / "reference" / "ci2020.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            out[(int(r["age"]), "M")] = float(r["CI4_male_permille"]) / 1000
            out[(int(r["age"]), "F")] = float(r["CI4_female_permille"]) / 1000
    return out


@pytest.fixture(scope="module")
def cells() -> pl.DataFrame:
    """Small cells: 2 sexes x 20 ages x 3 channels x 2 tiers x 6 months, Poisson claims with a known truth."""
    rng = np.random.default_rng(18)
    rows = []
    chan_rel = {"app": 1.0, "employer": 0.6, "referral": 1.5}
    for month in range(1, 7):
        for sex in ("F", "M"):
            for age in range(30, 50):
                for ch, rel in chan_rel.items():
                    for tier in (1, 2):
                        e = float(rng.uniform(20, 60))
                        mu = e * 0.002 * math.exp(0.06 * (age - 30)) * rel * (1.3 if sex == "M" else 1.0)
                        rows.append({"period": f"2020-{month:02d}-01", "age": age, "sex": sex, "channel": ch,
                                     "city_tier": tier, "exposure_years": e, "claims": int(rng.poisson(mu))})
    return pl.DataFrame(rows).with_columns(pl.col("period").str.to_date(), pl.col("age").cast(pl.Int32))


# ----------------------------------------------------------------------------- relativities
def test_one_factor_glm_reproduces_the_one_way_relativities(cells):
    glm = PoissonGLM(factors=("channel",), age=None).fit(cells)
    rel = factor_relativities(cells, glm, "channel")
    # oracle: crude rates per level by plain sums, relative to the reference level (the first, "app")
    sums: dict[str, list[float]] = {}
    for r in cells.iter_rows(named=True):
        s = sums.setdefault(r["channel"], [0.0, 0.0])
        s[0] += r["exposure_years"]
        s[1] += r["claims"]
    ref = sums["app"][1] / sums["app"][0]
    for r in rel.iter_rows(named=True):
        e, d = sums[r["level"]]
        assert r["exposure_years"] == pytest.approx(e, rel=1e-12)
        assert r["claims"] == d
        assert r["crude_relativity"] == pytest.approx((d / e) / ref, rel=1e-12)
        assert (r["crude_lower"], r["crude_upper"]) == pytest.approx(_garwood(d, e * ref), rel=1e-9)
        # closed form: the saturated one-factor MLE is the crude rate, so exp(b) is the one-way relativity
        assert r["glm_relativity"] == pytest.approx(r["crude_relativity"], rel=1e-7)
    assert rel.filter(pl.col("is_reference"))["level"].to_list() == ["app"]
    tab = relativity_table(rel, "channel")
    assert tab["channel"].to_list() == ["app", "employer", "referral"] and tab["reference level"].to_list()[0] == "yes"
    assert tab["one-way relativity"].to_list() == rel["crude_relativity"].to_list()
    # the interval is exp(b -/+ 1.96 se) with se^2 = 1/D_l + 1/D_ref (closed form of the two-level Poisson MLE)
    r = rel.filter(pl.col("level") == "referral").row(0, named=True)
    se = math.sqrt(1 / sums["referral"][1] + 1 / sums["app"][1])
    z = 1.959963984540054
    assert r["glm_lower"] == pytest.approx(r["glm_relativity"] * math.exp(-z * se), rel=1e-6)
    assert r["glm_upper"] == pytest.approx(r["glm_relativity"] * math.exp(z * se), rel=1e-6)


def test_relativity_chart_names_the_reference_and_carries_exposure(cells):
    glm = PoissonGLM(factors=("channel", "sex"), age=None).fit(cells)
    rel = factor_relativities(cells, glm, "channel")
    c = relativity_chart(rel, "channel")
    assert "reference level app" in c.title and c.meta["reference"] == "app"
    assert c.y_label == "relativity (reference level = 1)" and c.y2_label == "exposure-years"
    bars = c.series_named("exposure-years")
    assert bars.axis == "y2" and bars.kind == "bar" and bars.y == rel["exposure_years"].to_list()
    eb = c.series_named("GLM relativity (95% interval)")
    assert eb.kind == "errorbars" and eb.x == ["app", "employer", "referral"]
    assert all(lo <= y <= hi for lo, y, hi in zip(eb.lower, eb.y, eb.upper, strict=True))
    assert eb.y[0] == 1.0  # the reference level
    coef = dict(zip(glm.feature_names_, glm.coef_, strict=True))
    assert eb.y[1] == pytest.approx(math.exp(coef["channel[employer]"]), rel=1e-12)


# ----------------------------------------------------------------------------- age curve
def test_age_curve_is_evaluated_by_age_against_the_basis(cells):
    inc_rows = []  # the incidence table's basis column, built from the CSV
    ci4 = _ci4()
    for sex in ("F", "M"):
        for age in range(30, 50):
            inc_rows.append({"age": age, "sex": sex, "expected_rate": ci4[(age, sex)]})
    inc = pl.DataFrame(inc_rows).with_columns(pl.col("age").cast(pl.Int32))
    glm = PoissonGLM(factors=("sex", "channel"), age="spline", age_df=4).fit(cells)
    curve = age_curve(cells, glm, inc, "M", level_factor=0.5)
    assert curve["age"].to_list() == list(range(30, 50))
    assert not any(c.startswith("age_bs") for c in curve.columns)
    # oracle of the mix curve: sum E mu / sum E over the cells of one age, cell by cell
    for age in (30, 41, 49):
        sub = cells.filter((pl.col("sex") == "M") & (pl.col("age") == age))
        mu = glm.predict(sub)
        e = sub["exposure_years"].to_numpy()
        row = curve.filter(pl.col("age") == age).row(0, named=True)
        assert row["glm_rate_mix"] == pytest.approx(float((mu * e).sum() / e.sum()), rel=1e-12)
        assert row["crude_rate"] == pytest.approx(sub["claims"].sum() / e.sum(), rel=1e-12)
        assert row["basis_rate"] == ci4[(age, "M")] and row["basis_rate_scaled"] == pytest.approx(0.5 * ci4[(age, "M")])
        assert row["glm_lower"] < row["glm_rate_reference"] < row["glm_upper"]
    # the reference profile: sex M, channel at its reference level (the GLM's own age curve)
    ref = glm.age_curve(list(range(30, 50)), sex="M")
    np.testing.assert_allclose(curve["glm_rate_reference"].to_numpy(), ref["rate"].to_numpy(), rtol=1e-12)
    ch = age_curve_chart(curve, "M", "CI2020 CI4", "channel = app")
    assert ch.x_label == "attained age (years)" and ch.y_label == "claims per 1,000 exposure-years" and ch.y_log
    assert len(ch.series) == 6 and ch.series_named("exposure-years").axis == "y2"
    assert ch.series_named("CI2020 CI4").y == pytest.approx([1000 * ci4[(a, "M")] for a in range(30, 50)])


# ----------------------------------------------------------------------------- actual / expected
class _StubModel:
    """A model with known rates by channel (the oracle knows them too)."""

    rates = {"app": 0.004, "employer": 0.002, "referral": 0.006}

    def predict(self, cells: pl.DataFrame) -> np.ndarray:
        return np.array([self.rates[c] for c in cells["channel"].to_list()])


def test_actual_expected_against_basis_and_model_matches_the_oracle(cells):
    ae = actual_expected(cells, "city_tier", _StubModel(), "ci2020", "CI4")
    ci4 = _ci4()
    for r in ae.iter_rows(named=True):
        sub = [c for c in cells.iter_rows(named=True) if str(c["city_tier"]) == r["key"]]
        d = sum(c["claims"] for c in sub)
        eb = sum(c["exposure_years"] * ci4[(c["age"], c["sex"])] for c in sub)
        em = sum(c["exposure_years"] * _StubModel.rates[c["channel"]] for c in sub)
        assert r["claims"] == d
        assert r["expected_basis"] == pytest.approx(eb, rel=1e-12)
        assert r["expected_model"] == pytest.approx(em, rel=1e-12)
        assert r["ae_basis"] == pytest.approx(d / eb, rel=1e-12)
        assert r["ae_model"] == pytest.approx(d / em, rel=1e-12)
        assert (r["ae_basis_lower"], r["ae_basis_upper"]) == pytest.approx(_garwood(d, eb), rel=1e-9)
        assert (r["ae_model_lower"], r["ae_model_upper"]) == pytest.approx(_garwood(d, em), rel=1e-9)
    # the report computes each cell's expected claims once and groups them by every key: the same table
    assert actual_expected(with_expected(cells, _StubModel(), "ci2020", "CI4"), "city_tier").equals(ae)


def test_glm_has_ae_one_on_its_own_levels_and_a_zero_count_interval(cells):
    glm = PoissonGLM(factors=("channel", "sex"), age=None).fit(cells)
    ae = actual_expected(cells, "channel", glm, None)
    # closed form: the Poisson MLE's score equations make expected = actual on every level of a factor
    np.testing.assert_allclose(ae["ae_model"].to_numpy(), 1.0, rtol=1e-8)
    assert "ae_basis" not in ae.columns
    # a level with no claims: lower 0 and upper -ln(a/2) / expected (closed form of the Garwood bound)
    zero = cells.with_columns(pl.when(pl.col("channel") == "employer").then(0).otherwise(pl.col("claims")).alias("claims"))
    r = actual_expected(zero, "channel", _StubModel(), None).filter(pl.col("key") == "employer").row(0, named=True)
    assert r["ae_model"] == 0 and r["ae_model_lower"] == 0
    assert r["ae_model_upper"] == pytest.approx(-math.log(0.025) / r["expected_model"], rel=1e-9)


def test_calendar_label_and_ae_chart(cells):
    assert cells.select(calendar_label(cells).alias("k"))["k"].unique().sort().to_list()[0] == "2020-01-01"
    long = pl.concat([cells.with_columns(pl.col("period").dt.offset_by(f"{6 * i}mo")) for i in range(4)])
    labels = long.select(calendar_label(long).alias("k"))["k"].unique().sort().to_list()
    assert labels == [f"{y}Q{q}" for y in (2020, 2021) for q in (1, 2, 3, 4)]
    ae = actual_expected(long, calendar_label(long), _StubModel(), "ci2020")
    c = ae_chart(ae, "calendar period", "CI2020 CI4")
    assert c.y_label == "actual / expected claims (ratio)" and c.x_label == "calendar period"
    assert [s.name for s in c.series] == ["exposure-years", "A/E against CI2020 CI4 (95% interval)",
                                          "A/E against the fitted GLM (95% interval)", "A/E = 1"]
    assert c.series_named("A/E against the fitted GLM (95% interval)").y == ae["ae_model"].to_list()


# ----------------------------------------------------------------------------- groups
def test_groups_view_shows_rules_and_rates_per_1000():
    seg = pl.DataFrame({"group": [2, 1], "name": ["G2", "G1"], "rule": ["age >= 40", "age < 40"],
                        "members": [100.4, 300.0], "exposure_years": [90.0, 280.0], "claims": [3.0, 1.0],
                        "rate": [3 / 90, 1 / 280]})
    lo1, hi1 = _garwood(1, 280.0)
    lo2, hi2 = _garwood(3, 90.0)
    seg = seg.with_columns(pl.Series("rate_lower", [lo2, lo1]), pl.Series("rate_upper", [hi2, hi1]))
    table, chart = groups_view(seg)
    assert table["group"].to_list() == ["G1", "G2"] and table["rule"].to_list() == ["age < 40", "age >= 40"]
    assert table["members"].to_list() == [300, 100]
    assert table["rate (claims per 1,000 exposure-years)"].to_list() == pytest.approx([1000 / 280, 3000 / 90])
    eb = chart.series_named("observed rate (95% interval)")
    assert eb.lower == pytest.approx([1000 * lo1, 1000 * lo2]) and eb.upper == pytest.approx([1000 * hi1, 1000 * hi2])
    assert chart.series_named("exposure-years").axis == "y2"


# ----------------------------------------------------------------------------- decomposition and fan charts
def test_every_driver_has_one_plain_label_and_bars_carry_values():
    assert set(DRIVER_LABELS) == set(DRIVERS)
    assert DRIVER_LABELS["reporting_lag"] == "reporting lag (claims approved later)"
    vals = [0.1, 0.0, -0.2, 0.05, 0.3, 0.12, -0.04, 0.01, 0.06]
    dec = pl.DataFrame({"comparison": ["a -> b"] * len(DRIVERS), "driver": list(DRIVERS),
                        "factor_a": [1.0] * len(DRIVERS), "factor_b": [1.1] * len(DRIVERS), "contribution_cny": vals,
                        "share_a_cny": [2.0] * len(DRIVERS), "share_b_cny": [2.0 + sum(vals)] * len(DRIVERS)})
    (c,) = decomposition_charts(dec)
    (bars,) = c.series
    assert bars.kind == "hbar" and list(bars.x) == vals
    assert bars.y[4] == "reporting lag (claims approved later): +0.30"
    assert not any(re.fullmatch(r"[a-z_]+: .*", lab) and "_" in lab.split(":")[0] for lab in bars.y)
    assert f"{sum(vals):+,.2f}" in c.caption
    tab = decomposition_table(dec)
    assert tab["driver"].to_list() == [DRIVER_LABELS[d] for d in DRIVERS]


def test_fan_charts_show_the_share_paid_apart_from_the_cost_before_caps():
    periods = pl.DataFrame({"plan": ["p"] * 3, "period": [0, 1, 2], "members": [1000.0, 1100.0, 1200.0],
                            "share_mean_cny": [1.5, 1.6, 1.7], "share_p5_cny": [1.0, 1.1, 1.2],
                            "share_p50_cny": [1.4, 1.5, 1.6], "share_p95_cny": [2.0, 2.1, 2.2],
                            "platform_paid_mean_cny": [7000.0, 7700.0, 8400.0]})
    paid, cost = fan_charts(periods, {"p": {"sustainable_share_cny": 8.8}})
    assert paid.facet == cost.facet == "fan:p"
    assert paid.y_label == cost.y_label == "CNY per member per sharing period"
    band = paid.series_named("P5-P95")
    assert band.lower == [1.0, 1.1, 1.2] and band.upper == [2.0, 2.1, 2.2]
    assert paid.series_named("median share paid").y == [1.4, 1.5, 1.6]
    assert not any(s.dash for s in paid.series)  # no line at the uncapped level squashing the band
    assert cost.series_named("mean cost before caps").y == pytest.approx([8.5, 8.6, 8.7])
    assert cost.series_named("sustainable share (before caps) 8.80").dash
