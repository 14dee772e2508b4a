"""Driver factors of a window (engine/shares/_drivers.py) against an oracle written from the formulas.

The expected values are computed here in plain Python from the definitions (docs of
:mod:`engine.shares.decomposition`, domain.md sections 3 and 4), never by engine code:

    E = sum w_c, Y = sharing member-years (E by default), dt = days / 365.25,
    dilution = Y / (N dt), waiting = E / Y, reporting_lag = P / I (1 when P = I = 0),
    ageing = sum w base B / E, select = sum w base B sel / sum w base B,
    mix = sum w base B sel rel / sum w base B sel, incidence = (I / E) / (ageing select mix).

Every frame is built inside a test (no polars work at import: mutation testing forks each
mutant from a process that only collected the tests, and polars' thread pool does not survive a
fork). The select-table reader imports the estimators package (scikit-learn); it is imported
here, once, so that a forked mutant does not pay that import again.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import Executor, Future

import polars as pl
import pytest

import engine.estimators._select_table  # noqa: F401  (imported at collection, not in every mutant)
from engine.errors import ConfigError, DataError
from engine.shares._drivers import (
    DRIVERS,
    ShareDrivers,
    _window_amounts,
    drivers_from_cells,
    drivers_from_counts,
    share_drivers,
    sustainable,
    window_drivers,
    window_rel_cols,
)

D = dt.date
YEAR = 365.25  # days per year (domain.md: E = at-risk days / 365.25)
ORDER = ("fee", "period_length", "dilution", "waiting", "reporting_lag", "ageing", "select", "mix", "incidence")
#: the documented default benefit schedule: 300,000 CNY below 40, 100,000 from 40
DEFAULT_BENEFITS = ((0, 300_000.0), (40, 100_000.0))
BANDS = ((0, 0.5), (3, 0.8), (12, 1.0))  # select factor from completed month 0, 3, 12


def _band(x: float, bands) -> float:
    """The value of the band with the largest lower bound <= x."""
    return max((lo, v) for lo, v in bands if lo <= x)[1]


def _oracle(rows, *, N, P, days, fee, base, benefits=DEFAULT_BENEFITS, bands=None, rels=None, Y=None, I=None):
    """The nine factors from the definitions; ``rows``: dicts with age, sex, duration, w, amount and rel columns."""
    rels = rels or {}
    x = [r["w"] * base[(r["age"], r["sex"])] * _band(r["age"], benefits) for r in rows]
    s = [_band(r["duration"], bands) if bands else 1.0 for r in rows]
    q = [math.prod(tab[r[col]] for col, tab in rels.items()) for r in rows]
    E = math.fsum(r["w"] for r in rows)
    wb = math.fsum(x)
    wbs = math.fsum(a * b for a, b in zip(x, s, strict=True))
    wbsr = math.fsum(a * b * c for a, b, c in zip(x, s, q, strict=True))
    I = math.fsum(r["amount"] for r in rows) if I is None else I  # noqa: E741
    Y = E if Y is None else Y
    d = days / YEAR
    return {"fee": 1 + fee, "period_length": d, "dilution": Y / (N * d), "waiting": E / Y,
            "reporting_lag": P / I if I > 0 else 1.0, "ageing": wb / E, "select": wbs / wb, "mix": wbsr / wbs,
            "incidence": (I / E) / (wbsr / E)}, {"E": E, "Y": Y, "I": I, "expected": wbsr}


def _cells():
    rows = [  # unsorted ages and durations; 39 / 40 straddle the benefit step, 2 / 3 and 11 / 12 the select bands
        {"age": 40, "sex": "F", "duration": 3, "w": 0.125, "amount": 100_000.0, "city": "b", "smoker": 1},
        {"age": 25, "sex": "M", "duration": 0, "w": 0.25, "amount": 0.0, "city": "a", "smoker": 0},
        {"age": 61, "sex": "M", "duration": 12, "w": 0.0625, "amount": 0.0, "city": "c", "smoker": 1},
        {"age": 39, "sex": "F", "duration": 2, "w": 0.1875, "amount": 300_000.0, "city": "a", "smoker": 0},
        {"age": 25, "sex": "F", "duration": 11, "w": 0.0, "amount": 0.0, "city": "c", "smoker": 0},
    ]
    base = {(25, "M"): 1e-6, (25, "F"): 2e-6, (39, "F"): 3e-6, (40, "F"): 5e-6, (61, "M"): 7e-6, (40, "M"): 9e-6}
    return rows, base


def _frames(rows, base):
    cells = pl.DataFrame(rows).rename({"w": "exposure_years"})
    rates = pl.DataFrame({"age": [a for a, _ in base], "sex": [s for _, s in base], "rate": list(base.values())})
    return cells, rates


REL_TABS = {"city": {"a": 1.25, "b": 1.0, "c": 0.5}, "smoker": {0: 1.0, 1: 3.0}}


def _rel_frames():
    return {c: pl.DataFrame({c: list(t), "relativity": list(t.values())}) for c, t in REL_TABS.items()}


def _check(got: ShareDrivers, want: dict[str, float]) -> None:
    assert tuple(got.factors()) == ORDER
    for k in ORDER:
        assert getattr(got, k) == pytest.approx(want[k], rel=1e-12), k


def test_drivers_from_cells_equal_the_formulas() -> None:
    rows, base = _cells()
    cells, rates = _frames(rows, base)
    sel = pl.DataFrame({"duration_from": [b[0] for b in BANDS], "factor": [b[1] for b in BANDS]})
    kw = dict(sharing_members=3, amount_approved_cny=250_000.0, period_days=31, fee=0.08, base_rates=rates)
    # select, two relativities (their product), the default benefits, Y given; E = 0.625 < 1 and the
    # expected cost sum w base B sel rel is below 1 (both must still be accepted)
    got = drivers_from_cells(cells, select_factors=sel, relativities=_rel_frames(), sharing_years=0.75, label="w1", **kw)
    want, q = _oracle(rows, N=3, P=250_000.0, days=31, fee=0.08, base=base, bands=BANDS, rels=REL_TABS, Y=0.75)
    assert q["expected"] < 1 and q["E"] < 1
    _check(got, want)
    assert got.share_cny == pytest.approx(1.08 * 250_000.0 / 3, rel=1e-12)
    assert got.label == "w1"
    assert got.details == pytest.approx({"sharing_members": 3.0, "eligible_years": q["E"], "sharing_years": 0.75,
                                         "approved_cny": 250_000.0, "incurred_cny": 400_000.0,
                                         "expected_cny": q["expected"], "period_days": 31}, rel=1e-12)
    assert type(got.details["period_days"]) is int and type(got.details["sharing_members"]) is float
    # no select, no relativity, benefits given (three bands), Y from the cells' column, I given, other columns
    bens = ((0, 10.0), (30, 20.0), (40, 40.0))
    c2 = cells.rename({"exposure_years": "e"}).drop("amount").with_columns(sharing_years=pl.col("e") * 2)
    got = drivers_from_cells(c2, weight_col="e", amount_incurred_cny=50_000.0,
                             benefits=pl.DataFrame({"age_min": [b[0] for b in bens], "benefit_cny": [b[1] for b in bens]}),
                             **{**kw, "amount_approved_cny": 0.0, "fee": 0.0, "sharing_members": 1, "period_days": 1})
    want, q = _oracle(rows, N=1, P=0.0, days=1, fee=0.0, base=base, benefits=bens, Y=1.25, I=50_000.0)
    _check(got, want)
    assert got.reporting_lag == 0.0 and got.label == "" and got.details["incurred_cny"] == 50_000.0
    # Y defaults to E without a sharing_years column; P = I = 0 gives a lag of 1
    got = drivers_from_cells(cells.drop("city", "smoker"), amount_col="amount",
                             **{**kw, "amount_approved_cny": 0.0}, amount_incurred_cny=0.0)
    want, _ = _oracle(rows, N=3, P=0.0, days=31, fee=0.08, base=base, Y=None, I=0.0)
    _check(got, want)
    assert (got.waiting, got.reporting_lag, got.details["sharing_years"]) == (1.0, 1.0, q["E"])
    # an incurred amount below 1 CNY is still an amount: P / I
    assert drivers_from_cells(cells, amount_incurred_cny=0.5, **kw).reporting_lag == 500_000.0


def test_drivers_from_cells_default_benefits_and_sharing_years_bounds() -> None:
    rows, base = _cells()
    cells, rates = _frames(rows, base)
    kw = dict(sharing_members=2, amount_approved_cny=1.0, period_days=30, base_rates=rates)
    want, q = _oracle(rows, N=2, P=1.0, days=30, fee=0.0, base=base)
    got = drivers_from_cells(cells, fee=0.0, **kw)
    _check(got, want)
    E = q["E"]
    assert drivers_from_cells(cells, sharing_years=E * (1 - 1e-13), **kw).waiting == pytest.approx(1.0)  # rounding
    with pytest.raises(DataError, match=r"^sharing_years: 0\.6 is below the eligible member-years 0\.625 \(eligible"):
        drivers_from_cells(cells, sharing_years=0.6, **kw)
    with pytest.raises(DataError, match="^sharing_years: "):
        drivers_from_cells(cells, sharing_years=E * (1 - 1e-10), **kw)


def test_drivers_from_cells_refusals_name_the_rule() -> None:
    rows, base = _cells()
    cells, rates = _frames(rows, base)
    kw = dict(sharing_members=2, amount_approved_cny=0.0, period_days=30, base_rates=rates)
    drivers_from_cells(cells, **{**kw, "sharing_members": 1, "period_days": 1})  # the smallest accepted
    with pytest.raises(DataError, match="^drivers: no member shares on the notice date$"):
        drivers_from_cells(cells, **{**kw, "sharing_members": 0})
    with pytest.raises(DataError, match="^drivers Q1: no member shares on the notice date$"):
        drivers_from_cells(cells, label="Q1", **{**kw, "sharing_members": -1})
    with pytest.raises(ConfigError, match="^period_days: 0 must be > 0$"):
        drivers_from_cells(cells, **{**kw, "period_days": 0})
    for col in ("age", "sex", "exposure_years", "amount"):
        with pytest.raises(DataError, match=f"^cells: column '{col}' is required for the share decomposition$"):
            drivers_from_cells(cells.drop(col), **kw)
    with pytest.raises(DataError, match="^cells: column 'w' is required for the share decomposition$"):
        drivers_from_cells(cells, weight_col="w", **kw)
    zero = cells.with_columns(pl.lit(0.0).alias("exposure_years"))
    with pytest.raises(DataError, match="^drivers Q1: no eligible exposure in the window$"):
        drivers_from_cells(zero, label="Q1", **kw)
    with pytest.raises(DataError, match=r"^drivers: the expected cost of the eligible members is 0 \(check base_rates "
                                        r"/ relativities\)$"):
        drivers_from_cells(cells, **{**kw, "base_rates": rates.with_columns(pl.lit(0.0).alias("rate"))})
    with pytest.raises(DataError, match="^drivers Q1: claims were approved but none incurred in the window; use a "
                                        "longer window$"):
        drivers_from_cells(cells, label="Q1", amount_incurred_cny=0.0, **{**kw, "amount_approved_cny": 1.0})
    with pytest.raises(DataError, match="^cells: column 'smoker' is required by relativities$"):
        drivers_from_cells(cells.drop("smoker"), relativities=_rel_frames(), **kw)
    with pytest.raises(DataError, match="^relativities\\[city\\]: no relativity for value 'c'$"):
        drivers_from_cells(cells, relativities={"city": _rel_frames()["city"].head(2)}, **kw)


def test_share_drivers_fields_and_sustainable() -> None:
    vals = [1.1, 0.25, 0.9, 0.8, 0.7, 500.0, 0.6, 1.2, 0.05]
    d = ShareDrivers(*vals, label="a", details={"x": 1})
    assert list(d.factors().items()) == list(zip(ORDER, vals, strict=True)) and DRIVERS == ORDER
    assert d.share_cny == pytest.approx(math.prod(vals), rel=1e-15)
    assert d == ShareDrivers(*vals, label="a")  # details are informational: not compared
    assert d.to_frame().to_dicts() == [{"driver": k, "factor": v} for k, v in zip(ORDER, vals, strict=True)]
    assert d.summary.equals(d.to_frame())
    assert d._key_numbers() == {"label": "a", "share (CNY)": d.share_cny, **dict(zip(ORDER, vals, strict=True))}
    assert ShareDrivers(*vals)._key_numbers()["label"] == "(none)"
    r = d.replace(mix=2.0, label="b", details={"y": 2})
    assert (r.mix, r.label, r.details, r.fee, d.mix) == (2.0, "b", {"y": 2}, 1.1, 1.2)
    with pytest.raises(ConfigError, match=r"^drivers: unknown factor\(s\) \['bogus', 'share'\]; known: "
                                          + ", ".join(ORDER) + "$"):
        d.replace(share=1.0, bogus=2.0, mix=1.0)
    s = sustainable(d)
    assert (s.dilution, s.waiting, s.reporting_lag, s.select, s.label) == (1.0, 1.0, 1.0, 1.0, "sustainable")
    assert (s.fee, s.period_length, s.ageing, s.mix, s.incidence) == (1.1, 0.25, 500.0, 1.2, 0.05)
    s = sustainable(d, select_ultimate=0.9, ageing=600.0, label="eq")
    assert (s.select, s.ageing, s.label, s.mix) == (0.9, 600.0, "eq", 1.2)


def test_window_rel_cols_keep_only_the_other_columns() -> None:
    rel = dict.fromkeys(["city", "age", "sex", "duration", "smoker"])
    assert window_rel_cols({"relativities": rel}) == ["city", "smoker"]
    assert window_rel_cols({"relativities": None}) == [] and window_rel_cols({}) == []


def _claims():
    return pl.DataFrame({
        "member_id": ["m0", "m0", "m1", "m2", "m3", "m1"],
        "event_date": [D(2020, 3, 1), D(2020, 2, 20), D(2020, 3, 31), D(2020, 4, 1), D(2020, 3, 5), D(2020, 2, 29)],
        "approved_date": [None, None, D(2020, 4, 1), D(2020, 3, 31), D(2020, 3, 1), D(2020, 3, 1)],
        "amount": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
        "eligible": [True, True, None, True, True, False],
    }, schema_overrides={"approved_date": pl.Date})


def _amounts_oracle(rows, ps, nd, lag):
    appr = [(r["approved_date"] or r["event_date"] + dt.timedelta(days=lag)) for r in rows]
    P = sum(r["amount"] for r, a in zip(rows, appr, strict=True) if ps <= a <= nd)
    return P, sum(r["amount"] for r in rows if ps <= r["event_date"] <= nd)


def test_window_amounts_by_approval_and_event_dates() -> None:
    c = _claims()
    rows = c.to_dicts()
    ps, nd = D(2020, 3, 1), D(2020, 3, 31)
    for lag in (0, 10, 40):
        assert _window_amounts(c, ps, nd, lag) == _amounts_oracle(rows, ps, nd, lag)
    assert _window_amounts(c, ps, nd, 10) == (1.0 + 8.0 + 16.0 + 32.0 + 2.0, 1.0 + 4.0 + 16.0)
    no_appr = [{**r, "approved_date": None} for r in rows]
    assert _window_amounts(c.drop("approved_date"), ps, nd, 9) == _amounts_oracle(no_appr, ps, nd, 9)


def test_drivers_from_counts_per_window() -> None:
    rows, base = _cells()
    cells, rates = _frames(rows, base)
    days = [round(r["w"] * 64) for r in rows]  # integer eligible days: w = days / 64
    counts_cells = cells.drop("exposure_years").with_columns(pl.Series("_days", days))
    c = _claims()
    cm = pl.DataFrame({"member_id": ["m0", "m1", "m2"]})  # m3 is not a counted member
    windows = [(D(2020, 3, 1), D(2020, 3, 31), "march"), (D(2020, 2, 1), D(2020, 3, 31), "feb-mar")]
    counts = [(counts_cells, 3, 300), (counts_cells, 4, 400)]
    got = drivers_from_counts(counts, cm, c, windows, fee=0.1, reporting_lag_days=10, base_rates=rates,
                              relativities=_rel_frames())
    keep = [r for r in c.to_dicts() if r["eligible"] and r["member_id"] in ("m0", "m1", "m2")]
    oracle_rows = [{**r, "w": n / YEAR} for r, n in zip(rows, days, strict=True)]
    for g, (ps, nd, label), (_, N, share_days) in zip(got, windows, counts, strict=True):
        P, I = _amounts_oracle(keep, ps, nd, 10)  # noqa: E741
        want, _ = _oracle(oracle_rows, N=N, P=P, days=(nd - ps).days + 1, fee=0.1, base=base, rels=REL_TABS,
                          Y=share_days / YEAR, I=I)
        _check(g, want)
        assert (g.label, g.details["period_days"], g.details["approved_cny"]) == (label, (nd - ps).days + 1, P)
    assert [g.details["incurred_cny"] for g in got] == [1.0, 3.0]


class _Inline(Executor):
    """An executor that runs each task at once in this thread and counts the tasks."""

    def __init__(self) -> None:
        self.tasks = 0

    def submit(self, fn, /, *args, **kwargs):  # noqa: D102
        self.tasks += 1
        f: Future = Future()
        f.set_result(fn(*args, **kwargs))
        return f


def _completed_months(j: dt.date, d: dt.date) -> int:  # join days here are <= 28: no month-end rule needed
    return (d.year - j.year) * 12 + d.month - j.month - (d.day < j.day)


def test_window_drivers_match_a_day_loop() -> None:
    """Two windows in one pass over a small platform, against the conventions of domain.md section 4."""
    members = pl.DataFrame({
        "member_id": ["m0", "m1", "m2", "m3", "m4"],
        "birth_date": [D(1985, 6, 1), D(1980, 3, 15), D(1960, 1, 1), D(1990, 12, 31), D(1975, 7, 7)],
        "sex": ["M", "F", "M", "F", "M"],
        "join_date": [D(2019, 11, 5), D(2020, 1, 20), D(2019, 6, 1), D(2020, 2, 10), D(2019, 12, 28)],
        "exit_date": [None, D(2020, 3, 31), None, None, D(2020, 3, 10)],
        "city": ["a", "b", "c", "a", "b"],
    }, schema_overrides={"exit_date": pl.Date})
    claims = pl.DataFrame({
        "claim_id": ["c0", "c1", "c2", "c3", "c4"], "member_id": ["m0", "m2", "m1", "m2", "m3"],
        "event_date": [D(2020, 3, 3), D(2020, 2, 15), D(2020, 3, 20), D(2020, 3, 25), D(2020, 2, 20)],
        "amount": [300_000.0, 100_000.0, 300_000.0, 100_000.0, 300_000.0],
        "approved_date": [D(2020, 3, 30), None, None, None, None],
    }, schema_overrides={"approved_date": pl.Date})
    base = {(a, s): 0.001 * (1 + a / 50) * (1.5 if s == "F" else 1.0) for a in range(20, 70) for s in "MF"}
    rates = pl.DataFrame({"age": [a for a, _ in base], "sex": [s for _, s in base], "rate": list(base.values())})
    sel = pl.DataFrame({"duration_from": [b[0] for b in BANDS], "factor": [b[1] for b in BANDS]})
    rel = {"city": pl.DataFrame({"city": ["a", "b", "c"], "relativity": [1.25, 1.0, 0.5]}),
           "sex": pl.DataFrame({"sex": ["M", "F"], "relativity": [1.0, 2.0]})}
    windows = [(D(2020, 3, 1), D(2020, 3, 31), "m"), (D(2020, 2, 1), D(2020, 3, 30), "fm")]
    w, lag = 30, 7
    got = window_drivers(members, claims, windows, fee=0.05, waiting_days=w, reporting_lag_days=lag, base_rates=rates,
                         select_factors=sel, relativities=rel, batch_size=2)
    ms = members.to_dicts()
    shares = lambda m, d: m["join_date"] <= d and (m["exit_date"] is None or d < m["exit_date"])  # noqa: E731
    waited = lambda m, d: shares(m, d) and d >= m["join_date"] + dt.timedelta(days=w)  # noqa: E731
    first = {}  # first eligible claim: the member is at risk on its event day, not after
    elig = []
    for c in sorted(claims.to_dicts(), key=lambda c: c["event_date"]):
        m = next(m for m in ms if m["member_id"] == c["member_id"])
        if waited(m, c["event_date"]) and c["member_id"] not in first:
            first[c["member_id"]] = c["event_date"]
            elig.append(c)
    assert [c["claim_id"] for c in elig] == ["c1", "c0", "c2"]  # c4 waits, c3 follows c1
    rels = {"city": {"a": 1.25, "b": 1.0, "c": 0.5}, "sex": {"M": 1.0, "F": 2.0}}
    march: list[dict] = []
    for g, (ps, nd, label) in zip(got, windows, strict=True):
        span = [ps + dt.timedelta(days=i) for i in range((nd - ps).days + 1)]
        rows = []
        for m in ms:
            n = sum(waited(m, d) for d in span)
            if n:
                age = nd.year - m["birth_date"].year - ((nd.month, nd.day) < (m["birth_date"].month, m["birth_date"].day))
                rows.append({"age": age, "sex": m["sex"], "duration": _completed_months(m["join_date"], nd),
                             "w": n / YEAR, "city": m["city"]})
        P, I = _amounts_oracle(elig, ps, nd, lag)  # noqa: E741
        want, _ = _oracle(rows, N=sum(shares(m, nd) for m in ms), P=P, days=len(span), fee=0.05, base=base, bands=BANDS,
                          rels=rels, Y=sum(shares(m, d) for m in ms for d in span) / YEAR, I=I)
        _check(g, want)
        march = rows if label == "m" else march
        assert g.label == label and g.details["sharing_members"] == sum(shares(m, nd) for m in ms)
    one = share_drivers(members, claims, period_start=D(2020, 3, 1), notice_date=D(2020, 3, 31), fee=0.05,
                        waiting_days=w, reporting_lag_days=lag, base_rates=rates, select_factors=sel, relativities=rel)
    assert one == got[0].replace(label="2020-03-01..2020-03-31")
    bens = pl.DataFrame({"age_min": [0, 45], "benefit_cny": [50.0, 20.0]})
    b = share_drivers(members, claims, period_start=D(2020, 3, 1), notice_date=D(2020, 3, 31), waiting_days=w,
                      base_rates=rates, benefits=bens)
    want, _ = _oracle(march, N=1, P=0.0, days=31, fee=0.0, base=base, benefits=((0, 50.0), (45, 20.0)), I=0.0)
    assert b.ageing == pytest.approx(want["ageing"], rel=1e-12)
    day = share_drivers(members, claims, period_start=D(2020, 3, 3), notice_date=D(2020, 3, 3), waiting_days=w,
                        reporting_lag_days=0, base_rates=rates, label="d")
    assert day.details["period_days"] == 1 and day.details["incurred_cny"] == 300_000.0
    ex = _Inline()  # the executor given is used (one task per partition), the result unchanged
    assert share_drivers([members.head(2), members.tail(3)], claims, period_start=D(2020, 3, 1),
                         notice_date=D(2020, 3, 31), fee=0.05, waiting_days=w, reporting_lag_days=lag, base_rates=rates,
                         select_factors=sel, relativities=rel, executor=ex) == one
    assert ex.tasks == 2
    plans = members.with_columns(plan_id=pl.Series(["A", "B", "A", "A", "B"]))  # the default plan column
    a = window_drivers(plans, claims, windows[:1], plan="A", waiting_days=w, base_rates=rates)[0]
    assert a.details["sharing_members"] == 3 and a.details["incurred_cny"] == 300_000.0  # m0, m2, m3; c0 (c3 follows c1)
    with pytest.raises(ConfigError, match="^notice_date: 2020-03-02 is before period_start 2020-03-03$"):
        window_drivers(members, claims, [windows[0], (D(2020, 3, 3), D(2020, 3, 2), "x")], base_rates=rates)
