"""Metrics on cells against plain-loop oracles: deviance, split, Lorenz / Gini, calibration, plots."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from engine.errors import ConfigError, DataError
from engine.estimators.metrics import (
    calibration_table,
    gini,
    lorenz_curve,
    mean_poisson_deviance,
    plot_calibration,
    plot_lorenz,
    poisson_deviance,
    split_cells,
)


def _data(seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    e = rng.gamma(2.0, 200.0, n)
    r = rng.lognormal(np.log(1e-3), 0.6, n)
    d = rng.poisson(r * e)
    pred = np.round(r * rng.lognormal(0, 0.2, n), 5)  # rounding creates ties
    return d, pred, e


def test_mean_deviance_against_loop_and_sklearn() -> None:
    from sklearn.metrics import mean_poisson_deviance as skl

    d, r, e = _data()
    num = den = 0.0
    for di, ri, ei in zip(d, r, e):
        mu = ri * ei
        num += 2 * ((di * math.log(di / mu) if di > 0 else 0.0) - (di - mu))
        den += ei
    assert mean_poisson_deviance(d, r * e, e) == pytest.approx(num / den, rel=1e-12)
    assert mean_poisson_deviance(d, r * e, e) == pytest.approx(skl(d / e, r, sample_weight=e), rel=1e-9)
    assert poisson_deviance([0.0], [2.0])[0] == pytest.approx(4.0)
    with pytest.raises(DataError):
        mean_poisson_deviance([1], [1.0], [0.0])
    with pytest.raises(DataError, match="lengths"):
        mean_poisson_deviance([1, 2], [1.0], [1.0])


def _cells(n_age: int = 30) -> pl.DataFrame:
    rows = [(dt.date(2021, m, 1), a, s, 1.0 + a, a % 3) for m in (1, 2, 3, 4) for a in range(20, 20 + n_age)
            for s in ("F", "M")]
    return pl.DataFrame(rows, schema={"period": pl.Date, "age": pl.Int32, "sex": pl.String, "exposure_years": pl.Float64,
                                      "claims": pl.Int64}, orient="row")


def test_hash_split_deterministic_disjoint_and_stable() -> None:
    cells = _cells()
    tr, te = split_cells(cells, 0.25, random_state=3)
    tr2, te2 = split_cells(cells, 0.25, random_state=3)
    assert tr.equals(tr2) and te.equals(te2)
    assert tr.height + te.height == cells.height
    assert pl.concat([tr, te]).sort("period", "age", "sex").equals(cells.sort("period", "age", "sex"))
    assert tr.join(te, on=["period", "age", "sex"]).height == 0
    # about a quarter held out (240 cells: binomial sd ~6.7)
    assert abs(te.height - 60) < 4 * math.sqrt(240 * 0.25 * 0.75)
    # a cell's side depends only on its own keys: shuffling and adding cells does not move it
    bigger = pl.concat([cells, _cells(40).filter(pl.col("age") >= 50)]).sample(fraction=1.0, shuffle=True, seed=1)
    _, te3 = split_cells(bigger, 0.25, random_state=3)
    assert te3.filter(pl.col("age") < 50).sort("period", "age", "sex").equals(te.sort("period", "age", "sex"))
    assert not split_cells(cells, 0.25, random_state=4)[1].equals(te)


def test_period_split_is_out_of_time() -> None:
    cells = _cells()
    tr, te = split_cells(cells, 0.25, method="period")
    assert te["period"].unique().to_list() == [dt.date(2021, 4, 1)]
    assert tr["period"].max() == dt.date(2021, 3, 1)
    with pytest.raises(ConfigError, match="test_size"):
        split_cells(cells, 1.0)
    with pytest.raises(ConfigError, match="method"):
        split_cells(cells, 0.2, method="random")


def _lorenz_oracle(d, r, e):
    order = sorted(range(len(r)), key=lambda i: r[i])
    xs, ys = [0.0], [0.0]
    ce = cd = 0.0
    te, td = float(sum(e)), float(sum(d))
    k = 0
    while k < len(order):
        j = k
        while j < len(order) and r[order[j]] == r[order[k]]:
            ce += e[order[j]]
            cd += d[order[j]]
            j += 1
        xs.append(ce / te)
        ys.append(cd / td)
        k = j
    area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))
    return np.array(xs), np.array(ys), 1 - 2 * area


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6), st.floats(0.1, 10.0)), min_size=1, max_size=30))
def test_lorenz_and_gini_against_loop(rows) -> None:
    d = np.array([r[0] for r in rows], float)
    r = np.array([r[1] for r in rows], float) / 1000  # few distinct values: many ties
    e = np.array([r_[2] for r_ in rows])
    if d.sum() == 0:
        with pytest.raises(DataError):
            lorenz_curve(d, r, e)
        return
    x, y = lorenz_curve(d, r, e)
    xo, yo, go = _lorenz_oracle(list(d), list(r), list(e))
    np.testing.assert_allclose(x, xo, atol=1e-12)
    np.testing.assert_allclose(y, yo, atol=1e-12)
    assert gini(d, r, e) == pytest.approx(go, abs=1e-12)


def test_gini_reference_cases() -> None:
    e = np.ones(4)
    d = np.array([0, 0, 0, 4.0])
    assert gini(d, np.ones(4), e) == pytest.approx(0.0, abs=1e-15)  # no information
    # perfect ranking of 4 equal-exposure cells, all claims in the riskiest: 1 - 2 * (1/8) = 0.75
    assert gini(d, np.array([1.0, 2, 3, 4]), e) == pytest.approx(0.75)
    assert gini(d, np.array([4.0, 3, 2, 1]), e) == pytest.approx(-0.75)


def _calib_oracle(d, r, e, n_bins):
    order = sorted(range(len(r)), key=lambda i: (r[i], i))
    tot = sum(e)
    bins: dict[int, list[float]] = {}
    cum = 0.0
    for i in order:
        cum += e[i]
        b = min(int(math.floor(n_bins * (cum - e[i] / 2) / tot)), n_bins - 1) + 1
        acc = bins.setdefault(b, [0.0, 0.0, 0.0])
        acc[0] += e[i]
        acc[1] += r[i] * e[i]
        acc[2] += d[i]
    return bins


@pytest.mark.parametrize("n_bins", [10, 4, 1])
def test_calibration_against_loop(n_bins) -> None:
    d, r, e = _data(2)
    got = calibration_table(d, r, e, n_bins=n_bins)
    exp = _calib_oracle(list(d), list(r), list(e), n_bins)
    assert got["bin"].to_list() == sorted(exp)
    for row in got.iter_rows(named=True):
        ee, pc, dd = exp[row["bin"]]
        assert row["exposure_years"] == pytest.approx(ee, rel=1e-12)
        assert row["predicted_claims"] == pytest.approx(pc, rel=1e-12)
        assert row["claims"] == pytest.approx(dd)
        assert row["observed_rate"] == pytest.approx(dd / ee)
        assert row["observed_lower"] == pytest.approx(stats.chi2.ppf(0.025, 2 * dd) / (2 * ee) if dd else 0.0)
        assert row["observed_upper"] == pytest.approx(stats.chi2.ppf(0.975, 2 * dd + 2) / (2 * ee))
    if n_bins == 10:  # exposure-weighted deciles hold about 10% each
        share = got["exposure_years"].to_numpy() / e.sum()
        assert np.all(np.abs(share - 0.1) < 0.02)


def test_calibrated_model_lies_within_intervals() -> None:
    """With the true rates as predictions, observed decile rates cover them at about the nominal rate."""
    rng = np.random.default_rng(9)
    hits = n = 0
    for _ in range(30):
        e = rng.gamma(2.0, 500.0, 400)
        r = rng.lognormal(np.log(1e-3), 0.5, 400)
        t = calibration_table(rng.poisson(r * e), r, e)
        hits += int(((t["observed_lower"] <= t["predicted_rate"]) & (t["predicted_rate"] <= t["observed_upper"])).sum())
        n += t.height
    assert hits / n >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / n)


def test_plots_return_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    d, r, e = _data(3)
    ax = plot_lorenz(d, r, e)
    assert len(ax.get_lines()) == 2 and "Gini" in ax.get_lines()[1].get_label()
    ax2 = plot_calibration(calibration_table(d, r, e))
    assert len(ax2.get_lines()) >= 1


def test_calibration_ae_small_exposure_and_plots_by_hand() -> None:
    """A/E is claims over predicted; a total exposure below one year is fine; the plots draw what they say."""
    import matplotlib

    matplotlib.use("Agg")
    d, r, e = np.array([1.0, 0.0, 3.0]), np.array([0.5, 1.0, 2.0]), np.array([0.2, 0.3, 0.4])
    t = calibration_table(d, r, e, n_bins=3)
    assert t["ae"].to_list() == pytest.approx([1.0 / 0.1, 0.0, 3.0 / 0.8])
    with pytest.raises(DataError, match="metrics: total exposure must be positive"):
        calibration_table(d, r, np.zeros(3))
    ax = plot_calibration(t)
    segs = ax.containers[0].lines[2][0].get_segments()  # the error bars: observed lower to upper
    assert [s[0][1] for s in segs] == pytest.approx(t["observed_lower"].to_list())
    assert [s[1][1] for s in segs] == pytest.approx(t["observed_upper"].to_list())
    ax = plot_lorenz(d, r, e)
    assert [ln.get_label() for ln in ax.get_lines()][0] == "no information"


def test_metrics_edges_and_plotted_data_by_hand() -> None:
    """The `seed` alias warns naming `random_state`; a predicted count of zero is accepted; the Lorenz curve refuses zero exposure; a
    zero-exposure cell at the highest rate stays in the last bin; the plots draw x against y and
    label the calibration diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    cells = pl.DataFrame({"age": list(range(20)), "claims": [1] * 20, "exposure_years": [1.0] * 20})
    with pytest.warns(DeprecationWarning, match="split_cells: 'seed' is deprecated .* use 'random_state'"):
        old = split_cells(cells, seed=3)
    new = split_cells(cells, random_state=3)
    assert old[1].equals(new[1]) and old[0].equals(new[0])
    assert poisson_deviance([0.0, 2.0], [0.0, 2.0]).tolist() == [0.0, 0.0]  # a zero prediction is allowed
    with pytest.raises(DataError, match="needs positive total exposure and claims"):
        lorenz_curve([1.0, 2.0], [0.1, 0.2], [0.0, 0.0])
    t = calibration_table(np.array([1.0, 0.0, 0.0]), np.array([0.5, 1.0, 2.0]), np.array([1.0, 1.0, 0.0]),
                          n_bins=2)
    assert t["bin"].to_list() == [1, 2] and t["exposure_years"].to_list() == [1.0, 1.0]
    d, r, e = np.array([1.0, 0.0, 3.0]), np.array([0.5, 1.0, 2.0]), np.array([0.2, 0.3, 0.4])
    x, y = lorenz_curve(d, r, e)
    line = plot_lorenz(d, r, e).get_lines()[1]
    assert list(line.get_xdata()) == pytest.approx(list(x)) and list(line.get_ydata()) == pytest.approx(list(y))
    ax = plot_calibration(calibration_table(d, r, e, n_bins=3))
    assert "perfect calibration" in [ln.get_label() for ln in ax.get_lines()]
