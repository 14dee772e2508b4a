"""Share decomposition: exact additivity, Shapley axioms, and driver factors against loop oracles."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cells.dates import attained_age_expr as attained_age
from engine.cells.dates import completed_months_expr as completed_months
from engine.shares.decomposition import (
    DRIVERS,
    ShareDrivers,
    decompose,
    drivers_from_cells,
    lmdi,
    sequential,
    shapley,
    share_drivers,
    sustainable,
)
from engine.errors import ConfigError, DataError, ModelError
from engine.shares.history import share_history
from tests.test_decompose_oracle import shapley_oracle  # from the definition, no engine code

D = dt.date
n_drivers = len(DRIVERS)


def _drivers(vals, label=""):
    return ShareDrivers(*vals, label=label)


factor = st.floats(min_value=0.01, max_value=100.0, allow_nan=False, allow_infinity=False)
factor0 = st.one_of(st.just(0.0), factor)
vec = st.lists(factor, min_size=n_drivers, max_size=n_drivers)
vec0 = st.lists(factor0, min_size=n_drivers, max_size=n_drivers)


# --------------------------------------------------------------------------- exact additivity
@settings(max_examples=150, deadline=None)
@given(vec0, vec0, st.permutations(list(DRIVERS)))
def test_parts_sum_to_total_shapley_sequential(a, b, order):
    da, db = _drivers(a), _drivers(b)
    total = db.share_cny - da.share_cny
    # intermediate products v(S) are bounded by prod(max(a_i, b_i)): the conditioning scale of the sums
    scale = max(math.prod(max(x, y) for x, y in zip(a, b, strict=True)), 1e-300)
    out = decompose(da, db, method=["shapley", "sequential"], order=order)
    for m in ("shapley", "sequential"):
        s = out.filter(pl.col("method") == m)["contribution_cny"].sum()
        assert abs(s - total) <= 1e-9 * scale
    assert out.filter(pl.col("method") == "sequential")["driver"].to_list() == list(order)


@settings(max_examples=150, deadline=None)
@given(vec, vec)
def test_parts_sum_to_total_lmdi(a, b):
    da, db = _drivers(a), _drivers(b)
    total = db.share_cny - da.share_cny
    s = decompose(da, db, method="lmdi")["contribution_cny"].sum()
    assert abs(s - total) <= 1e-9 * max(da.share_cny, db.share_cny)


def test_two_factor_hand_example():
    # a = (1, 2), b = (3, 5): S_a = 2, S_b = 15.
    # sequential (0 then 1): 3*2 - 1*2 = 4, 3*5 - 3*2 = 9.
    # Shapley: driver 0 = (4 + (3*5 - 1*5)) / 2 = 7; driver 1 = (9 + (1*5 - 1*2)) / 2 = 6.
    assert sequential([1, 2], [3, 5]).tolist() == [4, 9]
    assert sequential([1, 2], [3, 5], [1, 0]).tolist() == [10, 3]
    assert shapley([1, 2], [3, 5]) == pytest.approx([7, 6])
    # LMDI: L = 13 / ln 7.5; parts 13 ln3 / ln7.5 and 13 ln2.5 / ln7.5
    assert lmdi([1, 2], [3, 5]) == pytest.approx([13 * math.log(3) / math.log(7.5), 13 * math.log(2.5) / math.log(7.5)])


@settings(max_examples=25, deadline=None)
@given(st.lists(factor0, min_size=5, max_size=5), st.lists(factor0, min_size=5, max_size=5))
def test_shapley_closed_form_equals_average_over_orders(a, b):
    np.testing.assert_allclose(shapley(a, b), shapley_oracle(list(a), list(b)), rtol=1e-9, atol=1e-9 * max(1.0, math.prod(a), math.prod(b)))


def test_shapley_closed_form_equals_all_720_orders_for_six_drivers():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.2, 3, 6), rng.uniform(0.2, 3, 6)
    np.testing.assert_allclose(shapley(a, b), shapley_oracle(list(a), list(b)), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(vec, vec, st.integers(0, n_drivers - 1), st.integers(0, n_drivers - 1))
def test_shapley_symmetric_drivers_get_equal_parts(a, b, i, j):
    if i == j:
        j = (i + 1) % n_drivers
    a[j], b[j] = a[i], b[i]  # drivers i and j are interchangeable
    phi = shapley(a, b)
    assert phi[i] == pytest.approx(phi[j], rel=1e-9, abs=1e-12 * max(1.0, math.prod(b)))


@settings(max_examples=60, deadline=None)
@given(vec, factor, st.integers(0, n_drivers - 1), st.permutations(list(DRIVERS)))
def test_single_driver_change_gets_everything(a, new, k, order):
    b = list(a)
    b[k] = new
    da, db = _drivers(a), _drivers(b)
    total = db.share_cny - da.share_cny
    for m in ("shapley", "sequential", "lmdi"):
        out = decompose(da, db, method=m, order=order)
        got = dict(zip(out["driver"], out["contribution_cny"], strict=True))
        # floating rounding is relative to the shares, not to their (possibly tiny) difference
        scale = max(abs(da.share_cny), abs(db.share_cny))
        assert got[DRIVERS[k]] == pytest.approx(total, rel=1e-9, abs=1e-12 * scale + 1e-300)
        assert all(v == 0.0 for d, v in got.items() if d != DRIVERS[k])


def test_bad_arguments():
    da = _drivers([1.0] * n_drivers)
    with pytest.raises(ConfigError, match="method"):
        decompose(da, da, method="oaxaca")
    with pytest.raises(ConfigError, match="order"):
        decompose(da, da, method="sequential", order=DRIVERS[:-1])
    with pytest.raises(ModelError, match="lmdi"):
        decompose(da, _drivers([0.0] + [1.0] * (n_drivers - 1)), method="lmdi")
    with pytest.raises(ConfigError, match="unknown"):
        da.replace(growth=2.0)
    assert decompose(da, da)["contribution_pct"].null_count() == n_drivers


def test_sustainable_gap():
    a = _drivers([1.08, 1 / 24, 0.9, 0.55, 0.8, 200.0, 0.7, 1.1, 0.05])
    s = sustainable(a)
    assert (s.dilution, s.waiting, s.reporting_lag, s.select) == (1.0, 1.0, 1.0, 1.0)
    out = decompose(a, s)
    got = dict(zip(out["driver"], out["contribution_cny"], strict=True))
    assert sum(got.values()) == pytest.approx(s.share_cny - a.share_cny, rel=1e-12)
    assert got["ageing"] == 0 and got["incidence"] == 0 and got["dilution"] > 0 and got["waiting"] > 0
    assert out["contribution_pct"].sum() == pytest.approx(100.0)


# --------------------------------------------------------------------------- attributes and driver factors
def _age_oracle(b: dt.date, d: dt.date) -> int:
    bday_month, bday_day = b.month, b.day
    if (bday_month, bday_day) == (2, 29) and not (d.year % 4 == 0 and (d.year % 100 != 0 or d.year % 400 == 0)):
        bday_month, bday_day = 3, 1
    return d.year - b.year - ((d.month, d.day) < (bday_month, bday_day))


def _add_months(j: dt.date, k: int) -> dt.date:
    y, m = divmod(j.month - 1 + k, 12)
    y += j.year
    m += 1
    last = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(y, m, min(j.day, last))


def _months_oracle(j: dt.date, d: dt.date) -> int:
    k = 0
    while _add_months(j, k + 1) <= d:
        k += 1
    return k


def test_age_and_duration_match_oracles():
    rng = np.random.default_rng(0)
    special = [D(2000, 2, 29), D(2001, 1, 31), D(2000, 1, 30), D(1999, 12, 31)]
    births = special + [D(1960, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 20000, 200)]
    ons = [D(2021, 2, 28), D(2021, 3, 1), D(2024, 2, 29), D(2021, 2, 27), D(2020, 4, 30)] + [
        D(2020, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 1500, 199)
    ]
    df = pl.DataFrame({"b": births, "d": ons[: len(births)]})
    df = df.with_columns(pl.when(pl.col("b") > pl.col("d")).then(pl.col("d")).otherwise(pl.col("b")).alias("b"))
    got = df.select(attained_age(pl.col("b"), pl.col("d")).alias("age"), completed_months(pl.col("b"), pl.col("d")).alias("dur"))
    for (b, d), age, dur in zip(df.iter_rows(), got["age"], got["dur"], strict=True):
        assert age == _age_oracle(b, d), (b, d)
        assert dur == _months_oracle(b, d), (b, d)


def _platform(seed: int, n: int = 120, n_claims: int = 80):
    rng = np.random.default_rng(seed)
    join = [D(2019, 6, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 500, n)]
    exit_ = [j + dt.timedelta(days=int(x)) if rng.random() < 0.3 else None for j, x in zip(join, rng.integers(1, 300, n), strict=True)]
    members = pl.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(n)],
            "birth_date": [D(1950, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 18000, n)],
            "sex": rng.choice(["M", "F"], n).tolist(),
            "join_date": join,
            "exit_date": exit_,
            "city_tier": rng.integers(1, 4, n).tolist(),
        },
        schema_overrides={"exit_date": pl.Date},
    )
    who = rng.integers(0, n, n_claims)
    ev = [join[w] + dt.timedelta(days=int(x)) for w, x in zip(who, rng.integers(0, 400, n_claims), strict=True)]
    claims = pl.DataFrame(
        {
            "claim_id": [f"c{i}" for i in range(n_claims)],
            "member_id": [f"m{w}" for w in who],
            "event_date": ev,
            "amount": rng.choice([100_000.0, 300_000.0], n_claims).tolist(),
            "approved_date": [e + dt.timedelta(days=int(x)) if rng.random() < 0.8 else None for e, x in zip(ev, rng.integers(0, 50, n_claims), strict=True)],
            "eligible": (rng.random(n_claims) < 0.85).tolist(),
        },
        schema_overrides={"approved_date": pl.Date},
    )
    return members, claims


SEL = pl.DataFrame({"duration_min": [0, 3, 12], "factor": [0.5, 0.8, 1.0]})
REL = {"city_tier": pl.DataFrame({"city_tier": [1, 2, 3], "relativity": [1.3, 1.0, 0.8]})}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_share_drivers_match_day_loop_oracle(seed):
    members, claims = _platform(seed)
    ps, nd, w, lag, fee = D(2020, 3, 1), D(2020, 5, 31), 60, 25, 0.08
    got = share_drivers(members, claims, period_start=ps, notice_date=nd, fee=fee, waiting_days=w,
                        reporting_lag_days=lag, select_factors=SEL, relativities=REL)
    from engine.data.reference import reference_basis

    base = {(r["age"], r["sex"]): r["rate"] for r in reference_basis().iter_rows(named=True)}
    sel = lambda k: 0.5 if k < 3 else (0.8 if k < 12 else 1.0)  # noqa: E731
    rel = {1: 1.3, 2: 1.0, 3: 0.8}
    days = [(ps + dt.timedelta(days=i)) for i in range((nd - ps).days + 1)]
    E = Y = wb = wbs = wbsr = 0.0
    N = 0
    for m in members.iter_rows(named=True):
        shares = lambda d: m["join_date"] <= d and (m["exit_date"] is None or d < m["exit_date"])  # noqa: E731
        N += shares(nd)
        Y += sum(1 for d in days if shares(d)) / 365.25
        n_days = sum(1 for d in days if shares(d) and d >= m["join_date"] + dt.timedelta(days=w))
        if not n_days:
            continue
        age = _age_oracle(m["birth_date"], nd)
        B = 300_000.0 if age < 40 else 100_000.0
        x = n_days / 365.25 * base[(age, m["sex"])] * B
        E += n_days / 365.25
        wb += x
        wbs += x * sel(_months_oracle(m["join_date"], nd))
        wbsr += x * sel(_months_oracle(m["join_date"], nd)) * rel[m["city_tier"]]
    P = I = 0.0
    for c in claims.filter(pl.col("eligible")).iter_rows(named=True):
        a = c["approved_date"] or c["event_date"] + dt.timedelta(days=lag)
        P += c["amount"] * (ps <= a <= nd)
        I += c["amount"] * (ps <= c["event_date"] <= nd)
    dt_y = len(days) / 365.25
    assert got.fee == pytest.approx(1 + fee)
    assert got.period_length == pytest.approx(dt_y)
    assert got.dilution == pytest.approx(Y / (N * dt_y))
    assert got.waiting == pytest.approx(E / Y)
    assert got.reporting_lag == pytest.approx(P / I)
    assert got.ageing == pytest.approx(wb / E)
    assert got.select == pytest.approx(wbs / wb)
    assert got.mix == pytest.approx(wbsr / wbs)
    assert got.incidence == pytest.approx(I / E / (wbsr / E))
    assert got.share_cny == pytest.approx((1 + fee) * P / N, rel=1e-12)


@pytest.mark.parametrize("w", [0, 30, 90])
def test_waiting_is_separate_from_growth_dilution_closed_form(w):
    """One member joins every day from day 0 and none leaves; window = days T0..T1 (inclusive).

    On day d, d + 1 members share and max(d - w + 1, 0) are past the wait, so
    Y = sum_d (d + 1) / 365.25, E = sum_d max(d - w + 1, 0) / 365.25, N = T1 + 1 and
    dilution = Y / (N dt), waiting = E / Y; with a closed pool both are 1.
    """
    day0, T0, T1 = D(2020, 1, 1), 200, 229
    n = T1 + 1
    members = pl.DataFrame({"member_id": [f"m{i}" for i in range(n)], "birth_date": [D(1990, 1, 1)] * n,
                            "sex": ["M"] * n, "join_date": [day0 + dt.timedelta(days=i) for i in range(n)],
                            "exit_date": [None] * n}, schema_overrides={"exit_date": pl.Date})
    claims = pl.DataFrame(schema={"claim_id": pl.String, "member_id": pl.String, "event_date": pl.Date,
                                  "amount": pl.Float64, "approved_date": pl.Date})
    got = share_drivers(members, claims, period_start=day0 + dt.timedelta(days=T0),
                        notice_date=day0 + dt.timedelta(days=T1), waiting_days=w)
    d = np.arange(T0, T1 + 1)
    Y, E = (d + 1).sum(), np.maximum(d - w + 1, 0).sum()
    assert got.dilution == pytest.approx(Y / (n * len(d)), rel=1e-12)
    assert got.waiting == pytest.approx(E / Y, rel=1e-12)
    assert got.dilution * got.waiting == pytest.approx(E / (n * len(d)), rel=1e-12)  # the old single driver
    # a closed pool (everyone joined long before the window): no growth dilution and no waiting
    closed = members.with_columns(pl.lit(D(2015, 1, 1)).alias("join_date"))
    c = share_drivers(closed, claims, period_start=day0 + dt.timedelta(days=T0),
                      notice_date=day0 + dt.timedelta(days=T1), waiting_days=w)
    assert (c.dilution, c.waiting) == (pytest.approx(1.0, rel=1e-12), pytest.approx(1.0, rel=1e-12))


def test_share_drivers_agree_with_history_for_one_period():
    members, claims = _platform(4)
    h = share_history(members, claims, start=D(2020, 4, 1), end=D(2020, 4, 30), sharing_days="monthly",
                      waiting_days=60, reporting_lag_days=25, per_claimant_cap=None, annual_cap=None, plan_col=None)
    d = share_drivers(members, claims, period_start=D(2020, 4, 1), notice_date=D(2020, 4, 30), waiting_days=60,
                      reporting_lag_days=25)
    assert d.details["sharing_members"] == h["sharing_members"][0]
    assert d.share_cny == pytest.approx(h["share_cny"][0], rel=1e-12)


def test_share_drivers_rules_on_a_hand_platform():
    """Found by mutation testing: N excludes a member exiting on the notice date, a second claim ends
    nothing with terminate_on_claim=False, the plan filter, the default label, approval = event + lag
    without an approved_date column, a relativity by sex and lazy classified claims."""
    M, F = "M", "F"
    members = pl.DataFrame({"member_id": ["m0", "m1", "m2"], "birth_date": [D(1990, 1, 1)] * 3, "sex": [M, M, F],
                            "join_date": [D(2019, 1, 1)] * 3, "exit_date": [None, D(2020, 3, 31), None],
                            "plan_id": ["A", "A", "B"]}, schema_overrides={"exit_date": pl.Date})
    claims = pl.DataFrame({"claim_id": ["c0", "c1", "c2", "c3"], "member_id": ["m0", "m0", "m2", "m1"],
                           "event_date": [D(2020, 3, 5), D(2020, 3, 10), D(2020, 3, 15), D(2020, 2, 25)],
                           "amount": [100_000.0, 300_000.0, 100_000.0, 100_000.0]})
    base = pl.DataFrame({"age": [30, 30], "sex": [M, F], "rate": [0.001, 0.001]})
    kw = dict(period_start=D(2020, 3, 1), notice_date=D(2020, 3, 31), fee=0.1, waiting_days=0, reporting_lag_days=10,
              base_rates=base)
    # approvals (event + 10 days): c0 03-15, c1 03-20, c2 03-25, c3 03-06: all in the window; c3's event is not
    d = share_drivers(members, claims, **kw)
    assert d.label == "2020-03-01..2020-03-31"
    assert d.details["sharing_members"] == 2  # m1 leaves on the notice date: it does not share that day
    assert (d.details["incurred_cny"], d.details["approved_cny"]) == (200_000.0, 300_000.0)  # c1 follows c0
    assert d.fee == pytest.approx(1.1) and d.share_cny == pytest.approx(1.1 * 300_000.0 / 2, rel=1e-12)
    assert d.details["eligible_years"] == pytest.approx((31 + 30 + 31) / 365.25, rel=1e-12)
    keep = share_drivers(members, claims, terminate_on_claim=False, label="all claims", **kw)
    assert keep.label == "all claims"
    assert (keep.details["incurred_cny"], keep.details["approved_cny"]) == (500_000.0, 600_000.0)
    a = share_drivers(members, claims, plan="A", **kw)
    assert a.details["sharing_members"] == 1 and (a.details["incurred_cny"], a.details["approved_cny"]) == (100_000.0, 200_000.0)
    with pytest.raises(ConfigError, match="^plan_col: members have no column 'plan'$"):
        share_drivers(members, claims, plan="A", plan_col="plan", **kw)
    rel = share_drivers(members, claims, relativities={"sex": pl.DataFrame({"sex": [M, F], "relativity": [1.0, 2.0]})}, **kw)
    assert rel.mix == pytest.approx((31 + 30 + 2 * 31) / (31 + 30 + 31), rel=1e-12)
    classified = claims.with_columns(eligible=pl.col("claim_id") != "c1").lazy()
    assert share_drivers(members, classified, **kw).share_cny == pytest.approx(d.share_cny, rel=1e-15)


def test_drivers_from_cells_errors_name_the_table():
    cells = pl.DataFrame({"age": [30, 130], "sex": ["M", "F"], "exposure_years": [1.0, 1.0], "amount": [0.0, 0.0]})
    with pytest.raises(DataError, match="base_rates"):
        drivers_from_cells(cells, sharing_members=10, amount_approved_cny=0, period_days=30)
    with pytest.raises(DataError, match="no member shares"):
        drivers_from_cells(cells, sharing_members=0, amount_approved_cny=0, period_days=30)
    ok = cells.head(1).with_columns(pl.lit(0.0).alias("amount"))
    with pytest.raises(DataError, match="longer window"):
        drivers_from_cells(ok, sharing_members=10, amount_approved_cny=5.0, period_days=30)


def test_drivers_from_cells_hand_sums_and_messages():
    """Found by mutation testing: given base rates are used (not the default basis), Int64 ages and durations
    join the tables, and each missing-table message names the first offending value."""
    cells = pl.DataFrame({"age": [30, 31], "sex": ["M", "F"], "exposure_years": [1.0, 2.0], "amount": [0.0, 0.0],
                          "duration": [2, 14], "city_tier": [1, 2]}, schema_overrides={"age": pl.Int64, "duration": pl.Int64})
    base = pl.DataFrame({"age": [30, 31], "sex": ["M", "F"], "rate": [0.001, 0.002]})
    kw = dict(sharing_members=10, amount_approved_cny=0.0, period_days=30, base_rates=base)
    d = drivers_from_cells(cells, select_factors=SEL, relativities=REL, **kw)
    # wb = 1 x 0.001 x 300,000 + 2 x 0.002 x 300,000 = 1,500 over E = 3; select 0.5 (2 months) and 1.0 (14)
    assert d.ageing == pytest.approx(500.0, rel=1e-12)
    assert d.select == pytest.approx((300 * 0.5 + 1200 * 1.0) / 1500, rel=1e-12)
    assert d.mix == pytest.approx((300 * 0.5 * 1.3 + 1200 * 1.0 * 1.0) / 1350, rel=1e-12)
    with pytest.raises(DataError, match="^base_rates: no rate for age 31 sex F$"):
        drivers_from_cells(cells, **{**kw, "base_rates": base.head(1)})
    with pytest.raises(DataError, match="^base_rates: no rate for age 30 sex M$"):  # the first of two
        drivers_from_cells(cells, **{**kw, "base_rates": base.with_columns(pl.lit(99).alias("age"))})
    with pytest.raises(DataError, match=r"^benefits: no benefit for age 30 \(age_min too high\)$"):
        drivers_from_cells(cells, benefits=pl.DataFrame({"age_min": [35], "benefit_cny": [1.0]}), **kw)
    with pytest.raises(DataError, match="^cells: column 'duration' is required with select_factors$"):
        drivers_from_cells(cells.drop("duration"), select_factors=SEL, **kw)
    with pytest.raises(DataError, match="^cells: a negative duration has no select factor$"):
        drivers_from_cells(cells.with_columns(pl.lit(-1).alias("duration")), select_factors=SEL, **kw)
    with pytest.raises(DataError, match="^relativities\\[city_tier\\]: no relativity for value 4$"):
        drivers_from_cells(cells.with_columns(pl.Series("city_tier", [4, 5])), relativities=REL, **kw)


def test_drivers_from_exposure_cells_reproduce_the_history_share():
    from engine.cells._exposure import exposure

    members, claims = _platform(8, n=200, n_claims=150)
    claims = claims.drop("eligible")
    h = share_history(members, claims, start=D(2020, 5, 1), end=D(2020, 5, 31), sharing_days="monthly",
                      waiting_days=60, reporting_lag_days=25, per_claimant_cap=None, annual_cap=None, plan_col=None)
    cells = exposure(members, claims, start=D(2020, 5, 1), end=D(2020, 5, 31), period="month", waiting_days=60,
                     by=("age", "sex", "duration", "city_tier"))
    d = drivers_from_cells(cells, sharing_members=h["sharing_members"][0], amount_approved_cny=h["amount_approved_cny"][0],
                           period_days=31, select_factors=SEL, relativities=REL)
    assert d.share_cny == pytest.approx(h["share_cny"][0], rel=1e-12)
    assert d.details["eligible_years"] == pytest.approx(cells["exposure_years"].sum())
    assert d.details["incurred_cny"] == pytest.approx(cells["amount"].sum())
    assert d.select < 1.0 and d.mix > 0


def test_engine_decompose_is_the_function_even_after_submodule_import():
    import engine
    import engine.shares.decomposition as mod

    a, b = _drivers([1.0] * n_drivers), _drivers([3.0] + [1.0] * (n_drivers - 1))
    assert engine.decompose(a, b)["contribution_cny"].sum() == pytest.approx(2.0)
    assert engine.decompose is mod.decompose
    assert mod.decompose(a, b).equals(decompose(a, b))
