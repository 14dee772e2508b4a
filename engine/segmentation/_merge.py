"""Merge the leaves of a Poisson tree into K groups that stay single conjunctions (marketable rules).

A best-first tree decides its splits greedily, so a planted boundary found late
is often drawn twice (``age 35-46`` and ``age 47-49`` in one tier set, or the
same band split by tier in two branches). The tree is therefore grown past
``max_groups`` (on a quarter of the claims floor) and its leaves are merged
back, two at a time, whenever their union is still one conjunction: the two
rules agree on every feature but one, where the age bands are adjacent or the
level sets are joined. Each merge is the one that loses the least Poisson
deviance, groups below the claims floor first; every K on the way is a
candidate partition, next to the tree itself at K leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.segmentation._tree import Rule, rule_mask


def _ll(d: float, m: float) -> float:
    return float(d * np.log(d / m)) if d > 0 and m > 0 else 0.0


def _rule_stats(units: Any, rule: Rule) -> tuple[float, float]:
    """(observed claims, maximised log-likelihood kernel) of the units of ``rule``, kept in ``units.extra``.

    The candidate partitions of every K share most of their rules; the sums depend on the
    units' claims and measure, so they are kept per units (each fold has its own).
    """
    from engine.segmentation._tree import rule_key

    cache = units.extra.setdefault("_rule_stats", {})
    key = rule_key(rule)
    st = cache.get(key)
    if st is None:
        m = rule_mask(units, rule)
        d = units.D[m].sum()
        st = cache[key] = (d, _ll(float(d), float(units.M[m].sum())))
    return st


def conjunction_union(units: Any, a: Rule, b: Rule) -> Rule | None:
    """The rule matching exactly the units of ``a`` or ``b`` when it is one conjunction, else None.

    Notes
    -----
    {f in A1, rest C} u {f in A2, rest C} = {f in A1 u A2, rest C}: the rules must
    agree on every feature but one; there an ordered feature's bands must be
    adjacent (hi_1 + 1 = lo_2) and a categorical feature's sets are joined. A clause
    covering every level (or an unbounded band) is dropped.
    """
    feats = set(a) | set(b)
    diff = [f for f in feats if _norm(a.get(f)) != _norm(b.get(f))]
    if len(diff) != 1:
        return None
    f = diff[0]
    ca, cb = a.get(f), b.get(f)
    if ca is None or cb is None:
        return None
    out = {k: v for k, v in a.items() if k != f}
    if ca[0] == "range":
        (lo1, hi1), (lo2, hi2) = ca[1:], cb[1:]
        if hi1 is not None and lo2 is not None and hi1 + 1 == lo2:
            lo, hi = lo1, hi2
        elif hi2 is not None and lo1 is not None and hi2 + 1 == lo1:
            lo, hi = lo2, hi1
        else:
            return None
        if lo is not None or hi is not None:
            out[f] = ("range", lo, hi)
    else:
        vals = sorted(set(ca[1]) | set(cb[1]), key=lambda v: (str(type(v)), v))
        if len(vals) < len(units.levels[f]):
            out[f] = ("in", vals)
    return out


def _norm(c: tuple | None) -> Any:
    if c is None:
        return None
    return ("range", c[1], c[2]) if c[0] == "range" else ("in", frozenset(c[1]))


def merge_sequence(units: Any, leaves: list[Rule], floor: float) -> dict[int, list[Rule]]:
    """Greedy agglomeration of tree leaves into conjunction groups: ``{K: rules}`` for every K reached.

    Notes
    -----
    Merging groups i and j costs Delta = 2 [ll(D_i, M_i) + ll(D_j, M_j) - ll(D_i + D_j, M_i + M_j)]
    in Poisson deviance (ll(d, m) = d log(d / m)). Pairs with a group below ``floor``
    claims are merged first, then the cheapest pair; it stops when no two groups
    form one conjunction.
    """
    groups = {i: (r, float(units.D[m].sum()), float(units.M[m].sum()))
              for i, r in enumerate(leaves) for m in [rule_mask(units, r)]}
    out = {len(groups): [g[0] for g in groups.values()]}
    pairs: dict[tuple[int, int], tuple] = {}  # (i, j) -> (key, union); only pairs with a new group are computed

    def add_pairs(j: int) -> None:
        rj, dj, mj = groups[j]
        for i, (ri, di, mi) in groups.items():
            if i == j:
                continue
            u = conjunction_union(units, ri, rj)
            if u is not None:
                key = (not (di < floor or dj < floor), 2 * (_ll(di, mi) + _ll(dj, mj) - _ll(di + dj, mi + mj)), i, j)
                pairs[(min(i, j), max(i, j))] = (key, u)

    for j in list(groups):
        add_pairs(j)
    nxt = len(leaves)
    while len(groups) > 1 and pairs:
        (i, j), (_, u) = min(pairs.items(), key=lambda kv: kv[1][0])
        gi, gj = groups.pop(i), groups.pop(j)
        pairs = {ab: v for ab, v in pairs.items() if i not in ab and j not in ab}
        groups[nxt] = (u, gi[1] + gj[1], gi[2] + gj[2])
        add_pairs(nxt)
        nxt += 1
        out[len(groups)] = [g[0] for g in groups.values()]
    return out


def best_conjunction_partitions(units: Any, seq: list[list[Rule]], floor: float, kmax: int,
                                regrow: Any = None, merge_from: list[Rule] | None = None) -> dict[int, list[Rule]]:
    """For every K <= kmax the best feasible partition (highest likelihood) among the tree at K leaves and the merges.

    Feasible: every group holds at least ``floor`` observed claims. With ``regrow``
    (a function ``start rules -> tree sequence``), the tree is grown once more from
    every merged partition of fewer than ``kmax`` groups, and those trees' prefixes
    are candidates too: a merge can join pieces of a group that two branches cut
    (``age >= 50 & city_tier in {1,2}`` and ``... in {3,4,5}``) into one leaf whose
    own split the branches were too small to find. ``merge_from`` (default: the last
    partition of ``seq``) is the tree whose leaves are merged, when ``seq`` also holds
    the trees grown from other starts.
    """
    cands: dict[int, list[list[Rule]]] = {}
    for rules in seq:
        cands.setdefault(len(rules), []).append(rules)
    merged = merge_sequence(units, seq[-1] if merge_from is None else merge_from, floor)
    for k, rules in merged.items():
        cands.setdefault(k, []).append(rules)
    if regrow is not None:
        for k, rules in merged.items():
            if 1 < k < kmax:
                for more in regrow(rules)[1:]:
                    cands.setdefault(len(more), []).append(more)
    out: dict[int, list[Rule]] = {}
    for k, options in cands.items():
        if k > kmax:
            continue
        best, best_ll = None, -np.inf
        for rules in options:
            stats = [_rule_stats(units, r) for r in rules]
            if min(st[0] for st in stats) < floor - 1e-9:
                continue
            ll = sum(st[1] for st in stats)
            if ll > best_ll:
                best, best_ll = rules, ll
        if best is not None:
            out[k] = best
    return out
