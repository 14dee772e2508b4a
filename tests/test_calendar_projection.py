"""Projection on the calendar: closed forms (closed pool, steady growth with a wait in days), a day-by-day cohort
loop oracle, dated rows and calendar-year annual shares."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from engine.projection.calendar import calendar_periods, project_calendar
from engine.errors import ConfigError, DataError

D = dt.date
ONE = pl.DataFrame({"group": ["all"], "members": [1e6], "rate": [1e-3], "benefit_cny": [300_000.0]})


@pytest.mark.parametrize("sharing_days", [(14, 28), "monthly"])
@pytest.mark.parametrize(("wait", "lag"), [(0, 0), (90, 30), (180, 45)])
def test_closed_pool_closed_form(sharing_days, wait, lag) -> None:
    r = project_calendar(ONE, start=D(2020, 1, 1), end=D(2021, 12, 31), sharing_days=sharing_days, fee=0.08,
                         waiting_days=wait, reporting_lag_days=lag, n_scenarios=10)
    p = r.periods
    want = 1.08 * 1e-3 * 300_000.0 * p["days"].to_numpy() / 365.25
    np.testing.assert_allclose(p["det_share_cny"].to_numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(p["sustainable_share_cny"].to_numpy(), want, rtol=1e-12)
    # the annual share of a member present all year = the sum of the period shares with a notice date in the year
    y21 = r.years.filter(pl.col("year") == 2021).row(0, named=True)
    days21 = p.filter(pl.col("year") == 2021)["days"].sum()
    assert days21 == 365  # 29 Dec 2020 .. 28 Dec 2021 (14/28) or 1 Jan .. 31 Dec 2021 (month ends)
    assert y21["annual_share_cny"] == pytest.approx(1.08 * 1e-3 * 300_000.0 * 365 / 365.25, rel=1e-12)
    assert y21["complete"]


def test_rows_are_dated_on_the_sharing_calendar() -> None:
    cal = calendar_periods(D(2020, 1, 5), D(2020, 4, 30), (14, 28))
    assert cal["period_start"][0] == D(2020, 1, 5) and cal["notice_date"][0] == D(2020, 1, 14)
    assert cal["notice_date"].to_list()[:4] == [D(2020, 1, 14), D(2020, 1, 28), D(2020, 2, 14), D(2020, 2, 28)]
    assert cal["notice_date"][-1] == D(2020, 4, 28)
    assert (cal["period_start"][1:].to_list() == [d + dt.timedelta(days=1) for d in cal["notice_date"][:-1]])
    assert int(cal["days"].sum()) == (D(2020, 4, 28) - D(2020, 1, 5)).days + 1
    assert calendar_periods(D(2020, 1, 1), D(2020, 3, 31), "monthly")["notice_date"].to_list() == [
        D(2020, 1, 31), D(2020, 2, 29), D(2020, 3, 31)]


@pytest.mark.parametrize("w", [0, 30, 90])
def test_steady_growth_eligible_over_sharing_closed_form(w) -> None:
    """Joiners J0 r^d per day from day 0, no lapse: on day e, M = J0 (r^(e+1) - 1)/(r - 1) and
    E = J0 (r^(e-w+1) - 1)/(r - 1), so E / M -> r^-w; with no lag the period's claims are
    rate / 365.25 x sum_d E_d."""
    r, J0, lam = 1.004, 1000.0, 2e-3
    start, end = D(2019, 1, 1), D(2021, 12, 31)
    n = (end - start).days + 1
    g = pl.DataFrame({"group": ["a"], "members": [0.0], "rate": [lam], "benefit_cny": [1e5], "joiner_mix": [1.0]})
    res = project_calendar(g, start=start, end=end, sharing_days="monthly", fee=0.08, waiting_days=w,
                           reporting_lag_days=0, joiners=J0 * r ** np.arange(n), n_scenarios=10)
    p = res.periods
    e = p["notice_date"].map_elements(lambda x: (x - start).days, return_dtype=pl.Int64).to_numpy()
    M = J0 * (r ** (e + 1) - 1) / (r - 1)
    E = J0 * np.where(e >= w, (r ** (e - w + 1) - 1) / (r - 1), 0.0)
    np.testing.assert_allclose(p["members"].to_numpy(), M, rtol=1e-10)
    np.testing.assert_allclose(p["eligible"].to_numpy(), E, rtol=1e-10)
    # -> r^-w, up to the finite start: (1 - r^-(e-w+1)) / (1 - r^-(e+1)) - 1 ~ -r^-(e-w) (about 1.5% here)
    assert p["eligible"][-1] / p["members"][-1] == pytest.approx(r ** -w, rel=r ** -(e[-1] - w))
    d = np.arange(n)
    Ed = J0 * np.where(d >= w, (r ** (d - w + 1) - 1) / (r - 1), 0.0)
    claims = np.add.reduceat(Ed, np.r_[0, e[:-1] + 1]) * lam / 365.25
    np.testing.assert_allclose(p["det_share_cny"].to_numpy(), 1.08 * 1e5 * claims / M, rtol=1e-10)
    # and the share tends to the closed pool's times r^-w (times the growth inside the period, the base being
    # counted on its last day); the finite start leaves a transient of relative order r^-(e - w) (~1% here)
    last = p.row(-1, named=True)
    growth_in_period = np.mean(r ** -np.arange(last["days"]))
    asymptote = 1.08 * lam * 1e5 * last["days"] / 365.25 * r ** -w * growth_in_period
    assert last["det_share_cny"] == pytest.approx(asymptote, rel=r ** -(e[-1] - w))


def _loop_oracle(groups, start, n_days, notice_idx, fee, wait, lag, joiners, lapse_annual, sel, cap):
    """Plain loops over cohorts and days (independent of the convolution code)."""
    G = groups.height
    rate, ben, mix, pre = (groups[c].to_numpy() for c in ("rate", "benefit_cny", "joiner_mix", "members"))
    mix = mix / mix.sum()
    h = 1 - (1 - lapse_annual) ** (1 / 365.25)
    cohorts = [[(-10**6, pre[k])] for k in range(G)]  # (join day, count)
    M = np.zeros((G, n_days))
    inc = np.zeros((G, n_days))
    for d in range(n_days):
        for k in range(G):
            if d > 0:
                cohorts[k] = [(j, c * (1 - h[d])) for j, c in cohorts[k]]
            cohorts[k].append((d, joiners[d] * mix[k]))
            M[k, d] = sum(c for _, c in cohorts[k])
            risk = sum(c * sel(d - j) for j, c in cohorts[k] if d - j >= wait)
            inc[k, d] = rate[k] * risk / 365.25
    shares = []
    prev = -1
    for e in notice_idx:
        N = M[:, e].sum()
        s = 0.0
        for k in range(G):
            paid = sum(inc[k, d - lag] if d - lag >= 0 else rate[k] * pre[k] * sel(10**6) / 365.25
                       for d in range(prev + 1, e + 1))
            s += paid * min((1 + fee) * ben[k] / N, cap)
        shares.append(s)
        prev = e
    return np.array(shares), M


def test_day_by_day_oracle_with_lapse_select_lag_and_caps() -> None:
    groups = pl.DataFrame({"group": ["young", "old"], "members": [3000.0, 1000.0], "rate": [5e-4, 4e-3],
                           "benefit_cny": [300_000.0, 100_000.0], "joiner_mix": [0.8, 0.2]})
    start, end = D(2020, 1, 20), D(2020, 9, 30)
    cal = calendar_periods(start, end, (14, 28))
    n = int(cal["last_day"][-1]) + 1
    rng = np.random.default_rng(3)
    joiners = rng.uniform(0, 200, n)
    lapse = np.where(np.arange(n) < 100, 0.1, 0.6)  # lapse varying in time
    table = pl.DataFrame({"duration_from": [0, 2, 6], "factor": [0.3, 0.7, 1.0]})
    sel = lambda tau: 0.3 if tau < 2 * 365.25 / 12 else 0.7 if tau < 6 * 365.25 / 12 else 1.0  # noqa: E731
    cap = 40.0
    res = project_calendar(groups, start=start, end=end, sharing_days=(14, 28), fee=0.08, waiting_days=20,
                           reporting_lag_days=9, joiners=joiners, lapse_annual=lapse, select_factors=table,
                           per_claimant_cap=cap, n_scenarios=5)
    want, M = _loop_oracle(groups, start, n, cal["last_day"].to_numpy(), 0.08, 20, 9, joiners, lapse, sel, cap)
    np.testing.assert_allclose(res.periods["det_share_cny"].to_numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(res.periods["members"].to_numpy(), M[:, cal["last_day"].to_numpy()].sum(axis=0),
                               rtol=1e-10)
    # joiners and lapses per period reconcile the membership: M_k = M_{k-1} + joiners_k - lapses_k
    p = res.periods
    m = np.r_[groups["members"].sum(), p["members"].to_numpy()]
    np.testing.assert_allclose(np.diff(m), (p["joiners"] - p["lapses"]).to_numpy(), rtol=1e-9, atol=1e-6)


def test_monte_carlo_fan_is_seeded_and_centred() -> None:
    kw = dict(start=D(2020, 1, 1), end=D(2020, 12, 31), n_scenarios=4000, seed=11)
    a = project_calendar(ONE, **kw)
    b = project_calendar(ONE, **kw)
    assert a.periods.equals(b.periods) and np.array_equal(a.shares, b.shares)
    det = a.periods["det_share_cny"].to_numpy()
    se = a.shares.std(axis=0) / np.sqrt(4000)
    assert np.all(np.abs(a.shares.mean(axis=0) - det) < 5 * se)
    # CV of one period's share ~ 1 / sqrt(expected claims in the period) (domain: share volatility)
    cv = a.shares.std(axis=0) / det
    np.testing.assert_allclose(cv, 1 / np.sqrt(a.periods["claims_paid"].to_numpy()), rtol=0.1)
    y = a.years.row(0, named=True)
    assert y["annual_share_p05_cny"] < y["annual_share_cny"] < y["annual_share_p95_cny"]


def test_annual_cap_limits_what_a_full_year_member_pays() -> None:
    r = project_calendar(ONE, start=D(2020, 1, 1), end=D(2021, 12, 31), annual_cap=200.0, n_scenarios=50)
    for y in r.years.iter_rows(named=True):
        assert y["annual_share_cny"] == pytest.approx(200.0) and y["annual_share_p95_cny"] <= 200.0 + 1e-9
    assert r.periods.filter(pl.col("year") == 2021)["det_share_cny"][-1] == 0.0  # the cap binds before December


def test_result_api_and_errors(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    r = project_calendar(ONE, start=D(2020, 1, 1), end=D(2020, 6, 30), n_scenarios=20)
    assert r.summary.equals(r.years) and "annual" in r._repr_html_()
    assert r.plot_shares() is not None and r.plot_members() is not None
    r.print_summary()
    with pytest.raises(ConfigError, match="one value per day"):
        project_calendar(ONE, start=D(2020, 1, 1), end=D(2020, 6, 30), joiners=[1.0, 2.0])
    with pytest.raises(ConfigError, match="before start"):
        project_calendar(ONE, start=D(2020, 1, 1), end=D(2019, 6, 30))
    with pytest.raises(DataError, match="joiner_mix"):
        project_calendar(ONE.with_columns(pl.lit(0.0).alias("members")), start=D(2020, 1, 1), end=D(2020, 6, 30),
                         joiners=10.0)
