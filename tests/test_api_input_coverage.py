"""Every public function taking a frame or a date accepts pandas and ISO text (issue: Python API input).

The guard enumerates the public API (``engine.__all__`` and each subpackage's ``__all__``): a callable with
a parameter named as a frame or a date must convert it (:func:`engine.data._coerce.api_input`), unless it is
listed below with the reason it needs no conversion; those are exercised with pandas input here too.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import pkgutil

import numpy as np
import polars as pl
import pytest

import engine

pd = pytest.importorskip("pandas")

FRAME_NAMES = {"cells", "members", "claims", "df", "frame", "groups", "points", "inc", "table", "base_rates", "benefits"}
DATE_NAMES = {"start", "end", "at", "as_of", "period_start", "notice_date"}

#: callables whose frame- or date-named parameter needs no conversion, and why
EXEMPT = {
    "reference_basis": "table is the name of a basis table (text), not a frame",
    "garwood_interval": "claims / exposure are array-likes (numpy converts pandas Series and lists)",
    "gini": "array-likes", "lorenz_curve": "array-likes", "calibration_table": "array-likes",
    "mean_poisson_deviance": "array-likes", "limited_fluctuation": "array-likes",
    "spiral_period": "array-likes",
    "groups_from_table": "table may be a mapping of columns; polars' constructor converts pandas",
    "select_table": "table may be a mapping or a path; polars' constructor converts pandas",
    "plan_size": "groups may be a mapping of columns; polars' constructor converts pandas",
    "tempo": "start is the state a tempo run starts from ('steady'), not a date; groups is converted",
    "RateModel.predict": "abstract: every estimator's predict converts its cells",
    "RateModel.predict_rate": "deprecated alias of predict, which converts",
    "RiskSegmenter.predict_rate": "deprecated alias of predict, which converts",
}


def _public_callables():
    mods = ["engine"] + [f"engine.{m.name}" for m in pkgutil.iter_modules(engine.__path__) if m.ispkg and m.name != "cli"]
    seen: dict[int, tuple[str, object]] = {}
    for mn in mods:
        mod = importlib.import_module(mn)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if callable(v) and not k.startswith("_"):
                        seen.setdefault(id(v), (f"{name}.{k}", v))
            elif callable(obj):
                seen.setdefault(id(obj), (name, obj))
    return sorted(seen.values(), key=lambda t: t[0])


def test_every_frame_or_date_parameter_is_converted():
    offenders = []
    for name, fn in _public_callables():
        try:
            params = set(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        hit = params & (FRAME_NAMES | DATE_NAMES)
        if hit and not hasattr(fn, "__wrapped__") and name not in EXEMPT:
            offenders.append(f"{name}({', '.join(sorted(hit))})")
    assert offenders == [], "public callables that do not convert pandas frames / ISO dates: " + "; ".join(offenders)


def test_array_helpers_take_pandas_series_and_lists():
    y, mu, e = [0.0, 1.0, 2.0, 0.0, 3.0], [0.1, 0.2, 0.3, 0.1, 0.4], [1.0, 2.0, 3.0, 1.0, 4.0]
    ps = [pd.Series(v) for v in (y, mu, e)]
    npa = [np.asarray(v) for v in (y, mu, e)]
    assert engine.gini(*ps) == engine.gini(*npa) == engine.gini(y, mu, e)
    assert engine.mean_poisson_deviance(ps[0], ps[1] * ps[2], ps[2]) == engine.mean_poisson_deviance(
        npa[0], npa[1] * npa[2], npa[2])
    assert engine.calibration_table(*ps, n_bins=2).equals(engine.calibration_table(*npa, n_bins=2))
    lo, hi = engine.garwood_interval(ps[0], ps[2])
    lo2, hi2 = engine.garwood_interval(npa[0], npa[2])
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    assert np.array_equal(engine.limited_fluctuation(ps[0]), engine.limited_fluctuation(npa[0]))


def test_converted_functions_take_pandas_frames_and_iso_dates():
    cells = pl.DataFrame({"age": [30, 30, 40], "sex": ["F", "M", "F"], "exposure_years": [1.0, 2.0, 3.0],
                          "claims": [0, 1, 2]})
    assert engine.data.fingerprint(cells.to_pandas()) == engine.data.fingerprint(cells)
    assert engine.cells.group_sums(cells.to_pandas(), ["age"], ["claims"]).equals(
        engine.cells.group_sums(cells, ["age"], ["claims"]))
    a = engine.projection.calendar_periods("2019-01-01", "2019-06-30", (14, 28))
    b = engine.projection.calendar_periods(dt.date(2019, 1, 1), dt.date(2019, 6, 30), (14, 28))
    assert a.equals(b) and a.height > 0
    with pytest.raises(engine.EngineError, match="calendar_periods: start"):
        engine.projection.calendar_periods("2019-13-01", "2019-06-30", (14, 28))
    with pytest.raises(engine.EngineError, match="fingerprint: df"):
        engine.data.fingerprint({"a": [1]})
