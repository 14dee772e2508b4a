"""One home per concept: the conventions module, and each unified formula against a closed form or an oracle."""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from engine import conventions as c
from engine.cells.dates import attained_age, attained_age_expr, completed_months, completed_months_expr, day_number

ENGINE = Path(__file__).resolve().parents[1] / "engine"


# ----------------------------------------------------------------------------- conventions
def test_platform_rules() -> None:
    assert (c.FEE, c.WAITING_DAYS, c.REPORTING_LAG_DAYS, c.SHARING_DAYS) == (0.08, 90, 30, (14, 28))
    assert (c.PER_CLAIMANT_CAP_CNY, c.ANNUAL_CAP_CNY, c.DAYS_PER_YEAR) == (0.1, 188.0, 365.25)
    assert c.BENEFIT_SCHEDULE == ((39, 300_000.0), (10**6, 100_000.0))


def test_full_credibility_standard_is_its_formula() -> None:
    z = stats.norm.ppf(0.95)
    assert c.FULL_CREDIBILITY_CLAIMS == pytest.approx((z / 0.05) ** 2, rel=1e-12)
    assert round(c.FULL_CREDIBILITY_CLAIMS) == 1082
    assert c.full_credibility_standard(0.95, 0.10, cv=1.0) == pytest.approx(2 * (stats.norm.ppf(0.975) / 0.1) ** 2)


@pytest.mark.parametrize(("days", "ppy", "periods"), [(90, 12, 3), (90, 24, 6), (30, 12, 1), (30, 24, 2), (0, 24, 0),
                                                      (365, 1, 1), (14, 24, 1)])
def test_days_to_periods(days: int, ppy: int, periods: int) -> None:
    assert c.days_to_periods(days, ppy) == periods == round(days * ppy / 365.25)
    assert c.periods_per_year((14, 28)) == 24 and c.periods_per_year((28,)) == 12


def test_projection_waiting_and_lag_come_from_days() -> None:
    from engine.projection.assumptions import make_assumptions

    a = make_assumptions(periods_per_year=24)
    assert (a.waiting_periods, a.reporting_lag_periods) == (6, 2)
    a = make_assumptions()
    assert (a.waiting_periods, a.reporting_lag_periods) == (3, 1)
    a = make_assumptions(periods_per_year=12, waiting_days=180, reporting_lag_days=0)
    assert (a.waiting_periods, a.reporting_lag_periods) == (6, 0)
    assert make_assumptions(waiting_periods=2).waiting_periods == 2  # an explicit number of periods wins


def test_no_literal_copies_of_the_conventions() -> None:
    """0.08, 365.25 and 1082 are written in engine/conventions.py and nowhere else in the code."""
    pat = re.compile(r"(?<![\w.])(0\.08|365\.25|1082(\.0)?|1_082)(?![\w.])")
    hits = []
    for path in ENGINE.rglob("*.py"):
        if path.name == "conventions.py" or path.parent.name == "synth" and path.name == "config.py":
            continue
        code = re.sub(r'"""[\s\S]*?"""', "", path.read_text(encoding="utf-8"))  # docstrings may cite the values
        for i, line in enumerate(code.splitlines()):
            line = line.split("#", 1)[0]
            if pat.search(line) and "help=" not in line:
                hits.append(f"{path.relative_to(ENGINE)}: {line.strip()}")
    assert hits == []


# ----------------------------------------------------------------------------- attained age and duration
def _age_oracle(b: dt.date, d: dt.date) -> int:
    """Count birthdays one by one (29 February -> 1 March in common years)."""
    age = 0
    while True:
        y = b.year + age + 1
        bd = dt.date(y, 3, 1) if (b.month, b.day) == (2, 29) and not calendar.isleap(y) else dt.date(y, b.month, b.day)
        if bd > d:
            return age
        age += 1


def _months_oracle(j: dt.date, d: dt.date) -> int:
    """Count month boundaries one by one (join's day, or the month's last day)."""
    n, y, m = 0, j.year, j.month
    while True:
        m += 1
        if m == 13:
            y, m = y + 1, 1
        if dt.date(y, m, min(j.day, calendar.monthrange(y, m)[1])) > d:
            return n
        n += 1


def _pairs() -> list[tuple[dt.date, dt.date]]:
    rng = np.random.default_rng(7)
    special = [(dt.date(2000, 2, 29), dt.date(2021, 2, 28)), (dt.date(2000, 2, 29), dt.date(2021, 3, 1)),
               (dt.date(2000, 2, 29), dt.date(2024, 2, 29)), (dt.date(2000, 2, 29), dt.date(2024, 2, 28)),
               (dt.date(2021, 1, 31), dt.date(2021, 2, 28)), (dt.date(2021, 1, 31), dt.date(2021, 2, 27)),
               (dt.date(2020, 1, 31), dt.date(2020, 2, 29)), (dt.date(2019, 3, 31), dt.date(2019, 4, 30)),
               (dt.date(1999, 12, 31), dt.date(1999, 12, 31))]
    base = dt.date(1950, 1, 1)
    rand = []
    for x, y in rng.integers(0, 30_000, (300, 2)):
        a, b = sorted((int(x), int(y)))
        rand.append((base + dt.timedelta(days=a), base + dt.timedelta(days=b)))
    return special + rand


def test_attained_age_and_duration_against_loops() -> None:
    pairs = _pairs()
    b = np.array([day_number(p[0]) for p in pairs])
    d = np.array([day_number(p[1]) for p in pairs])
    assert attained_age(b, d).tolist() == [_age_oracle(x, y) for x, y in pairs]
    assert completed_months(b, d).tolist() == [_months_oracle(x, y) for x, y in pairs]
    df = pl.DataFrame({"b": [p[0] for p in pairs], "d": [p[1] for p in pairs]})
    got = df.select(attained_age_expr("b", pl.col("d")).alias("a"), completed_months_expr(pl.col("b"), "d").alias("m"))
    assert got["a"].to_list() == attained_age(b, d).tolist()
    assert got["m"].to_list() == completed_months(b, d).tolist()
    at = dt.date(2021, 3, 1)  # a date literal, and nulls stay null
    one = pl.DataFrame({"b": [dt.date(2000, 2, 29), None]}).select(attained_age_expr("b", at).alias("a"))
    assert one["a"].to_list() == [21, None]


def test_cell_accumulator_age_is_the_same_formula() -> None:
    """The packed-code age of the fast accumulator equals engine.cells.dates.attained_age on every day of a window."""
    from engine.cells.calendar import Calendar
    from engine.cells._accumulate import tables
    from engine.cells.dates import civil_from_days, md_code

    cal = Calendar(day_number(dt.date(2020, 1, 1)), day_number(dt.date(2024, 12, 31)), "month")
    T = tables(cal)
    t = np.arange(cal.start, cal.end + 1)
    for birth in (dt.date(1960, 2, 29), dt.date(1990, 12, 31), dt.date(2001, 3, 1), dt.date(2020, 2, 29)):
        bn = day_number(birth)
        y, m, d = (int(v[0]) for v in civil_from_days(np.array([bn])))
        packed = (T.C[t - T.d0].astype(np.int64) - (512 * y + int(md_code(m, d)))) >> 9
        assert packed.tolist() == attained_age(np.full(t.size, bn), t).tolist(), birth


# ----------------------------------------------------------------------------- band labels
def test_band_labels_one_home() -> None:
    from engine.cells._exposure import band_labels
    from engine.estimators.select import duration_band_expr

    assert band_labels([0, 1]) == ["0", "1+"]  # a one-month band is labelled by its month
    assert band_labels([0, 1, 3, 12]) == ["0", "1-2", "3-11", "12+"]
    assert band_labels([0, 3, 6, 12, 24]) == ["0-2", "3-5", "6-11", "12-23", "24+"]
    got = pl.DataFrame({"duration": [0, 1, 2, 5]}).select(duration_band_expr((0, 1, 3)).alias("b"))["b"].to_list()
    assert got == ["0", "1-2", "1-2", "3+"]


# ----------------------------------------------------------------------------- Garwood and credibility
def test_garwood_closed_forms_and_segment_table() -> None:
    from engine.estimators.crude import garwood_interval
    from engine.segmentation.metrics import segmentation_metrics

    E = 200.0
    lo, hi = garwood_interval([0, 1], [E, E], 0.95)
    assert lo[0] == 0.0 and hi[0] == pytest.approx(-math.log(0.025) / E)  # chi2(2) quantile = -2 ln(1 - q)
    assert lo[1] == pytest.approx(-math.log(0.975) / E)
    cells = pl.DataFrame({"age": pl.Series([30, 50], dtype=pl.Int32), "exposure_years": [1000.0, 2000.0],
                          "claims": [3.0, 40.0]})
    table, _ = segmentation_metrics(cells, np.array([1, 2]), np.array([0.003, 0.02]), benefit=1.0, window=1.0)
    lo, hi = garwood_interval(table["claims"].to_numpy(), table["exposure_years"].to_numpy(), 0.95)
    assert table["rate_lower"].to_list() == lo.tolist() and table["rate_upper"].to_list() == hi.tolist()
    z = np.minimum(1.0, np.sqrt(np.array([3.0, 40.0]) / c.FULL_CREDIBILITY_CLAIMS))
    assert table["credibility"].to_list() == pytest.approx(z.tolist(), rel=1e-15)


# ----------------------------------------------------------------------------- shares
def test_share_formulas_closed_forms() -> None:
    from engine.plans.sharing import capped_share, cross_subsidy, leverage, member_share, pooled_share

    s = member_share(np.array([300_000.0, 100_000.0, 5.0]), np.array([1_000_000.0, 500.0, 0.0]), 0.08)
    assert s[:2].tolist() == pytest.approx([0.324, 216.0]) and math.isnan(s[2])
    assert member_share(5.0, 0.0, empty=0.0) == 0.0
    assert capped_share(s[:2], 0.1).tolist() == pytest.approx([0.1, 0.1])
    assert capped_share(s[:2], None) is s[:2] or np.array_equal(capped_share(s[:2], None), s[:2])
    e = pl.DataFrame({"x": [0.05, 0.3]}).select(capped_share(pl.col("x"), 0.1).alias("y"))["y"].to_list()
    assert e == [0.05, 0.1]
    # Xianghubao: 300,000 CNY against 29.17 CNY a year
    assert leverage(300_000.0, 29.17 / 24, 24) == pytest.approx(300_000.0 / 29.17)
    n, own = np.array([80.0, 20.0]), np.array([1.0, 3.0])
    pooled = pooled_share(n, own)
    assert pooled == pytest.approx(1.4)
    x = cross_subsidy(pooled, own)
    assert x.tolist() == pytest.approx([0.4, -1.6]) and float(np.sum(n * x)) == pytest.approx(0.0, abs=1e-12)
