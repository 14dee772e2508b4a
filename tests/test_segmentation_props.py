"""Property tests: DP optimality vs brute force, optimal categorical split, constraints on random cells."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.segmentation._dp import dp_partition
from engine.segmentation._tree import _candidates, make_units
from engine.segmentation.segmenter import RiskSegmenter

# FENTAN_HYPOTHESIS_EXAMPLES raises the number of examples for a longer local run
SETTINGS = settings(max_examples=int(os.environ.get("FENTAN_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _loss_slow(x, w, mu, groups, loss):
    """Plain-loop loss of a partition (list of index lists)."""
    tot = 0.0
    for g in groups:
        if loss == "sse":
            W = sum(w[i] for i in g)
            m = sum(w[i] * x[i] for i in g) / W if W > 0 else 0.0
            tot += sum(w[i] * (x[i] - m) ** 2 for i in g)
        else:
            W = sum(w[i] for i in g)
            M = sum(mu[i] for i in g)
            rg = M / W
            tot += 2 * sum(mu[i] * math.log(math.exp(x[i]) / rg) for i in g if mu[i] > 0)
    return tot


def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in _set_partitions(rest):
        yield [[first], *p]
        for i in range(len(p)):
            yield p[:i] + [[first, *p[i]]] + p[i + 1 :]


@st.composite
def axis(draw, nmax=7):
    n = draw(st.integers(1, nmax))
    x = np.sort(np.array(draw(st.lists(st.floats(-3, 1), min_size=n, max_size=n))))
    w = np.array(draw(st.lists(st.floats(0.1, 10), min_size=n, max_size=n)))
    d = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), float)
    return x, w, w * np.exp(x), d


@SETTINGS
@given(axis(), st.integers(1, 4), st.sampled_from(["sse", "deviance"]), st.sampled_from([0.0, 5.0, 15.0]))
def test_dp_equals_brute_force_over_contiguous_partitions(ax, kmax, loss, floor):
    x, w, mu, d = ax
    n = x.size
    sol = dp_partition(x, w, mu, d, kmax, floor=floor, loss=loss)
    for k in range(1, kmax + 1):
        best = math.inf
        for cuts in itertools.combinations(range(1, n), k - 1):
            b = [0, *cuts, n]
            groups = [list(range(b[i], b[i + 1])) for i in range(k)]
            if any(sum(d[j] for j in g) < floor for g in groups):
                continue
            best = min(best, _loss_slow(x, w, mu, groups, loss))
        if math.isinf(best):
            assert k not in sol
        else:
            assert sol[k][0] == pytest.approx(best, rel=1e-7, abs=1e-7)
            b = [0, *sol[k][1], n]
            groups = [list(range(b[i], b[i + 1])) for i in range(k)]
            assert all(sum(d[j] for j in g) >= floor - 1e-9 for g in groups)
            assert _loss_slow(x, w, mu, groups, loss) == pytest.approx(best, rel=1e-7, abs=1e-7)


@SETTINGS
@given(axis(nmax=6), st.integers(1, 3), st.sampled_from(["sse", "deviance"]))
def test_contiguous_partition_is_globally_optimal(ax, kmax, loss):
    """Without floors, no partition of the items (contiguous or not) beats the DP."""
    x, w, mu, d = ax
    sol = dp_partition(x, w, mu, d, kmax, floor=0.0, loss=loss)
    for parts in _set_partitions(list(range(x.size))):
        if len(parts) <= kmax:
            k = len(parts)
            assert sol[k][0] <= _loss_slow(x, w, mu, parts, loss) + 1e-7


@SETTINGS
@given(st.integers(2, 6), st.integers(0, 10**6))
def test_sorted_category_split_is_optimal(k, seed):
    rng = np.random.default_rng(seed)
    cats = [f"c{i}" for i in range(k)]
    frame = pl.DataFrame({"f": cats, "E": rng.uniform(1, 100, k), "D": rng.poisson(20, k).astype(float)})
    frame = frame.with_columns(pl.col("E").alias("M"))
    units = make_units(frame, ["f"], [])
    cands = _candidates(units, np.ones(k, bool), 0.0)
    D, M = frame["D"].to_numpy(), frame["M"].to_numpy()

    def ll(d, m):
        return d * math.log(d / m) if d > 0 else 0.0

    best = -math.inf
    for r in range(1, k):
        for left in itertools.combinations(range(k), r):
            right = [i for i in range(k) if i not in left]
            dl, ml = D[list(left)].sum(), M[list(left)].sum()
            dr, mr = D[right].sum(), M[right].sum()
            best = max(best, 2 * (ll(dl, ml) + ll(dr, mr) - ll(D.sum(), M.sum())))
    assert cands[0][0] == pytest.approx(best, rel=1e-9, abs=1e-9)


class RandomRateModel:
    def fit(self, cells):
        return self

    def predict(self, cells):
        return cells["_rate"].to_numpy()


@st.composite
def random_cells(draw):
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    ages = np.arange(30, 30 + draw(st.integers(2, 8)), dtype=np.int32)
    tiers = np.arange(1, draw(st.integers(1, 4)) + 1)
    grid = pl.DataFrame({"age": ages}).join(pl.DataFrame({"city_tier": tiers}), how="cross")
    grid = grid.join(pl.DataFrame({"channel": ["a", "b", "c"][: draw(st.integers(1, 3))]}), how="cross")
    n = grid.height
    rate = rng.uniform(0.01, 0.2, n) * np.exp(rng.normal(0, 0.5, n))
    e = rng.uniform(10, 400, n) * (rng.random(n) > 0.15)  # some cells without exposure
    return grid.with_columns(pl.Series("exposure_years", e), pl.Series("claims", rng.poisson(rate * e)),
                             pl.Series("_rate", rate))


@SETTINGS
@given(random_cells(), st.sampled_from(["tree", "cluster"]), st.integers(1, 5), st.sampled_from([0.0, 0.5, 2.0]),
       st.sampled_from([None, 0.2]), st.booleans(), st.booleans())
def test_constraints_always_hold(cells, method, max_groups, min_claims, min_cred, monotone, contiguous):
    if cells["exposure_years"].sum() == 0:
        return
    seg = RiskSegmenter(method=method, max_groups=max_groups, min_claims=12 * min_claims,  # = min_claims a month over 1 year
                        min_credibility=min_cred, monotone_age=monotone, contiguous_age=contiguous,
                        features=["age", "city_tier", "channel"], model=RandomRateModel(), window_years=1.0,
                        min_gain=0.0)
    try:
        seg.fit(cells)
    except ValueError as exc:  # only the documented "pool too small" error is allowed
        assert "too small" in str(exc)
        assert cells["claims"].sum() < max(min_claims * 12, 1082 * (min_cred or 0) ** 2)
        return
    g = seg.groups_
    assert 1 <= g.height <= max_groups
    assert (g["exposure_years"] > 0).all()
    fr = seg.frontier_
    assert fr["k"].max() <= max_groups and fr["recommended"].sum() == 1
    assert (fr["min_expected_claims_per_period"] >= min_claims - 1e-9).all()  # every K on the frontier is feasible
    assert (g["expected_claims_per_period"] >= min_claims - 1e-9).all()
    if min_cred:
        assert (g["credibility"] >= min_cred - 1e-9).all()
    assert g["exposure_years"].sum() == pytest.approx(cells["exposure_years"].sum())
    by_units = cells.join(seg.unit_groups_, on=["age", "city_tier", "channel"], how="left", maintain_order="left")["group"]
    assert seg.assign(cells).to_list() == by_units.to_list()  # rules (tree, cluster) agree with the unit table
    lab = cells.with_columns(seg.assign(cells)).sort("city_tier", "channel", "age")
    for _, prof in lab.group_by(["city_tier", "channel"]):
        seq = prof.sort("age")["group"].to_numpy()
        if monotone:
            assert np.all(np.diff(seq) >= 0)  # groups are numbered by ascending rate
        if contiguous or monotone:
            for gid in np.unique(seq):
                pos = np.flatnonzero(seq == gid)
                assert pos[-1] - pos[0] + 1 == pos.size
    if monotone and method == "tree":
        assert np.all(np.diff(g.sort("group")["relativity"].to_numpy()) >= -1e-12)


@SETTINGS
@given(st.integers(0, 10**6), st.booleans(), st.sampled_from([0.0, 5.0, 30.0]))
def test_best_per_feature_is_the_first_of_each_feature(seed, ties, floor):
    """The short candidate list is the full list's first split of every feature, in the full list's order."""
    rng = np.random.default_rng(seed)
    n_age, cats = 12, ["a", "b", "c", "d"]
    frame = pl.DataFrame({"age": np.repeat(np.arange(n_age), len(cats)), "f": cats * n_age})
    e = rng.uniform(1, 50, frame.height)
    d = rng.poisson(8, frame.height).astype(float)
    if ties:  # equal rates everywhere: equal gains within and across features
        e, d = np.full(frame.height, 10.0), np.full(frame.height, 4.0)
    frame = frame.with_columns(pl.Series("E", e), pl.Series("M", e), pl.Series("D", d))
    units = make_units(frame, ["age", "f"], ["age"])
    mask = rng.random(units.n) < 0.8
    full = _candidates(units, mask, floor)
    short = _candidates(units, mask, floor, best_per_feature=True)
    firsts, seen = [], set()
    for c in full:
        if c[1] not in seen:
            seen.add(c[1])
            firsts.append(c)
    assert [(c[0], c[1], c[4], list(c[2]), list(c[3])) for c in short] == \
        [(c[0], c[1], c[4], list(c[2]), list(c[3])) for c in firsts]
