"""PoissonGLM vs statsmodels fed a design built independently of the engine (patsy formulas on pandas).

The engine's own design matrix is never used here: treatment coding, reference levels, the
centring of a linear age, the B-spline basis (patsy's ``bs`` with the documented uniform
interior knots) and interaction columns all come from patsy, and terms are matched by name.
statsmodels fits the raw cells (Poisson sufficient statistics: the same MLE and information
as the engine's aggregated cells).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

import engine

CHANNELS = ["employer", "organic", "referral", "subsidy"]


def _cells(seed: int) -> pl.DataFrame:
    """Two periods of cells age x sex x city_tier x channel, log-linear rates ~1e-3, Poisson claims."""
    rng = np.random.default_rng(seed)
    rows = [(p, a, s, t, c) for p in (1, 2) for a in range(20, 60) for s in "FM" for t in range(1, 6) for c in CHANNELS]
    df = pl.DataFrame(rows, schema=["period", "age", "sex", "city_tier", "channel"], orient="row")
    eta = (np.log(6e-4) + 0.045 * (df["age"].to_numpy() - 40) + 0.15 * (df["sex"].to_numpy() == "M")
           + 0.1 * df["city_tier"].to_numpy() + np.select([df["channel"].to_numpy() == c for c in CHANNELS],
                                                          [0.0, 0.2, -0.1, 0.5]))
    e = rng.gamma(4.0, 1.0, df.height)
    e = e / e.sum() * 2e6
    return df.with_columns(pl.Series("exposure_years", e), pl.Series("claims", rng.poisson(np.exp(eta) * e)))


def _engine_name(patsy_name: str) -> str:
    """'C(city_tier, Treatment(1))[T.2]:C(channel)[T.organic]' -> 'city_tier[2]:channel[organic]'."""
    out = re.sub(r"C\((\w+)[^)]*\)?\)\[T\.([^\]]+)\]", r"\1[\2]", patsy_name)
    out = re.sub(r"bs\(age.*\)\[(\d+)\]$", lambda m: f"age_bs{int(m.group(1)) + 1}", out)
    return {"Intercept": "intercept", "age_c": "age"}.get(out, out)


def _statsmodels(cells: pl.DataFrame, formula: str):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    df = cells.to_pandas()
    df["age_c"] = df["age"] - df["age"].mean()  # the documented centring: mean age of the training cells
    df["log_e"] = np.log(df["exposure_years"])
    with threadpool_limits(1):  # small lstsq calls: BLAS threads only contend on a shared machine
        return smf.glm(formula, data=df, family=sm.families.Poisson(), offset=df["log_e"]).fit(tol=1e-13, maxiter=200)


SPLINE = "bs(age, knots=({k}), degree=3, lower_bound=20, upper_bound=59, include_intercept=False)"
CASES = {
    "linear age": (dict(factors=("sex", "city_tier", "channel"), age="linear"),
                   "claims ~ C(sex, Treatment('F')) + C(city_tier, Treatment(1)) + C(channel) + age_c"),
    "age factor": (dict(factors=("sex", "channel"), age="factor"), "claims ~ C(sex) + C(channel) + C(age)"),
    "interaction, reference level": (
        dict(factors=("city_tier", "channel"), age="linear", interactions=(("city_tier", "channel"),),
             reference={"channel": "subsidy"}),
        "claims ~ C(city_tier) + C(channel, Treatment('subsidy')) + age_c"
        " + C(city_tier):C(channel, Treatment('subsidy'))"),
    # age_df = 6: 6 - 3 = 3 uniform interior knots on [20, 59] (domain of the engine's spline); the
    # default places knots at claims quantiles, so the oracle asks for the uniform placement it rebuilds
    "spline age": (dict(factors=("sex",), age="spline", age_df=6, age_knots="uniform"),
                   "claims ~ C(sex) + " + SPLINE.format(k=", ".join(str(20 + 39 * j / 4) for j in (1, 2, 3)))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_glm_equals_statsmodels_on_an_independent_design(case: str) -> None:
    kwargs, formula = CASES[case]
    cells = _cells(11)
    m = engine.PoissonGLM(**kwargs).fit(cells)
    ref = _statsmodels(cells, formula)
    names = [_engine_name(n) for n in ref.params.index]
    s = m.summary
    assert sorted(names) == sorted(s["term"].to_list())  # same columns, no extra or missing level
    got = {r["term"]: r for r in s.iter_rows(named=True)}
    lo, hi = ref.conf_int(0.05).T.to_numpy()
    for j, n in enumerate(names):
        assert got[n]["coef"] == pytest.approx(ref.params.iloc[j], abs=1e-6), n
        assert got[n]["se"] == pytest.approx(ref.bse.iloc[j], rel=1e-6), n
        assert got[n]["lower"] == pytest.approx(lo[j], abs=1e-6), n
        assert got[n]["upper"] == pytest.approx(hi[j], abs=1e-6), n
    # aggregated vs raw cells: the deviance differs, the log-likelihood up to the multinomial constant; the
    # predicted claims of every raw cell do not
    np.testing.assert_allclose(m.predict_claims(cells), ref.fittedvalues.to_numpy(), rtol=1e-6)


def test_name_mapping_of_the_oracle() -> None:
    """The name mapping is part of the oracle: check it on each patsy form used above."""
    assert _engine_name("C(sex, Treatment('F'))[T.M]") == "sex[M]"
    assert _engine_name("C(city_tier)[T.3]:C(channel, Treatment('subsidy'))[T.organic]") == "city_tier[3]:channel[organic]"
    assert _engine_name("C(age)[T.21]") == "age[21]"
    assert _engine_name(SPLINE.format(k="29.75, 39.5, 49.25") + "[0]") == "age_bs1"
    assert _engine_name("Intercept") == "intercept" and _engine_name("age_c") == "age"
