"""Tests of engine.estimators.credibility against R actuar's published Hachemeister output,
an independent plain-loop oracle, and closed forms."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.estimators.credibility import (
    BuhlmannStraub,
    credibility_blend,
    full_standard,
    limited_fluctuation,
    limited_fluctuation_table,
)
from engine.errors import ConfigError, DataError, ModelError
from tests.kits.cli_error import error_line

# Hachemeister (1975) as in R actuar `data(hachemeister)`: average bodily-injury
# claim amounts (ratio.1..12) and claim numbers (weight.1..12), 5 states x 12 quarters.
RATIOS = [
    [1738, 1642, 1794, 2051, 2079, 2234, 2032, 2035, 2115, 2262, 2267, 2517],
    [1364, 1408, 1597, 1444, 1342, 1675, 1470, 1448, 1464, 1831, 1612, 1471],
    [1759, 1685, 1479, 1763, 1674, 2103, 1502, 1622, 1828, 2155, 2233, 2059],
    [1223, 1146, 1010, 1257, 1426, 1532, 1953, 1123, 1343, 1243, 1762, 1306],
    [1456, 1499, 1609, 1741, 1482, 1572, 1606, 1735, 1607, 1573, 1613, 1690],
]
WEIGHTS = [
    [7861, 9251, 8706, 8575, 7917, 8263, 9456, 8003, 7365, 7832, 7849, 9077],
    [1622, 1742, 1523, 1515, 1622, 1602, 1964, 1515, 1527, 1748, 1654, 1861],
    [1147, 1357, 1329, 1204, 998, 1077, 1277, 1218, 896, 1003, 1108, 1121],
    [407, 396, 348, 341, 315, 328, 352, 331, 287, 384, 321, 342],
    [2902, 3172, 3046, 3068, 2693, 2910, 3275, 2697, 2663, 3017, 3242, 3425],
]


def hachemeister() -> pl.DataFrame:
    rows = [
        {"state": s + 1, "period": j + 1, "ratio": float(RATIOS[s][j]), "weight": float(WEIGHTS[s][j])}
        for s in range(5)
        for j in range(12)
    ]
    return pl.DataFrame(rows)


def bs_oracle(x: list[list[float]], w: list[list[float]]) -> dict[str, object]:
    """Plain-loop Bühlmann-Straub (unbiased estimators), written independently."""
    groups = [(xi, wi) for xi, wi in zip(x, w) if sum(wi) > 0]
    w_i, xb_i, ss, dof = [], [], 0.0, 0
    for xi, wi in groups:
        tot = sum(wi)
        xb = sum(a * b for a, b in zip(xi, wi)) / tot
        w_i.append(tot)
        xb_i.append(xb)
        n_i = 0
        for a, b in zip(xi, wi):
            if b > 0:
                ss += b * (a - xb) ** 2
                n_i += 1
        dof += n_i - 1
    s2 = ss / dof
    W = sum(w_i)
    xw = sum(a * b for a, b in zip(xb_i, w_i)) / W
    between = sum(b * (a - xw) ** 2 for a, b in zip(xb_i, w_i))
    a = (between - (len(groups) - 1) * s2) / (W - sum(b * b for b in w_i) / W)
    a = max(a, 0.0)
    if a == 0:
        z = [0.0] * len(groups)
        m = xw
    else:
        z = [b / (b + s2 / a) for b in w_i]
        m = sum(zz * xx for zz, xx in zip(z, xb_i)) / sum(z)
    return {"s2": s2, "a": a, "z": z, "m": m, "xbar": xb_i, "w": w_i,
            "cred": [zz * xx + (1 - zz) * m for zz, xx in zip(z, xb_i)]}


@pytest.fixture(scope="module")
def hache_fit() -> BuhlmannStraub:
    return BuhlmannStraub(group="state", period="period", rate="ratio", exposure_col="weight").fit(hachemeister())


def test_hachemeister_published_actuar_values(hache_fit: BuhlmannStraub) -> None:
    """Values printed by R actuar for cm() on hachemeister (tests/ and vignette output):
    state weights 100155, 19895, 13735, 4152, 36110; individual means 2060.921,
    1511.224, 1805.843, 1352.976, 1599.829; within-state variance 139120026."""
    s = hache_fit.summary.sort("state")
    assert s.get_column("exposure_years").to_list() == [100155, 19895, 13735, 4152, 36110]
    np.testing.assert_allclose(
        s.get_column("rate").to_numpy(), [2060.921, 1511.224, 1805.843, 1352.976, 1599.829], atol=5e-4
    )
    assert round(hache_fit.s2_) == 139120026


def test_hachemeister_structure_against_plain_loop(hache_fit: BuhlmannStraub) -> None:
    o = bs_oracle([[float(v) for v in r] for r in RATIOS], [[float(v) for v in r] for r in WEIGHTS])
    assert hache_fit.s2_ == pytest.approx(o["s2"], rel=1e-12)
    assert hache_fit.a_ == pytest.approx(o["a"], rel=1e-10)
    assert hache_fit.collective_ == pytest.approx(o["m"], rel=1e-12)
    s = hache_fit.summary.sort("state")
    np.testing.assert_allclose(s.get_column("Z").to_numpy(), o["z"], rtol=1e-10)
    np.testing.assert_allclose(s.get_column("credibility_rate").to_numpy(), o["cred"], rtol=1e-10)


def test_hachemeister_buhlmann_straub_printed_by_actuar_vignette(hache_fit: BuhlmannStraub) -> None:
    """R actuar, vignette "credibility" (Dutang, Goulet, Milhaud, Pigeon, "Credibility theory
    features of actuar"), section on the Bühlmann-Straub model, run with ``options(digits = 4)``::

        > fit <- cm(~state, hachemeister, ratios = ratio.1:ratio.12, weights = weight.1:weight.12)
        Collective premium: 1684
        Between state variance: 89639
        Within state variance: 139120026
        > predict(fit)
        [1] 2055 1524 1793 1443 1603

    The expected numbers are the printed ones (4 significant digits; the variances print in
    full), not values computed by this code."""
    assert round(hache_fit.collective_) == 1684
    assert round(hache_fit.a_) == 89639
    assert round(hache_fit.s2_) == 139120026
    cred = hache_fit.summary.sort("state").get_column("credibility_rate").to_numpy()
    assert [round(float(v)) for v in cred] == [2055, 1524, 1793, 1443, 1603]
    # transform() on the original data attaches the same premiums by state
    p = hache_fit.transform(hachemeister()).group_by("state").agg(pl.col("credibility_rate").first()).sort("state")
    assert [round(float(v)) for v in p.get_column("credibility_rate")] == [2055, 1524, 1793, 1443, 1603]


def test_hachemeister_buhlmann_unit_weights_as_printed_by_actuar() -> None:
    """``cm(~state, hachemeister, ratios = ratio.1:ratio.12)`` (no weights: the Bühlmann model,
    every weight 1) prints, at actuar's default digits: collective premium 1671.017, between
    state variance 72310.02, within state variance 46040.47 (output as transcribed in a public
    notebook that reproduces actuar's cm(); checked here to the printed digits)."""
    df = hachemeister().with_columns(pl.lit(1.0).alias("unit"))
    fit = BuhlmannStraub(group="state", period="period", rate="ratio", exposure_col="unit").fit(df)
    assert fit.collective_ == pytest.approx(1671.017, abs=5e-4)
    assert fit.a_ == pytest.approx(72310.02, abs=5e-3)
    assert fit.s2_ == pytest.approx(46040.47, abs=5e-3)
    # equal weights: the collective is the plain mean of the 60 ratios (closed form)
    assert fit.collective_ == pytest.approx(float(np.mean(RATIOS)), rel=1e-12)


def test_claims_route_equals_rate_route() -> None:
    df = hachemeister().with_columns((pl.col("ratio") * pl.col("weight")).alias("claims"))
    a = BuhlmannStraub(group="state", rate="ratio", exposure_col="weight").fit(df)
    b = BuhlmannStraub(group="state", claims_col="claims", exposure_col="weight").fit(df)
    assert a.a_ == pytest.approx(b.a_, rel=1e-12)
    assert a.collective_ == pytest.approx(b.collective_, rel=1e-12)


def test_cells_with_extra_keys_are_summed() -> None:
    df = hachemeister().with_columns((pl.col("ratio") * pl.col("weight")).alias("claims"))
    # split every (state, period) cell into two sexes; the fit must not change
    half = df.with_columns((pl.col("claims") * 0.3).alias("claims"), (pl.col("weight") * 0.3).alias("weight"),
                           pl.lit("M").alias("sex"))
    rest = df.with_columns((pl.col("claims") * 0.7).alias("claims"), (pl.col("weight") * 0.7).alias("weight"),
                           pl.lit("F").alias("sex"))
    a = BuhlmannStraub(group="state", exposure_col="weight").fit(df)
    b = BuhlmannStraub(group="state", exposure_col="weight").fit(pl.concat([half, rest]))
    assert b.s2_ == pytest.approx(a.s2_, rel=1e-9)
    assert b.a_ == pytest.approx(a.a_, rel=1e-9)


def test_one_period_groups_and_zero_exposure_cells() -> None:
    rng = np.random.default_rng(3)
    rows = []
    x, w = [], []
    for g in range(6):
        nper = 1 if g in (0, 1) else 5
        xs, ws = [], []
        for j in range(6):
            e = float(rng.uniform(50, 500)) if j < nper else 0.0
            c = int(rng.poisson(e * 0.02 * (1 + 0.3 * g))) if e > 0 else 0
            rows.append({"group": f"g{g}", "period": j, "claims": c, "exposure_years": e})
            xs.append(c / e if e > 0 else 0.0)
            ws.append(e)
        x.append(xs)
        w.append(ws)
    rows.append({"group": "empty", "period": 0, "claims": 0, "exposure_years": 0.0})
    fit = BuhlmannStraub().fit(pl.DataFrame(rows))
    o = bs_oracle(x, w)
    assert fit.s2_ == pytest.approx(o["s2"], rel=1e-10)
    assert fit.a_ == pytest.approx(o["a"], rel=1e-10, abs=1e-15)
    s = fit.summary.filter(pl.col("group") == "empty")
    assert s.get_column("Z").item() == 0.0
    assert s.get_column("credibility_rate").item() == pytest.approx(fit.collective_)


def test_a_floored_gives_z_zero_and_weighted_mean() -> None:
    # identical rates in every group -> between variance negative -> floored at 0
    rows = []
    for g, e in enumerate([100.0, 300.0, 50.0]):
        for j, c in enumerate([1, 3, 2]):
            rows.append({"group": g, "period": j, "claims": c * (g + 1), "exposure_years": 100.0 * (g + 1)})
    df = pl.DataFrame(rows)
    fit = BuhlmannStraub().fit(df)
    assert fit.a_unfloored_ < 0
    assert fit.a_ == 0.0 and math.isinf(fit.k_)
    assert (fit.summary.get_column("Z") == 0.0).all()
    tot = df.get_column("claims").sum() / df.get_column("exposure_years").sum()
    assert fit.collective_ == pytest.approx(tot)
    np.testing.assert_allclose(fit.summary.get_column("credibility_rate").to_numpy(), tot)


def test_equal_group_sizes_collective_is_weighted_mean() -> None:
    # every group has the same total exposure -> equal Z -> m = exposure-weighted mean
    rng = np.random.default_rng(1)
    rows = []
    for g in range(5):
        for j in range(4):
            rows.append({"group": g, "period": j, "exposure_years": 250.0,
                         "claims": int(rng.poisson(250 * 0.01 * (1 + g)))})
    df = pl.DataFrame(rows)
    fit = BuhlmannStraub().fit(df)
    assert fit.a_ > 0
    z = fit.summary.get_column("Z").to_numpy()
    np.testing.assert_allclose(z, z[0])
    assert fit.collective_ == pytest.approx(df["claims"].sum() / df["exposure_years"].sum(), rel=1e-12)


def test_poisson_within_and_complements() -> None:
    df = hachemeister().with_columns(
        (pl.col("ratio") / 1e5 * pl.col("weight")).alias("claims"),  # rates ~0.02
        (pl.col("weight") * 0.018).alias("expected"),
    )
    fit = BuhlmannStraub(group="state", exposure_col="weight", within="poisson").fit(df)
    xw = df["claims"].sum() / df["weight"].sum()
    assert fit.s2_ == pytest.approx(xw, rel=1e-12)
    ref = BuhlmannStraub(group="state", exposure_col="weight", complement="reference").fit(df)
    np.testing.assert_allclose(ref.summary["complement"].to_numpy(), 0.018)
    z = ref.summary["Z"].to_numpy()
    np.testing.assert_allclose(ref.summary["credibility_rate"].to_numpy(),
                               z * ref.summary["rate"].to_numpy() + (1 - z) * 0.018)
    fixed = BuhlmannStraub(group="state", exposure_col="weight", complement=0.5).fit(df)
    assert (fixed.summary["complement"] == 0.5).all()
    pred = fit.transform(pl.DataFrame({"state": [1, 99]}))
    assert pred["Z"][1] == 0.0 and pred["credibility_rate"][1] == pytest.approx(fit.collective_)


def _bs_oracle(w: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Bühlmann-Straub s2 and a (unfloored) from domain.md section 3, by loops: w, x are groups x periods."""
    n_groups, n_periods = w.shape
    w_i = [sum(w[i]) for i in range(n_groups)]
    xbar_i = [sum(w[i, j] * x[i, j] for j in range(n_periods)) / w_i[i] for i in range(n_groups)]
    tot = sum(w_i)
    xbar_w = sum(wi * xi for wi, xi in zip(w_i, xbar_i)) / tot
    s2 = sum(w[i, j] * (x[i, j] - xbar_i[i]) ** 2 for i in range(n_groups) for j in range(n_periods)) \
        / (n_groups * (n_periods - 1))
    a = (sum(wi * (xi - xbar_w) ** 2 for wi, xi in zip(w_i, xbar_i)) - (n_groups - 1) * s2) \
        / (tot - sum(wi**2 for wi in w_i) / tot)
    return s2, a


@settings(max_examples=40, deadline=None)
@given(
    exposures=st.lists(st.floats(1.0, 1e5), min_size=3, max_size=8),
    seed=st.integers(0, 10_000),
)
def test_z_in_unit_interval_and_monotone_in_exposure(exposures: list[float], seed: int) -> None:
    """With a positive between-group variance, Z_i = w_i / (w_i + s2 / a) exactly, in [0, 1], rising with w_i."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.005, 0.05, len(exposures))  # one true rate per group: between-group variance
    w = np.array([[e / 3] * 3 for e in exposures])
    claims = rng.poisson(w * rates[:, None])
    rows = [{"group": g, "period": j, "exposure_years": w[g, j], "claims": int(claims[g, j])}
            for g in range(len(exposures)) for j in range(3)]
    s2, a = _bs_oracle(w, claims / w)
    assume(a > 1e-9 * max(s2, 1e-300))  # the interesting case; a <= 0 (Z = 0) is tested below
    fit = BuhlmannStraub().fit(pl.DataFrame(rows))
    assert fit.s2_ == pytest.approx(s2, rel=1e-9) and fit.a_ == pytest.approx(a, rel=1e-9)
    s = fit.summary.sort("group")
    w_i = w.sum(axis=1)
    np.testing.assert_allclose(s["Z"].to_numpy(), w_i / (w_i + s2 / a), rtol=1e-9)
    assert fit.k_ == pytest.approx(s2 / a, rel=1e-9)
    np.testing.assert_allclose(s["Z"].to_numpy(), w_i / (w_i + fit.k_), rtol=1e-14)  # Z = w / (w + k) exactly
    s = s.sort("exposure_years")
    z = s["Z"].to_numpy()
    assert ((z > 0) & (z < 1)).all()
    assert (np.diff(z) >= -1e-12).all()  # Z rises with exposure


def test_z_is_zero_without_between_group_variance() -> None:
    """Identical group rates and no within-group spread: a <= 0 is floored, Z = 0, rate = collective."""
    rows = [{"group": g, "period": j, "exposure_years": 100.0 * (g + 1), "claims": (g + 1) * (1 + j % 2)}
            for g in range(3) for j in range(2)]
    s2, a = _bs_oracle(np.array([[100.0 * (g + 1)] * 2 for g in range(3)]),
                       np.array([[(1 + j % 2) / 100.0 for j in range(2)] for _ in range(3)]))
    assert s2 > 0 and a < 0
    fit = BuhlmannStraub().fit(pl.DataFrame(rows))
    assert fit.a_ == 0.0 and fit.a_unfloored_ == pytest.approx(a, rel=1e-9) and math.isinf(fit.k_)
    assert (fit.summary["Z"] == 0.0).all()
    np.testing.assert_allclose(fit.summary["credibility_rate"].to_numpy(), 0.015)


def test_errors() -> None:
    df = hachemeister()
    with pytest.raises(DataError, match="claims"):
        BuhlmannStraub(group="state", exposure_col="weight").fit(df)
    with pytest.raises(ConfigError, match="within"):
        BuhlmannStraub(group="state", exposure_col="weight", rate="ratio", within="x").fit(df)
    with pytest.raises(ModelError, match="at least 2"):
        BuhlmannStraub(group="state", exposure_col="weight", rate="ratio").fit(df.filter(pl.col("state") == 1))
    with pytest.raises(ModelError, match="not fitted"):
        _ = BuhlmannStraub().summary


def test_fit_refuses_bad_input_naming_the_rule() -> None:
    """Found by mutation testing: each input rule of BuhlmannStraub.fit, with the message naming it."""
    df = hachemeister().with_columns((pl.col("ratio") * pl.col("weight")).alias("claims"))
    bs = {"group": "state", "exposure_col": "weight"}
    with pytest.raises(DataError, match="^BuhlmannStraub.fit: cells: pass a collected polars DataFrame, not a LazyFrame$"):
        BuhlmannStraub(**bs).fit(df.lazy())
    for bad in (True, "median", None):
        with pytest.raises(ConfigError, match="^complement: must be 'collective', 'reference' or a number, got"):
            BuhlmannStraub(**bs, complement=bad).fit(df)
    for bad in (-0.01, math.inf, math.nan):
        with pytest.raises(ConfigError, match="^complement: a fixed complement rate must be finite and >= 0, got"):
            BuhlmannStraub(**bs, complement=bad).fit(df)
    assert BuhlmannStraub(**bs, complement=0).fit(df).summary["complement"].to_list() == [0.0] * 5
    with pytest.raises(ConfigError, match="^group: expected a column name or a non-empty list of column names, got"):
        BuhlmannStraub(group=[], exposure_col="weight").fit(df)
    with pytest.raises(ConfigError, match="^period: 'period' is also a group column$"):
        BuhlmannStraub(group=["state", "period"], exposure_col="weight").fit(df)
    with pytest.raises(DataError, match=r"^BuhlmannStraub.fit: cells lack column\(s\) \['expected'\]"):
        BuhlmannStraub(**bs, complement="reference").fit(df)
    with pytest.raises(DataError, match="^BuhlmannStraub.fit: column 'expected' has negative values$"):
        BuhlmannStraub(**bs, complement="reference").fit(df.with_columns(expected=-pl.col("weight")))
    with pytest.raises(DataError, match=r"^BuhlmannStraub.fit: column 'claims' has 1 null value\(s\)$"):
        one_null = pl.when((pl.col("period") == 3) & (pl.col("state") == 2)).then(None).otherwise(pl.col("claims"))
        BuhlmannStraub(**bs).fit(df.with_columns(claims=one_null))
    with pytest.raises(DataError, match="^BuhlmannStraub.fit: column 'weight' has negative values$"):
        BuhlmannStraub(**bs).fit(df.with_columns(weight=-pl.col("weight")))
    with pytest.raises(DataError, match="^BuhlmannStraub.fit: column 'claims' must be numeric, got String$"):
        BuhlmannStraub(**bs).fit(df.with_columns(pl.col("claims").cast(pl.String)))


def test_print_summary_runs(hache_fit: BuhlmannStraub, capsys: pytest.CaptureFixture[str]) -> None:
    hache_fit.print_summary()
    assert "collective" in capsys.readouterr().out


def test_empirical_within_needs_one_group_with_two_periods() -> None:
    """Found by mutation testing: sum_i (n_i - 1) = 1 is enough (one group with two periods); 0 is refused by name."""
    x = [[0.02, 0.05], [0.01, 0.0], [0.04, 0.0]]
    w = [[300.0, 200.0], [400.0, 0.0], [250.0, 0.0]]  # periods with exposure: 2, 1, 1 -> dof = 1
    rows = [{"group": g, "period": j, "exposure_years": w[g][j], "claims": x[g][j] * w[g][j]}
            for g in range(3) for j in range(2)]
    fit = BuhlmannStraub().fit(pl.DataFrame(rows))
    o = bs_oracle(x, w)
    assert fit.s2_ == pytest.approx(o["s2"], rel=1e-12)  # 300 x 0.012^2 + 200 x 0.018^2 over 1
    assert fit.s2_ == pytest.approx(300 * 0.012**2 + 200 * 0.018**2, rel=1e-12)
    one = pl.DataFrame([r for r in rows if r["period"] == 0])
    with pytest.raises(ModelError, match=r"needs a group with 2\+ periods of 'period'; every group has one period "
                                         r"\(use within='poisson'\)"):
        BuhlmannStraub().fit(one)
    assert BuhlmannStraub(within="poisson").fit(one).s2_ == pytest.approx(
        one["claims"].sum() / one["exposure_years"].sum(), rel=1e-12)


def test_print_summary_notes_a_floored_between_variance(hache_fit: BuhlmannStraub,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Found by mutation testing: the 'no heterogeneity' note appears exactly when a is floored at 0,
    and text group keys are printed as they are."""
    hache_fit.print_summary()
    assert "no heterogeneity" not in capsys.readouterr().out
    rows = [{"group": f"city-{g}", "period": j, "exposure_years": 100.0 * (g + 1), "claims": (g + 1) * (1 + j % 2)}
            for g in range(3) for j in range(2)]  # identical group rates: a < 0, floored
    fit = BuhlmannStraub().fit(pl.DataFrame(rows))
    fit.print_summary(decimals=4)
    out = capsys.readouterr().out
    assert f"unfloored {fit.a_unfloored_:.4g}: no heterogeneity, Z = 0" in out
    assert "city-0" in out and "city-2" in out


# ---------------------------------------------------------------- limited fluctuation
def test_full_standard_1082() -> None:
    assert full_standard() == pytest.approx(1082.217, abs=1e-3)
    z = stats.norm.ppf(0.975)
    assert full_standard(0.95, 0.05) == pytest.approx((z / 0.05) ** 2)
    assert full_standard(0.90, 0.05, cv=1.0) == pytest.approx(2 * full_standard())
    with pytest.raises(ConfigError):
        full_standard(1.2)


def test_full_standard_and_blend_boundaries() -> None:
    """Found by mutation testing: cv other than 0 and 1, the open ends of p, and Z = 0 / 1 exactly."""
    z = stats.norm.ppf(0.95)
    assert full_standard(0.90, 0.05, cv=0.5) == pytest.approx((z / 0.05) ** 2 * 1.25, rel=1e-12)
    for bad, name in ((0.0, "p"), (1.0, "p")):
        with pytest.raises(ConfigError, match=rf"^{name}: probability must be in \(0, 1\)"):
            full_standard(bad)
    with pytest.raises(ConfigError, match="^k: tolerance"):
        full_standard(0.9, 0.0)
    with pytest.raises(ConfigError, match="^cv: must be >= 0"):
        full_standard(0.9, 0.05, cv=-0.1)
    assert credibility_blend(0.02, 0.01, 1.0) == 0.02 and credibility_blend(0.02, 0.01, 0.0) == 0.01
    np.testing.assert_allclose(credibility_blend(np.array([0.02, 0.04]), 0.01, np.array([0.25, 1.0])), [0.0125, 0.04])
    for bad_z in (-1e-9, 1 + 1e-9):
        with pytest.raises(DataError, match=r"Z must lie in \[0, 1\]"):
            credibility_blend(0.02, 0.01, bad_z)


def test_limited_fluctuation_values() -> None:
    # the default standard is the formula's (z_0.95 / 0.05)^2 = 1082.2, not a rounded 1,082
    assert limited_fluctuation(1083) == 1.0
    assert limited_fluctuation(1082) == pytest.approx(math.sqrt(1082 / 1082.2173816), rel=1e-9)
    assert limited_fluctuation(5000) == 1.0
    assert limited_fluctuation(0) == 0.0
    assert limited_fluctuation(full_standard() / 4) == pytest.approx(0.5)
    np.testing.assert_allclose(limited_fluctuation([0, 100, 2000], 400), [0, 0.5, 1])
    assert credibility_blend(0.02, 0.01, 0.5) == pytest.approx(0.015)
    with pytest.raises(DataError):
        limited_fluctuation(-1)


def test_limited_fluctuation_table() -> None:
    cells = pl.DataFrame({"g": ["a", "a", "b"], "claims": [300, 241, 2000], "exposure_years": [1e4, 1e4, 5e4]})
    t = limited_fluctuation_table(cells, "g")
    overall = 2541 / 7e4
    a = t.filter(pl.col("g") == "a")
    z = math.sqrt(541 / full_standard())  # (z_0.95 / 0.05)^2 = 1082.2
    assert a["Z"].item() == pytest.approx(z)
    assert a["credibility_rate"].item() == pytest.approx(z * 541 / 2e4 + (1 - z) * overall)
    assert t.filter(pl.col("g") == "b")["Z"].item() == 1.0


def test_cli_credibility(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from engine.cli.main import main

    df = hachemeister().with_columns((pl.col("ratio") * pl.col("weight")).alias("claims")).rename(
        {"weight": "exposure_years"}
    )
    df.write_parquet(tmp_path / "cells.parquet")
    out = tmp_path / "out"
    assert main(["credibility", "--cells", str(tmp_path / "cells.parquet"), "--group", "state",
                 "--out", str(out), "--quiet"]) == 0
    st_ = json.loads((out / "structure.json").read_text())
    o = bs_oracle([[float(v) for v in r] for r in RATIOS], [[float(v) for v in r] for r in WEIGHTS])
    assert st_["collective"] == pytest.approx(o["m"], rel=1e-12)
    tab = pl.read_parquet(out / "credibility.parquet").sort("state")
    np.testing.assert_allclose(tab["credibility_rate"].to_numpy(), o["cred"], rtol=1e-10)
    assert main(["credibility", "--cells", str(tmp_path / "cells.parquet"), "--group", "nope",
                 "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "credibility", f"{tmp_path / 'cells.parquet'}: --group: column 'nope' is not in the cells")
    assert main(["credibility", "--cells", str(tmp_path / "cells.parquet"), "--group", "state",
                 "--complement", "abc", "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "credibility", "--complement", "'abc'", "is not 'collective', 'reference' or a number")


def test_limited_fluctuation_table_rules_by_hand() -> None:
    """Found by mutation testing of the @api_input entry points: each rule of limited_fluctuation_table."""
    cells = pl.DataFrame({"g": ["a", "a", "b", "c"], "claims": [2, 1, 0, 4],
                          "exposure_years": [0.25, 0.25, 0.0, 2.0], "ref": [1.0, 1.0, 3.0, 2.0]})
    t = limited_fluctuation_table(cells, "g", complement="ref")
    assert t["rate"].to_list() == [6.0, None, 2.0]  # a rate below one exposure-year is a rate
    assert t["complement"].to_list() == [4.0, None, 1.0]  # expected / exposure, null without exposure
    with pytest.warns(DeprecationWarning, match="'claims' is deprecated .* use 'claims_col'"):
        old = limited_fluctuation_table(cells.rename({"claims": "n"}), "g", claims="n")
    assert old.drop("claims").equals(limited_fluctuation_table(cells, "g").drop("claims"))
    with pytest.warns(DeprecationWarning, match="'exposure' is deprecated .* use 'exposure_col'"):
        old = limited_fluctuation_table(cells.rename({"exposure_years": "w"}), "g", exposure="w")
    assert old.equals(limited_fluctuation_table(cells, "g"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        limited_fluctuation_table(cells, "g", foo=1)
    with pytest.raises(ConfigError, match="^by: expected a column name"):
        limited_fluctuation_table(cells, [])
    with pytest.raises(DataError, match=r"^limited_fluctuation_table: cells lack column\(s\) \['zz'\]"):
        limited_fluctuation_table(cells, "zz")
    with pytest.raises(DataError, match="^limited_fluctuation_table: total exposure is 0$"):
        limited_fluctuation_table(cells.with_columns(exposure_years=pl.lit(0.0)), "g")


def test_buhlmann_fit_fields_and_transform_rules() -> None:
    """Found by mutation testing of the @api_input entry points: fitted fields and transform's rules."""
    df = hachemeister().with_columns((pl.col("ratio") * pl.col("weight")).alias("claims"))
    bs = BuhlmannStraub(group="state", exposure_col="weight").fit(df)
    assert bs.n_groups_ == 5 and sorted(bs.Z_) == [1, 2, 3, 4, 5]
    two = df.with_columns((pl.col("state") % 2).alias("odd"))
    bs2 = BuhlmannStraub(group=["state", "odd"], exposure_col="weight").fit(two)
    assert sorted(bs2.Z_) == [(s, s % 2) for s in range(1, 6)]
    with pytest.raises(DataError, match="^BuhlmannStraub.transform: cells lack column"):
        bs.transform(df.drop("state"))
    ref = df.with_columns((pl.col("weight") * 0.5).alias("expected"))
    br = BuhlmannStraub(group="state", exposure_col="weight", complement="reference").fit(ref)
    out = br.transform(ref)
    assert out.height == ref.height and out["credibility_rate"].null_count() == 0
    unseen = br.transform(ref.with_columns(pl.col("state") + 10))  # no reference rate for a new group
    assert unseen["Z"].to_list() == [0.0] * ref.height and unseen["credibility_rate"].null_count() == ref.height
