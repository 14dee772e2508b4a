"""Exposure core: hand-computed cells, fixed edge cases vs the oracle, invariances, conservation, errors."""

from __future__ import annotations

import datetime as dt
import itertools

import polars as pl
import pytest

from engine.errors import ConfigError, DataError
from engine.cells._exposure import band_labels, exposure
from tests.kits.oracle_exposure import oracle
from tests.kits.random_members import KW, _random_members

D = dt.date
CLAIM_SCHEMA = {"claim_id": pl.String, "member_id": pl.String, "event_date": pl.Date, "amount": pl.Float64}
MEMBER_SCHEMA = {"member_id": pl.String, "birth_date": pl.Date, "sex": pl.String, "join_date": pl.Date,
                 "exit_date": pl.Date, "tier": pl.Int64, "channel": pl.String}


def _m(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MEMBER_SCHEMA, orient="row")


def _c(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CLAIM_SCHEMA, orient="row")


NO_CLAIMS = _c([])


def test_leap_day_birthday_by_hand():
    # born 29 Feb 1996: 22 until 28 Feb 2019, 23 from 1 Mar 2019 (common year); 24 on 29 Feb 2020.
    m = _m([("a", D(1996, 2, 29), "F", D(2018, 1, 1), None, 1, "x")])
    cells = exposure(m, NO_CLAIMS, start=D(2019, 2, 1), end=D(2020, 3, 31), by=("age",), waiting_days=0)
    got = {(r["period"], r["age"]): r["exposure_days"] for r in cells.iter_rows(named=True)}
    assert got[(D(2019, 2, 1), 22)] == 28 and (D(2019, 2, 1), 23) not in got
    assert got[(D(2019, 3, 1), 23)] == 31
    assert got[(D(2020, 2, 1), 23)] == 28 and got[(D(2020, 2, 1), 24)] == 1
    assert cells["exposure_days"].sum() == 365 + 29 + 31  # 1 Feb 2019 .. 31 Jan 2020, Feb and Mar 2020


def test_waiting_exit_claim_by_hand():
    # join 10 Jan 2020, wait 30 -> at risk from 9 Feb; first eligible claim 20 Mar (at risk), exit 1 Jun.
    m = _m([("a", D(1980, 6, 15), "M", D(2020, 1, 10), D(2020, 6, 1), 1, "x")])
    c = _c([("k1", "a", D(2020, 2, 1), 5.0), ("k2", "a", D(2020, 3, 20), 7.0), ("k3", "a", D(2020, 4, 2), 9.0)])
    cells, rej = exposure(m, c, start=D(2020, 1, 1), end=D(2020, 12, 31), waiting_days=30, by=(),
                          return_rejected=True)
    e = dict(zip(cells["period"], cells["exposure_days"]))
    s = dict(zip(cells["period"], cells["sharing_days"]))
    assert e == {D(2020, 1, 1): 0, D(2020, 2, 1): 21, D(2020, 3, 1): 20, D(2020, 4, 1): 0, D(2020, 5, 1): 0}
    assert s == {D(2020, 1, 1): 22, D(2020, 2, 1): 29, D(2020, 3, 1): 31, D(2020, 4, 1): 30, D(2020, 5, 1): 31}
    assert cells["claims"].to_list() == [0, 0, 1, 0, 0] and cells["amount"].sum() == 7.0
    assert rej["reason"].to_list() == ["in_waiting_period", "after_first_claim"]
    # without termination the April claim is used and cover continues to exit
    cells2 = exposure(m, c, start=D(2020, 1, 1), end=D(2020, 12, 31), waiting_days=30, by=(), terminate_on_claim=False)
    assert cells2["exposure_days"].sum() == 21 + 31 + 30 + 31 and cells2["claims"].sum() == 2


def test_claim_before_study_still_ends_cover():
    m = _m([("a", D(1980, 6, 15), "M", D(2018, 1, 1), None, 1, "x")])
    c = _c([("k1", "a", D(2018, 12, 1), 5.0), ("k2", "a", D(2019, 2, 1), 7.0)])
    cells, rej = exposure(m, c, start=D(2019, 1, 1), end=D(2019, 12, 31), waiting_days=0, return_rejected=True)
    assert cells["exposure_days"].sum() == 0 and cells["sharing_days"].sum() == 365
    assert rej["reason"].to_list() == ["outside_study", "after_first_claim"]


def test_duration_bands_by_hand():
    # join 31 Jan 2020: boundaries 29 Feb (1 month), 31 Mar (2), 30 Apr (3), 31 May (4)
    m = _m([("a", D(1980, 6, 15), "M", D(2020, 1, 31), None, 1, "x")])
    cells = exposure(m, NO_CLAIMS, start=D(2020, 1, 1), end=D(2020, 5, 31), waiting_days=0, by=("duration",))
    got = {(r["period"].month, r["duration"]): r["exposure_days"] for r in cells.iter_rows(named=True)}
    assert got == {(1, 0): 1, (2, 0): 28, (2, 1): 1, (3, 1): 30, (3, 2): 1, (4, 2): 29, (4, 3): 1, (5, 3): 30, (5, 4): 1}
    b = exposure(m, NO_CLAIMS, start=D(2020, 1, 1), end=D(2020, 5, 31), waiting_days=0, by=("duration_band",),
                 period="year")
    assert dict(zip(b["duration_band"], b["exposure_days"])) == {"0-2": 1 + 29 + 31 + 29, "3-5": 1 + 31}
    assert band_labels([0, 3, 6, 12, 24]) == ["0-2", "3-5", "6-11", "12-23", "24+"]
    assert band_labels([0, 1, 12]) == ["0", "1-11", "12+"]


EDGE_MEMBERS = _m([
    ("a", D(1996, 2, 29), "F", D(2019, 1, 31), None, 1, "organic"),
    ("b", D(2000, 2, 29), "M", D(2020, 2, 29), D(2020, 4, 1), 2, "subsidy"),  # exits in the waiting period
    ("c", D(1980, 3, 1), "M", D(2019, 6, 1), D(2019, 6, 1), 3, "organic"),  # same-day join and exit
    ("d", D(1970, 12, 31), "F", D(2015, 8, 31), D(2021, 3, 1), 1, None),  # joins before start
    ("e", D(1990, 1, 31), "F", D(2020, 12, 31), None, 2, "employer"),  # exits after end (never)
    ("f", D(1985, 2, 28), "M", D(2018, 11, 30), D(2020, 3, 1), 3, "referral"),
])
EDGE_CLAIMS = _c([
    ("1", "a", D(2019, 5, 1), 1.0), ("2", "a", D(2019, 5, 1), 2.0), ("3", "a", D(2019, 5, 2), 4.0),  # same-day pair
    ("4", "b", D(2020, 3, 15), 8.0), ("5", "c", D(2019, 6, 1), 16.0), ("6", "d", D(2018, 12, 31), 32.0),
    ("7", "d", D(2019, 1, 1), 64.0), ("8", "e", D(2021, 3, 31), 128.0), ("9", "f", D(2020, 2, 29), 256.0),
    ("10", "f", D(2020, 3, 1), 512.0),
])


@pytest.mark.parametrize("period", ["month", "quarter", "year"])
@pytest.mark.parametrize("by", [("age", "sex"), ("duration_band", "channel"), ("age", "duration", "tier"), ()])
def test_edge_cases_match_oracle(period, by):
    kw = dict(start=D(2019, 1, 1), end=D(2021, 2, 28), period=period, waiting_days=90, by=by)
    cells, rej = exposure(EDGE_MEMBERS, EDGE_CLAIMS, return_rejected=True, **kw)
    want, reasons = oracle(EDGE_MEMBERS, EDGE_CLAIMS, **kw)
    g = cells.select(want.columns)
    assert g.equals(want.cast(dict(g.schema)))
    assert dict(zip(rej["claim_id"], rej["reason"])) == {k: v for k, v in reasons.items() if v is not None}
    assert int(cells["claims"].sum()) + rej.height == EDGE_CLAIMS.height


def test_contract_dtypes_and_order():
    cells = exposure(EDGE_MEMBERS, EDGE_CLAIMS, start=D(2019, 1, 1), end=D(2020, 12, 31),
                     by=("tier", "age", "duration", "duration_band", "channel"))
    assert cells.columns == ["period", "tier", "age", "duration", "duration_band", "channel", "exposure_days",
                             "exposure_years", "sharing_days", "sharing_years", "claims", "amount"]
    assert dict(cells.schema) | {} == {
        "period": pl.Date, "tier": pl.Int64, "age": pl.Int32, "duration": pl.Int32, "duration_band": pl.String,
        "channel": pl.String, "exposure_days": pl.Int64, "exposure_years": pl.Float64, "sharing_days": pl.Int64,
        "sharing_years": pl.Float64, "claims": pl.Int64, "amount": pl.Float64}
    keys = ["period", "tier", "age", "duration", "duration_band", "channel"]
    assert cells.equals(cells.sort(keys, nulls_last=True))
    assert not cells.select(keys).is_duplicated().any()


def test_invariances_shuffle_batches_by_order():
    m, c = _random_members(3000, 1)
    by = ("age", "sex", "duration_band", "tier")
    one = exposure(m, c, by=by, **KW)
    assert exposure(m.sample(fraction=1.0, shuffle=True, seed=3), c.sample(fraction=1.0, shuffle=True, seed=4),
                    by=by, **KW).equals(one)
    assert exposure(m, c, by=by, batch_size=700, **KW).equals(one)
    parts = [m.slice(0, 1000).lazy(), m.slice(1000, 1500), m.slice(2500)]
    assert exposure(parts, c, by=by, **KW).equals(one)
    for perm in itertools.islice(itertools.permutations(by), 1, 4):
        other = exposure(m, c, by=perm, **KW)
        assert other.select(one.columns).sort(["period", *by]).equals(one)
    # additivity: cells of parts summed == cells of the union
    keys = ["period", *by]
    sums = ["exposure_days", "sharing_days", "claims"]
    a = exposure(m.slice(0, 1200), c, by=by, **KW)
    b = exposure(m.slice(1200), c, by=by, **KW)
    u = pl.concat([a, b]).group_by(keys).agg(pl.col(sums).sum()).sort(keys)
    assert u.equals(one.select([*keys, *sums]))


def test_conservation_per_member_exposure():
    m, c = _random_members(2000, 2)
    cells, rej = exposure(m, c, by=("age", "channel"), period="quarter", return_rejected=True, **KW)
    # per-member closed form: at-risk days = |[max(join+w, start), min(exit-1, first eligible claim, end)]|
    used = c.join(rej.select("claim_id"), on="claim_id", how="anti")
    from engine.cells._exposure import classify_claims

    first = (classify_claims(m, c, waiting_days=90).filter("eligible").group_by("member_id")
             .agg(pl.col("event_date").min().alias("first")))
    per = (m.join(first, on="member_id", how="left").with_columns(
        lo=pl.max_horizontal(pl.col("join_date") + pl.duration(days=90), pl.lit(KW["start"])),
        hi=pl.min_horizontal(pl.col("exit_date") - pl.duration(days=1), pl.col("first"), pl.lit(KW["end"])),
        slo=pl.max_horizontal(pl.col("join_date"), pl.lit(KW["start"])),
        shi=pl.min_horizontal(pl.col("exit_date") - pl.duration(days=1), pl.lit(KW["end"])),
    ).with_columns(
        days=pl.max_horizontal((pl.col("hi") - pl.col("lo")).dt.total_days() + 1, 0),
        sdays=pl.max_horizontal((pl.col("shi") - pl.col("slo")).dt.total_days() + 1, 0),
    ))
    assert cells["exposure_days"].sum() == per["days"].sum()
    assert cells["sharing_days"].sum() == per["sdays"].sum()
    assert abs(cells["exposure_years"].sum() - per["days"].sum() / 365.25) < 1e-6
    assert cells["claims"].sum() == used.height and cells["amount"].sum() == pytest.approx(used["amount"].sum())


def test_errors_name_the_option():
    kw = dict(start=D(2019, 1, 1), end=D(2019, 12, 31))
    with pytest.raises(ConfigError, match="^period: must be one of month, quarter, year, got 'week'$"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, period="week", **kw)
    with pytest.raises(ConfigError, match="^end"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, start=D(2020, 1, 1), end=D(2019, 1, 1))
    with pytest.raises(ConfigError, match="start: '01/01/2019' is not a date"):  # ISO text is a date (issue 16)
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, start="01/01/2019", end=D(2019, 1, 1))
    with pytest.raises(ConfigError, match="^duration_bands"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, duration_bands=(3, 6), **kw)
    with pytest.raises(ConfigError, match=r"^duration_bands: must be increasing integers starting at 0, got \(0, 3, 3\)$"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, duration_bands=(0, 3, 3), **kw)  # found by mutation testing
    for key in ("period", "claims"):
        with pytest.raises(ConfigError, match=f"^by: 'period' and the sum columns cannot be keys \\(\\['{key}'\\]\\)$"):
            exposure(EDGE_MEMBERS, EDGE_CLAIMS, by=(key,), **kw)
    with pytest.raises(ConfigError, match="^by"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, by=("age", "age"), **kw)
    with pytest.raises(ConfigError, match="^batch_size"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, batch_size=0, **kw)
    with pytest.raises(ConfigError, match="^waiting_days"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, waiting_days=-3, **kw)
    with pytest.raises(DataError, match="'region'"):
        exposure(EDGE_MEMBERS, EDGE_CLAIMS, by=("region",), **kw)
    with pytest.raises(DataError, match="more than once"):
        exposure(pl.concat([EDGE_MEMBERS, EDGE_MEMBERS]), EDGE_CLAIMS, **kw)
    with pytest.raises(DataError, match="more than one batch"):
        exposure([EDGE_MEMBERS, EDGE_MEMBERS], EDGE_CLAIMS, **kw)


def test_unknown_member_claim_is_kept_aside():
    c = pl.concat([EDGE_CLAIMS, _c([("zz", "nobody", D(2019, 5, 5), 3.0)])])
    cells, rej = exposure(EDGE_MEMBERS, c, start=D(2019, 1, 1), end=D(2020, 12, 31), return_rejected=True)
    assert rej.filter(pl.col("claim_id") == "zz")["reason"].to_list() == ["unknown_member"]
    assert int(cells["claims"].sum()) + rej.height == c.height
