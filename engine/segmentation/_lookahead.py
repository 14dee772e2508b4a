"""One-step look-ahead for the Poisson segmentation tree: the best split of each child, for every candidate split.

A greedy tree takes the split with the largest immediate deviance gain, so it
misses an interaction whose first split gains little on its own (e.g. a channel
that is riskier below 40 and safer above it). With look-ahead a candidate split
is scored by its own gain plus the best gains of its two children, and the whole
table of scores is computed with two-way histograms, without a loop over
candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _ll(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0) / np.where(m > 0, m, 1.0)), 0.0)


def best_gain_rows(hd: np.ndarray, hm: np.ndarray, ordered: bool, floor: float) -> np.ndarray:
    """Best binary-split deviance gain of each row of a histogram (rows = nodes, columns = levels of one feature).

    Parameters
    ----------
    hd, hm : claims and offset measure per (node, level), shape (n_nodes, n_levels).
    ordered : thresholds in level order; else levels are sorted by rate first.
    floor : both sides of a split need at least this many claims.

    Returns
    -------
    Gain per row (0 when no feasible split).

    Notes
    -----
    gain = 2 [ll(D_L, M_L) + ll(D_R, M_R) - ll(D, M)] with ll(d, m) = d log(d / m);
    levels without exposure are placed last (categorical) or contribute nothing
    (ordered), so they never create a split of their own that matters.
    """
    if hd.shape[1] < 2:
        return np.zeros(hd.shape[0])
    if not ordered:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(hm > 0, hd / np.where(hm > 0, hm, 1.0), np.inf)
        o = np.argsort(rate, axis=1, kind="stable")
        hd = np.take_along_axis(hd, o, axis=1)
        hm = np.take_along_axis(hm, o, axis=1)
    dn, mn = hd.sum(1, keepdims=True), hm.sum(1, keepdims=True)
    cd, cm = np.cumsum(hd, 1)[:, :-1], np.cumsum(hm, 1)[:, :-1]
    dr, mr = dn - cd, mn - cm
    gain = 2.0 * (_ll(cd, cm) + _ll(dr, mr) - _ll(dn, mn))
    ok = (cd >= floor) & (dr >= floor) & (cm > 0) & (mr > 0)
    gain = np.where(ok, gain, 0.0)
    return np.maximum(gain.max(axis=1), 0.0)


def child_gains(units: Any, mask: np.ndarray, f: str, order: np.ndarray, floor: float,
                allowed: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Best split gains of the left and right children of every threshold of ``f`` in a node.

    Parameters
    ----------
    units : :class:`engine.segment_tree.Units`.
    mask : the node's units.
    f : the feature split first; its present levels in scan ``order`` (thresholds between them).
    floor : claims floor of the grandchildren.
    allowed : features the children may split on (clause limit).

    Returns
    -------
    (left, right): arrays of length ``len(order) - 1``; element i belongs to the split
    ``order[:i+1] | order[i+1:]``.

    Notes
    -----
    For each second feature g the node's two-way histogram H[f-level, g-level] of
    claims and measure is accumulated along the scan order of f: row i of the
    cumulative sum is the left child's histogram of g, the total minus it the right
    child's. :func:`best_gain_rows` then gives every child's best split on g at once.
    """
    kf = len(units.levels[f])
    cf = units.codes[f][mask]
    d, m = units.D[mask], units.M[mask]
    n_thr = max(order.size - 1, 0)
    left, right = np.zeros(n_thr), np.zeros(n_thr)
    if n_thr == 0:
        return left, right
    for g in allowed:
        kg = len(units.levels[g])
        key = cf * kg + units.codes[g][mask]
        hd = np.bincount(key, weights=d, minlength=kf * kg).reshape(kf, kg)[order]
        hm = np.bincount(key, weights=m, minlength=kf * kg).reshape(kf, kg)[order]
        ld, lm = np.cumsum(hd, 0)[:-1], np.cumsum(hm, 0)[:-1]
        rd, rm = hd.sum(0) - ld, hm.sum(0) - lm
        ordered = g in units.ordered
        left = np.maximum(left, best_gain_rows(ld, lm, ordered, floor))
        right = np.maximum(right, best_gain_rows(rd, rm, ordered, floor))
    return left, right
