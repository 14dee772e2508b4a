"""PoissonGLM robustness: an infinite MLE is reported (warning, converged_=False), sparse young ages do not break
the age spline (knots at claims quantiles)."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from engine.estimators.features import design_matrix, quantile_knots
from engine.estimators.glm import PoissonGLM, aggregate_cells
from engine.estimators._glm_checks import divergence, separated_direction


def _tier_channel(zero: tuple[str, str] | None = ("3", "c"), seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in ("1", "2", "3"):
        for c in ("a", "b", "c"):
            d = 0 if (t, c) == zero else int(rng.poisson(40.0)) + 1
            rows.append((t, c, 4e4, d))
    return pl.DataFrame(rows, schema=["city_tier", "channel", "exposure_years", "claims"], orient="row")


def _loglik(X, d, e, b):
    eta = X @ b + np.log(e)
    return float(np.sum(d * eta - np.exp(eta)))


def test_zero_claim_combination_warns_and_is_not_converged() -> None:
    cells = _tier_channel()
    kw = dict(factors=("city_tier", "channel"), age=None, interactions=(("city_tier", "channel"),))
    with pytest.warns(RuntimeWarning, match=r"MLE does not exist.*city_tier\[3\]:channel\[c\].*alpha > 0"):
        m = PoissonGLM(**kw).fit(cells)
    assert m.converged_ is False
    # the step test alone is fooled (a huge tol "converges" at once): the existence check still says no
    with pytest.warns(RuntimeWarning, match="MLE does not exist"):
        m2 = PoissonGLM(tol=5.0, **kw).fit(cells)
    assert m2.converged_ is False and m2.n_iter_ <= 2
    # the remedy: a ridge makes the penalised MLE finite, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m3 = PoissonGLM(alpha=1e-4, **kw).fit(cells)
    assert m3.converged_ and np.all(np.abs(m3.coef_) < 10)
    # without the empty combination the same model converges silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PoissonGLM(**kw).fit(_tier_channel(zero=None)).converged_


def test_separating_direction_raises_the_likelihood_without_bound() -> None:
    """Independent oracle: along the LP's direction the log-likelihood increases monotonically."""
    cells = _tier_channel()
    m = PoissonGLM(factors=("city_tier", "channel"), age=None, interactions=(("city_tier", "channel"),),
                   max_iter=3)
    with pytest.warns(RuntimeWarning):
        m.fit(cells)
    agg = aggregate_cells(cells, m.columns_, "exposure_years", "claims")
    Xf, _ = design_matrix(agg, m.spec_)
    X = np.hstack([np.ones((agg.height, 1)), Xf])
    d, e = agg["claims"].to_numpy().astype(float), agg["exposure_years"].to_numpy()
    v = separated_direction(X, d, np.ones(X.shape[1], bool))
    assert v is not None
    assert np.all(X[d > 0] @ v == pytest.approx(0.0, abs=1e-9)) and np.all(X[d == 0] @ v < 0)
    b0 = np.r_[np.log(d.sum() / e.sum()), np.zeros(X.shape[1] - 1)]
    ll = [_loglik(X, d, e, b0 + s * v) for s in (0, 1, 5, 20, 50)]
    assert np.all(np.diff(ll) > 0)
    # a fit with claims everywhere has a finite MLE: no direction; penalised columns are held at 0
    ok = _tier_channel(zero=None)
    agg2 = aggregate_cells(ok, m.columns_, "exposure_years", "claims")
    X2 = np.hstack([np.ones((agg2.height, 1)), design_matrix(agg2, m.spec_)[0]])
    assert separated_direction(X2, agg2["claims"].to_numpy(), np.ones(X2.shape[1], bool)) is None
    free = np.zeros(X.shape[1], bool)
    free[0] = True
    assert separated_direction(X, d, free) is None


def test_numerically_zero_fitted_rate_is_divergence() -> None:
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    d, e = np.array([10.0, 1.0]), np.array([1e4, 1e4])
    assert divergence(X, d, e, np.array([np.log(1e-3), 0.1]), np.ones(2, bool), ["intercept", "x"]) is None
    msg = divergence(X, d, e, np.array([np.log(1e-3), -38.3]), np.ones(2, bool), ["intercept", "x"])
    assert msg is not None and "numerically 0" in msg


def test_quantile_knots_closed_form() -> None:
    # age 2 spreads 4 over [1.5, 2.5], age 3 spreads 4 over [2.5, 3] (clipped): the median is 2.5
    assert quantile_knots(np.array([0, 1, 2, 3]), np.array([0, 0, 4, 4]), df=4) == [0, 0, 0, 0, 2.5, 3, 3, 3, 3]
    # uniform weights on ages 0..9 (edges -0.5.. clipped to [0, 9]): terciles of F on [0, 9]
    k = quantile_knots(np.arange(10), np.ones(10), df=5)[4:6]
    # F(x) = x + 0.5 for x in [0.5, 8.5] (first age carries 0.5 on [0, 0.5]); F = 10/3 at x = 2.8333
    np.testing.assert_allclose(k, [10 / 3 - 0.5, 20 / 3 - 0.5])


def _sparse_young(seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Ages 0..59, few young members and no claims before 15 (the 10^5-member case with 142 claims)."""
    rng = np.random.default_rng(seed)
    ages = np.arange(60)
    e = np.where(ages < 18, 200.0, 2000.0)
    rate = 1e-3 * np.exp(0.07 * (ages - 40))
    d = rng.poisson(rate * e)
    d[ages < 15] = 0
    return pl.DataFrame({"age": ages.astype(np.int32), "exposure_years": e, "claims": d}), rate


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spline_on_sparse_young_ages(seed: int) -> None:
    cells, rate = _sparse_young(seed)
    with pytest.warns(RuntimeWarning, match="MLE does not exist"):
        uni = PoissonGLM(factors=(), age="spline", age_knots="uniform").fit(cells)
    assert not uni.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = PoissonGLM(factors=(), age="spline").fit(cells)  # default: knots at claims quantiles
    assert m.converged_ and m.spec_["age"]["placement"] == "claims"
    assert np.all(np.isfinite(m.summary["se"].to_numpy())) and np.all(np.abs(m.coef_) < 15)
    curve = m.age_curve(ages=range(30, 60))["rate"].to_numpy()
    np.testing.assert_allclose(curve, rate[30:60], rtol=0.6)
    # exposure-quantile knots are available too, but a span may still hold almost no claims (a warning then)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ex = PoissonGLM(factors=(), age="spline", age_knots="exposure").fit(cells)
    assert ex.spec_["age"]["placement"] == "exposure"


@pytest.mark.slow
def test_readme_glm_on_a_small_platform_with_few_claims() -> None:
    """The issue's case: a 10^5-member synthetic platform, ~140 claims, the README's GLM (sex, tier, channel, age
    spline). Uniform knots leave the spline over ages 0-15 without claims (no MLE); claims-quantile knots fit."""
    import datetime as dt

    import engine

    plat = engine.synth.generate(100_000, seed=3)
    v = engine.validate(plat.members, plat.claims)
    cells = engine.exposure(v.members, v.claims, start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31),
                            period="year", by=("age", "sex", "city_tier", "channel"))
    assert 100 < cells["claims"].sum() < 200
    with pytest.warns(RuntimeWarning, match="not converged"):
        uni = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline", age_knots="uniform").fit(cells)
    assert not uni.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = PoissonGLM(factors=("sex", "city_tier", "channel"), age="spline").fit(cells)
    assert m.converged_ and np.all(np.isfinite(m.summary["se"].to_numpy()))
    curve = m.age_curve(ages=[25, 35, 45, 55])["rate"].to_numpy()
    assert np.all(np.diff(curve) > 0)  # incidence rises with age, as the CI2020 shape planted in synth
