"""Sharing rules: conditional-mean risk sharing against brute-force enumeration of claim outcomes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from engine.errors import ConfigError, DataError, ResourceError
from engine.plans.sharing import benefit_lattice, compare_rules, conditional_mean, share_rule


def _members(counts, probs, benefits):
    out = []
    for n, p, b in zip(counts, probs, benefits):
        out += [(p, b)] * n
    return out


def _brute(members, model, max_count=None):
    """Enumerate every claim outcome of every member: law of S, E[X_i 1{S=s}], payments."""
    if model == "bernoulli":
        outcomes = [(0, 1)] * len(members)

        def pmf(m, p):
            return p if m == 1 else 1 - p
    else:
        outcomes = [range(max_count)] * len(members)

        def pmf(m, p):
            return stats.poisson.pmf(m, p)
    tables = [{m: pmf(m, p) for m in out} for out, (p, _) in zip(outcomes, members)]
    den: dict[float, float] = {}
    num: dict[tuple[int, float], float] = {}
    for ms in itertools.product(*outcomes):
        pr = math.prod(t[m] for m, t in zip(ms, tables))
        s = sum(m * b for m, (_, b) in zip(ms, members))
        den[s] = den.get(s, 0.0) + pr
        for i, (m, (_, b)) in enumerate(zip(ms, members)):
            num[(i, s)] = num.get((i, s), 0.0) + pr * m * b
    return den, num


@pytest.mark.parametrize(
    "counts,probs,benefits",
    [
        ([2, 1], [0.3, 0.5], [2.0, 3.0]),
        ([1, 1, 2], [0.2, 0.1, 0.4], [300000.0, 100000.0, 50000.0]),
        ([3], [0.25], [7.5]),
    ],
)
def test_poisson_conditional_mean_vs_brute_force(counts, probs, benefits):
    members = _members(counts, probs, benefits)
    den, num = _brute(members, "poisson", max_count=15)  # tail P(M >= 15) < 1e-15 at rate <= 0.5
    cm = conditional_mean(np.array(counts), np.array(probs), np.array(benefits))
    first = np.cumsum([0] + counts[:-1])  # index of the first member of each class
    s_idx = {round(s / cm.unit_cny): s for s in den}
    for j, s in s_idx.items():
        if j >= len(cm.pmf) or den[s] < 1e-12:
            continue
        assert cm.pmf[j] == pytest.approx(den[s], rel=1e-9, abs=1e-15)
        for k in range(len(counts)):
            want = num.get((first[k], s), 0.0) / den[s]
            assert cm.allocation_cny[k, j] == pytest.approx(want, rel=1e-8, abs=1e-9 * max(benefits))


@pytest.mark.parametrize(
    "counts,probs,benefits",
    [
        ([2, 2], [0.3, 0.6], [2.0, 3.0]),
        ([1, 3, 2], [0.2, 0.1, 0.45], [300000.0, 100000.0, 200000.0]),
        ([4], [0.35], [5.0]),
    ],
)
def test_bernoulli_conditional_mean_vs_brute_force(counts, probs, benefits):
    members = _members(counts, probs, benefits)
    den, num = _brute(members, "bernoulli")
    cm = conditional_mean(np.array(counts), np.array(probs), np.array(benefits), model="bernoulli")
    first = np.cumsum([0] + counts[:-1])
    assert cm.pmf.sum() == pytest.approx(1.0, abs=1e-12)
    for s, d in den.items():
        j = round(s / cm.unit_cny)
        assert cm.pmf[j] == pytest.approx(d, rel=1e-10)
        for k in range(len(counts)):
            assert cm.allocation_cny[k, j] == pytest.approx(num.get((first[k], s), 0.0) / d, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("model", ["poisson", "bernoulli"])
def test_full_allocation_and_fairness(model):
    n = np.array([30, 10, 5])
    p = np.array([0.01, 0.05, 0.1])
    B = np.array([300000.0, 100000.0, 200000.0])
    cm = conditional_mean(n, p, B, model=model)
    total = n @ cm.allocation_cny  # sum over members of E[X_i | S = s] = s
    mask = cm.pmf > 1e-300
    assert np.allclose(total[mask], cm.s_cny[mask], rtol=1e-9)
    # E[E[X_i | S]] = E[X_i] = p_i B_i
    assert np.allclose(cm.allocation_cny @ cm.pmf, p * B, rtol=1e-9)


def _groups():
    return pl.DataFrame({"group": ["a", "b"], "members": [2, 1], "rate": [0.3, 0.5], "benefit_cny": [2.0, 3.0]})


@pytest.mark.parametrize("model", ["poisson", "bernoulli"])
def test_share_rule_moments_vs_brute_force(model):
    g = _groups()
    members = _members([2, 1], [0.3, 0.5], [2.0, 3.0])
    den, num = _brute(members, model, max_count=15)
    fee = 0.08
    N = 3
    lam_b = np.array([0.3 * 2.0, 0.3 * 2.0, 0.5 * 3.0])
    pay = {"equal": lambda i, s: (1 + fee) * s / N,
           "risk_proportional": lambda i, s: (1 + fee) * s * lam_b[i] / lam_b.sum(),
           "conditional_mean": lambda i, s: (1 + fee) * num.get((i, s), 0.0) / den[s]}
    for rule, fn in pay.items():
        out = share_rule(rule, g, fee=fee, periods_per_year=1.0, model=model)
        for k, i in ((0, 0), (1, 2)):
            m1 = sum(fn(i, s) * d for s, d in den.items())
            m2 = sum(fn(i, s) ** 2 * d for s, d in den.items())
            row = out.row(k, named=True)
            assert row["expected_payment_cny"] == pytest.approx(m1, rel=1e-8)
            assert row["payment_sd_cny"] == pytest.approx(math.sqrt(m2 - m1 * m1), rel=1e-6)
            assert row["expected_benefit_cny"] == pytest.approx(lam_b[i])


def test_rules_fairness_and_identical_risks():
    g = pl.DataFrame({"members": [100, 50], "rate": [0.012, 0.048], "benefit_cny": [300000.0, 100000.0]})
    out = compare_rules(g, fee=0.08, periods_per_year=24)
    for rule in ("risk_proportional", "conditional_mean"):
        r = out.filter(pl.col("rule") == rule)
        assert np.allclose(r["fairness"].to_numpy(), 1.0, rtol=1e-9)
    eq = out.filter(pl.col("rule") == "equal")
    # equal: the low-cost class overpays, the high-cost class underpays, and totals balance
    assert eq["cross_subsidy_cny"][0] > 0 > eq["cross_subsidy_cny"][1]
    assert float((eq["members"] * eq["cross_subsidy_cny"]).sum()) == pytest.approx(0.0, abs=1e-9)
    # identical risks: the three rules coincide
    same = pl.DataFrame({"members": [10, 20], "rate": [0.2, 0.2], "benefit_cny": [1000.0, 1000.0]})
    out = compare_rules(same, periods_per_year=1.0)
    for col in ("expected_payment_cny", "payment_sd_cny"):
        vals = out[col].to_numpy()
        assert np.allclose(vals, vals[0], rtol=1e-9)


def test_large_pool_does_not_underflow():
    n = np.array([8e6, 2e6])
    p = np.array([0.001, 0.004]) / 24 * 50  # about 25000 expected claims: exp(-lambda) underflows
    B = np.array([300000.0, 100000.0])
    cm = conditional_mean(n, p, B)
    assert cm.pmf.sum() == pytest.approx(1.0, abs=1e-9)
    mean = cm.s_cny @ cm.pmf
    assert mean == pytest.approx(float(np.sum(n * p * B)), rel=1e-9)
    assert np.allclose(cm.allocation_cny @ cm.pmf, p * B, rtol=1e-7)


def test_lattice_and_errors():
    u, b = benefit_lattice(np.array([300000.0, 100000.0, 50000.0]))
    assert u == 50000.0 and b.tolist() == [6, 2, 1]
    with pytest.raises(ConfigError, match="unit"):
        benefit_lattice(np.array([3.0, 5.0]), unit=2.0)
    with pytest.raises(ResourceError, match="max_lattice"):
        conditional_mean(np.array([1e6]), np.array([0.5]), np.array([1.0]), max_lattice=1000)
    with pytest.raises(DataError, match="bernoulli"):
        conditional_mean(np.array([1.5]), np.array([0.5]), np.array([1.0]), model="bernoulli")
    with pytest.raises(ConfigError, match="model"):
        conditional_mean(np.array([1]), np.array([0.5]), np.array([1.0]), model="binomial")
    with pytest.raises(ConfigError, match="rule"):
        share_rule("lottery", _groups())
    with pytest.raises(DataError, match="column 'rate'"):
        share_rule("equal", _groups().drop("rate"))


@pytest.mark.parametrize("model", ["poisson", "bernoulli"])
def test_moments_match_full_allocation(model):
    from engine.plans.sharing import conditional_mean_moments

    n = np.array([20, 7, 12, 3])
    p = np.array([0.02, 0.05, 0.08, 0.2])
    B = np.array([300000.0, 300000.0, 100000.0, 100000.0])  # classes sharing a benefit share r_b
    cm = conditional_mean(n, p, B, model=model)
    m1 = cm.allocation_cny @ cm.pmf
    sd = np.sqrt((cm.allocation_cny**2) @ cm.pmf - m1**2)
    got_m1, got_sd = conditional_mean_moments(n, p, B, model=model)
    assert np.allclose(got_m1, m1, rtol=1e-12) and np.allclose(got_sd, sd, rtol=1e-9)


def test_rescaled_panjer_matches_scipy_poisson():
    # one class with benefit 1: S ~ Poisson(1500); exp(-1500) underflows, so the rescaled path runs
    cm = conditional_mean(np.array([3000.0]), np.array([0.5]), np.array([1.0]))
    s = np.arange(len(cm.pmf))
    want = stats.poisson.pmf(s, 1500.0)
    core = want > 1e-12
    assert np.allclose(cm.pmf[core], want[core], rtol=1e-8)
    # two benefits: compare with the direct convolution of the two scaled Poisson laws
    cm2 = conditional_mean(np.array([800.0, 1000.0]), np.array([1.0, 0.5]), np.array([2.0, 3.0]))
    a = np.zeros(len(cm2.pmf))
    a[::2] = stats.poisson.pmf(np.arange(len(a[::2])), 800.0)
    c = np.zeros(len(cm2.pmf))
    c[::3] = stats.poisson.pmf(np.arange(len(c[::3])), 500.0)
    want2 = np.convolve(a, c)[: len(cm2.pmf)]
    core = want2 > 1e-12
    assert np.allclose(cm2.pmf[core], want2[core], rtol=1e-7)
