"""Planted risk groups of the synthetic platform (engine.synth) recovered on members."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from tests.kits.segmentation_cells import platform_cells, standin_cells

from engine.segmentation._model import CellPoissonModel
from engine.segmentation.segmenter import RiskSegmenter

START, END = dt.date(2018, 10, 16), dt.date(2021, 12, 31)


@pytest.fixture(scope="module")
def platform():
    from engine.synth import generate

    # 2 x 10^6 memberships at 10x the default incidence level and no share-driven lapse:
    # about 39,000 eligible claims, enough to tell the 4 planted groups apart
    plat = generate(2_000_000, 7, start=START, end=END, level=5.0, lapse_share_slope=0.0)
    cells, window, how = platform_cells(plat.members, plat.claims, START, END)
    return plat, cells, window, how


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tree", "cluster"])
def test_synth_planted_groups_recovered_on_members(platform, method):
    plat, cells, window, how = platform
    # the cluster axis needs a model with the tier x channel interaction (engine.estimators.glm may be main effects)
    seg = RiskSegmenter(method=method, features=["city_tier", "channel"], adjust_for=["age", "sex"],
                        window_years=window, model=CellPoissonModel()).fit(cells)
    assert seg.n_groups_ == 4, (how, seg.frontier_)
    got = seg.assign(plat.members, at=END).to_numpy()
    truth = plat.members.select("member_id").join(plat.truth, on="member_id", how="left", maintain_order="left")["risk_group"].to_numpy()
    assert adjusted_rand_score(truth, got) >= 0.9
    assert (seg.groups_["expected_claims_per_period"] >= 30).all()


def test_standin_cells_conserve_exposure_and_claims():
    """The stand-in cell builder against a per-member plain loop on a small platform."""
    from engine.synth import generate

    plat = generate(300, 3, start=START, end=END, level=40.0)
    cells = standin_cells(plat.members, plat.claims, START, END)
    tot_days, tot_claims = 0, 0
    cl = plat.claims.sort("event_date")
    for row in plat.members.iter_rows(named=True):
        a = max(row["join_date"] + dt.timedelta(days=90), START)
        b = min(row["exit_date"] or END + dt.timedelta(days=1), END + dt.timedelta(days=1))
        ev = [e for e in cl.filter(pl.col("member_id") == row["member_id"])["event_date"] if a <= e < b]
        if ev:
            b = min(b, ev[0] + dt.timedelta(days=1))
            tot_claims += 1
        tot_days += max((b - a).days, 0)
    assert int(cells["exposure_days"].sum()) == tot_days
    assert int(cells["claims"].sum()) == tot_claims


TRUE_PLAN = [
    {"name": "employer", "channel": ["employer"]},
    {"name": "tier1-3", "city_tier": [1, 2, 3]},
    {"name": "tier4-5 subsidy", "city_tier": [4, 5], "channel": ["subsidy"]},
    {"name": "tier4-5 organic/referral", "city_tier": [4, 5]},
]


@pytest.mark.slow
def test_synth_held_out_deviance_close_to_planted_groups(platform):
    """Fit on half of the members, score the other half: the tree's deviance is within 2% of the
    planted grouping's (the planted groups written as a rules plan, rates fitted on the same half)."""
    plat, _, window, _ = platform
    m = plat.members.with_columns((pl.col("member_id").str.slice(1).cast(pl.Int64) % 2).alias("_half"))
    halves = []
    for h in (0, 1):
        mm = m.filter(pl.col("_half") == h).drop("_half")
        cc = plat.claims.join(mm.select("member_id"), on="member_id", how="semi")
        halves.append(platform_cells(mm, cc, START, END)[0])
    train, test = halves[0], halves[1].filter(pl.col("exposure_years") > 0)
    # half the platform: a floor of 15 claims per month of the window lets the planted plan itself qualify
    kw = dict(features=["city_tier", "channel"], adjust_for=["age", "sex"], window_years=window,
              model=CellPoissonModel(), min_claims=15 * 12 * window)
    seg = RiskSegmenter(**kw).fit(train)
    truth = RiskSegmenter(method="rules", rules=TRUE_PLAN, **kw).fit(train)
    e = test["exposure_years"].to_numpy()
    d = test["claims"].to_numpy().astype(float)

    def dev(mu):
        t = np.where(d > 0, d * np.log(np.where(d > 0, d, 1) / mu), 0.0)
        return 2 * np.sum(t - (d - mu))

    d_seg = dev(seg.predict(test) * e)
    d_truth = dev(truth.predict(test) * e)
    assert seg.n_groups_ == 4
    assert d_seg <= 1.02 * d_truth
