"""Membership from a curve: interpolation, joiners and lapses (a net outflow becomes lapses), exact reproduction by
the calendar projection, points counted from a member file."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.projection.calendar import project_calendar
from engine.errors import ConfigError, DataError
from engine.projection.membership import interpolate, membership_from_curve, points_from_members

D = dt.date
POINTS = pl.DataFrame({"date": [D(2019, 1, 1), D(2019, 7, 1), D(2020, 1, 1), D(2020, 7, 1)],
                       "members": [100_000.0, 400_000.0, 500_000.0, 200_000.0]})


def test_linear_and_log_interpolation() -> None:
    m = interpolate(POINTS, D(2019, 1, 1), D(2020, 12, 31))
    x = [(d - D(2019, 1, 1)).days for d in POINTS["date"]]
    np.testing.assert_allclose(m[x], POINTS["members"].to_numpy())
    assert m[90] == pytest.approx(100_000 + 300_000 * 90 / 181)  # 2019-04-01 on the first segment (181 days)
    assert np.all(m[x[-1]:] == 200_000.0)  # flat after the last point
    lg = interpolate(POINTS, D(2019, 1, 1), D(2019, 7, 1), method="log")
    g = np.diff(np.log(lg))
    np.testing.assert_allclose(g, np.log(4.0) / 181, rtol=1e-10)  # a constant growth rate between two points
    with pytest.raises(DataError, match="after the start"):
        interpolate(POINTS, D(2018, 12, 1), D(2019, 3, 1))
    with pytest.raises(ConfigError, match="method"):
        interpolate(POINTS, D(2019, 1, 1), D(2019, 3, 1), method="spline")


def test_joiners_and_lapses_reproduce_the_curve_and_outflow_becomes_lapses() -> None:
    c = membership_from_curve(POINTS, D(2019, 1, 1), D(2020, 12, 31), base_lapse_annual=0.2)
    d = c.daily
    M = d["members"].to_numpy()
    np.testing.assert_allclose(np.diff(M), (d["joiners"] - d["lapses"]).to_numpy()[1:], rtol=0, atol=1e-6)
    h = 1 - 0.8 ** (1 / 365.25)
    grow = d.filter(pl.col("date") < D(2020, 1, 1))
    np.testing.assert_allclose(grow["lapses"].to_numpy()[1:], h * grow["members"].to_numpy()[:-1], rtol=1e-12)
    np.testing.assert_allclose(grow["lapse_annual"].to_numpy()[1:], 0.2, rtol=1e-9)
    fall = d.filter((pl.col("date") > D(2020, 1, 1)) & (pl.col("date") <= D(2020, 7, 1)))
    assert (fall["joiners"] == 0).all()  # 300k lost in 182 days: far more than the base lapses
    np.testing.assert_allclose(fall["lapses"].to_numpy(), 300_000 / 182, rtol=1e-9)
    la = fall["lapse_annual"].to_numpy()
    assert np.all(la > 0.2) and np.all(np.diff(la) > 0)  # the lapse rate varies in time (same outflow, fewer members)
    flat = d.filter(pl.col("date") > D(2020, 7, 1))
    np.testing.assert_allclose(flat["joiners"].to_numpy(), flat["lapses"].to_numpy(), rtol=1e-12)
    assert c.summary.height == 24 and c.members0 == 100_000.0


@pytest.mark.parametrize("method", ["linear", "log"])
def test_calendar_projection_fed_by_the_curve_reproduces_it(method) -> None:
    start, end = D(2019, 1, 1), D(2020, 12, 31)
    c = membership_from_curve(POINTS, start, end, base_lapse_annual=0.1, method=method)
    groups = pl.DataFrame({"group": ["a", "b"], "members": [0.6 * c.members0, 0.4 * c.members0],
                           "rate": [1e-3, 3e-3], "benefit_cny": [3e5, 1e5]})
    r = project_calendar(groups, start=start, end=end, sharing_days=(14, 28), n_scenarios=5, **c.inputs())
    on = r.periods.select("notice_date", "members").join(c.daily, left_on="notice_date", right_on="date")
    np.testing.assert_allclose(on["members"].to_numpy(), on["members_right"].to_numpy(), rtol=1e-9)
    upto = c.daily.filter(pl.col("date") <= r.periods["notice_date"][-1])
    np.testing.assert_allclose(r.periods["lapses"].sum(), upto["lapses"].sum(), rtol=1e-9)
    np.testing.assert_allclose(r.periods["joiners"].sum(), upto["joiners"][1:].sum(), rtol=1e-9)


def test_points_from_a_member_file() -> None:
    rng = np.random.default_rng(5)
    n = 500
    join = [D(2019, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 700, n)]
    exit_ = [j + dt.timedelta(days=int(x)) if rng.random() < 0.4 else None for j, x in zip(join, rng.integers(1, 400, n),
                                                                                         strict=True)]
    members = pl.DataFrame({"member_id": range(n), "join_date": join, "exit_date": exit_},
                           schema_overrides={"exit_date": pl.Date})
    dates = [D(2019, m, 1) for m in range(1, 13)] + [D(2020, m, 15) for m in range(1, 13)]
    got = points_from_members(members, dates)
    want = [sum(1 for j, e in zip(join, exit_, strict=True) if j <= d and (e is None or d < e)) for d in dates]
    assert got["members"].to_list() == want
    # the curve from a member file then drives the projection like any other curve
    c = membership_from_curve(got, D(2019, 1, 1), D(2020, 12, 15))
    assert c.daily.filter(pl.col("date").is_in(dates))["members"].to_list() == [float(w) for w in want]


def test_bad_points() -> None:
    with pytest.raises(DataError, match="column"):
        membership_from_curve(pl.DataFrame({"day": [D(2020, 1, 1)]}), D(2020, 1, 1), D(2020, 2, 1))
    with pytest.raises(DataError, match="same date"):
        membership_from_curve(pl.DataFrame({"date": [D(2020, 1, 1)] * 2, "members": [1.0, 2.0]}), D(2020, 1, 1),
                              D(2020, 2, 1))
    with pytest.raises(ConfigError, match="base_lapse"):
        membership_from_curve(POINTS, D(2019, 1, 1), D(2019, 2, 1), base_lapse_annual=1.0)
