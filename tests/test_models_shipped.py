"""The fitted models shipped in models/demo load, carry their metadata, and predict a fresh platform."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

import engine

MODELS = Path(__file__).resolve().parents[1] / "models" / "demo"


@pytest.fixture(scope="module")
def fresh_cells() -> pl.DataFrame:
    """A platform from the same generator as the demo but another seed: data the models never saw."""
    plat = engine.synth.generate(300_000, seed=7)
    v = engine.validate(plat.members, plat.claims)
    return engine.exposure(v.members, v.claims, start=dt.date(2018, 10, 16), end=dt.date(2021, 12, 31),
                           period="month", by=("age", "sex", "city_tier", "channel", "duration_band"))


@pytest.mark.parametrize("name", ["glm", "segmentation"])
def test_metadata_and_portable_files(name: str) -> None:
    d = MODELS / name
    meta = json.loads((d / "model.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data_fingerprint"])
    assert meta["engine_version"] == engine.__version__
    dt.date.fromisoformat(meta["fit_date"])
    files = {p.suffix for p in d.iterdir()}
    assert files <= {".json", ".parquet"}  # no pickles


def test_glm_predicts_the_claims_of_a_fresh_platform(fresh_cells: pl.DataFrame) -> None:
    glm = engine.PoissonGLM.load(MODELS / "glm")
    mu = np.asarray(glm.predict_claims(fresh_cells))
    observed = int(fresh_cells["claims"].sum())
    assert observed > 200
    # total observed claims inside the 99.9% Poisson interval of the predicted total
    lo, hi = stats.poisson.ppf([0.0005, 0.9995], mu.sum())
    assert lo <= observed <= hi
    # and older ages claim more, as the CI2020 shape says
    by_age = fresh_cells.with_columns(pl.Series("mu", mu)).group_by(pl.col("age") >= 40).agg(pl.col("mu").sum() / pl.col("exposure_years").sum())
    rates = dict(zip(by_age["age"], by_age["mu"], strict=True))
    assert rates[True] > 3 * rates[False]


def test_segmentation_assigns_every_cell_and_orders_risk(fresh_cells: pl.DataFrame) -> None:
    seg = engine.RiskSegmenter.load(MODELS / "segmentation")
    g = seg.assign(fresh_cells)
    assert g.null_count() == 0 and g.len() == fresh_cells.height
    rates = (fresh_cells.with_columns(g.alias("group")).group_by("group")
             .agg(pl.col("claims").sum() / pl.col("exposure_years").sum()).sort("group")["claims"].to_list())
    assert len(rates) == seg.n_groups_ >= 2
    assert rates == sorted(rates)  # groups are numbered by ascending rate


#: how close a refit must come to the shipped numbers. The fit is deterministic on one machine (same
#: bytes, see test_determinism.py); across numpy, BLAS and polars builds the last bits of a float may
#: differ (5e-15 relative has been seen), so shipped models are compared by value, never by bytes.
RTOL = 1e-9


def _same_value(a: object, b: object, where: str) -> None:
    """Recursive equality of JSON-like values, floats to ``RTOL`` (absolute 1e-12 near zero)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same_value(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_value(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=RTOL, abs=1e-12, nan_ok=True), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _same_table(new: pl.DataFrame, shipped: pl.DataFrame, where: str) -> None:
    assert new.columns == shipped.columns and new.height == shipped.height, where
    for col in shipped.columns:
        x, y = new[col], shipped[col]
        if x.dtype.is_float():
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=RTOL, atol=1e-12, err_msg=f"{where}.{col}")
        else:
            assert x.to_list() == y.to_list(), f"{where}.{col}"


@pytest.mark.slow
def test_shipped_models_are_what_the_demo_fits(tmp_path: Path) -> None:
    """models/demo is reproducible: the default demo refits the same models (values to RTOL; model.json
    differs only in fit_date)."""
    from engine.cli.cmd_demo import run_demo

    run_demo(tmp_path / "demo", quiet=True, progress=False)
    fitted = tmp_path / "demo" / "run" / "models"
    for name in ("glm", "segmentation"):
        shipped_files = sorted(f.name for f in (MODELS / name).glob("*.parquet"))
        assert sorted(f.name for f in (fitted / name).glob("*.parquet")) == shipped_files
        for f in shipped_files:
            _same_table(pl.read_parquet(fitted / name / f), pl.read_parquet(MODELS / name / f), f"{name}/{f}")
        shipped = json.loads((MODELS / name / "model.json").read_text())
        new = json.loads((fitted / name / "model.json").read_text())
        shipped.pop("fit_date"), new.pop("fit_date")
        _same_value(new, shipped, f"{name}/model.json")


def test_value_comparison_catches_a_real_difference() -> None:
    """The tolerance is tight: a relative change of 1e-6 in one coefficient is caught."""
    t = pl.read_parquet(next((MODELS / "glm").glob("coefficients.parquet")))
    col = next(c for c in t.columns if t[c].dtype.is_float())
    bumped = t.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col(col) * (1 + 1e-6))
                            .otherwise(pl.col(col)).alias(col))
    _same_table(t, t, "same")
    with pytest.raises(AssertionError):
        _same_table(bumped, t, "bumped")
    with pytest.raises(AssertionError):
        _same_value({"a": [1.0, 2.0]}, {"a": [1.0, 2.0 + 1e-6]}, "json")
