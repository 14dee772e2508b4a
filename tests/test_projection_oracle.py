"""The vectorised projection against a plain-loop oracle written from docs/projection.md.

The oracle tracks members per (group, exact tenure) in dictionaries, period by
period, with scalar arithmetic only; it shares no code with engine.projection.dynamics.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from engine.projection._project import project

BIG_TENURE = 10_000  # "past every select / tenure table"


def oracle(groups: list[dict], *, horizon, ppy, fee, w, lag, pcc, acap, sel, tf, base_annual, hmax,
           speed, floor, x0, eps_base, adv, joiners, claimants_exit=True):
    """Deterministic path per plan: dict of lists (share, members, eligible, lapses, expected_claims)."""
    plans = sorted({g["plan"] for g in groups})
    G = len(groups)
    mean_rate = {}
    for p in plans:
        mem = sum(g["members"] for g in groups if g["plan"] == p)
        mean_rate[p] = sum(g["rate"] * g["members"] for g in groups if g["plan"] == p) / mem
    eps = [eps_base * (g["rate"] / mean_rate[g["plan"]]) ** (-adv) for g in groups]
    hper = [1 - (1 - base_annual[g["channel"]]) ** (1 / ppy) for g in groups]
    mixtot = sum(g["members"] for g in groups)
    # members by group and tenure
    n = []
    for g in groups:
        d = {}
        for tau in range(w):
            d[tau] = g["waiting"] / w
        d[BIG_TENURE] = g["members"] - g["waiting"]
        n.append(d)

    def selv(tau):
        return sel[min(tau, len(sel) - 1)] if sel else 1.0

    def tfv(tau):
        return tf[min(tau, len(tf) - 1)]

    def mu(i, tau, t):
        if tau < w:
            return 0.0
        g = groups[i]
        return g["rate"] * selv(tau) * (1 + g["ageing"]) ** (t / ppy) / ppy

    queue = [[sum(n[i][tau] * mu(i, tau, 0) for tau in n[i]) for i in range(G)] for _ in range(lag)]
    X = {p: x0 for p in plans}
    cum = {p: 0.0 for p in plans}
    out = {p: {k: [] for k in ("share", "members", "eligible", "lapses", "expected_claims")} for p in plans}
    for t in range(horizon):
        for i, g in enumerate(groups):
            n[i][0] = n[i].get(0, 0.0) + joiners(t) * g["members"] / mixtot
        N = {p: sum(sum(n[i].values()) for i in range(G) if groups[i]["plan"] == p) for p in plans}
        E = {p: sum(v for i in range(G) if groups[i]["plan"] == p for tau, v in n[i].items() if tau >= w)
             for p in plans}
        m = [sum(v * mu(i, tau, t) for tau, v in n[i].items()) for i in range(G)]
        if lag:
            paid = queue.pop(0)
            queue.append(list(m))
        else:
            paid = list(m)
        share = {}
        for p in plans:
            s = 0.0
            for i, g in enumerate(groups):
                if g["plan"] == p:
                    c = (1 + fee) * g["benefit"] / N[p]
                    s += paid[i] * (min(c, pcc) if pcc else c)
            if acap is not None:
                if t % ppy == 0:
                    cum[p] = 0.0
                s = min(s, max(acap - cum[p], 0.0))
                cum[p] += s
            share[p] = s
        if claimants_exit:
            for i in range(G):
                for tau in n[i]:
                    n[i][tau] -= n[i][tau] * mu(i, tau, t)  # deterministic: K = m, removed pro rata
        lap = {p: 0.0 for p in plans}
        for p in plans:
            if X[p] is None:
                X[p] = share[p]
        for i, g in enumerate(groups):
            p = g["plan"]
            ratio = share[p] / max(X[p], floor)
            for tau in list(n[i]):
                h = min(hper[i] * tfv(tau) * ratio ** eps[i], hmax)
                lap[p] += n[i][tau] * h
                n[i][tau] -= n[i][tau] * h
        for p in plans:
            o = out[p]
            o["share"].append(share[p]); o["members"].append(N[p]); o["eligible"].append(E[p])
            o["lapses"].append(lap[p])
            o["expected_claims"].append(sum(m[i] for i in range(G) if groups[i]["plan"] == p))
            X[p] = X[p] + speed * (share[p] - X[p])
        for i in range(G):
            n[i] = {(tau + 1 if tau != BIG_TENURE else BIG_TENURE): v for tau, v in n[i].items()}
            # merge tenure BIG_TENURE-1 (impossible here) and keep dict small
    return out


GROUPS = [
    dict(plan="A", group="a1", members=30_000.0, waiting=3_000.0, rate=0.0008, benefit=300_000.0, channel="organic",
         ageing=0.03),
    dict(plan="A", group="a2", members=10_000.0, waiting=1_500.0, rate=0.003, benefit=100_000.0, channel="subsidy",
         ageing=0.0),
    dict(plan="B", group="b1", members=5_000.0, waiting=0.0, rate=0.0015, benefit=300_000.0, channel="organic",
         ageing=0.05),
]


def _frame(groups):
    return pl.DataFrame({
        "plan": [g["plan"] for g in groups], "group": [g["group"] for g in groups],
        "members": [g["members"] for g in groups], "waiting_members": [g["waiting"] for g in groups],
        "rate": [g["rate"] for g in groups], "benefit_cny": [g["benefit"] for g in groups],
        "channel": [g["channel"] for g in groups], "ageing_annual": [g["ageing"] for g in groups],
    })


@pytest.mark.parametrize("case", [
    dict(w=3, lag=1, pcc=None, acap=None, sel=[0.5, 0.5, 0.5, 0.7, 0.85, 1.0], tf=[2.0, 1.5, 1.0], eps=1.5, adv=1.0,
         x0=None),
    dict(w=2, lag=2, pcc=0.8, acap=40.0, sel=None, tf=[1.0], eps=0.0, adv=0.0, x0=3.0),
    dict(w=0, lag=0, pcc=None, acap=25.0, sel=[0.6, 1.0], tf=[1.0, 1.2], eps=3.0, adv=2.0, x0=0.5),
])
def test_deterministic_path_matches_loop_oracle(case):
    base = {"organic": 0.12, "subsidy": 0.35}
    horizon, ppy = 30, 12
    groups = GROUPS if case["w"] else [dict(g, waiting=0.0) for g in GROUPS]
    sched = [800.0 * (1.03 ** t) if t < 15 else 0.0 for t in range(horizon)]
    res = project(_frame(groups), horizon=horizon, n_scenarios=1, periods_per_year=ppy, fee=0.08,
                  waiting_periods=case["w"], reporting_lag_periods=case["lag"], per_claimant_cap=case["pcc"],
                  annual_cap=case["acap"], select_factors=case["sel"],
                  joiners={"per_period": [800.0] * 15, "growth": 0.03},
                  lapse={"base_annual": base, "tenure_factors": case["tf"], "max_hazard": 0.3},
                  expectations={"speed": 0.2, "floor_cny": 0.05, "initial_share_cny": case["x0"]},
                  elasticity={"base": case["eps"], "adverse_selection": case["adv"]})
    ref = oracle(groups, horizon=horizon, ppy=ppy, fee=0.08, w=case["w"], lag=case["lag"], pcc=case["pcc"],
                 acap=case["acap"], sel=case["sel"], tf=case["tf"], base_annual=base, hmax=0.3, speed=0.2,
                 floor=0.05, x0=case["x0"], eps_base=case["eps"], adv=case["adv"], joiners=lambda t: sched[t])
    for p in ("A", "B"):
        d = res.periods.filter(pl.col("plan") == p).sort("period")
        for col, key in (("det_share_cny", "share"), ("det_members", "members"),
                         ("det_eligible_members", "eligible"), ("det_lapses", "lapses"),
                         ("det_expected_claims", "expected_claims")):
            np.testing.assert_allclose(d[col].to_numpy(), ref[p][key], rtol=1e-9, atol=1e-9, err_msg=f"{p} {col}")
    assert math.isfinite(float(res.plans["sustainable_share_cny"].sum()))


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(w=st.integers(0, 4), lag=st.integers(0, 3), pcc=st.sampled_from([None, 0.5, 2.0]),
       acap=st.sampled_from([None, 30.0, 120.0]), eps=st.floats(0, 4), adv=st.floats(0, 2),
       speed=st.floats(0, 1), sel=st.one_of(st.none(), st.lists(st.floats(0.2, 1.5), min_size=1, max_size=8)),
       tf=st.lists(st.floats(0.5, 3.0), min_size=1, max_size=5), x0=st.one_of(st.none(), st.floats(0.1, 50)),
       growth=st.floats(-0.05, 0.1), exit_=st.booleans())
def test_deterministic_path_matches_oracle_property(w, lag, pcc, acap, eps, adv, speed, sel, tf, x0, growth, exit_):
    base = {"organic": 0.15, "subsidy": 0.4}
    horizon = 20
    groups = GROUPS if w else [dict(g, waiting=0.0) for g in GROUPS]
    sched = [500.0 * (1 + growth) ** t if t < 10 else 0.0 for t in range(horizon)]
    res = project(_frame(groups), horizon=horizon, n_scenarios=1, waiting_periods=w, reporting_lag_periods=lag,
                  per_claimant_cap=pcc, annual_cap=acap, select_factors=sel, claimants_exit=exit_,
                  joiners={"per_period": [500.0] * 10, "growth": growth},
                  lapse={"base_annual": base, "tenure_factors": tf, "max_hazard": 0.3},
                  expectations={"speed": speed, "floor_cny": 0.05, "initial_share_cny": x0},
                  elasticity={"base": eps, "adverse_selection": adv})
    ref = oracle(groups, horizon=horizon, ppy=12, fee=0.08, w=w, lag=lag, pcc=pcc, acap=acap, sel=sel, tf=tf,
                 base_annual=base, hmax=0.3, speed=speed, floor=0.05, x0=x0, eps_base=eps, adv=adv,
                 joiners=lambda t: sched[t], claimants_exit=exit_)
    for p in ("A", "B"):
        d = res.periods.filter(pl.col("plan") == p).sort("period")
        for col, key in (("det_share_cny", "share"), ("det_members", "members"), ("det_lapses", "lapses")):
            np.testing.assert_allclose(d[col].to_numpy(), ref[p][key], rtol=1e-8, atol=1e-9, err_msg=f"{p} {col}")
