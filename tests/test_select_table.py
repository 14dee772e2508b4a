"""One select-table schema: select_factors output feeds share_drivers and project unchanged."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.shares.decomposition import drivers_from_cells
from engine.errors import ConfigError
from engine.projection._project import project
from engine.projection.assumptions import select_factors_from_table
from engine.estimators.select import SelectFactors, select_factors
from engine.estimators._select_table import factor_at, select_table


def _cells(seed: int = 0) -> pl.DataFrame:
    """Eligible cells by duration month 3..35 (a 90-day wait: no exposure before month 3), age, sex."""
    rng = np.random.default_rng(seed)
    d, age = np.meshgrid(np.arange(3, 36), np.arange(25, 60), indexing="ij")
    d, age = d.ravel(), age.ravel()
    e = np.full(d.shape, 50.0)
    lam = 0.002 * np.exp(0.05 * (age - 40)) * np.where(d < 12, 0.6, 1.0)
    claims = rng.poisson(lam * e)
    return pl.DataFrame({"duration": d.astype(np.int32), "age": age.astype(np.int32), "sex": ["M"] * d.size,
                         "exposure_years": e, "claims": claims.astype(np.int64),
                         "amount": claims * 300_000.0})


@pytest.fixture(scope="module")
def fitted() -> tuple[pl.DataFrame, SelectFactors]:
    cells = _cells()
    return cells, SelectFactors(bands=(0, 3, 6, 12, 24), route="both").fit(cells)


def test_canonical_table_from_select_factors(fitted) -> None:
    _, sf = fitted
    raw = sf.summary
    assert raw["duration_from"].min() == 3  # the waiting period has no exposure: band 0-2 is dropped by the fit
    t = select_table(raw)
    glm = raw.filter(pl.col("route") == "glm").sort("duration_from")
    assert t["duration_from"].to_list() == [0, 3, 6, 12, 24]
    assert t["duration_to"].to_list() == [3, 6, 12, 24, None]
    np.testing.assert_allclose(t["factor"].to_numpy(), np.r_[0.0, glm["factor"].to_numpy()])
    lif = select_table(raw, route="lifelines")
    np.testing.assert_allclose(lif["factor"].to_numpy()[1:], raw.filter(pl.col("route") == "lifelines")
                               .sort("duration_from")["factor"].to_numpy())
    assert select_table(sf).equals(t)  # the fitted object is accepted as well
    # the older hand-made schema (duration_min) reads the same
    legacy = pl.DataFrame({"duration_min": [0, 3, 12], "factor": [0.5, 0.8, 1.0]})
    assert select_table(legacy)["duration_from"].to_list() == [0, 3, 12]
    np.testing.assert_allclose(factor_at(select_table(legacy), np.array([0, 2, 3, 11.9, 12, 40])),
                               [0.5, 0.5, 0.8, 0.8, 1.0, 1.0])


def test_select_factors_output_feeds_share_drivers_unchanged(fitted) -> None:
    cells, sf = fitted
    out = select_factors(cells, bands=(0, 3, 6, 12, 24))  # the function's DataFrame, as a user passes it
    d = drivers_from_cells(cells, sharing_members=100_000, amount_approved_cny=float(cells["amount"].sum()),
                           period_days=365, select_factors=out)
    # oracle: the select driver is the weighted mean of the band factors with weights E x base x B
    from engine.data.reference import reference_basis

    base = cells.join(reference_basis().select("age", "sex", "rate"), on=["age", "sex"])
    w = base["exposure_years"].to_numpy() * base["rate"].to_numpy() * np.where(base["age"].to_numpy() < 40, 3e5, 1e5)
    f = factor_at(select_table(out), base["duration"].to_numpy())
    assert d.select == pytest.approx(float((w * f).sum() / w.sum()), rel=1e-12)
    d2 = drivers_from_cells(cells, sharing_members=100_000, amount_approved_cny=float(cells["amount"].sum()),
                            period_days=365, select_factors=sf)
    assert d2.select == pytest.approx(d.select, rel=1e-15)


def test_select_factors_output_feeds_project_unchanged(fitted) -> None:
    _, sf = fitted
    t = select_table(sf.summary)
    per = select_factors_from_table(sf.summary, 12)
    # monthly periods: tenure tau (completed months) takes the band containing month tau; months 0-2 get 0
    np.testing.assert_allclose(per, factor_at(t, np.arange(len(per))))
    assert per[:3] == [0.0, 0.0, 0.0] and len(per) == 25
    groups = pl.DataFrame({"group": ["all"], "members": [100_000.0], "rate": [0.001], "benefit_cny": [300_000.0]})
    kw = dict(horizon=30, n_scenarios=1, waiting_periods=3, reporting_lag_periods=0, lapse=0.0)
    a = project(groups, select_factors=sf.summary, **kw)
    b = project(groups, select_factors=per, **kw)
    c = project(groups, select_factors=sf, **kw)
    assert a.periods["det_share_cny"].to_list() == b.periods["det_share_cny"].to_list()
    assert c.periods["det_share_cny"].to_list() == b.periods["det_share_cny"].to_list()


def test_bad_tables() -> None:
    with pytest.raises(ConfigError, match="duration_from"):
        select_table(pl.DataFrame({"months": [0], "factor": [1.0]}))
    with pytest.raises(ConfigError, match=">= 0"):
        select_table(pl.DataFrame({"duration_from": [0, 3], "factor": [1.0, -1.0]}))
    with pytest.raises(ConfigError, match="increasing"):
        select_table(pl.DataFrame({"duration_from": [0, 0], "factor": [1.0, 1.0]}))
    with pytest.raises(ConfigError, match="route"):
        select_table(pl.DataFrame({"duration_from": [0], "factor": [1.0], "route": ["glm"]}), route="x")


def test_select_factors_output_feeds_replay_unchanged(fitted) -> None:
    import datetime as dt

    from engine.calibration import build_model, replay
    from engine.calibration._model import Aggregate

    _, sf = fitted
    pts = pl.DataFrame({"date": [dt.date(2020, 1, 1), dt.date(2021, 12, 31)], "members": [0.0, 1e6]})
    groups = pl.DataFrame({"group": ["a"], "weight": [1.0], "benefit_cny": [1e5], "rate": [2e-3]})
    ag = [Aggregate("claimants_year", dt.date(2021, 6, 30), 300.0)]
    kw = dict(start=dt.date(2020, 1, 1), end=dt.date(2021, 12, 31), groups=groups, sharing_days="monthly")
    m = build_model(pts, ag, select_factors=sf.summary, **kw)
    t = select_table(sf.summary)
    tau = np.arange(m.D)
    np.testing.assert_allclose(m.kernel(1.0, 1.0), np.where(tau >= 90, factor_at(t, np.floor(tau / (365.25 / 12))), 0))
    r = replay(pts, ag, select_factors=sf.summary, fit=("level",), n_boot=0, **kw)
    # one count, one parameter: fitted up to the variance term of the normal likelihood (mu-hat ~ y - 1/2)
    assert r.fit["fitted"][0] == pytest.approx(300.0, abs=1.0)


def test_empty_table_and_a_first_band_from_month_one() -> None:
    """No band is refused by name; a table starting at month 1 gets a zero-factor band [0, 1)."""
    with pytest.raises(ConfigError, match="select_factors: the table has no band"):
        select_table(pl.DataFrame({"duration_from": [], "factor": []},
                                  schema={"duration_from": pl.Int32, "factor": pl.Float64}))
    t = select_table(pl.DataFrame({"duration_from": [1, 4], "factor": [0.5, 1.0]}))
    assert t.to_dicts() == [{"duration_from": 0, "duration_to": 1, "factor": 0.0},
                            {"duration_from": 1, "duration_to": 4, "factor": 0.5},
                            {"duration_from": 4, "duration_to": None, "factor": 1.0}]
