"""PoissonGLM rules found untested by mutation testing (docs/testing.md): the singular-design and
no-claims refusals, one claim is enough, the full state kept by save/load, the default age grid
of a linear age term and the divergence warning's remedy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.errors import DataError, ModelError
from engine.estimators.glm import PoissonGLM, poisson_newton

_FITTED = ("n_iter_", "converged_", "deviance_", "null_deviance_", "loglik_", "n_cells_", "exposure_years_",
           "claims_", "data_fingerprint_", "fit_date_")


def _cells(claims: list[int]) -> pl.DataFrame:
    n = len(claims)
    return pl.DataFrame({"channel": [("a", "b")[i % 2] for i in range(n)], "age": [30 + i for i in range(n)],
                         "exposure_years": [1000.0 + 10 * i for i in range(n)], "claims": claims})


def test_singular_design_refused_with_its_reason() -> None:
    X = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    d, e = np.array([1.0, 2.0, 3.0]), np.ones(3)
    with pytest.raises(ModelError, match=r"^PoissonGLM: the design is singular \(collinear columns"):
        poisson_newton(X, d, e, np.zeros(2))


def test_no_claims_refused_one_claim_fits() -> None:
    with pytest.raises(DataError, match="cells: no claims, so no incidence model can be fitted"):
        PoissonGLM(factors=(), age=None).fit(_cells([0, 0, 0, 0]))
    m = PoissonGLM(factors=(), age=None).fit(_cells([0, 1, 0, 0]))
    assert m.claims_ == 1.0 and m.intercept_ == pytest.approx(np.log(1 / 4060.0))


def test_fit_state_and_save_load_keep_every_field(tmp_path) -> None:
    cells = _cells([3, 5, 2, 7, 4, 6])
    m = PoissonGLM(factors=("channel",), age="linear").fit(cells)
    assert m.n_cells_ == 6 and m.exposure_years_ == 6150.0 and m.claims_ == 27.0
    assert m.fit_date_ == dt.date.today().isoformat()
    m2 = PoissonGLM.load(m.save(tmp_path / "glm"))
    for k in _FITTED:
        assert getattr(m2, k) == getattr(m, k), k


def test_load_refuses_another_kind_of_model(tmp_path) -> None:
    from engine.data.persist import save_model

    p = save_model(tmp_path / "other", "PoissonGBM", {}, {"coefficients": pl.DataFrame({"term": ["x"]})})
    with pytest.raises(ModelError, match="holds a 'PoissonGBM' model, expected 'PoissonGLM'"):
        PoissonGLM.load(p)


def test_linear_age_curve_default_grid_is_ages_0_to_100() -> None:
    m = PoissonGLM(factors=("channel",), age="linear").fit(_cells([3, 5, 2, 7, 4, 6]))
    curve = m.age_curve()
    assert curve.get_column("age").to_list() == list(range(101))
    assert curve.schema["age"] == pl.Int32
    b = m.age_curve(channel="b")
    assert np.all(b.get_column("rate").to_numpy() != curve.get_column("rate").to_numpy())


def test_divergence_warning_names_the_remedies() -> None:
    rows = [(t, c, 4e4, 0 if (t, c) == ("3", "c") else 10 + 3 * i)
            for i, (t, c) in enumerate((t, c) for t in "123" for c in "abc")]
    cells = pl.DataFrame(rows, schema=["city_tier", "channel", "exposure_years", "claims"], orient="row")
    with pytest.warns(RuntimeWarning, match=r"; merge sparse levels, drop the interaction, or set alpha > 0 "
                                            r"\(docs/incidence\.md\)$"):
        PoissonGLM(factors=("city_tier", "channel"), age=None, interactions=(("city_tier", "channel"),)).fit(cells)


def test_plot_lorenz_labels_the_model() -> None:
    import matplotlib

    matplotlib.use("Agg")
    cells = _cells([3, 5, 2, 7, 4, 6])
    ax = PoissonGLM(factors=("channel",), age="linear").fit(cells).plot_lorenz(cells)
    assert ax.get_lines()[1].get_label().startswith("PoissonGLM (Gini ")


def test_age_knots_by_hand() -> None:
    """Found by mutation testing of engine.estimators.features: knots computed by hand."""
    from engine.estimators.features import _age_knots, quantile_knots, spline_knots

    assert spline_knots(0, 30, 5, 3) == [0.0] * 4 + [10.0, 20.0] + [30.0] * 4
    a = np.array([0.0, 1.0, 2.0, 3.0])
    # bins [0, .5], [.5, 1.5], [1.5, 2.5], [2.5, 3]; weights 1 each: quantiles 4/3 and 8/3 interpolated
    assert quantile_knots(a, np.ones(4), 5) == pytest.approx([0.0] * 4 + [5 / 6, 13 / 6] + [3.0] * 4)
    # the median of weights 1, 1, 1, 5 (total 8) lies in the last bin: 2.5 + 0.5 * (4 - 3) / 5
    assert quantile_knots(a, np.array([1.0, 1.0, 1.0, 5.0]), 4) == pytest.approx([0.0] * 4 + [2.6] + [3.0] * 4)
    assert quantile_knots(a, np.zeros(4), 4, 2) == spline_knots(0.0, 3.0, 4, 2)  # no weight: uniform, same degree
    cells = pl.DataFrame({"age": [0, 1, 2, 3], "exposure_years": [1.0, 1.0, 1.0, 5.0]})
    assert _age_knots(cells, 4, "exposure", "claims", "exposure_years") == pytest.approx([0.0] * 4 + [2.6] + [3.0] * 4)
