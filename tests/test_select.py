"""Tests of engine.estimators.select: duration-band factors by a Poisson GLM (checked against
statsmodels) and by lifelines' piecewise-exponential fitter (cross-checked with
each other and with the closed form claims / exposure), recovery of a planted
select / anti-selection effect and interval coverage."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from engine.errors import ConfigError, DataError, ModelError
from engine.estimators.select import SelectFactors, band_labels, duration_band_expr, poisson_irls, select_factors
from tests.kits.cli_error import error_line

# planted truth: anti-selection 1.3 in months 3-5 right after a 90-day waiting period,
# select effect 0.6 in months 6-23, ultimate 1.0 from month 24
TRUTH = {"3-5": 1.3, "6-11": 0.6, "12-23": 0.6, "24+": 1.0}
BANDS = (3, 6, 12, 24)


def truth_factor(d: np.ndarray) -> np.ndarray:
    return np.select([d < 6, d < 24], [1.3, 0.6], 1.0)


def simulate_cells(seed: int, expo_per_cell: float = 40.0, young_early: bool = False) -> pl.DataFrame:
    """Cells by (duration month 3..47, age 20..64, sex) with Poisson claims (vectorised)."""
    rng = np.random.default_rng(seed)
    d, age, sex = np.meshgrid(np.arange(3, 48), np.arange(20, 65), np.array([0, 1]), indexing="ij")
    d, age, sex = d.ravel(), age.ravel(), sex.ravel()
    e = np.full(d.shape, expo_per_cell)
    if young_early:  # recent joiners are younger: confounds duration with age
        e = e * np.where(d < 12, np.exp(-0.08 * (age - 20)), 1.0)
    lam = 0.003 * np.exp(0.06 * (age - 40)) * np.where(sex == 1, 1.25, 1.0) * truth_factor(d)
    claims = rng.poisson(lam * e)
    return pl.DataFrame(
        {
            "duration": d.astype(np.int32),
            "age": age.astype(np.int32),
            "sex": np.where(sex == 1, "M", "F"),
            "exposure_years": e,
            "claims": claims.astype(np.int64),
        }
    )


def test_band_labels_and_expr_against_loop() -> None:
    assert band_labels((0, 3, 6, 12, 24)) == ["0-2", "3-5", "6-11", "12-23", "24+"]
    df = pl.DataFrame({"duration": list(range(0, 40))}).with_columns(duration_band_expr((0, 3, 6, 12, 24)))
    for dur, lab in df.iter_rows():
        want = "0-2" if dur < 3 else "3-5" if dur < 6 else "6-11" if dur < 12 else "12-23" if dur < 24 else "24+"
        assert lab == want


def test_glm_route_equals_statsmodels() -> None:
    cells = simulate_cells(1, young_early=True)
    m = SelectFactors(bands=BANDS, route="glm").fit(cells)
    # rebuild the same design independently with pandas/statsmodels
    g = (
        cells.with_columns(duration_band_expr(BANDS), ((pl.col("age") // 5) * 5).alias("age"))
        .group_by(["duration_band", "age", "sex"])
        .agg(pl.col("claims").sum(), pl.col("exposure_years").sum())
        .sort(["duration_band", "age", "sex"])
        .to_pandas()
    )
    import pandas as pd

    X = pd.get_dummies(g[["duration_band", "age", "sex"]].astype(str), drop_first=False).astype(float)
    X = X.drop(columns=["duration_band_24+", "age_20", "sex_F"])
    X.insert(0, "const", 1.0)
    res = sm.GLM(g["claims"], X, family=sm.families.Poisson(), offset=np.log(g["exposure_years"])).fit(tol=1e-14)
    s = m.summary.filter(pl.col("route") == "glm")
    for band in ["3-5", "6-11", "12-23"]:
        b = res.params[f"duration_band_{band}"]
        se = res.bse[f"duration_band_{band}"]
        row = s.filter(pl.col("duration_band") == band)
        assert row["factor"].item() == pytest.approx(np.exp(b), rel=1e-8)
        assert row["factor_lower"].item() == pytest.approx(np.exp(b - 1.959963984540054 * se), rel=1e-6)
        assert row["factor_upper"].item() == pytest.approx(np.exp(b + 1.959963984540054 * se), rel=1e-6)


def test_poisson_irls_closed_form_one_factor() -> None:
    # one categorical factor: MLE rate per level is claims / exposure exactly
    y = np.array([3.0, 10.0, 7.0])
    e = np.array([100.0, 400.0, 150.0])
    X = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=float)
    b, cov = poisson_irls(X, y, np.log(e))
    assert np.exp(b[0]) == pytest.approx(3 / 100, rel=1e-12)
    assert np.exp(b[1]) == pytest.approx((10 / 400) / (3 / 100), rel=1e-12)
    assert cov[1, 1] == pytest.approx(1 / 10 + 1 / 3, rel=1e-10)  # var log ratio = 1/D1 + 1/D0


def test_lifelines_route_matches_glm_and_crude_rates() -> None:
    cells = simulate_cells(2)
    m = SelectFactors(bands=(0, 3, 6, 12, 24), route="both", adjust=[]).fit(cells)
    s = m.summary
    glm = s.filter(pl.col("route") == "glm").sort("duration_from")
    ll = s.filter(pl.col("route") == "lifelines").sort("duration_from")
    for c in ["factor", "factor_lower", "factor_upper"]:
        np.testing.assert_allclose(ll[c].to_numpy(), glm[c].to_numpy(), rtol=2e-4)
    # piecewise-exponential MLE = claims / exposure per band (closed form)
    for band, rate in m.lifelines_rate_.items():
        crude = glm.filter(pl.col("duration_band") == band)["rate"].item()
        assert rate == pytest.approx(crude, rel=1e-4)
    # unadjusted GLM factor is the crude rate ratio
    ref = glm.filter(pl.col("is_reference"))["rate"].item()
    np.testing.assert_allclose(glm["factor"].to_numpy(), glm["rate"].to_numpy() / ref, rtol=1e-9)


def test_lifelines_left_truncated_rows_from_labels_only() -> None:
    """Cells carrying only duration_band labels (no duration) work for both routes."""
    cells = simulate_cells(3).with_columns(duration_band_expr(BANDS)).drop("duration")
    m = SelectFactors(route="both", adjust=[]).fit(cells)
    s = m.summary
    assert s.filter(pl.col("route") == "lifelines")["duration_band"].to_list() == ["3-5", "6-11", "12-23", "24+"]
    # left truncation: the fitted hazards per piece are identifiable only because each band's rows enter at its start
    np.testing.assert_allclose(
        s.filter(pl.col("route") == "lifelines")["factor"].to_numpy(),
        s.filter(pl.col("route") == "glm")["factor"].to_numpy(),
        rtol=2e-4,
    )


def _log_se(row: pl.DataFrame, level: float) -> float:
    """Standard error of log(factor), from the row's Wald interval (symmetric on the log scale)."""
    from scipy import stats

    lo, f, hi = (np.log(row[c].item()) for c in ("factor_lower", "factor", "factor_upper"))
    assert hi - f == pytest.approx(f - lo, rel=1e-9)
    return (hi - lo) / (2 * stats.norm.ppf(0.5 + level / 2))


def test_recovers_planted_effect_large_sample() -> None:
    cells = simulate_cells(4, expo_per_cell=40000.0, young_early=True)
    s = select_factors(cells, bands=BANDS, age_width=1, level=0.999)
    for band, f in TRUTH.items():
        row = s.filter(pl.col("duration_band") == band)
        if band == "24+":  # the reference band
            assert row["factor"].item() == 1.0 and row["is_reference"].item()
            continue
        assert abs(np.log(row["factor"].item() / f)) <= 4 * _log_se(row, 0.999), band
        assert row["factor_lower"].item() <= f <= row["factor_upper"].item()


def test_adjustment_removes_age_confounding() -> None:
    cells = simulate_cells(5, expo_per_cell=20000.0, young_early=True)
    adj = select_factors(cells, bands=BANDS, age_width=1).filter(pl.col("duration_band") == "6-11")["factor"].item()
    crude = select_factors(cells, bands=BANDS, adjust=[]).filter(pl.col("duration_band") == "6-11")["factor"].item()
    row = select_factors(cells, bands=BANDS, age_width=1).filter(pl.col("duration_band") == "6-11")
    assert abs(np.log(adj / 0.6)) <= 4 * _log_se(row, 0.95)
    assert crude < 0.5  # young recent joiners make the crude select effect look stronger


@pytest.mark.slow
def test_interval_coverage() -> None:
    hits = total = 0
    for seed in range(100):
        s = select_factors(simulate_cells(100 + seed, expo_per_cell=10.0), bands=BANDS, adjust=["sex"])
        for band, f in TRUTH.items():
            if band == "24+":
                continue
            row = s.filter(pl.col("duration_band") == band)
            hits += int(row["factor_lower"].item() <= f <= row["factor_upper"].item())
            total += 1
    cov = hits / total
    assert 0.915 <= cov <= 0.98, cov  # binomial sd ~ 0.013 around 0.95 (age pooled: tiny bias)


def test_expected_offset_gives_same_factors_as_exposure() -> None:
    cells = simulate_cells(6).with_columns((pl.col("exposure_years") * 0.004).alias("expected"))
    a = select_factors(cells, bands=BANDS, adjust=[])
    b = select_factors(cells, bands=BANDS, adjust=[], expected="expected")
    np.testing.assert_allclose(a["factor"].to_numpy(), b["factor"].to_numpy(), rtol=1e-9)


def test_zero_claim_band_and_errors() -> None:
    cells = simulate_cells(7).with_columns(
        pl.when(pl.col("duration") < 6).then(0).otherwise(pl.col("claims")).alias("claims")
    )
    s = select_factors(cells, bands=BANDS, route="both")
    z = s.filter(pl.col("duration_band") == "3-5")
    assert (z["factor"] == 0.0).all() and z["factor_upper"].is_null().all()
    assert (z["rate_upper"] > 0).all()
    with pytest.raises(ModelError, match="no claims"):
        select_factors(cells, bands=BANDS, reference="3-5")
    with pytest.raises(ConfigError, match="reference"):
        select_factors(cells, bands=BANDS, reference="99+")
    with pytest.raises(ConfigError, match="route"):
        select_factors(cells, route="cox")
    with pytest.raises(DataError, match="member"):
        select_factors(pl.DataFrame({"member_id": ["a"], "join_date": [None]}))
    m = SelectFactors(bands=(6, 12, 24), adjust=[]).fit(simulate_cells(1))
    c1 = simulate_cells(1).filter(pl.col("duration") < 6)
    assert m.excluded_exposure_years_ == pytest.approx(c1["exposure_years"].sum())
    assert m.excluded_claims_ == c1["claims"].sum()
    assert m.summary["duration_band"].to_list() == ["6-11", "12-23", "24+"]
    with pytest.raises(ModelError, match="not fitted"):
        _ = SelectFactors().summary


def test_plot_and_print(capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    m = SelectFactors(bands=BANDS, route="both").fit(simulate_cells(8))
    ax = m.plot_factors()
    assert ax.get_xlabel() == "months since joining" and ax.get_ylabel() == f"incidence factor vs {m.reference_}"
    s = m.summary
    assert [c.get_label() for c in ax.containers] == ["glm", "lifelines"]  # one series per route
    for c in ax.containers:  # the factors plotted, with their interval bars
        r = s.filter(pl.col("route") == c.get_label())
        np.testing.assert_allclose(c.lines[0].get_ydata(), r["factor"].to_numpy())
        bars = c.lines[2][0].get_segments()
        np.testing.assert_allclose([b[0][1] for b in bars], r["factor_lower"].to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == s.filter(pl.col("route") == "glm")["duration_band"].to_list()
    m.print_summary()
    assert "duration factors" in capsys.readouterr().out


def test_crude_rate_interval_is_garwood() -> None:
    from scipy.stats import chi2

    s = select_factors(simulate_cells(9), bands=BANDS, adjust=[])
    for d, e, lo, hi in s.select("claims", "exposure_years", "rate_lower", "rate_upper").iter_rows():
        assert lo == pytest.approx(chi2.ppf(0.025, 2 * d) / (2 * e), rel=1e-12)
        assert hi == pytest.approx(chi2.ppf(0.975, 2 * d + 2) / (2 * e), rel=1e-12)


@pytest.mark.slow
def test_synthetic_platform_select_and_antiselection() -> None:
    """engine.synth plants sel = 0.6 for the waiting period + 12 months (to day 455,
    ~month 14.9) and anti-selection 1.5 for the referral channel in days 90-179
    (~months 3-5); cells come from engine.cells._exposure by duration and the planted
    risk group (lapse is risk-selective, so the risk group is adjusted for)."""
    import datetime as dt

    from engine.cells._exposure import exposure
    from engine.synth import generate

    plat = generate(1_000_000, 11, level=8.0)
    members = plat.members.join(plat.truth.select("member_id", "risk_group"), on="member_id")
    cells = exposure(members, plat.claims, start=dt.date(2018, 10, 16), end=dt.date(2021, 12, 31),
                     period="year", by=("age", "duration", "sex", "channel", "risk_group"))
    adjust = ["age", "sex", "risk_group"]
    other = select_factors(cells.filter(pl.col("channel") != "referral"), bands=(3, 6, 15),
                           adjust=adjust, age_width=1)
    for band in ("3-5", "6-14"):
        row = other.filter(pl.col("duration_band") == band)
        assert row["factor_lower"].item() <= 0.6 <= row["factor_upper"].item()
        assert row["factor_upper"].item() < 1.0  # the select effect is detected
    ref = select_factors(cells.filter(pl.col("channel") == "referral"), bands=(3, 6, 15),
                         reference="6-14", adjust=adjust, age_width=1)
    row = ref.filter(pl.col("duration_band") == "3-5")
    assert row["factor_lower"].item() <= 1.5 <= row["factor_upper"].item()
    assert row["factor_lower"].item() > 1.0  # anti-selection is detected


# ---------------------------------------------------------------- CLI: fentan select


def test_cli_select_from_cells_equals_api(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from engine.cli.main import main

    cells = simulate_cells(21, expo_per_cell=400.0)
    cells.write_parquet(tmp_path / "cells.parquet")
    out = tmp_path / "select.parquet"
    assert main(["select", "--cells", str(tmp_path / "cells.parquet"), "--bands", "3,6,12,24", "--age-width", "1",
                 "--route", "both", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "duration factors vs 24+" in printed and "6-11" in printed
    got = pl.read_parquet(out)
    want = SelectFactors(bands=BANDS, age_width=1, route="both").fit(cells).summary
    assert got.equals(want)
    # planted effect recovered through the CLI (GLM route, adjusted for age and sex)
    glm = got.filter(pl.col("route") == "glm")
    for band, f in TRUTH.items():
        row = glm.filter(pl.col("duration_band") == band)
        assert row["factor_lower"].item() <= f <= row["factor_upper"].item(), (band, row)
    # crude ('none') route and a non-default reference band
    assert main(["select", "--cells", str(tmp_path / "cells.parquet"), "--adjust", "none", "--reference", "6-11",
                 "--out", str(out), "--quiet"]) == 0
    crude = pl.read_parquet(out)
    assert crude.filter(pl.col("duration_band") == "6-11")["factor"].item() == 1.0
    assert set(crude["adjusted_for"].to_list()) == {""}
    # user errors: one line, exit code 2
    cp = tmp_path / "cells.parquet"
    capsys.readouterr()
    for bad, needles in (
        (["--bands", "3,x"], ("--bands", "'3,x'", "is not a comma-separated list of integers")),
        (["--bands", "6,3"], ("bands", "strictly increasing", "[6, 3]")),
        (["--reference", "99+"], ("reference", "'99+'", "not among bands with exposure")),
        (["--adjust", "nope"], (f"{cp}: --adjust: column 'nope' is not in the cells",)),
        (["--level", "1.5"], ("level", "must be in (0, 1)", "1.5")),
    ):
        assert main(["select", "--cells", str(cp), "--out", str(out), "--quiet", *bad]) == 2
        error_line(capsys, "select", *needles)
    assert main(["select", "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "select", "--cells", "give --cells, or --members and --claims")
    assert main(["select", "--cells", str(cp), "--members", "m.parquet", "--out", str(out)]) == 2
    error_line(capsys, "select", "--cells", "not both")


@pytest.mark.slow
def test_cli_select_from_members_and_claims(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """members + claims -> exposure cells by duration, age, sex -> factors; equal to the API route."""
    import datetime as dt

    from engine.cli.main import main
    from engine.cells._exposure import exposure
    from engine.synth import generate

    plat = generate(20_000, 5, level=8.0)
    plat.members.write_parquet(tmp_path / "members.parquet")
    plat.claims.write_parquet(tmp_path / "claims.parquet")
    out = tmp_path / "f.parquet"
    args = ["select", "--members", str(tmp_path / "members.parquet"), "--claims", str(tmp_path / "claims.parquet"),
            "--start", "2019-01-01", "--end", "2021-12-31", "--bands", "3,6,15", "--out", str(out), "--quiet"]
    assert main(args) == 0
    got = pl.read_parquet(out)
    cells = exposure(plat.members, plat.claims, start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31), period="year",
                     by=("duration", "age", "sex"))
    want = select_factors(cells, bands=(3, 6, 15))
    assert got.equals(want)
    assert got["claims"].sum() == cells.filter(pl.col("duration") >= 3)["claims"].sum()
    assert main([*args[:-3], "--start", "2021-12-31", "--end", "2019-01-01", "--out", str(out), "--quiet"]) == 2
    error_line(capsys, "select", "--end", "2019-01-01", "is before --start 2021-12-31")
    assert main(["select", "--members", str(tmp_path / "members.parquet"), "--claims",
                 str(tmp_path / "claims.parquet"), "--out", str(out), "--quiet"]) == 2  # no window
    error_line(capsys, "select", "--start/--end", "the study window is required")


def test_plot_offsets_and_blank_missing_interval(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two routes are drawn side by side, 0.15 apart and centred on each band; a factor without
    an upper bound (a band with no claim) prints blank, not 'None'."""
    import matplotlib

    matplotlib.use("Agg")
    cells = simulate_cells(7).with_columns(
        pl.when(pl.col("duration") < 6).then(0).otherwise(pl.col("claims")).alias("claims"))
    m = SelectFactors(bands=BANDS, route="both").fit(cells)
    ax = m.plot_factors()
    n = m.summary.filter(pl.col("route") == "glm").height
    for c, shift in zip(ax.containers, (-0.075, 0.075), strict=True):
        np.testing.assert_allclose(c.lines[0].get_xdata(), np.arange(n) + shift)
    assert m.summary["factor_upper"].null_count() > 0
    monkeypatch.setenv("COLUMNS", "400")
    m.print_summary()
    out = capsys.readouterr().out
    assert "duration factors" in out and "None" not in out


def test_lifelines_high_incidence_and_zero_band() -> None:
    """More claims than exposure-months over a band's length still gives the crude rate; a band
    without claims has factor and lower bound 0 in the lifelines route."""
    d = np.arange(0, 12)
    cells = pl.DataFrame({"duration": d.astype(np.int32), "exposure_years": np.full(12, 0.5),
                          "claims": np.where(d < 3, 0, 10).astype(np.int64)})
    m = SelectFactors(bands=(0, 3, 6, 9), route="both", adjust=[], reference="6-8").fit(cells)
    ll = m.summary.filter(pl.col("route") == "lifelines")
    assert ll.filter(pl.col("duration_band") == "0-2").select("factor", "factor_lower").row(0) == (0.0, 0.0)
    assert m.lifelines_rate_["3-5"] == pytest.approx(30 / 1.5, rel=1e-4)


def test_input_messages_name_the_remedy_and_check_the_expected_column() -> None:
    """Member rows get the call that builds cells; a negative count or expected value is refused
    naming the column and the rule."""
    import re

    with pytest.raises(DataError, match=re.escape(
            "build cells first, e.g. engine.exposure(members, claims, by=['duration', 'age', 'sex'])") + "$"):
        select_factors(pl.DataFrame({"member_id": ["a"], "join_date": [None]}))
    cells = simulate_cells(6).with_columns((pl.col("exposure_years") * 0.004).alias("expected"))
    with pytest.raises(DataError, match="select_factors: column 'claims' must be numeric, non-null and >= 0"):
        select_factors(cells.with_columns(pl.lit(-1).alias("claims")), bands=BANDS, adjust=[])
    with pytest.raises(DataError, match="column 'expected' must be numeric, non-null and >= 0"):
        select_factors(cells.with_columns(pl.lit(-1.0).alias("expected")), bands=BANDS, adjust=[],
                       expected="expected")


def test_glm_route_small_exposures_and_rank_deficient_message() -> None:
    """Bands with under one exposure-year are fitted (factor = crude rate ratio, no adjustment);
    a level seen in one band only is refused naming the confounding."""
    d = np.arange(0, 12)
    cells = pl.DataFrame({"duration": d.astype(np.int32), "exposure_years": np.full(12, 0.1),
                          "claims": np.where(d < 6, 1, 2).astype(np.int64)})
    s = SelectFactors(bands=(0, 6), route="glm", adjust=[]).fit(cells).summary
    assert s["factor"].to_list() == pytest.approx([0.5, 1.0], rel=1e-6)
    conf = cells.with_columns(pl.when(pl.col("duration") < 6).then(pl.lit("F")).otherwise(pl.lit("M")).alias("sex"))
    with pytest.raises(ModelError, match=r"select_factors: GLM design is rank deficient \(a factor level confounded"):
        SelectFactors(bands=(0, 6), route="glm", adjust=["sex"]).fit(conf)
