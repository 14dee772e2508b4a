"""Migration between plans: conservation, an analytic example, and a loop oracle."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from engine.errors import ConfigError, DataError
from engine.plans.migration import migrate, remaining
from engine.plans.planset import plans_from_dict


def _opts(**kw):
    base = {"fee": 0.0, "waiting_days": 0, "sharing_days": [28]}
    return plans_from_dict({"plans": [
        {"name": "pooled", "eligibility": {"age": [0, 59]}, "benefit": 1000, **base},
        {"name": "young", "eligibility": {"age": [0, 39]}, "benefit": 1000, **base, **kw},
        {"name": "old", "eligibility": {"when": "age >= 40 and age <= 59"}, "benefit": [{"age": [40, 59], "amount": 1000}], **base},
    ]}, "opts.toml")


def test_analytic_two_groups():
    # pooled share = (100*0.01 + 100*0.05)/12*1000/200 = 2.5; young own cost 0.8333 < 2.5 -> the young leave.
    t = pl.DataFrame({"age": [30, 50], "members": [100.0, 100.0], "rate": [0.01, 0.05]})
    opts = plans_from_dict({"plans": [
        {"name": "pooled", "eligibility": {"age": [0, 59]}, "benefit": 1000, "fee": 0.0, "sharing_days": [28]},
        {"name": "young", "eligibility": {"age": [0, 39]}, "benefit": 1000, "fee": 0.0, "sharing_days": [28]},
    ]}, "o.toml")
    r = migrate(t, opts, move_probability=1.0)
    assert r.converged
    pools = {row["plan"]: row for row in r.pools.iter_rows(named=True)}
    assert pools["pooled"]["members_start"] == 200 and pools["pooled"]["members_end"] == pytest.approx(100)
    assert pools["young"]["members_end"] == pytest.approx(100)
    assert pools["pooled"]["share_start_cny"] == pytest.approx(2.5)
    assert pools["pooled"]["share_end_cny"] == pytest.approx(0.05 / 12 * 1000)
    assert pools["young"]["annual_payment_end_cny"] == pytest.approx(10.0)
    assert r.flows.row(0) == ("pooled", "young", pytest.approx(100.0))
    # a high threshold is inertia: nobody moves (the saving is (2.5 - 0.8333) x 12 = 20 CNY a year)
    r2 = migrate(t, opts, threshold=25.0)
    assert r2.pools["members_end"].to_list() == [200.0, 0.0]
    r3 = migrate(t, opts, threshold=15.0, move_probability=1.0)
    assert r3.pools["members_end"].to_list() == pytest.approx([100.0, 100.0])


def _random_table(seed, n=40):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "age": rng.integers(0, 70, n),
        "members": rng.uniform(0, 1000, n).round(1),
        "rate": rng.uniform(0, 0.05, n),
    })


@pytest.mark.parametrize("seed,prob,threshold,price", [(0, 0.5, 0.0, "payment"), (1, 1.0, 0.0, "payment"),
                                                      (2, 0.3, 1.0, "payment"), (3, 0.5, 0.0, "per_benefit")])
def test_members_are_conserved_row_by_row(seed, prob, threshold, price):
    t = _random_table(seed)
    r = migrate(t, _opts(), move_probability=prob, threshold=threshold, price=price, max_rounds=200)
    covered = t.filter(pl.col("age") <= 59)
    got = r.rows.group_by("age", "rate").agg(pl.col("members").sum())
    j = covered.join(got, on=["age", "rate"], how="left")
    assert np.allclose(j["members_right"].to_numpy(), j["members"].to_numpy(), rtol=1e-12)
    assert r.pools["members_end"].sum() == pytest.approx(covered["members"].sum(), rel=1e-12)
    assert r.pools["members_start"].sum() == pytest.approx(covered["members"].sum(), rel=1e-12)
    hist = r.history.group_by("round").agg(pl.col("members").sum())
    assert np.allclose(hist["members"].to_numpy(), covered["members"].sum(), rtol=1e-12)
    # nobody sits in a plan it is not eligible for
    bad = r.rows.filter(((pl.col("plan") == "young") & (pl.col("age") > 39)) | ((pl.col("plan") == "old") & (pl.col("age") < 40)))
    assert bad.height == 0


def _oracle(rows, plans, prob, threshold, rounds):
    """Plain-loop re-implementation of the rounds (plans: name, eligible(age), benefit, ppy)."""
    x = {}
    for i, r in enumerate(rows):
        for name, elig, _b, _ppy in plans:
            if elig(r["age"]):
                x[(i, name)] = r["members"]
                break
    for _ in range(rounds):
        share = {}
        for name, _e, b, ppy in plans:
            n = sum(v for (i, p), v in x.items() if p == name)
            c = sum(v * rows[i]["rate"] / ppy * b for (i, p), v in x.items() if p == name)
            share[name] = c / n if n > 0 else None
        new = dict(x)
        for i, r in enumerate(rows):
            prices = {}
            for name, elig, b, ppy in plans:
                if elig(r["age"]):
                    own = r["rate"] / ppy * b
                    prices[name] = (share[name] if share[name] is not None else own) * ppy
            if not prices:
                continue
            best = min(prices, key=lambda k: (prices[k], [p[0] for p in plans].index(k)))
            for name in prices:
                v = x.get((i, name), 0.0)
                if v > 0 and prices[name] - prices[best] > threshold:
                    new[(i, name)] = new.get((i, name), 0.0) - v * prob
                    new[(i, best)] = new.get((i, best), 0.0) + v * prob
        x = new
    return {name: sum(v for (i, p), v in x.items() if p == name) for name, *_ in plans}


def test_against_loop_oracle():
    t = _random_table(7, n=15)
    plans = [("pooled", lambda a: a <= 59, 1000.0, 12.0), ("young", lambda a: a <= 39, 1000.0, 12.0),
             ("old", lambda a: 40 <= a <= 59, 1000.0, 12.0)]
    checked = 0
    for rounds in (1, 2, 5):
        r = migrate(t, _opts(), move_probability=0.5, max_rounds=rounds)
        want = _oracle(t.to_dicts(), plans, 0.5, 0.0, rounds)
        h = r.history.filter(pl.col("round") == rounds)
        if h.height == 0:  # converged before
            continue
        checked += 1
        for name, m in zip(h["plan"], h["members"]):
            assert m == pytest.approx(want[name], rel=1e-10, abs=1e-9)
    assert checked >= 2


def test_initial_column_and_errors():
    t = pl.DataFrame({"age": [30, 50], "members": [100.0, 100.0], "rate": [0.01, 0.05], "start": ["young", "pooled"]})
    r = migrate(t, _opts(), initial="start", max_rounds=1)
    h0 = r.history.filter(pl.col("round") == 0)
    assert dict(zip(h0["plan"], h0["members"])) == {"pooled": 100.0, "young": 100.0, "old": 0.0}
    with pytest.raises(DataError, match="not eligible"):
        migrate(t.with_columns(pl.lit("old").alias("start")), _opts(), initial="start")
    with pytest.raises(DataError, match="not one of the options"):
        migrate(t.with_columns(pl.lit("x").alias("start")), _opts(), initial="start")
    with pytest.raises(DataError, match="initial-plan column"):
        migrate(t, _opts(), initial="nope")
    with pytest.raises(ConfigError, match="move_probability"):
        migrate(t, _opts(), move_probability=0)
    with pytest.raises(ConfigError, match="price"):
        migrate(t, _opts(), price="cheap")
    with pytest.raises(ConfigError, match="threshold"):
        migrate(t, _opts(), threshold=-1)
    assert remaining(r, ["young"])["plan"].to_list() == ["young"]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    ages=st.lists(st.integers(0, 65), min_size=1, max_size=12),
    seed=st.integers(0, 10_000),
    prob=st.floats(0.05, 1.0),
    threshold=st.floats(0.0, 5.0),
)
def test_conservation_property(ages, seed, prob, threshold):
    rng = np.random.default_rng(seed)
    t = pl.DataFrame({"age": ages, "members": rng.uniform(0, 500, len(ages)), "rate": rng.uniform(0, 0.1, len(ages))})
    r = migrate(t, _opts(), move_probability=prob, threshold=threshold, max_rounds=50)
    covered = float(t.filter(pl.col("age") <= 59)["members"].sum())
    assert r.pools["members_end"].sum() == pytest.approx(covered, rel=1e-12, abs=1e-9)
    assert (r.rows["members"] >= 0).all()


def test_waiting_cost_is_inertia():
    # benefit 1000: the young save (2.5 - 0.8333) x 12 = 20 CNY a year by moving and lose
    # 0.01 x 1000 x 90/365.25 = 2.46 CNY of expected benefit while waiting in 'young'.
    t = pl.DataFrame({"age": [30, 50], "members": [100.0, 100.0], "rate": [0.01, 0.05]})

    def opts(benefit):
        base = {"fee": 0.0, "sharing_days": [28], "waiting_days": 90}
        return plans_from_dict({"plans": [
            {"name": "pooled", "eligibility": {"age": [0, 59]}, "benefit": benefit, **base},
            {"name": "young", "eligibility": {"age": [0, 39]}, "benefit": benefit, **base},
        ]}, "o.toml")

    moved = migrate(t, opts(1000), waiting_cost=True, move_probability=1.0)
    assert moved.pools["members_end"].to_list() == pytest.approx([100.0, 100.0])
    # benefit 1e5: saving 2,000 CNY a year against a loss of 246 CNY -> still moves
    assert migrate(t, opts(100000), waiting_cost=True, move_probability=1.0).pools["members_end"][1] == pytest.approx(100.0)
    # threshold 18: 18 + 2.46 > 20 blocks the move, 18 alone does not
    assert migrate(t, opts(1000), threshold=18.0, waiting_cost=True).pools["members_end"].to_list() == [200.0, 0.0]
    assert migrate(t, opts(1000), threshold=18.0).pools["members_end"][1] > 0
    with pytest.raises(ConfigError, match="waiting_cost"):
        migrate(t, opts(1000), waiting_cost=True, price="per_benefit")
