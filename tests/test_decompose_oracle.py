"""Shapley and sequential decompositions vs oracles written here from their definitions.

No engine helper is called by the oracles: v(S) is the product with the drivers in S taken
from window b and the others from window a; sequential substitution swaps the drivers one at
a time in the given order; the Shapley value of a driver is its marginal contribution
v(S + i) - v(S) averaged over all n! orders in which the drivers can be swapped, computed by
plain loops over the coalitions (weights |S|! (n - |S| - 1)! / n!) and, on a small example, over
the orders themselves.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine

NAMES = [f.name for f in dataclasses.fields(engine.ShareDrivers) if f.name not in ("label", "details")]
N = len(NAMES)  # the share's drivers (9: fee, period length, dilution, waiting, lag, ageing, select, mix, incidence)


def _values(a: list[float], b: list[float]) -> list[float]:
    """v[mask] = product over drivers of b_j if bit j of mask is set, else a_j."""
    n = len(a)
    return [math.prod(b[j] if mask >> j & 1 else a[j] for j in range(n)) for mask in range(1 << n)]


def sequential_oracle(a: list[float], b: list[float], order: list[int]) -> list[float]:
    v = _values(a, b)
    out, mask = [0.0] * len(a), 0
    for i in order:
        out[i] = v[mask | 1 << i] - v[mask]
        mask |= 1 << i
    return out


def shapley_oracle(a: list[float], b: list[float]) -> list[float]:
    """Shapley value from its definition over coalitions S not containing i:
    phi_i = sum_S |S|! (n - |S| - 1)! / n! [v(S + i) - v(S)] (the average over all n! orders,
    grouped by the set of drivers swapped before i)."""
    n, v = len(a), _values(a, b)
    out = [0.0] * n
    for i in range(n):
        for mask in range(1 << n):
            if mask >> i & 1:
                continue
            k = bin(mask).count("1")
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            out[i] += w * (v[mask | 1 << i] - v[mask])
    return out


def shapley_by_orders(a: list[float], b: list[float]) -> list[float]:
    """Shapley value as the plain average over all n! orders (slow; used on a small example)."""
    n, v = len(a), _values(a, b)
    out = [0.0] * n
    for order in itertools.permutations(range(n)):
        mask = 0
        for i in order:
            out[i] += v[mask | 1 << i] - v[mask]
            mask |= 1 << i
    return [x / math.factorial(n) for x in out]


def _drivers(vals: list[float]) -> engine.ShareDrivers:
    return engine.ShareDrivers(**dict(zip(NAMES, vals, strict=True)))


def _contributions(a: list[float], b: list[float], method: str, order=None) -> list[float]:
    kw = {} if order is None else {"order": [NAMES[i] for i in order]}
    out = engine.decompose(_drivers(a), _drivers(b), method=method, **kw)
    got = dict(zip(out["driver"], out["contribution_cny"], strict=True))
    return [got[n] for n in NAMES]


def test_oracles_on_a_hand_example() -> None:
    """Two drivers changing (1, 2) -> (3, 5), the other six fixed at 1: S goes 2 -> 15.

    Sequential in the given order: 3*2 - 1*2 = 4 then 3*5 - 3*2 = 9 (or 1*5 - 1*2 = 3 then
    3*5 - 1*5 = 10); Shapley averages the two orders: (4 + 10) / 2 = 7 and (9 + 3) / 2 = 6.
    """
    a, b = [1.0, 2.0] + [1.0] * (N - 2), [3.0, 5.0] + [1.0] * (N - 2)
    assert sequential_oracle(a, b, list(range(N)))[:2] == [4.0, 9.0]
    assert sequential_oracle(a, b, [1, 0, *range(2, N)])[:2] == [10.0, 3.0]
    assert shapley_oracle(a, b) == pytest.approx([7.0, 6.0] + [0.0] * (N - 2), abs=1e-12)
    assert _contributions(a, b, "shapley") == pytest.approx([7.0, 6.0] + [0.0] * (N - 2), abs=1e-12)
    assert _contributions(a, b, "sequential", [1, 0, *range(2, N)]) == pytest.approx([10.0, 3.0] + [0.0] * (N - 2))
    # the coalition formula is the average over orders (checked on 5 drivers, 120 orders)
    rng = np.random.default_rng(3)
    a5, b5 = list(rng.uniform(0.5, 2, 5)), list(rng.uniform(0.5, 2, 5))
    np.testing.assert_allclose(shapley_oracle(a5, b5), shapley_by_orders(a5, b5), rtol=1e-12)


factor = st.one_of(st.just(0.0), st.floats(0.05, 20.0))


@settings(max_examples=8, deadline=None)
@given(st.lists(factor, min_size=N, max_size=N), st.lists(factor, min_size=N, max_size=N),
       st.permutations(list(range(N))))
def test_decompose_equals_the_definitions(a, b, order) -> None:
    scale = max(1.0, math.prod(max(x, y) for x, y in zip(a, b, strict=True)))
    np.testing.assert_allclose(_contributions(a, b, "shapley"), shapley_oracle(a, b), rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(_contributions(a, b, "sequential", order), sequential_oracle(a, b, order),
                               rtol=1e-9, atol=1e-12 * scale)


def test_shapley_is_not_sequential_when_drivers_interact() -> None:
    """The oracle discriminates: with two drivers changing, no single order gives the Shapley values."""
    rng = np.random.default_rng(5)
    a, b = list(rng.uniform(0.5, 2, N)), list(rng.uniform(0.5, 2, N))
    phi = shapley_oracle(a, b)
    assert sum(phi) == pytest.approx(math.prod(b) - math.prod(a), rel=1e-12)
    for order in ([*range(N)], [*range(N)][::-1]):
        assert not np.allclose(phi, sequential_oracle(a, b, order), rtol=1e-6)
    np.testing.assert_allclose(_contributions(a, b, "shapley"), phi, rtol=1e-10)


def test_sustainable_and_replace_keep_every_field() -> None:
    """Survivors of mutation testing: the sustainable scenario's label, replacing details, the error text."""
    a = _drivers([1.08, 1 / 12, 0.5, 0.8, 0.9, 60.0, 0.7, 1.1, 0.002])
    s = engine.sustainable(a, select_ultimate=0.95)
    assert s.label == "sustainable"
    assert (s.dilution, s.waiting, s.reporting_lag, s.select) == (1.0, 1.0, 1.0, 0.95)
    assert [getattr(s, n) for n in ("fee", "period_length", "ageing", "mix", "incidence")] == [1.08, 1 / 12, 60.0, 1.1,
                                                                                            0.002]
    assert a.replace(details={"N": 7}).details == {"N": 7}
    with pytest.raises(engine.ConfigError, match=r"unknown factor\(s\) \['growth'\]; known: fee, period_length, "):
        a.replace(growth=2.0)


def test_lmdi_refuses_a_zero_factor_in_either_window() -> None:
    """Survivors of mutation testing: a zero in the first window (not only the second), and the message."""
    msg = r"^decompose: method 'lmdi' needs every factor > 0 \(use 'shapley' or 'sequential'\)$"
    ones = [1.0] * N
    for a, b in (([0.0] + ones[1:], ones), (ones, [0.0] + ones[1:])):
        with pytest.raises(engine.ModelError, match=msg):
            engine.decompose(_drivers(a), _drivers(b), method="lmdi")
    # on positive factors it is exact too: parts sum to the change and a lone change gets all of it
    out = engine.decompose(_drivers(ones), _drivers([2.0] + ones[1:]), method="lmdi")
    assert out["contribution_cny"].to_list() == pytest.approx([1.0] + [0.0] * (N - 1), abs=1e-15)


def test_engine_shapley_by_permutations_equals_the_definition() -> None:
    """The engine's slow oracle (an average of sequential substitution over all n! orders), never run before."""
    from engine.shares.decomposition import shapley_by_permutations

    a, b = [1.5, 0.5, 2.0, 3.0], [0.25, 2.5, 1.0, 4.0]
    np.testing.assert_allclose(shapley_by_permutations(a, b), shapley_oracle(a, b), rtol=1e-13)
    np.testing.assert_allclose(shapley_by_permutations(a, b), shapley_by_orders(a, b), rtol=1e-13)


def test_decompose_refusals_list_the_choices() -> None:
    """The messages name every driver (a wrong ``order``) and every method (an unknown one)."""
    from engine.errors import ConfigError

    d = _drivers([1.0] * N)
    with pytest.raises(ConfigError, match="^order: must be a permutation of " + ", ".join(NAMES) + "$"):
        engine.decompose(d, d, order=NAMES[:-1])
    with pytest.raises(ConfigError, match="^method: 'exact' is unknown; use one of shapley, sequential, lmdi$"):
        engine.decompose(d, d, method=["shapley", "exact"])


def test_decompose_table_columns_percentages_and_zero_signs() -> None:
    """The table's columns; a contribution of exactly 1 CNY gets its percentage; no change gives a null
    Float64 percentage; a zero contribution is +0.0 (never printed as -0.0)."""
    a = [1.0] * N
    b = [2.0, 3.0] + [1.0] * (N - 2)  # sequential: fee 1 -> 2 adds 1, then period 1 -> 3 adds 4; total 5
    out = engine.decompose(_drivers(a), _drivers(b), method="sequential")
    assert out.columns == ["method", "driver", "factor_a", "factor_b", "contribution_cny", "contribution_pct"]
    assert out["factor_b"].to_list() == b and out["factor_a"].to_list() == a
    assert out["contribution_cny"].to_list()[:2] == [1.0, 4.0]
    assert out["contribution_pct"].to_list()[:3] == [20.0, 80.0, 0.0]
    same = engine.decompose(_drivers(a), _drivers(a), method=["shapley", "sequential", "lmdi"])
    assert str(same.schema["contribution_pct"]) == "Float64" and same["contribution_pct"].null_count() == 3 * N
    # a zero factor with a sign change of another one: the products are -0.0 and +0.0
    z = engine.decompose(_drivers([0.0, 1.0] + [1.0] * (N - 2)), _drivers([0.0, -1.0] + [1.0] * (N - 2)),
                         method=["sequential", "shapley"])
    assert all(math.copysign(1.0, x) == 1.0 for x in z["contribution_cny"])
