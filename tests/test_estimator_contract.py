"""One estimator contract (engine._estimator): every estimator and result object behaves alike.

Estimators: scikit-learn ``BaseEstimator`` (clone, get_params, set_params, repr), parameters
stored unchanged, ``fit`` returns self, fitted attributes end in ``_``, use before ``fit``
raises NotFittedError (a ModelError and sklearn's NotFittedError), ``summary`` is a
DataFrame property, ``print_summary(decimals=)``, ``_repr_html_``, ``plot_*(ax=)`` returns
the ax. Old parameter names are deprecated aliases that warn.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import datetime as dt
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from engine._estimator import Estimator, NotFittedError, predict_rates
from engine._results import ResultMixin
from engine.estimators.credibility import BuhlmannStraub, limited_fluctuation_table
from engine.errors import ModelError
from engine.estimators.gbm import PoissonGBM
from engine.estimators.glm import PoissonGLM
from engine.segmentation._model import CellPoissonModel
from engine.segmentation.segmenter import RiskSegmenter
from engine.estimators.select import SelectFactors

matplotlib.use("Agg")

ENGINE = Path(__file__).resolve().parents[1] / "engine"


@functools.cache
def make_cells(seed: int = 0) -> pl.DataFrame:
    """Monthly cells with planted sex, channel, age and duration effects (about 1,500 claims).

    Built on first use, not at import: a mutation run forks each mutant from a process that has
    imported this file, and polars work there would hold its thread pool."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(1, 13):
        for sex, fs in (("F", 1.0), ("M", 1.5)):
            for channel, fc in (("agent", 0.7), ("app", 1.0), ("subsidy", 1.8)):
                for age in range(20, 60, 5):
                    for duration, fd in ((1, 0.3), (4, 0.6), (8, 0.9), (15, 1.0), (30, 1.0)):
                        e = 25.0
                        rate = 0.01 * fs * fc * fd * np.exp(0.03 * (age - 40))
                        rows.append((dt.date(2024, m, 1), sex, channel, age, duration, e, int(rng.poisson(e * rate))))
    return pl.DataFrame(rows, schema={"period": pl.Date, "sex": pl.String, "channel": pl.String, "age": pl.Int32,
                                      "duration": pl.Int32, "exposure_years": pl.Float64, "claims": pl.Int64},
                        orient="row")



def _lorenz_cells() -> dict[str, dict[str, Any]]:
    return {"plot_lorenz": {"cells": make_cells()}}


#: name -> (factory of an unfitted estimator, factory of the extra keyword arguments of its plot_* methods)
ESTIMATORS: dict[str, tuple[Callable[[], Any], Callable[[], dict[str, dict[str, Any]]]]] = {
    "PoissonGLM": (lambda: PoissonGLM(factors=["sex", "channel"], age="linear"), _lorenz_cells),
    "PoissonGBM": (lambda: PoissonGBM(features=["sex", "channel", "age"], max_iter=20), _lorenz_cells),
    "CellPoissonModel": (lambda: CellPoissonModel(features=["sex", "channel", "age"]), dict),
    "RiskSegmenter": (lambda: RiskSegmenter(features=["sex", "channel"], min_expected_claims=2.0,
                                            model=CellPoissonModel(features=["sex", "channel", "age"])), dict),
    "BuhlmannStraub": (lambda: BuhlmannStraub(group="channel"), dict),
    "SelectFactors": (lambda: SelectFactors(bands=(0, 3, 6, 12, 24), adjust=["sex"]), dict),
}


def _classes_with_fit() -> set[str]:
    """Every public class under engine/ that defines ``fit`` (by reading the source, so nothing is missed).

    Private helpers (a leading underscore, e.g. the replay's likelihood ``_Fitter``) are not estimators."""
    names = set()
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                isinstance(b, ast.FunctionDef) and b.name == "fit" for b in node.body
            ):
                names.add(node.name)
    return names


def test_every_estimator_is_covered() -> None:
    assert _classes_with_fit() == set(ESTIMATORS)


@pytest.fixture(params=sorted(ESTIMATORS), scope="module")
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def fitted(name: str) -> Any:
    return ESTIMATORS[name][0]().fit(make_cells())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, BaseEstimator):
        return type(a) is type(b) and _same(a.get_params(deep=False), b.get_params(deep=False))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_params_clone_set_params_repr(name: str) -> None:
    est = ESTIMATORS[name][0]()
    assert isinstance(est, BaseEstimator) and isinstance(est, Estimator)
    assert "get_params" not in type(est).__dict__, "get_params comes from BaseEstimator"
    params = est.get_params(deep=False)
    sig = inspect.signature(type(est).__init__).parameters
    assert set(params) == {k for k, p in sig.items() if k != "self" and p.kind is not p.VAR_KEYWORD}
    twin = clone(est)  # clone also checks that __init__ stores every parameter unchanged
    assert twin is not est and _same(twin.get_params(deep=False), params)
    assert est.set_params(**params) is est and _same(est.get_params(deep=False), params)
    r = repr(est)
    assert r.startswith(f"{name}(") and " object at 0x" not in r


def test_unfitted_use_raises_not_fitted(name: str) -> None:
    est = ESTIMATORS[name][0]()
    with pytest.raises(NotFittedError) as info:
        _ = est.summary
    assert isinstance(info.value, ModelError) and isinstance(info.value, SklearnNotFittedError)
    if hasattr(type(est), "predict"):
        with pytest.raises(NotFittedError):
            est.predict(make_cells())
    with pytest.raises(NotFittedError):
        est.print_summary(decimals=2)
    for m in [m for m in dir(type(est)) if m.startswith("plot_")]:
        with pytest.raises(NotFittedError):
            getattr(est, m)(**ESTIMATORS[name][1]().get(m, {}))
    html = est._repr_html_()
    assert name in html and "not fitted" in html


def test_fit_returns_self_and_fitted_attributes_end_in_underscore(name: str) -> None:
    est = ESTIMATORS[name][0]()
    before = set(vars(est))
    assert est.fit(make_cells()) is est
    new = [k for k in set(vars(est)) - before if not k.startswith("_")]
    assert new and all(k.endswith("_") for k in new), new
    # fitting changed no parameter
    assert _same(est.get_params(deep=False), ESTIMATORS[name][0]().get_params(deep=False))


def test_summary_print_summary_repr_html(name: str, fitted: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(inspect.getattr_static(type(fitted), "summary"), property)
    assert isinstance(fitted.summary, pl.DataFrame) and fitted.summary.height > 0
    assert "decimals" in inspect.signature(fitted.print_summary).parameters
    fitted.print_summary(decimals=2)
    assert capsys.readouterr().out.strip()
    html = fitted._repr_html_()
    assert isinstance(html, str) and name in html and "fitted" in html and "not fitted" not in html
    bundle = fitted._repr_mimebundle_()
    assert bundle["text/html"] == html and bundle["text/plain"] == repr(fitted)


def test_plot_methods_return_the_ax(name: str, fitted: Any) -> None:
    import matplotlib.pyplot as plt

    extra = ESTIMATORS[name][1]()
    plots = [m for m in dir(type(fitted)) if m.startswith("plot_")]
    assert set(extra) <= set(plots)
    for m in plots:
        sig = inspect.signature(getattr(fitted, m))
        assert sig.parameters["ax"].default is None, m
        fig, ax = plt.subplots()
        try:
            assert getattr(fitted, m)(ax=ax, **extra.get(m, {})) is ax, m
        finally:
            plt.close(fig)


def test_predict_gives_expected_rates(name: str, fitted: Any) -> None:
    if not hasattr(type(fitted), "predict"):
        pytest.skip(f"{name} predicts nothing")
    cells = make_cells()
    rate = fitted.predict(cells)
    assert isinstance(rate, np.ndarray) and rate.shape == (cells.height,)
    assert np.all(np.isfinite(rate)) and np.all(rate >= 0)
    if hasattr(type(fitted), "predict_rate"):
        with pytest.warns(DeprecationWarning, match="predict_rate"):
            old = fitted.predict_rate(cells)
        np.testing.assert_array_equal(old, rate)


def test_html_is_escaped() -> None:
    html = BuhlmannStraub(group="<b>g</b>")._repr_html_()
    assert "<b>g</b>" not in html and "&lt;b&gt;g&lt;/b&gt;" in html


# ------------------------------------------------------------------------------------ renamed names
@pytest.mark.parametrize("cls", [BuhlmannStraub, SelectFactors])
@pytest.mark.parametrize(("old", "new", "value"), [("exposure", "exposure_col", "w"), ("claims", "claims_col", "n")])
def test_renamed_column_parameters_warn(cls: type, old: str, new: str, value: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated.*'{new}'"):
        est = cls(**{old: value})
    assert getattr(est, new) == value and old not in est.get_params()
    est = cls()
    with pytest.warns(DeprecationWarning, match=old):
        assert est.set_params(**{old: value}) is est
    assert getattr(est, new) == value
    with pytest.warns(DeprecationWarning, match=old):
        assert getattr(est, old) == value
    with pytest.raises(TypeError, match="unexpected keyword"):
        cls(no_such_parameter=1)
    with pytest.raises(TypeError, match="both"):
        cls(**{old: value, new: "other"})


def test_renamed_columns_fit_the_same() -> None:
    cells = make_cells().rename({"exposure_years": "w", "claims": "n"})
    new = BuhlmannStraub(group="channel", exposure_col="w", claims_col="n").fit(cells)
    with pytest.warns(DeprecationWarning):
        old = BuhlmannStraub(group="channel", exposure="w", claims="n").fit(cells)
    assert new.summary.equals(old.summary)
    with pytest.warns(DeprecationWarning):
        t_old = limited_fluctuation_table(cells, "channel", claims="n", exposure="w")
    assert t_old.equals(limited_fluctuation_table(cells, "channel", claims_col="n", exposure_col="w"))


def test_buhlmann_predict_is_the_credibility_rate_of_transform() -> None:
    cells = make_cells()
    bs = BuhlmannStraub(group="channel").fit(cells)
    np.testing.assert_array_equal(bs.predict(cells), bs.transform(cells)["credibility_rate"].to_numpy())


def test_models_with_only_predict_rate_still_work_with_a_warning() -> None:
    class Old:
        def fit(self, cells: pl.DataFrame) -> Old:
            return self

        def predict_rate(self, cells: pl.DataFrame) -> np.ndarray:
            return np.full(cells.height, 0.01)

    with pytest.warns(DeprecationWarning, match="predict_rate"):
        assert predict_rates(Old(), make_cells()).shape == (make_cells().height,)
    with pytest.warns(DeprecationWarning, match="predict_rate"):
        seg = RiskSegmenter(features=["sex", "channel"], min_expected_claims=2.0, model=Old()).fit(make_cells())
    assert seg.n_groups_ >= 1


def test_bootstrap_seed_is_random_state() -> None:
    from engine.segmentation._frontier import bootstrap_ari

    seg = ESTIMATORS["RiskSegmenter"][0]().fit(make_cells())
    new = bootstrap_ari(seg, make_cells(), n_boot=2, random_state=3)
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated.*'random_state'"):
        old = bootstrap_ari(seg, make_cells(), n_boot=2, seed=3)
    assert new == old


# ------------------------------------------------------------------------------------ result objects
def _result_classes() -> list[type]:
    from engine.plans.compare import ComparisonResult
    from engine.shares.decomposition import ShareDrivers
    from engine.plans.migration import MigrationResult
    from engine.plans.optimise import OptimiseResult
    from engine.projection._project import ProjectionResult
    from engine.data.validation import ValidationResult

    return [ProjectionResult, ShareDrivers, ComparisonResult, MigrationResult, OptimiseResult, ValidationResult]


@pytest.mark.parametrize("cls", _result_classes(), ids=lambda c: c.__name__)
def test_result_objects_share_the_contract(cls: type) -> None:
    assert issubclass(cls, ResultMixin) and dataclasses.is_dataclass(cls)
    assert isinstance(inspect.getattr_static(cls, "summary"), property)
    assert "decimals" in inspect.signature(cls.print_summary).parameters
    for m in [m for m in dir(cls) if m.startswith("plot_")]:
        assert inspect.signature(getattr(cls, m)).parameters["ax"].default is None, m


def test_small_result_objects(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.shares.decomposition import ShareDrivers
    from engine.data.validation import ValidationResult

    d = ShareDrivers(fee=1.08, period_length=1 / 12, dilution=1.0, waiting=1.0, reporting_lag=1.0, ageing=12.0, select=1.0,
                     mix=1.0, incidence=1.0, label="<pooled>")
    assert d.summary.equals(d.to_frame())
    v = ValidationResult(pl.LazyFrame(), pl.LazyFrame(), pl.DataFrame(), pl.DataFrame(),
                         {"members": {"read": 3, "used": 2, "set_aside": {"null_sex": 1}},
                          "claims": {"read": 0, "used": 0, "set_aside": {}}})
    assert v.summary["rows"].to_list() == [3, 2, 1, 0, 0]
    for r in (d, v):
        r.print_summary(decimals=2)
        assert capsys.readouterr().out.strip()
        html = r._repr_html_()
        assert type(r).__name__ in html
    assert "&lt;pooled&gt;" in d._repr_html_()


def test_split_seed_is_random_state() -> None:
    from engine.estimators.metrics import split_cells
    from engine.projection._project import project
    from engine.projection.assumptions import groups_from_table

    new = split_cells(make_cells(), 0.25, random_state=7)
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated.*'random_state'"):
        old = split_cells(make_cells(), 0.25, seed=7)
    assert new[1].equals(old[1])
    g = groups_from_table({"group": ["a", "b"], "members": [5000.0, 2000.0], "rate": [0.002, 0.004],
                           "benefit": [300_000.0, 100_000.0]})
    res = project(g, horizon=3, n_scenarios=50, seed=9)  # project's seed is the [projection] config key
    assert res.summary.equals(res.plans) and "ProjectionResult" in res._repr_html_()


def test_plot_functions_return_the_ax() -> None:
    import matplotlib.pyplot as plt

    from engine.estimators.crude import incidence, plot_incidence
    from engine.estimators.metrics import calibration_table, plot_calibration, plot_lorenz
    from engine.segmentation._frontier import plot_frontier

    cells = make_cells()
    glm = ESTIMATORS["PoissonGLM"][0]().fit(cells)
    seg = ESTIMATORS["RiskSegmenter"][0]().fit(cells)
    d, r, e = cells["claims"].to_numpy(), glm.predict(cells), cells["exposure_years"].to_numpy()
    calls = [lambda ax: plot_lorenz(d, r, e, ax=ax), lambda ax: plot_calibration(calibration_table(d, r, e), ax=ax),
             lambda ax: plot_frontier(seg.frontier_, ax=ax),
             lambda ax: plot_incidence(incidence(cells, by=["age", "sex"], basis=None), ax=ax)]
    for call in calls:
        fig, ax = plt.subplots()
        try:
            assert call(ax) is ax
        finally:
            plt.close(fig)
