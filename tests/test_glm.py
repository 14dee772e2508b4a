"""PoissonGLM / PoissonGBM on cells: statsmodels agreement, planted effects, persistence, scoring members."""

from __future__ import annotations

import datetime as dt
import functools
import json

import numpy as np
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from engine.errors import ConfigError, DataError, ModelError
from engine.estimators.features import bspline_basis, design_matrix
from engine.estimators.gbm import PoissonGBM
from engine.estimators.glm import PoissonGLM, aggregate_cells, score_members

CHANNELS = ["employer", "organic", "referral", "subsidy"]
#: planted log effects (reference levels F, tier 1, employer)
TRUE = {"intercept": np.log(6e-4), "sex[M]": 0.15, "city_tier[2]": 0.1, "city_tier[3]": 0.25, "city_tier[4]": 0.4,
        "city_tier[5]": 0.55, "channel[organic]": 0.2, "channel[referral]": -0.1, "channel[subsidy]": 0.5,
        "age": 0.045}


def planted_cells(seed: int, total_years: float = 1e6, ages=range(20, 60), periods: int = 1) -> tuple[pl.DataFrame, np.ndarray]:
    """Cells age x sex x city_tier x channel with log-linear planted rates (~1e-3) and Poisson claims."""
    rng = np.random.default_rng(seed)
    grid = pl.DataFrame({"period": [dt.date(2021, m + 1, 1) for m in range(periods)]})
    grid = grid.join(pl.DataFrame({"age": list(ages)}, schema={"age": pl.Int32}), how="cross")
    grid = grid.join(pl.DataFrame({"sex": ["F", "M"]}), how="cross")
    grid = grid.join(pl.DataFrame({"city_tier": [1, 2, 3, 4, 5]}), how="cross")
    grid = grid.join(pl.DataFrame({"channel": CHANNELS}), how="cross")
    age = grid["age"].to_numpy().astype(float)
    eta = TRUE["intercept"] + TRUE["age"] * (age - age.mean())
    eta = eta + np.where(grid["sex"].to_numpy() == "M", TRUE["sex[M]"], 0.0)
    for t in (2, 3, 4, 5):
        eta = eta + np.where(grid["city_tier"].to_numpy() == t, TRUE[f"city_tier[{t}]"], 0.0)
    for c in CHANNELS[1:]:
        eta = eta + np.where(grid["channel"].to_numpy() == c, TRUE[f"channel[{c}]"], 0.0)
    rate = np.exp(eta)
    e = rng.gamma(4.0, 1.0, grid.height)
    e = e / e.sum() * total_years
    d = rng.poisson(rate * e)
    return grid.with_columns(pl.Series("exposure_years", e), pl.Series("claims", d.astype(np.int64))), rate


def _statsmodels(cells: pl.DataFrame, model: PoissonGLM):
    import statsmodels.api as sm

    agg = aggregate_cells(cells, model.columns_, "exposure_years", "claims")
    X, _ = design_matrix(agg, model.spec_)
    return sm.GLM(agg["claims"].to_numpy(), sm.add_constant(X, has_constant="add"), family=sm.families.Poisson(),
                  offset=np.log(agg["exposure_years"].to_numpy())).fit(tol=1e-13, maxiter=200)


@pytest.mark.parametrize("kwargs", [
    dict(factors=("sex", "city_tier", "channel"), age="spline", age_df=6, interactions=(("city_tier", "channel"),)),
    dict(factors=("sex", "channel"), age="factor"),
    dict(factors=("city_tier",), age="linear", interactions=()),
])
def test_coefficients_equal_statsmodels(kwargs) -> None:
    cells, _ = planted_cells(1, periods=2)
    m = PoissonGLM(**kwargs).fit(cells)
    assert m.converged_
    ref = _statsmodels(cells, m)
    np.testing.assert_allclose(np.r_[m.intercept_, m.coef_], ref.params, atol=1e-6, rtol=0)
    np.testing.assert_allclose(m.summary["se"].to_numpy(), ref.bse, rtol=1e-6)
    np.testing.assert_allclose(m.cov_, ref.cov_params(), rtol=1e-6, atol=1e-12)
    assert m.deviance_ == pytest.approx(ref.deviance, rel=1e-8)
    assert m.loglik_ == pytest.approx(ref.llf, rel=1e-10)
    lo, hi = ref.conf_int(0.05).T
    np.testing.assert_allclose(m.summary["lower"].to_numpy(), lo, atol=1e-6)
    np.testing.assert_allclose(m.summary["upper"].to_numpy(), hi, atol=1e-6)
    np.testing.assert_allclose(m.summary["p"].to_numpy(), ref.pvalues, rtol=1e-5, atol=1e-300)


def test_predict_interval_equals_statsmodels_and_covers_planted_rates() -> None:
    cells, rate = planted_cells(16)
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="linear").fit(cells)
    ref = _statsmodels(cells, m)
    X, _ = design_matrix(cells, m.spec_)
    frame = ref.get_prediction(np.hstack([np.ones((cells.height, 1)), X]), offset=np.zeros(cells.height)).summary_frame(
        alpha=0.05)
    r, lo, hi = m.predict_interval(cells)
    np.testing.assert_allclose(r, frame["mean"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(lo, frame["mean_ci_lower"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(hi, frame["mean_ci_upper"].to_numpy(), rtol=1e-6)
    # correctly specified model: planted cell rates inside their intervals for most cells (correlated, so loose)
    assert np.mean((lo <= rate) & (rate <= hi)) > 0.8
    _, lo90, hi90 = m.predict_interval(cells, level=0.9)
    assert np.all(lo90 > lo) and np.all(hi90 < hi)


def test_default_lbfgs_poisson_regressor_is_off_but_newton_cholesky_agrees() -> None:
    """Why we do not use sklearn's default: lbfgs stops far from the MLE at rates ~1e-3."""
    from sklearn.linear_model import PoissonRegressor

    cells, _ = planted_cells(2)
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline").fit(cells)
    agg = aggregate_cells(cells, m.columns_, "exposure_years", "claims")
    X, _ = design_matrix(agg, m.spec_)
    y = (agg["claims"] / agg["exposure_years"]).to_numpy()
    w = agg["exposure_years"].to_numpy()
    lb = PoissonRegressor(alpha=0.0).fit(X, y, sample_weight=w)
    assert np.max(np.abs(lb.coef_ - m.coef_)) > 0.05  # silently wrong (no convergence warning needed)
    nc = PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(nc.coef_, m.coef_, atol=1e-6)
    assert nc.intercept_ == pytest.approx(m.intercept_, abs=1e-6)


def test_ridge_alpha_matches_sklearn_scale() -> None:
    from sklearn.linear_model import PoissonRegressor

    cells, _ = planted_cells(3)
    m = PoissonGLM(factors=("sex", "city_tier"), age="linear", alpha=1e-4).fit(cells)
    agg = aggregate_cells(cells, m.columns_, "exposure_years", "claims")
    X, _ = design_matrix(agg, m.spec_)
    nc = PoissonRegressor(alpha=1e-4, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(
        X, (agg["claims"] / agg["exposure_years"]).to_numpy(), sample_weight=agg["exposure_years"].to_numpy())
    np.testing.assert_allclose(nc.coef_, m.coef_, atol=1e-6)
    unpen = PoissonGLM(factors=("sex", "city_tier"), age="linear").fit(cells)
    assert np.sum(m.coef_**2) < np.sum(unpen.coef_**2)


def _de_boor(x: float, t: list[float], k: int, i: int) -> float:
    """Cox-de Boor recursion (slow oracle), right-closed at the last knot."""
    if k == 0:
        if t[i] <= x < t[i + 1] or (x == t[-1] and t[i] < t[i + 1] == t[-1]):
            return 1.0
        return 0.0
    a = 0.0 if t[i + k] == t[i] else (x - t[i]) / (t[i + k] - t[i]) * _de_boor(x, t, k - 1, i)
    b = 0.0 if t[i + k + 1] == t[i + 1] else (t[i + k + 1] - x) / (t[i + k + 1] - t[i + 1]) * _de_boor(x, t, k - 1, i + 1)
    return a + b


def test_spline_basis_against_de_boor_and_clamping() -> None:
    m = PoissonGLM(factors=(), age="spline", age_df=5).fit(planted_cells(4)[0])
    t = m.spec_["age"]["knots"]
    assert t[0] == 20 and t[-1] == 59 and len(t) == 5 - 3 + 8
    xs = np.array([20.0, 23.5, 40.0, 58.9, 59.0])
    B = bspline_basis(xs, t)
    n = len(t) - 4
    oracle = np.array([[_de_boor(x, t, 3, i) for i in range(n)] for x in xs])
    np.testing.assert_allclose(oracle.sum(axis=1), 1.0)
    np.testing.assert_allclose(B, oracle[:, 1:], atol=1e-12)
    # outside the training ages the curve is constant (clamped)
    np.testing.assert_allclose(bspline_basis(np.array([10.0, 80.0]), t), bspline_basis(np.array([20.0, 59.0]), t))


#: replications of the planted platform for the coverage tests (about 20 ms a fit)
COVERAGE_REPS = 200
Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


@functools.cache
def _planted_replications() -> tuple[np.ndarray, np.ndarray]:
    """Standardised errors (coef - truth) / se, reps x terms, and each fit's Wald statistic.

    The Wald statistic (b - beta)' V^-1 (b - beta) uses the engine's covariance, so it is
    chi2(p) when both the estimates and the covariance are right.
    """
    z, wald = [], []
    for seed in range(COVERAGE_REPS):
        cells, _ = planted_cells(100 + seed)
        with threadpool_limits(1):  # small solves: BLAS threads only contend
            m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="linear").fit(cells)
        s = m.summary
        # age="linear" centres at the mean training age, as the simulation does
        err = s["coef"].to_numpy() - np.array([TRUE[t] for t in s["term"]])
        z.append(err / s["se"].to_numpy())
        wald.append(float(err @ np.linalg.solve(m.cov_, err)))
    return np.array(z), np.array(wald)


def _calibration_failures(z: np.ndarray, wald: np.ndarray, scale: float = 1.0) -> list[str]:
    """Two-sided 3-sigma bands for intervals whose half-width is ``scale`` x the engine's.

    - coverage of the 95% intervals (reps x terms of them) within 0.95 +- 3 sd, the sd from
      the spread of the per-fit coverage over the independent replications (terms of one fit
      are correlated);
    - mean Wald statistic / p within 1 +- 3 sqrt(2 / (reps p)) (chi2(p) has mean p, variance 2p).
      Scaling the standard errors by c scales it by 1 / c^2: 1.23 at c = 0.9, 0.83 at c = 1.1.
    """
    reps, p = z.shape
    per_fit = (np.abs(z / scale) <= Z95).mean(axis=1)
    cov, sd_cov = per_fit.mean(), per_fit.std(ddof=1) / np.sqrt(reps)
    w = wald.mean() / p / scale**2
    sd_w = np.sqrt(2 / (reps * p))
    out = []
    if abs(cov - 0.95) > 3 * sd_cov:
        out.append(f"coverage {cov:.4f} outside 0.95 +- {3 * sd_cov:.4f}")
    if abs(w - 1) > 3 * sd_w:
        out.append(f"mean Wald / p {w:.3f} outside 1 +- {3 * sd_w:.3f}")
    return out


def test_planted_effects_recovered_with_nominal_coverage() -> None:
    """Over 200 replications of a 10^6 member-year platform, 95% intervals cover the planted values 95% of the time.

    The bands reject intervals 10% too narrow or too wide (next test); the mean standardised
    error of every term is within 4 sd of 0 (no bias).
    """
    z, wald = _planted_replications()
    assert _calibration_failures(z, wald) == []
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(COVERAGE_REPS)), z.mean(axis=0)


@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_coverage_bands_reject_intervals_10pct_off(scale: float) -> None:
    """The same replications with every interval 10% narrower or wider fail the bands."""
    z, wald = _planted_replications()
    fails = _calibration_failures(z, wald, scale)
    assert any(f.startswith("mean Wald") for f in fails), fails
    if scale < 1:
        assert any(f.startswith("coverage") for f in fails), fails


def test_planted_cell_rates_within_prediction_intervals() -> None:
    """Fitted cell rates from a correctly specified model are close to the planted ones."""
    cells, rate = planted_cells(5)
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline", age_df=5).fit(cells)
    pred = m.predict(cells)
    assert np.median(np.abs(pred / rate - 1)) < 0.08
    assert m.predict_claims(cells).sum() == pytest.approx(float(cells["claims"].sum()), rel=1e-8)  # MLE: totals match


def test_zero_exposure_cells_dropped_and_period_summed() -> None:
    cells, _ = planted_cells(6, periods=2)
    extra = cells.head(3).with_columns(pl.lit("zeta").alias("channel"), pl.lit(0.0).alias("exposure_years"),
                                       pl.lit(0).cast(pl.Int64).alias("claims"))
    a = PoissonGLM(factors=("sex", "channel"), age="linear").fit(cells)
    b = PoissonGLM(factors=("sex", "channel"), age="linear").fit(pl.concat([cells, extra]))
    assert b.feature_names_ == a.feature_names_
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-12)
    collapsed = cells.group_by("age", "sex", "channel").agg(pl.col("exposure_years", "claims").sum())
    c = PoissonGLM(factors=("sex", "channel"), age="linear").fit(collapsed)
    np.testing.assert_allclose(c.coef_, a.coef_, atol=1e-10)


def test_defaults_errors_and_summary(capsys) -> None:
    cells, _ = planted_cells(7)
    m = PoissonGLM().fit(cells)  # factors = all keys except period/age/duration; spline age
    assert m.columns_ == ["sex", "city_tier", "channel", "age"]
    assert m.feature_names_[:2] == ["sex[M]", "city_tier[2]"]
    assert m.summary.columns == ["term", "coef", "se", "z", "p", "lower", "upper", "exp_coef"]
    m.print_summary()
    assert "channel[subsidy]" in capsys.readouterr().out
    with pytest.raises(ModelError):
        PoissonGLM().predict(cells)
    with pytest.raises(DataError, match="channel"):
        m.predict(cells.with_columns(pl.lit("tv").alias("channel")))
    with pytest.raises(ConfigError, match="region"):
        PoissonGLM(factors=("region",)).fit(cells)
    with pytest.raises(ConfigError, match="interactions"):
        PoissonGLM(factors=("sex",), interactions=(("sex", "channel"),)).fit(cells)
    with pytest.raises(ConfigError, match="age"):
        PoissonGLM(age="cubic").fit(cells)
    with pytest.raises(DataError, match="no claims"):
        PoissonGLM().fit(cells.with_columns(pl.lit(0).cast(pl.Int64).alias("claims")))
    r = PoissonGLM(factors=("channel",), age=None, reference={"channel": "organic"}).fit(cells)
    assert r.feature_names_ == ["channel[employer]", "channel[referral]", "channel[subsidy]"]
    assert m.score(cells) > 0 and m.score(cells) < PoissonGLM(factors=(), age=None).fit(cells).score(cells)
    assert m.spec_["age"]["kind"] == "spline"
    no_age = PoissonGLM().fit(cells.group_by("sex", "channel").agg(pl.col("exposure_years", "claims").sum()))
    assert no_age.spec_["age"] is None and no_age.columns_ == ["sex", "channel"]
    few = PoissonGLM().fit(cells.filter(pl.col("age") < 23))
    assert few.spec_["age"]["kind"] == "factor" and few.feature_names_[-2:] == ["age[21]", "age[22]"]
    curve = m.age_curve(sex="M")
    assert curve.height == 40 and np.all(np.diff(curve["rate"].to_numpy()) > -1e-4)


def test_save_load_scores_identically(tmp_path) -> None:
    cells, _ = planted_cells(8)
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline", age_df=7,
                   interactions=(("city_tier", "channel"),)).fit(cells)
    p = m.save(tmp_path / "models" / "ci_glm")
    meta = json.loads((p / "model.json").read_text())
    assert meta["kind"] == "PoissonGLM" and meta["engine_version"] and meta["fit_date"] == dt.date.today().isoformat()
    assert meta["data_fingerprint"] == m.data_fingerprint_ and len(meta["data_fingerprint"]) == 64
    assert meta["params"]["age_df"] == 7 and meta["params"]["interactions"] == [["city_tier", "channel"]]
    assert not list(p.glob("*.pkl")) and not list(p.glob("*.pickle"))
    m2 = PoissonGLM.load(p)
    new, _ = planted_cells(9, ages=range(15, 70))  # includes ages outside the training range
    np.testing.assert_array_equal(m2.predict(new), m.predict(new))
    assert m2.summary.equals(m.summary)
    assert m2.get_params() == {**m.get_params(), "interactions": (("city_tier", "channel"),),
                               "factors": ("sex", "city_tier", "channel")}
    with pytest.raises(ModelError, match="PoissonGBM"):
        PoissonGBM.load(p)


def test_cli_model_loader_finds_glm(tmp_path) -> None:
    from engine.cli.cmd_plans import load_rate_model

    cells, _ = planted_cells(10)
    m = PoissonGLM(factors=("sex",), age="linear").fit(cells)
    m.save(tmp_path / "g")
    np.testing.assert_array_equal(load_rate_model(str(tmp_path / "g")).predict(cells), m.predict(cells))


def _age_oracle(b: dt.date, d: dt.date) -> int:
    """Age last birthday, 29 Feb -> 1 Mar in common years (plain Python)."""
    age = d.year - b.year
    try:
        bd = b.replace(year=d.year)
    except ValueError:  # 29 Feb in a common year
        bd = dt.date(d.year, 3, 1)
    return age - (1 if d < bd else 0)


def test_score_members_attained_age_and_rates() -> None:
    cells, _ = planted_cells(11)
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline").fit(cells)
    births = [dt.date(1980, 2, 29), dt.date(1984, 2, 29), dt.date(1990, 3, 1), dt.date(1970, 12, 31),
              dt.date(1995, 6, 15), dt.date(1988, 2, 28)]
    members = pl.DataFrame({
        "member_id": [f"m{i}" for i in range(6)], "birth_date": births, "sex": ["M", "F", "M", "F", "M", "F"],
        "join_date": [dt.date(2020, 1, 1)] * 5 + [dt.date(2022, 1, 1)],
        "exit_date": [None, None, dt.date(2021, 6, 1), None, None, None], "city_tier": [1, 2, 3, 4, 5, 1],
        "channel": ["organic", "subsidy", "referral", "employer", "organic", "organic"],
    })
    for at in (dt.date(2021, 2, 28), dt.date(2021, 3, 1), dt.date(2024, 2, 29)):
        out = score_members(m, members, at)
        active = [i for i in range(6) if members["join_date"][i] <= at and
                  (members["exit_date"][i] is None or members["exit_date"][i] > at)]
        assert out["member_id"].to_list() == [f"m{i}" for i in active]
        assert out["age"].to_list() == [_age_oracle(births[i], at) for i in active]
        cells_like = out.select("sex", "city_tier", "channel", "age")
        np.testing.assert_array_equal(out["rate"].to_numpy(), m.predict(cells_like))
    assert score_members(m, members, dt.date(2021, 2, 28))["age"][0] == 40  # 29 Feb 1980: not yet 41
    assert score_members(m, members, dt.date(2021, 3, 1))["age"][0] == 41


# ---------------------------------------------------------------- GBM


def test_gbm_fits_predicts_and_is_deterministic() -> None:
    from engine.estimators.metrics import split_cells

    cells, rate = planted_cells(12, total_years=1e7, periods=2)
    train, test = split_cells(cells, 0.3, random_state=1)
    kw = dict(max_iter=80, learning_rate=0.05, min_samples_leaf=40, random_state=3)
    with threadpool_limits(1):
        g = PoissonGBM(**kw).fit(train)
        g2 = PoissonGBM(**kw).fit(train)
    assert g.features_ == ["sex", "city_tier", "channel", "age"] and list(g.levels_) == ["sex", "channel"]
    np.testing.assert_array_equal(g.predict(test), g2.predict(test))
    null = PoissonGLM(factors=(), age=None).fit(train)
    assert g.score(test) < null.score(test)
    pred = g.predict(cells)
    assert np.all(pred > 0) and np.median(np.abs(pred / rate - 1)) < 0.15
    # the methods shared with the GLM (engine.estimators.glm.RateModel), against plain numpy
    e, d = test["exposure_years"].to_numpy(), test["claims"].to_numpy().astype(float)
    mu = g.predict(test) * e
    np.testing.assert_allclose(g.predict_claims(test), mu, rtol=1e-12)
    dev = 2 * (np.where(d > 0, d * np.log(np.where(d > 0, d, 1) / mu), 0.0) - (d - mu))
    assert g.score(test) == pytest.approx(dev.sum() / e.sum(), rel=1e-9)
    with pytest.raises(DataError, match="channel"):
        g.predict(cells.with_columns(pl.lit("tv").alias("channel")))
    with pytest.raises(ModelError):
        PoissonGBM().predict(cells)


def test_gbm_save_load_refits_identically(tmp_path) -> None:
    cells, _ = planted_cells(13)
    with threadpool_limits(1):
        g = PoissonGBM(max_iter=40, categorical=("channel", "sex"), random_state=5).fit(cells)
    p = g.save(tmp_path / "gbm")
    meta = json.loads((p / "model.json").read_text())
    assert meta["kind"] == "PoissonGBM" and "refit" in meta["persistence"]
    assert sorted(f.name for f in p.iterdir()) == ["model.json", "training.parquet"]
    with threadpool_limits(1):
        g2 = PoissonGBM.load(p)
    new, _ = planted_cells(14)
    np.testing.assert_array_equal(g2.predict(new), g.predict(new))
    assert g2.fit_date_ == g.fit_date_ == dt.date.today().isoformat()
    assert g2.data_fingerprint_ == g.data_fingerprint_  # of the cells given to fit, not the stored training cells
    members = pl.DataFrame({"member_id": ["a"], "birth_date": [dt.date(1990, 5, 5)], "sex": ["M"],
                            "join_date": [dt.date(2020, 1, 1)], "exit_date": [None], "city_tier": [3],
                            "channel": ["subsidy"]}, schema_overrides={"exit_date": pl.Date})
    out = g2.predict_members(members, dt.date(2021, 1, 1))
    assert out["age"][0] == 30 and out["rate"][0] == pytest.approx(
        g.predict(pl.DataFrame({"sex": ["M"], "city_tier": [3], "channel": ["subsidy"], "age": [30]}))[0])
    # a tampered training table is refused
    pl.read_parquet(p / "training.parquet").head(5).write_parquet(p / "training.parquet")
    with pytest.raises(ModelError, match="fingerprint"):
        PoissonGBM.load(p)


# ---------------------------------------------------------------- end to end on a synthetic platform


@pytest.mark.slow
def test_end_to_end_synthetic_platform_recovers_planted_groups() -> None:
    """synth -> exposure cells -> incidence A/E and PoissonGLM: planted tier x channel multipliers recovered."""
    from engine.cells._exposure import exposure
    from engine.estimators.crude import incidence
    from engine.synth import generate
    from engine.synth.config import CHANNELS as SYN_CHANNELS
    from engine.synth.config import risk_group_codes

    plat = generate(1_000_000, seed=11, select_factor=1.0, antiselection_channel=None)
    cfg = plat.params["config"]
    level, mult = float(cfg["level"]), np.asarray(cfg["group_multipliers"], float)
    cells = exposure(plat.members, plat.claims, start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31), period="year",
                     waiting_days=int(cfg["waiting_days"]), by=("age", "sex", "city_tier", "channel"))
    assert 5e5 < cells["exposure_years"].sum() and cells["claims"].sum() > 500

    def truth(tier, channel) -> np.ndarray:
        code = np.array([SYN_CHANNELS.index(c) for c in channel])
        return mult[risk_group_codes(np.asarray(tier), code) - 1]

    # crude A/E against the CI2020 basis: true A/E = level x group multiplier
    inc = incidence(cells, by=["city_tier", "channel"])
    t = level * truth(inc["city_tier"].to_numpy(), inc["channel"].to_list())
    inside = (inc["ae_lower"].to_numpy() <= t) & (t <= inc["ae_upper"].to_numpy())
    assert inside.sum() >= 17, inc.with_columns(pl.Series("true_ae", t))  # 20 groups, Garwood >= 95%

    # GLM with the tier x channel interaction: log rate ratios vs (tier 1, employer) inside their 95% intervals
    m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline",
                   interactions=(("city_tier", "channel"),)).fit(cells)
    names = ["intercept", *m.feature_names_]
    hits = total = 0
    for tier in (1, 2, 3, 4, 5):
        for ch in ("employer", "organic", "referral", "subsidy"):
            if tier == 1 and ch == "employer":
                continue
            a = np.zeros(len(names))
            for term in (f"city_tier[{tier}]", f"channel[{ch}]", f"city_tier[{tier}]:channel[{ch}]"):
                if term in names:
                    a[names.index(term)] = 1.0
            est = a @ np.r_[m.intercept_, m.coef_]
            se = np.sqrt(a @ m.cov_ @ a)
            true = np.log(truth([tier], [ch])[0] / truth([1], ["employer"])[0])
            hits += int(abs(est - true) <= 1.96 * se)
            total += 1
    print("e2e coverage", hits, total, int(inside.sum()))
    assert hits >= total - 3, (hits, total)

    # scoring the members at the end date
    scored = score_members(m, plat.members, dt.date(2021, 12, 31))
    assert scored.height > 0 and scored["rate"].min() > 0
    assert scored["age"].max() <= 60


def test_model_plots_and_interval_level() -> None:
    import matplotlib

    matplotlib.use("Agg")
    cells, _ = planted_cells(15)
    m = PoissonGLM(factors=("sex",), age="linear", level=0.9).fit(cells)
    s = m.summary
    from scipy.stats import norm

    np.testing.assert_allclose(s["upper"] - s["coef"], norm.ppf(0.95) * s["se"], rtol=1e-12)
    ax = m.plot_lorenz(cells)
    assert len(ax.get_lines()) == 2
    g = PoissonGBM(max_iter=5).fit(cells)
    assert len(g.plot_lorenz(cells).get_lines()) == 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_random_designs_match_statsmodels() -> None:
    """Random small grids (levels, ages, exposures, interaction on/off) agree with statsmodels to 1e-6."""
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, 10**6), st.integers(2, 4), st.integers(2, 3), st.booleans(), st.sampled_from(["spline", "linear", "factor"]))
    def check(seed, n_a, n_b, inter, age):
        rng = np.random.default_rng(seed)
        grid = pl.DataFrame({"a": [f"a{i}" for i in range(n_a)]}).join(pl.DataFrame({"b": list(range(n_b))}), how="cross")
        grid = grid.join(pl.DataFrame({"age": list(range(30, 42))}, schema={"age": pl.Int32}), how="cross")
        e = rng.gamma(2.0, 5000.0, grid.height)
        lam = 1e-3 * np.exp(rng.normal(0, 0.3, grid.height))
        cells = grid.with_columns(pl.Series("exposure_years", e), pl.Series("claims", rng.poisson(lam * e)))
        m = PoissonGLM(factors=("a", "b"), age=age, age_df=4, interactions=(("a", "b"),) if inter else ()).fit(cells)
        assume(m.converged_ and np.all(m.summary["se"].to_numpy() < 5))
        ref = _statsmodels(cells, m)
        np.testing.assert_allclose(np.r_[m.intercept_, m.coef_], ref.params, atol=1e-6, rtol=0)
        np.testing.assert_allclose(m.summary["se"].to_numpy(), ref.bse, rtol=1e-5)

    check()


def test_gbm_refuses_more_than_255_levels_naming_the_limit() -> None:
    """HistGradientBoostingRegressor takes at most 255 categories: the refusal says so."""
    cells = pl.DataFrame({"code": [f"c{i:03d}" for i in range(256)], "exposure_years": [1.0] * 256,
                          "claims": [1] * 256})
    with pytest.raises(ConfigError, match="categorical: 'code' has 256 levels; at most 255 are supported"):
        PoissonGBM(features=("code",)).fit(cells)
