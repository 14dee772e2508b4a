"""Exposure core vs the day-by-day oracle on examples built to hit every edge of domain.md section 4.

Every generated example has a member sharing in the study window (so it always produces
cells), and claims are drawn on the boundary days: join, last waiting day, first covered
day, the day before exit, exit, the window's first and last days and the days just outside
it, and a day after an earlier claim (second claims). Births on 29 February meet common and
leap years. Each edge an example hits is recorded with ``hypothesis.event`` (shown by
``pytest --hypothesis-show-statistics``) and counted; ``test_every_edge_case_exercised``
checks that each edge occurred in several examples.

More examples, from a fresh random stream:
``HYPOTHESIS_PROFILE=explore python -m pytest tests/test_exposure_edges.py``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter

import polars as pl
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import engine
from tests.kits.oracle_exposure import oracle

D = dt.date
ONE = dt.timedelta(days=1)
FEB29_BIRTHS = [D(1996, 2, 29), D(2000, 2, 29)]
OTHER_BIRTHS = [D(1980, 3, 1), D(1980, 2, 28), D(1999, 12, 31), D(1990, 1, 31)]
#: windows starting around the common-year February of 2019 and the leap-year one of 2020
STARTS = [D(2018, 12, 31), D(2019, 2, 28), D(2019, 3, 1), D(2019, 6, 1), D(2020, 2, 28), D(2020, 2, 29)]
BY_COMBOS = [("age", "sex"), ("age", "duration"), ("duration_band", "tier"), ("sex", "age", "duration_band"), ()]
ANCHORS = ["join", "last_waiting", "first_cover", "before_exit", "exit", "start", "end", "before_start",
           "after_end", "after_previous", "any"]
#: every edge the strategy is meant to reach, each checked to occur
EDGES = [
    "member joins before the window", "member exits after the window", "member joins before and exits after",
    "member joins and exits inside the window", "exit inside the waiting period, in the window",
    "claim on join day", "claim on last waiting day", "claim on first covered day", "claim on day before exit",
    "claim on exit day", "claim on window start", "claim on window end", "claim on day before window",
    "claim on day after window", "second eligible claim", "second claim on the same day",
    "29 Feb birth over a common-year 28 Feb/1 Mar", "29 Feb birth over a leap-year 29 Feb",
    "join on a month end", "claim used", "claim before_join", "claim in_waiting_period", "claim after_exit",
    "claim after_first_claim", "claim outside_study",
]
SEEN: Counter[str] = Counter()


@st.composite
def edge_member(draw, i: int, start: dt.date, end: dt.date, waiting: int) -> dict:
    """One member placed relative to the window; member 0 always shares on some day in it."""
    span = (end - start).days
    kind = "shares" if i == 0 else draw(st.sampled_from(["shares", "waiting_exit", "around", "any"]))
    if kind == "shares":  # join <= s < exit for a day s of the window
        s = start + dt.timedelta(days=draw(st.integers(0, span)))
        join = s - dt.timedelta(days=draw(st.integers(0, 400)))
        exit_ = draw(st.one_of(st.none(), st.integers(1, 500).map(lambda k: s + dt.timedelta(days=k))))
    elif kind == "waiting_exit":  # exits before its cover starts
        join = start + dt.timedelta(days=draw(st.integers(-5, span)))
        exit_ = join + dt.timedelta(days=draw(st.integers(1, max(1, waiting - 1))))
    elif kind == "around":  # joins before the window, leaves after it (or never)
        join = start - dt.timedelta(days=draw(st.integers(1, 400)))
        exit_ = draw(st.one_of(st.none(), st.integers(1, 60).map(lambda k: end + dt.timedelta(days=k))))
    else:
        join = start + dt.timedelta(days=draw(st.integers(-500, span + 30)))
        exit_ = draw(st.one_of(st.none(), st.integers(0, 700).map(lambda k: join + dt.timedelta(days=k))))
    if draw(st.integers(0, 4)) == 0:  # an earlier join on a month end (duration boundaries on short months)
        join = D(join.year, join.month, 1) - ONE
    birth = draw(st.sampled_from(FEB29_BIRTHS + OTHER_BIRTHS) if draw(st.booleans())
                 else st.dates(D(1960, 1, 1), D(2005, 12, 31)))
    return {"member_id": f"m{i}", "birth_date": birth, "sex": draw(st.sampled_from(["M", "F"])),
            "join_date": join, "exit_date": exit_, "tier": draw(st.integers(1, 3))}


def _anchor_day(anchor: str, m: dict, start: dt.date, end: dt.date, waiting: int, previous: list[dt.date]):
    w = dt.timedelta(days=waiting)
    return {"join": m["join_date"], "last_waiting": m["join_date"] + w - ONE, "first_cover": m["join_date"] + w,
            "before_exit": None if m["exit_date"] is None else m["exit_date"] - ONE, "exit": m["exit_date"],
            "start": start, "end": end, "before_start": start - ONE, "after_end": end + ONE,
            "after_previous": previous[-1] + dt.timedelta(days=0 if len(previous) % 2 else 3) if previous else None,
            }.get(anchor)


@st.composite
def edge_scenario(draw):
    start = draw(st.sampled_from(STARTS))
    end = start + dt.timedelta(days=draw(st.integers(0, 800)))
    waiting = draw(st.sampled_from([0, 1, 30, 90]))
    members = [draw(edge_member(i, start, end, waiting)) for i in range(draw(st.integers(1, 4)))]
    claims = []
    for m in members:
        previous: list[dt.date] = []
        for _ in range(draw(st.integers(0, 3))):
            ev = _anchor_day(draw(st.sampled_from(ANCHORS)), m, start, end, waiting, previous)
            if ev is None:
                ev = m["join_date"] + dt.timedelta(days=draw(st.integers(-20, 800)))
            previous.append(ev)
            claims.append({"claim_id": f"c{len(claims)}", "member_id": m["member_id"], "event_date": ev,
                           "amount": float(draw(st.integers(1, 5))) * 1000.0})
    return members, claims, waiting, start, end


def _frames(members: list[dict], claims: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    m = pl.DataFrame(members, schema={"member_id": pl.String, "birth_date": pl.Date, "sex": pl.String,
                                      "join_date": pl.Date, "exit_date": pl.Date, "tier": pl.Int64})
    c = pl.DataFrame(claims, schema={"claim_id": pl.String, "member_id": pl.String, "event_date": pl.Date,
                                     "amount": pl.Float64})
    return m, c


def _shares(m: dict, d: dt.date) -> bool:
    return m["join_date"] <= d and (m["exit_date"] is None or d < m["exit_date"])


def edges_of(members, claims, waiting, start, end, reasons) -> set[str]:
    """The edges one example hits, read from its data and the oracle's claim reasons."""
    out = set()
    w = dt.timedelta(days=waiting)
    for m in members:
        join, exit_ = m["join_date"], m["exit_date"]
        in_window = join <= end and (exit_ is None or exit_ > start)
        if not in_window:
            continue
        before, after = join < start, exit_ is None or exit_ > end + ONE
        out |= {"member joins before the window"} if before else set()
        out |= {"member exits after the window"} if after else set()
        out |= {"member joins before and exits after"} if before and after else set()
        if not before and not after:
            out.add("member joins and exits inside the window")
        if exit_ is not None and waiting > 1 and exit_ < join + w and start < exit_ <= end + ONE:
            out.add("exit inside the waiting period, in the window")
        if join.day == calendar.monthrange(join.year, join.month)[1]:
            out.add("join on a month end")
        if m["birth_date"].month == 2 and m["birth_date"].day == 29:
            for y in range(start.year, end.year + 1):
                if calendar.isleap(y):
                    d = D(y, 2, 29)
                    if start <= d <= end and _shares(m, d):
                        out.add("29 Feb birth over a leap-year 29 Feb")
                else:
                    a, b = D(y, 2, 28), D(y, 3, 1)
                    if start <= a and b <= end and _shares(m, a) and _shares(m, b):
                        out.add("29 Feb birth over a common-year 28 Feb/1 Mar")
    by_member = {m["member_id"]: m for m in members}
    eligible_days: dict[str, list[dt.date]] = {}
    for c in claims:
        m, e = by_member[c["member_id"]], c["event_date"]
        labels = {m["join_date"]: "join day", m["join_date"] + w - ONE: "last waiting day",
                  m["join_date"] + w: "first covered day", start: "window start", end: "window end",
                  start - ONE: "day before window", end + ONE: "day after window"}
        if m["exit_date"] is not None:
            labels |= {m["exit_date"] - ONE: "day before exit", m["exit_date"]: "exit day"}
        for day, name in labels.items():
            if e == day and not (name == "last waiting day" and waiting == 0):
                out.add(f"claim on {name}")
        reason = reasons[c["claim_id"]]
        out.add(f"claim {reason or 'used'}")
        if reason in (None, "after_first_claim", "outside_study"):  # on a day the member was at risk
            eligible_days.setdefault(c["member_id"], []).append(e)
    for days in eligible_days.values():
        if len(days) > 1:
            out.add("second eligible claim")
            if len(set(days)) < len(days):
                out.add("second claim on the same day")
    return out


def _compare(got: pl.DataFrame, want: pl.DataFrame, by) -> None:
    cols = ["period", *by, "exposure_days", "sharing_days", "claims", "amount"]
    g = got.select(cols)
    assert g.height == want.height, (g, want)
    w = want.cast(dict(g.schema))
    assert g.drop("amount").equals(w.drop("amount")), (g, w)
    assert (g["amount"] - w["amount"]).abs().max() < 1e-9


def _m(i, join, exit_=None, birth=D(1980, 6, 15)):
    return {"member_id": f"m{i}", "birth_date": birth, "sex": "F", "join_date": join, "exit_date": exit_, "tier": 1}


def _c(i, member, day):
    return {"claim_id": f"c{i}", "member_id": f"m{member}", "event_date": day, "amount": 1000.0}


S19, E19 = D(2019, 1, 1), D(2019, 12, 31)
#: waiting exit in the window; a member around the window with claims on the window's edges and a second claim
EX_WAIT_AROUND = ([_m(0, D(2019, 3, 10), D(2019, 4, 20)), _m(1, D(2018, 5, 1), D(2020, 2, 1))],
                  [_c(0, 0, D(2019, 3, 10)), _c(1, 0, D(2019, 4, 19)), _c(2, 1, D(2018, 12, 31)), _c(3, 1, S19),
                   _c(4, 1, D(2019, 5, 5)), _c(5, 1, E19), _c(6, 1, D(2020, 1, 1))], 90, S19, E19)
#: claims on the last waiting day, the first covered day, the day before exit and the exit day
EX_BOUNDARIES = ([_m(0, D(2019, 2, 1), D(2019, 9, 1)), _m(1, D(2019, 2, 1), D(2019, 9, 1))],
                 [_c(0, 0, D(2019, 5, 1)), _c(1, 0, D(2019, 5, 2)), _c(2, 1, D(2019, 8, 31)), _c(3, 1, D(2019, 9, 1)),
                  _c(4, 1, D(2019, 1, 31))], 90, S19, E19)
#: two eligible claims on the same day and a second one later
EX_SECOND = ([_m(0, D(2018, 1, 1))], [_c(0, 0, D(2019, 6, 1)), _c(1, 0, D(2019, 6, 1)), _c(2, 0, D(2019, 7, 1))],
             30, S19, E19)
#: 29 February births over the common-year 2019 and the leap-year 2020, joins on month ends
EX_FEB29 = ([_m(0, D(2018, 1, 31), None, D(1996, 2, 29)), _m(1, D(2020, 2, 29), D(2020, 6, 1), D(2000, 2, 29)),
             _m(2, D(2019, 1, 31), None, D(2000, 2, 29))],
            [_c(0, 0, D(2019, 2, 28)), _c(1, 2, D(2019, 3, 1)), _c(2, 1, D(2020, 5, 31))], 0, D(2019, 2, 1),
            D(2020, 3, 31))
#: a one-day window on a leap day
EX_ONE_DAY = ([_m(0, D(2020, 2, 29), D(2020, 3, 1), D(1996, 2, 29))], [_c(0, 0, D(2020, 2, 29))], 0,
              D(2020, 2, 29), D(2020, 2, 29))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # max_examples from the profile (ci: 100)
@given(edge_scenario(), st.sampled_from(BY_COMBOS), st.sampled_from(["month", "quarter", "year"]), st.booleans())
@example(EX_WAIT_AROUND, ("age", "duration"), "month", True)
@example(EX_BOUNDARIES, ("age", "sex"), "month", True)
@example(EX_SECOND, ("duration_band", "tier"), "quarter", True)
@example(EX_SECOND, ("age", "sex"), "month", False)
@example(EX_FEB29, ("age", "duration"), "month", True)
@example(EX_ONE_DAY, ("age", "duration"), "month", True)
def test_exposure_matches_oracle_on_every_edge(sc, by, period, terminate) -> None:
    members, claims, waiting, start, end = sc
    m, c = _frames(members, claims)
    kw = dict(start=start, end=end, period=period, waiting_days=waiting, terminate_on_claim=terminate, by=by)
    cells, rejected = engine.exposure(m, c, return_rejected=True, **kw)
    want, reasons = oracle(m, c, **kw)
    for e in sorted(edges_of(members, claims, waiting, start, end, reasons)):
        event(e)
        SEEN[e] += 1
    SEEN["examples"] += 1
    assert want.height > 0 and cells.height > 0  # a member shares in the window
    _compare(cells, want, by)
    assert int(cells["claims"].sum()) + rejected.height == c.height
    assert dict(zip(rejected["claim_id"], rejected["reason"])) == {k: v for k, v in reasons.items() if v is not None}
    assert ((cells["exposure_years"] - cells["exposure_days"] / 365.25).abs().max()) < 1e-12


def test_every_edge_case_exercised() -> None:
    """Each edge occurred in at least 3 examples (the 6 explicit examples alone cannot reach that)."""
    if SEEN["examples"] == 0:  # run alone (e.g. -k): run the property first
        test_exposure_matches_oracle_on_every_edge()
    missing = {e: SEEN[e] for e in EDGES if SEEN[e] < 3}
    assert not missing, (missing, SEEN)
    assert set(SEEN) <= {*EDGES, "examples"}, set(SEEN) - {*EDGES, "examples"}


def test_edge_classifier_on_a_hand_checked_example() -> None:
    """The classifier itself (a test that counts edges must count them right)."""
    members, claims, waiting, start, end = EX_WAIT_AROUND
    _, reasons = oracle(*_frames(members, claims), start=start, end=end, waiting_days=waiting)
    # c2 (eligible, the day before the window) ends m1's cover: its later claims are set aside
    assert reasons == {"c0": "in_waiting_period", "c1": "in_waiting_period", "c2": "outside_study",
                       "c3": "after_first_claim", "c4": "after_first_claim", "c5": "after_first_claim", "c6": "after_first_claim"}
    assert edges_of(members, claims, waiting, start, end, reasons) == {
        "member joins and exits inside the window", "exit inside the waiting period, in the window",
        "member joins before the window", "member exits after the window", "member joins before and exits after",
        "claim on join day", "claim on day before exit", "claim on day before window", "claim on window start",
        "claim on window end", "claim on day after window", "claim in_waiting_period", "claim outside_study",
        "claim after_first_claim", "second eligible claim"}
