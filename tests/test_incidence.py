"""Crude incidence, Garwood intervals, A/E against CI2020, plots and the incidence CLI."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from engine.errors import ConfigError, DataError
from engine.estimators.crude import garwood_interval, incidence, plot_incidence
from engine.data.reference import reference_basis
from tests.kits.cli_error import error_line

# ---------------------------------------------------------------- Garwood


def test_garwood_known_values() -> None:
    lo, hi = garwood_interval([0, 1, 10], [1.0, 1.0, 1.0])
    assert lo[0] == 0.0
    assert hi[0] == pytest.approx(3.689, abs=5e-4)  # -log(0.025)
    assert lo[1] == pytest.approx(0.0253, abs=5e-5)
    assert hi[1] == pytest.approx(5.572, abs=5e-4)
    # D = 10: published exact limits 4.795 and 18.390 (e.g. Ulm 1990 tables)
    assert lo[2] == pytest.approx(4.795, abs=5e-4)
    assert hi[2] == pytest.approx(18.390, abs=5e-4)


def test_garwood_equals_gamma_closed_form_and_poisson_tails() -> None:
    d = np.array([0, 1, 2, 5, 17, 250, 3000])
    e = np.array([10.0, 2.5, 1000.0, 3.0, 1e4, 2e5, 1e6])
    for level in (0.8, 0.9, 0.95, 0.99):
        a = 1 - level
        lo, hi = garwood_interval(d, e, level)
        # independent closed form: chi2(2k)/2 = Gamma(k)
        lo_ref = np.where(d > 0, stats.gamma.ppf(a / 2, np.maximum(d, 1)) / e, 0.0)
        hi_ref = stats.gamma.ppf(1 - a / 2, d + 1) / e
        np.testing.assert_allclose(lo, lo_ref, rtol=1e-10)
        np.testing.assert_allclose(hi, hi_ref, rtol=1e-10)
        # defining property: the tail probabilities at the bounds equal a/2
        pos = d > 0
        np.testing.assert_allclose(stats.poisson.sf(d[pos] - 1, lo[pos] * e[pos]), a / 2, rtol=1e-7)
        np.testing.assert_allclose(stats.poisson.cdf(d, hi * e), a / 2, rtol=1e-7)


def test_garwood_zero_exposure_and_errors() -> None:
    lo, hi = garwood_interval([3, 0], [0.0, 2.0])
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert lo[1] == 0.0
    with pytest.raises(ConfigError, match="level"):
        garwood_interval([1], [1.0], level=1.5)
    with pytest.raises(DataError, match="claims"):
        garwood_interval([-1], [1.0])
    # found by mutation testing: the open ends of the level and non-finite counts
    for bad in (0.0, 1.0):
        with pytest.raises(ConfigError, match=rf"^level: {bad} must lie strictly between 0 and 1$"):
            garwood_interval([1], [1.0], level=bad)
    for bad in (np.nan, np.inf):
        with pytest.raises(DataError, match="^claims: counts must be finite and non-negative$"):
            garwood_interval([1.0, bad], [1.0, 1.0])


# ---------------------------------------------------------------- incidence vs loop oracle


def _cells(seed: int = 0, n_per: float = 4000.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for period in (dt.date(2021, 1, 1), dt.date(2021, 2, 1)):
        for age in range(25, 45):
            for sex in ("F", "M"):
                for tier in (1, 2, 3):
                    e = float(rng.gamma(3.0, n_per / 3.0))
                    rows.append((period, age, sex, tier, e, int(rng.poisson(0.002 * e))))
    return pl.DataFrame(rows, schema={"period": pl.Date, "age": pl.Int32, "sex": pl.String, "city_tier": pl.Int64,
                                      "exposure_years": pl.Float64, "claims": pl.Int64}, orient="row")


def _oracle(cells: pl.DataFrame, by: list[str], level: float, scale: bool) -> dict:
    ref = {(r["age"], r["sex"]): r["rate"] for r in reference_basis("ci2020", "CI4").iter_rows(named=True)}
    groups: dict = {}
    tot_d = tot_x = 0.0
    for r in cells.iter_rows(named=True):
        k = tuple(r[b] for b in by)
        g = groups.setdefault(k, [0.0, 0, 0.0])
        x = r["exposure_years"] * ref[(r["age"], r["sex"])]
        g[0] += r["exposure_years"]
        g[1] += r["claims"]
        g[2] += x
        tot_d += r["claims"]
        tot_x += x
    k_level = tot_d / tot_x if scale else 1.0
    a = 1 - level
    out = {}
    for k, (e, d, x) in groups.items():
        x *= k_level
        lo = stats.chi2.ppf(a / 2, 2 * d) / (2 * e) if d > 0 else 0.0
        hi = stats.chi2.ppf(1 - a / 2, 2 * d + 2) / (2 * e)
        out[k] = dict(exposure_years=e, claims=d, rate=d / e, rate_lower=lo, rate_upper=hi, expected=x, ae=d / x,
                      ae_lower=(stats.chi2.ppf(a / 2, 2 * d) / (2 * x) if d > 0 else 0.0),
                      ae_upper=stats.chi2.ppf(1 - a / 2, 2 * d + 2) / (2 * x))
    return out


@pytest.mark.parametrize("by,scale,level", [(["age", "sex"], False, 0.95), (["city_tier"], True, 0.9),
                                            (["sex", "city_tier"], False, 0.99), ([], True, 0.95)])
def test_incidence_matches_loop_oracle(by, scale, level) -> None:
    cells = _cells()
    got = incidence(cells, by=by, level=level, scale_basis=scale)
    exp = _oracle(cells, by, level, scale)
    assert got.height == len(exp)
    assert got.columns[: len(by)] == by
    for r in got.iter_rows(named=True):
        o = exp[tuple(r[b] for b in by)]
        for c, v in o.items():
            assert r[c] == pytest.approx(v, rel=1e-9), c
    if scale:
        assert float(got["claims"].sum()) / float(got["expected"].sum()) == pytest.approx(1.0, rel=1e-12)
    if by:
        assert got.equals(got.sort(by))


def test_basis_level_is_mle_of_level_factor() -> None:
    cells = _cells(1)
    got = incidence(cells, by=["age"], scale_basis=True)
    raw = incidence(cells, by=["age"])
    k = got["basis_level"][0]
    assert k == pytest.approx(float(raw["claims"].sum()) / float(raw["expected"].sum()), rel=1e-12)
    # the Poisson score of the level factor vanishes at k: sum(D) - k sum(X) = 0
    np.testing.assert_allclose(got["expected"].to_numpy(), k * raw["expected"].to_numpy(), rtol=1e-12)


def test_expected_needs_age_and_sex() -> None:
    cells = _cells().drop("sex")
    with pytest.raises(ConfigError, match="'sex'"):
        incidence(cells, by=["city_tier"])
    out = incidence(cells, by=["city_tier"], basis=None)
    assert "expected" not in out.columns and out.height == 3
    with pytest.raises(ConfigError, match="'region'"):
        incidence(_cells(), by=["region"])


def test_expected_claims_defaults_to_ci2020_ci4() -> None:
    """Found by mutation testing: the default basis of expected_claims (CI2020 CI4) and its column message."""
    from engine.estimators.crude import expected_claims

    cells = _cells(2)
    ref = {(r["age"], r["sex"]): r["rate"] for r in reference_basis("ci2020", "CI4").iter_rows(named=True)}
    loop = [r["exposure_years"] * ref[(r["age"], r["sex"])] for r in cells.iter_rows(named=True)]
    np.testing.assert_allclose(expected_claims(cells).to_numpy(), loop, rtol=1e-12)
    with pytest.raises(ConfigError, match=r"^cells: column 'age' is required for the expected claims of basis 'ci2020' "
                                          r"\(group the exposure by age and sex, or pass basis=None\)$"):
        expected_claims(cells.drop("age"))
    # a cell outside the basis is refused only when it has exposure (its expected claims are 0 otherwise)
    idle = cells.head(1).with_columns(pl.lit(130, dtype=pl.Int32).alias("age"), pl.lit(0.0).alias("exposure_years"))
    got = expected_claims(pl.concat([cells, idle]))
    assert got.len() == cells.height + 1 and got[-1] == 0.0
    np.testing.assert_allclose(got.head(cells.height).to_numpy(), loop, rtol=1e-12)
    with pytest.raises(DataError, match="age=130"):
        expected_claims(pl.concat([cells, idle.with_columns(pl.lit(1e-6).alias("exposure_years"))]))


def test_age_outside_basis_is_named() -> None:
    cells = _cells().with_columns(pl.lit(130, dtype=pl.Int32).alias("age"))
    with pytest.raises(DataError, match="age=130"):
        incidence(cells, by=["sex"])


def test_lazy_input_and_zero_exposure_group() -> None:
    cells = _cells()
    z = cells.head(1).with_columns(pl.lit(9).cast(pl.Int64).alias("city_tier"), pl.lit(0.0).alias("exposure_years"),
                                   pl.lit(0).cast(pl.Int64).alias("claims"))
    out = incidence(pl.concat([cells, z]).lazy(), by=["city_tier"])
    r = out.filter(pl.col("city_tier") == 9).row(0, named=True)
    assert np.isnan(r["rate"]) and np.isnan(r["rate_upper"])


def _exact_coverage(true: np.ndarray, expo: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Exact coverage of the engine's 95% intervals at each planted rate, from the Poisson pmf.

    Cell c with rate true[c] and exposure expo[c] yields D claims with probability
    Poisson(D; true[c] * expo[c]); the coverage is the sum of those probabilities over the D
    whose interval (from ``incidence`` on a cell with D claims) holds true[c]. ``scale``
    multiplies both half-widths about the crude rate (1 = the engine's interval).
    """
    mu = true * expo
    dmax = (mu + 12 * np.sqrt(mu) + 30).astype(int)
    cell = np.repeat(np.arange(len(true)), dmax + 1)
    d = np.concatenate([np.arange(k + 1) for k in dmax])
    pmf = stats.poisson.pmf(d, mu[cell])
    assert np.all(np.bincount(cell, pmf) > 1 - 1e-12)  # the truncated tail is negligible
    rows = pl.DataFrame({"cell": cell, "d": d, "exposure_years": expo[cell], "claims": d})
    out = incidence(rows, by=["cell", "d"], basis=None)  # one group per (cell, D): sorted like rows
    assert out["claims"].to_numpy().tolist() == d.tolist()
    r = out["rate"].to_numpy()
    lo = r - scale * (r - out["rate_lower"].to_numpy())
    hi = r + scale * (out["rate_upper"].to_numpy() - r)
    return np.bincount(cell, pmf * ((lo <= true[cell]) & (true[cell] <= hi)))


def _planted_grid(mu_lo: float, mu_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """400 cells age x sex x city_tier with planted rates; exposures give log-uniform expected claims."""
    rng = np.random.default_rng(7)
    grid = pl.DataFrame({"age": np.arange(20, 60, dtype=np.int32)}).join(pl.DataFrame({"sex": ["F", "M"]}), how="cross")
    grid = grid.join(pl.DataFrame({"city_tier": [1, 2, 3, 4, 5]}), how="cross")
    true = 0.0005 * np.exp(0.05 * (grid["age"].to_numpy() - 20)) * np.where(grid["sex"].to_numpy() == "M", 1.2, 1.0) \
        * (1 + 0.1 * grid["city_tier"].to_numpy())
    mu = np.exp(rng.uniform(np.log(mu_lo), np.log(mu_hi), grid.height))
    return true, mu / true


def _coverage_failures(scale: float) -> list[str]:
    """Band checks on the exact coverage of 95% intervals (half-widths x ``scale``).

    - every cell, sparse (1-20 expected claims) or dense (20-400), covers >= 0.95: the
      Garwood interval is exact-conservative (its coverage is never below the level);
    - the dense cells' mean coverage is at most 0.965: Garwood's excess over 0.95 is small
      there (about 0.956), while intervals 10% wider cover about 0.973 and 10% narrower
      about 0.930 (minimum 0.922).
    """
    out = []
    for name, (a, b) in {"sparse": (1, 20), "dense": (20, 400)}.items():
        cov = _exact_coverage(*_planted_grid(a, b), scale=scale)
        if cov.min() < 0.95 - 1e-12:
            out.append(f"{name}: min coverage {cov.min():.4f} < 0.95")
        if name == "dense" and not 0.95 <= cov.mean() <= 0.965:
            out.append(f"{name}: mean coverage {cov.mean():.4f} outside [0.95, 0.965]")
    return out


def test_crude_interval_coverage_on_planted_rates() -> None:
    """Planted cell rates lie in their 95% Garwood intervals with exact probability in [0.95, 0.965]."""
    assert _coverage_failures(1.0) == []


@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_coverage_band_rejects_intervals_10pct_off(scale: float) -> None:
    fails = _coverage_failures(scale)
    assert any("mean coverage" in f for f in fails), fails
    if scale < 1:
        assert any("min coverage" in f for f in fails), fails


def test_plot_incidence_returns_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    inc = incidence(_cells(), by=["age", "sex"])
    ax = plot_incidence(inc)
    assert len(ax.get_lines()) == 4  # observed + reference per sex
    assert ax.get_xlabel() == "age"
    ax2 = plot_incidence(incidence(_cells(), by=["age"], basis=None), hue=None)
    assert len(ax2.get_lines()) == 1
    # found by mutation testing: without hue (or a hue column the table lacks) one series, labelled plainly
    for hue in (None, "region"):
        ax3 = plot_incidence(incidence(_cells(), by=["age"]), hue=hue, log=False)
        assert [ln.get_label() for ln in ax3.get_lines()] == ["observed", "reference"] and ax3.get_yscale() == "linear"
    with pytest.raises(ConfigError, match="^plot_incidence: column 'city_tier' is not in the incidence table$"):
        plot_incidence(inc, x="city_tier")


def test_cli_incidence(tmp_path, capsys) -> None:
    from engine.cli.main import main

    cells = _cells()
    cp = tmp_path / "cells.parquet"
    cells.write_parquet(cp)
    out = tmp_path / "inc.parquet"
    assert main(["incidence", "--cells", str(cp), "--by", "sex,city_tier", "--out", str(out), "--level", "0.9",
                 "--scale-basis", "--quiet"]) == 0
    got = pl.read_parquet(out)
    assert got.equals(incidence(cells, by=["sex", "city_tier"], level=0.9, scale_basis=True))
    assert main(["incidence", "--cells", str(cp), "--by", "region", "--out", str(out)]) == 2
    error_line(capsys, "incidence", f"{cp}: --by: column 'region' is not in the cells")
    assert main(["incidence", "--cells", str(cp), "--by", "city_tier", "--basis", "none", "--out", str(out)]) == 0


def test_engine_incidence_is_callable_after_submodule_import() -> None:
    import engine
    import engine.estimators.crude as mod

    cells = _cells()
    assert engine.incidence(cells, by=["sex"]).equals(mod.incidence(cells, by=["sex"]))
    assert engine.garwood_interval is garwood_interval


def test_cli_fits_and_saves_glm(tmp_path, capsys) -> None:
    from engine.cli.main import main
    from engine.estimators.glm import PoissonGLM

    cells = _cells()
    cp = tmp_path / "cells.parquet"
    cells.write_parquet(cp)
    mdir = tmp_path / "models" / "ci"
    assert main(["incidence", "--cells", str(cp), "--by", "age,sex,city_tier", "--out", str(tmp_path / "i.parquet"),
                 "--model-out", str(mdir), "--age", "linear", "--interactions", "sex:city_tier", "--quiet"]) == 0
    m = PoissonGLM.load(mdir)
    ref = PoissonGLM(factors=("sex", "city_tier"), age="linear", interactions=(("sex", "city_tier"),)).fit(cells)
    np.testing.assert_array_equal(m.predict(cells), ref.predict(cells))
    assert main(["incidence", "--cells", str(cp), "--out", str(tmp_path / "i.parquet"), "--model-out",
                 str(mdir), "--interactions", "sex", "--quiet"]) == 2
    error_line(capsys, "incidence", "--interactions", "'sex'", "is not a pair 'a:b'")


def test_incidence_is_additive_over_partial_cells() -> None:
    """Cells are additive: incidence of concatenated partial cells == incidence of their group sums."""
    cells = _cells(3)
    halves = pl.concat([cells.with_columns(pl.col("exposure_years") * 0.25, pl.col("claims") // 2),
                        cells.with_columns(pl.col("exposure_years") * 0.75, pl.col("claims") - pl.col("claims") // 2)])
    summed = halves.group_by("period", "age", "sex", "city_tier").agg(pl.col("exposure_years", "claims").sum())
    a = incidence(halves, by=["sex", "city_tier"])
    b = incidence(summed, by=["sex", "city_tier"])
    c = incidence(cells, by=["sex", "city_tier"])
    for col in ("exposure_years", "claims", "rate", "rate_upper", "expected", "ae_lower"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(a[col].to_numpy(), c[col].to_numpy(), rtol=1e-12)


@pytest.mark.slow
def test_synthetic_platform_true_ae_covered_at_nominal_frequency() -> None:
    """engine.synth 10^6 members (no select/anti-selection, no share-driven lapse, level 8 so that the
    480 groups have ~22 claims each): the planted A/E of every (5-year age band, sex, tier, channel)
    group is level x group multiplier exactly, since the synthetic incidence is level x CI2020 CI4 x
    multiplier. Garwood intervals must cover it at least at their level (within binomial noise,
    3 sd) and not absurdly more often (they are exact, so only mildly conservative at ~22 claims)."""
    from engine.cells._exposure import exposure
    from engine.synth import generate
    from engine.synth.config import CHANNELS as SYN_CHANNELS
    from engine.synth.config import risk_group_codes

    plat = generate(1_000_000, seed=12, level=8.0, select_factor=1.0, antiselection_channel=None,
                    lapse_share_slope=0.0)
    cfg = plat.params["config"]
    level, mult = float(cfg["level"]), np.asarray(cfg["group_multipliers"], float)
    cells = exposure(plat.members, plat.claims, start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31),
                     period="year", waiting_days=int(cfg["waiting_days"]), by=("age", "sex", "city_tier", "channel"))
    cells = cells.with_columns(((pl.col("age") // 5) * 5).alias("age_band"))
    by = ["age_band", "sex", "city_tier", "channel"]
    for lv, upper in ((0.5, 0.75), (0.8, 0.93), (0.9, 0.97), (0.95, 0.99)):
        inc = incidence(cells, by=by, level=lv)
        assert inc.height >= 400 and inc["claims"].median() >= 15
        code = np.array([SYN_CHANNELS.index(c) for c in inc["channel"]])
        true_ae = level * mult[risk_group_codes(inc["city_tier"].to_numpy(), code) - 1]
        cov = float(np.mean((inc["ae_lower"].to_numpy() <= true_ae) & (true_ae <= inc["ae_upper"].to_numpy())))
        sd = np.sqrt(lv * (1 - lv) / inc.height)
        assert lv - 3 * sd <= cov <= upper, (lv, cov)


def test_incidence_small_basis_zero_exposure_and_reference_line() -> None:
    """Found by mutation testing of the @api_input entry points (incidence, plot_incidence)."""
    import matplotlib

    matplotlib.use("Agg")
    small = _cells().filter(pl.col("age") == 30).with_columns(pl.col("exposure_years") / 4000.0)
    inc = incidence(small, by=["age", "sex"], scale_basis=True)  # well below one expected claim: still scaled
    assert float(small["claims"].sum()) > 0 and inc["basis_level"].is_finite().all()
    zero = _cells().with_columns(
        pl.when(pl.col("age") == 30).then(0.0).otherwise(pl.col("exposure_years")).alias("exposure_years"))
    row = incidence(zero, by=["age", "sex"]).filter(pl.col("age") == 30)
    assert row.height == 2 and row["expected_rate"].is_nan().all()
    ax = plot_incidence(incidence(_cells(), by=["age"]), hue=None)
    obs, ref = ax.get_lines()
    assert list(ref.get_xdata()) == list(obs.get_xdata()) == list(range(25, 45))
