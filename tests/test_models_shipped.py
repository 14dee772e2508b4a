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


@pytest.mark.slow
def test_shipped_models_are_what_the_demo_fits(tmp_path: Path) -> None:
    """models/demo is reproducible: the default demo fits the same bytes (model.json differs only in fit_date)."""
    from engine.cli.cmd_demo import run_demo

    run_demo(tmp_path / "demo", quiet=True, progress=False)
    fitted = tmp_path / "demo" / "run" / "models"
    for name in ("glm", "segmentation"):
        for f in sorted((MODELS / name).glob("*.parquet")):
            assert (fitted / name / f.name).read_bytes() == f.read_bytes(), f"{name}/{f.name}"
        shipped = json.loads((MODELS / name / "model.json").read_text())
        new = json.loads((fitted / name / "model.json").read_text())
        shipped.pop("fit_date"), new.pop("fit_date")
        assert new == shipped
