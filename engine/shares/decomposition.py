"""Decomposition of a change in the cost share into drivers, exactly additive.

The share of a window (one or several sharing periods ending on a notice date)
is written as a product of driver factors

    S = (1+fee) x dt x dilution x waiting x reporting_lag x ageing x select x mix x incidence

with (E = eligible member-years in the window, Y = sharing member-years in the
window (waiting days included), N = sharing members on the
notice date, P = approved amount in the window, I = incurred amount: eligible
claims whose event lies in the window, w_c the eligible exposure of cell c,
base = reference rate by age and sex, B = benefit by age, sel = select factor
by duration, rel = product of factor relativities):

* ``period_years`` dt = window days / 365.25,
* ``dilution`` = Y / (N dt): growth dilution, the mean membership over the
  window against the sharing base counted on the notice date (1 for a constant
  membership, below 1 when the pool grows inside the window),
* ``waiting`` = E / Y: the fraction of sharing member-time past the waiting
  period (1 without a waiting period; about (1 + g)^-w under steady growth g per
  period and a wait of w periods),
* ``reporting_lag`` = P / I: approved versus incurred,
* ``ageing`` = sum_c w_c base_c B_c / sum_c w_c: expected cost per eligible
  member-year from age, sex and benefit (CNY / year),
* ``select`` = sum_c w_c base_c B_c sel_c / sum_c w_c base_c B_c,
* ``mix`` = sum_c w_c base_c B_c sel_c rel_c / sum_c w_c base_c B_c sel_c,
* ``incidence`` = (I / E) / (ageing x select x mix): the residual actual /
  expected.

The product telescopes to (1+fee) P / N, the realised share, exactly.
A change between two windows a and b is attributed by sequential substitution
(a fixed order), by Shapley values (average over all orders, closed form over
subsets) or by LMDI (log-mean Divisia). Each method sums to S_b - S_a
by construction; there is no residual term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import permutations

import numpy as np
import polars as pl

from engine.errors import ConfigError, ModelError
from engine.shares._drivers import (  # noqa: F401  (drivers of a window, re-exported)
    DRIVERS,
    XIANGHUBAO_BENEFITS,
    ShareDrivers,
    drivers_from_cells,
    share_drivers,
    sustainable,
)


# --------------------------------------------------------------------------- attribution
def _values(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """v[mask] = prod_j (b_j if bit j of mask else a_j), for all 2^n masks."""
    n = len(a)
    masks = np.arange(1 << n)
    bits = (masks[:, None] >> np.arange(n)[None, :]) & 1
    return np.prod(np.where(bits == 1, np.asarray(b)[None, :], np.asarray(a)[None, :]), axis=1)


def shapley(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Shapley attribution of ``prod(b) - prod(a)`` to each factor (closed form over subsets).

    Notes
    -----
    phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! x [v(S + i) - v(S)],
    v(S) = prod_{j in S} b_j prod_{j not in S} a_j. Efficiency: sum_i phi_i =
    v(all) - v(none) = prod(b) - prod(a).
    """
    n = len(a)
    v = _values(a, b)
    masks = np.arange(1 << n)
    size = np.array([bin(x).count("1") for x in masks])
    weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) if k < n else 0.0 for k in size])
    out = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        out[i] = np.sum(weight[without] * (v[without | (1 << i)] - v[without]))
    return out


def shapley_by_permutations(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Shapley attribution by averaging sequential substitution over all n! orders (slow oracle)."""
    n = len(a)
    out = np.zeros(n)
    count = 0
    for order in permutations(range(n)):
        out += sequential(a, b, order)
        count += 1
    return out / count


def sequential(a: Sequence[float], b: Sequence[float], order: Sequence[int] | None = None) -> np.ndarray:
    """Sequential substitution: replace factors a -> b one at a time in ``order``.

    Notes
    -----
    contribution_{order[k]} = prod(state after k+1 swaps) - prod(state after k swaps);
    the sum telescopes to prod(b) - prod(a).
    """
    n = len(a)
    order = list(range(n)) if order is None else list(order)
    state = list(map(float, a))
    prev = math.prod(state)
    out = np.zeros(n)
    for i in order:
        state[i] = float(b[i])
        cur = math.prod(state)
        out[i] = cur - prev
        prev = cur
    return out


def lmdi(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Log-mean Divisia (LMDI-I) attribution: L(S_a, S_b) x ln(b_i / a_i); needs positive factors.

    Notes
    -----
    L(x, y) = (y - x) / (ln y - ln x), L(x, x) = x. Sum = L x ln(S_b / S_a) = S_b - S_a.
    """
    a_ = np.asarray(a, dtype=float)
    b_ = np.asarray(b, dtype=float)
    if np.any(a_ <= 0) or np.any(b_ <= 0):
        raise ModelError("decompose: method 'lmdi' needs every factor > 0 (use 'shapley' or 'sequential')")
    sa, sb = float(np.prod(a_)), float(np.prod(b_))
    L = sa if math.isclose(sa, sb, rel_tol=1e-15) else (sb - sa) / (math.log(sb) - math.log(sa))
    return L * np.log(b_ / a_)


_METHODS = ("shapley", "sequential", "lmdi")


def decompose(
    a: ShareDrivers,
    b: ShareDrivers,
    *,
    method: str | Sequence[str] = "shapley",
    order: Sequence[str] = DRIVERS,
) -> pl.DataFrame:
    """Attribute ``b.share_cny - a.share_cny`` to the drivers, exactly.

    Parameters
    ----------
    a, b : driver factors of the two windows (see :func:`share_drivers`,
        :func:`drivers_from_cells`; :func:`sustainable` for the gap to the
        sustainable share).
    method : ``"shapley"`` (average over all orders), ``"sequential"`` (fixed
        ``order``), ``"lmdi"`` (log-mean Divisia), or a list of them.
    order : driver order for ``"sequential"`` (default :data:`DRIVERS`).

    Returns
    -------
    DataFrame: ``method``, ``driver``, ``factor_a``, ``factor_b``,
    ``contribution_cny``, ``contribution_pct`` (percent of the total change;
    null when the share does not change), one row per driver and method.

    Notes
    -----
    For every method ``sum(contribution_cny) = b.share_cny - a.share_cny``:
    sequential substitution telescopes; Shapley values are efficient; LMDI sums
    to L(S_a, S_b) ln(S_b / S_a). No residual term exists.
    """
    methods = [method] if isinstance(method, str) else list(method)
    bad = [m for m in methods if m not in _METHODS]
    if bad:
        raise ConfigError(f"method: {bad[0]!r} is unknown; use one of {', '.join(_METHODS)}")
    if sorted(order) != sorted(DRIVERS):
        raise ConfigError(f"order: must be a permutation of {', '.join(DRIVERS)}")
    fa, fb = a.factors(), b.factors()
    va = [fa[d] for d in DRIVERS]
    vb = [fb[d] for d in DRIVERS]
    total = b.share_cny - a.share_cny
    frames = []
    for m in methods:
        if m == "shapley":
            contrib = shapley(va, vb)
        elif m == "sequential":
            contrib = sequential(va, vb, [DRIVERS.index(d) for d in order])
        else:
            contrib = lmdi(va, vb)
        rows = list(order) if m == "sequential" else list(DRIVERS)
        idx = [DRIVERS.index(d) for d in rows]
        frames.append(
            pl.DataFrame(
                {
                    "method": [m] * len(rows),
                    "driver": rows,
                    "factor_a": [va[i] for i in idx],
                    "factor_b": [vb[i] for i in idx],
                    "contribution_cny": [float(contrib[i]) + 0.0 for i in idx],
                }
            )
        )
    out = pl.concat(frames)
    pct = (
        pl.lit(None, dtype=pl.Float64)
        if total == 0
        else pl.when(pl.col("contribution_cny") == 0).then(0.0).otherwise(pl.col("contribution_cny") / total * 100.0)
    )
    return out.with_columns(pct.alias("contribution_pct"))
