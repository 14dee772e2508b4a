"""Python API input (issue 16, item 8): pandas frames and ISO text dates accepted; anything else an
EngineError naming the function and the argument (never an AttributeError)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import engine
from engine.data._coerce import as_date, as_frame
from engine.errors import DataError, EngineError


@pytest.fixture(scope="module")
def plat():  # type: ignore[no-untyped-def]
    from engine.synth import generate

    return generate(4000, seed=3, level=6.0)


def test_pandas_members_and_claims_give_the_same_answers(plat) -> None:  # type: ignore[no-untyped-def]
    m, c = plat.members.to_pandas(), plat.claims.to_pandas()
    assert str(m["join_date"].dtype).startswith("datetime64")  # pandas' own date type
    r_pd = engine.validate(m, c, as_of="2022-06-30")
    r_pl = engine.validate(plat.members, plat.claims, as_of=dt.date(2022, 6, 30))
    assert r_pd.account == r_pl.account
    kw = dict(by=["age", "sex", "city_tier"], period="quarter")
    cells_pd = engine.exposure(m, c, start="2019-01-01", end="2021-12-31", **kw)
    cells_pl = engine.exposure(plat.members, plat.claims, start=dt.date(2019, 1, 1), end=dt.date(2021, 12, 31), **kw)
    assert cells_pd.equals(cells_pl)
    # frames taken by the downstream functions and methods: pandas cells work the same
    from polars.testing import assert_frame_equal

    inc_pd = engine.incidence(cells_pl.to_pandas(), by=["age", "sex"], basis=None)
    # (polars' parallel group sums may differ in the last bit from call to call: compared to 1e-12)
    assert_frame_equal(inc_pd, engine.incidence(cells_pl, by=["age", "sex"], basis=None), rel_tol=1e-12)
    a, b = engine.split_cells(cells_pl.to_pandas(), seed=1)
    a2, b2 = engine.split_cells(cells_pl, seed=1)
    assert a.equals(a2) and b.equals(b2)


def test_history_dates_as_text(plat) -> None:  # type: ignore[no-untyped-def]
    cal_text = engine.sharing_calendar("2020-01-01", "2020-12-31")
    assert cal_text.equals(engine.sharing_calendar(dt.date(2020, 1, 1), dt.date(2020, 12, 31)))


@pytest.mark.parametrize("value, want", [
    ("2019-01-01", dt.date(2019, 1, 1)),
    (dt.datetime(2019, 1, 1, 13, 5), dt.date(2019, 1, 1)),
    (dt.date(2019, 1, 1), dt.date(2019, 1, 1)),
])
def test_as_date_accepts(value, want) -> None:  # type: ignore[no-untyped-def]
    assert as_date(value, "start") == want


def test_as_date_accepts_pandas_and_numpy() -> None:
    import numpy as np
    import pandas as pd

    assert as_date(pd.Timestamp("2020-02-29 10:00"), "at") == dt.date(2020, 2, 29)
    assert as_date(np.datetime64("2020-02-29"), "at") == dt.date(2020, 2, 29)


@pytest.mark.parametrize("call, needles", [
    (lambda p: engine.validate({"member_id": [1]}, p.claims), ("validate: members", "got dict")),
    (lambda p: engine.validate(p.members, [1, 2]), ("validate: claims", "got list")),
    (lambda p: engine.validate(p.members, p.claims, as_of="30/06/2022"), ("validate: as_of", "30/06/2022")),
    (lambda p: engine.exposure(p.members, p.claims, start=20190101, end="2021-12-31"), ("exposure: start", "int")),
    (lambda p: engine.exposure(p.members, p.claims, start="2019-01-01", end=None), ("exposure: end",)),
    (lambda p: engine.incidence("cells.parquet"), ("incidence: cells", "got str")),
    (lambda p: engine.PoissonGLM().fit(None), ("PoissonGLM.fit: cells",)),
    (lambda p: engine.project(pl.DataFrame().to_numpy()), ("project: groups", "ndarray")),
])
def test_anything_else_is_an_engine_error_naming_the_argument(plat, call, needles) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError) as info:
        call(plat)
    assert isinstance(info.value, ValueError)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))


def test_as_frame_lists_and_passthrough(plat) -> None:  # type: ignore[no-untyped-def]
    lf = plat.members.lazy()
    assert as_frame(lf, "members") is lf
    parts = as_frame([plat.members.head(10).to_pandas(), plat.members.slice(10, 10)], "members", "members")
    assert [type(p) for p in parts] == [pl.DataFrame, pl.DataFrame] and parts[0].schema["join_date"] == pl.Date
    with pytest.raises(DataError, match="members: expected a polars DataFrame or LazyFrame, or a pandas DataFrame"):
        as_frame([1, 2], "members")


def test_pandas_groups_for_the_sharing_rules() -> None:
    from engine.plans.sharing import compare_rules

    g = pl.DataFrame({"group": ["a", "b"], "members": [1000.0, 500.0], "rate": [0.001, 0.004],
                      "benefit_cny": [300000.0, 100000.0]})
    assert compare_rules(g.to_pandas(), periods_per_year=12).equals(compare_rules(g, periods_per_year=12))
