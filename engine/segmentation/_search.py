"""The partitions a RiskSegmenter searches: Poisson tree (with merged leaves), DP clusters of predicted risk, user rules.

Each function returns ``{K: unit labels 0..K-1}`` (labels ordered by ascending relativity,
:func:`renumber`) and, for the tree and the rules, the rules of each group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.segmentation._dp import dp_partition, isotonic_by_profile
from engine.segmentation._rules import parse_rules
from engine.segmentation._tree import Rule, grow_tree, rule_key, rule_mask

#: above this many distinct predicted values, the cluster DP runs on quantile bins of the sorted axis
MAX_DP_UNITS = 3000


def renumber(units: Any, lab: np.ndarray, risk: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relabel groups 0..k-1 by ascending relativity (ties: first unit); returns (labels, old order).

    The relativity is sum(risk)/M with risk = the observed claims D (tree, rules) or the
    partitioned predicted claims (cluster).
    """
    k = lab.max() + 1
    d = np.bincount(lab, weights=units.D if risk is None else risk, minlength=k)
    m = np.bincount(lab, weights=units.M, minlength=k)
    first = np.array([np.flatnonzero(lab == i).min() for i in range(k)])
    order = np.lexsort((first, d / np.where(m > 0, m, 1.0)))
    new = np.empty(k, np.int64)
    new[order] = np.arange(k)
    return new[lab], order

def tree_partitions(seg: Any, units: Any, floor: float, age: str | None) -> tuple[dict[int, np.ndarray], dict[int, list]]:
    """Grow the Poisson tree; then merge leaves into K groups by the DP (unless contiguous_age)."""
    merge = seg.merge_leaves and not seg.contiguous_age
    conj = not merge and not seg.contiguous_age and not seg.monotone_age
    max_leaves = seg.max_leaves or (2 * seg.max_groups if merge else 3 * seg.max_groups if conj else seg.max_groups)
    leaf_floor = floor * (seg.leaf_floor_fraction if merge or conj else 1.0)
    cache: dict | None = {} if conj else None  # best split per leaf rule, shared by every tree grown below
    seq = grow_tree(units, max_groups=max_leaves, floor=leaf_floor, min_gain=seg.min_gain,
                    monotone_age=age if seg.monotone_age else None,
                    max_clauses=seg.max_clauses, lookahead=seg.lookahead, cache=cache)
    parts: dict[int, np.ndarray] = {}
    rules_by_k: dict[int, list] = {}
    if conj:  # leaves merged back while each group stays one conjunction (engine.segmentation._merge)
        from engine.segmentation._merge import best_conjunction_partitions

        def regrow(start: list) -> list:
            return grow_tree(units, max_groups=seg.max_groups, floor=leaf_floor, min_gain=seg.min_gain,
                             max_clauses=seg.max_clauses, lookahead=seg.lookahead, start=start, cache=cache)

        alt = [more for start in alternative_starts(units, seq, seg.search_depth, leaf_floor, seg.min_gain,
                                                    seg.max_clauses) for more in regrow(start)]
        seq = list(best_conjunction_partitions(units, seq + alt, floor, seg.max_groups, regrow,
                                               merge_from=seq[-1]).values())
    if not merge:
        for rules in seq:
            lab = np.zeros(units.n, np.int64)
            for i, r in enumerate(rules):
                lab[rule_mask(units, r)] = i
            lab, order = renumber(units, lab)
            parts[len(rules)] = lab
            rules_by_k[len(rules)] = [[rules[o]] for o in order]
        return parts, rules_by_k
    leaves = seq[-1]
    leaf = np.zeros(units.n, np.int64)
    for i, r in enumerate(leaves):
        leaf[rule_mask(units, r)] = i
    nl = len(leaves)
    d = np.bincount(leaf, weights=units.D, minlength=nl)
    m = np.bincount(leaf, weights=units.M, minlength=nl)
    x = np.log(np.maximum(d / np.where(m > 0, m, 1.0), 1e-12))
    order = np.lexsort((np.arange(nl), x))
    sol = dp_partition(x[order], m[order], d[order], d[order], min(seg.max_groups, nl), floor=floor, loss="deviance")
    for k, (_, bounds) in sol.items():
        glab_sorted = np.searchsorted(np.asarray(bounds, np.int64), np.arange(nl), side="right")
        glab = np.empty(nl, np.int64)
        glab[order] = glab_sorted
        lab, gorder = renumber(units, glab[leaf])
        parts[k] = lab
        rules_by_k[k] = [[leaves[i] for i in range(nl) if glab[i] == go] for go in gorder]
    return parts, rules_by_k


def alternative_starts(units: Any, seq: list[list[Rule]], depth: int, floor: float, min_gain: float,
                       max_clauses: int | None) -> list[list[Rule]]:
    """Partitions that start the tree with other splits than the greedy ones (a beam over its first steps).

    Parameters
    ----------
    seq : the best-first tree sequence (1, 2, ... leaves); its first ``depth`` trees are
        the prefixes whose leaves get the other splits (depth 2: the root and its two children).
    floor, min_gain, max_clauses : as for :func:`engine.segmentation._tree.grow_tree`.

    Notes
    -----
    For every leaf of every prefix and every feature, the leaf is split by that
    feature's best split (largest Poisson deviance gain, both sides above ``floor``,
    gain >= ``min_gain``); each such partition is a start from which the tree is grown
    again best-first. A greedy tree takes the locally best split, and a wrong first
    choice (a factor that matters inside one age band taken before the band's edge)
    fixes the topology for good; the starts let the other features' splits lead.
    Starts equal to the next greedy tree are left out.
    """
    from engine.segmentation._tree import _candidates, split_node

    out, seen = [], set()
    nxt = {_key(r) for r in seq[1:depth + 1]}
    for rules in seq[:depth]:
        for i, r in enumerate(rules):
            mask = rule_mask(units, r)
            done = set()
            for cand in _candidates(units, mask, floor, r, max_clauses, best_per_feature=True):
                if cand[0] < min_gain or cand[1] in done:
                    continue
                done.add(cand[1])
                start = rules[:i] + rules[i + 1:] + [kr for _, kr in split_node(units, mask, r, cand)]
                if _key(start) not in seen | nxt:
                    seen.add(_key(start))
                    out.append(start)
    return out


def _key(rules: list[Rule]) -> frozenset:
    """Order-free identity of a partition written as rules."""
    return frozenset(rule_key(r) for r in rules)


def cluster_partitions(seg: Any, units: Any, floor: float, age: str | None) -> dict[int, np.ndarray]:
    """DP partition of the predicted log-relativity; monotone/contiguous via isotonic projection in age."""
    x = np.log(np.maximum(units.mu / np.where(units.M > 0, units.M, 1.0), 1e-12))
    if age and (seg.monotone_age or seg.contiguous_age):
        others = [f for f in units.features if f != age]
        prof = np.zeros(units.n, np.int64)
        for f in others:
            prof = prof * (len(units.levels[f]) + 1) + units.codes[f]
        x = isotonic_by_profile(x, units.M, units.codes[age].astype(float), prof)
    order = np.lexsort((np.arange(units.n), x))
    xs, w, mu, d = x[order], units.M[order], units.mu[order], units.D[order]
    if age and (seg.monotone_age or seg.contiguous_age):
        mu = w * np.exp(xs)  # the projected risk is the one partitioned
    mu_units = np.empty(units.n)
    mu_units[order] = mu
    # merge equal projected values (and, above MAX_DP_UNITS, quantile bins of the sorted axis)
    key = np.unique(xs, return_inverse=True)[1]
    if key.max() + 1 > MAX_DP_UNITS:
        cw = np.cumsum(w) / w.sum()
        key = np.minimum((cw * MAX_DP_UNITS).astype(np.int64), MAX_DP_UNITS - 1)
        # keep equal values in one bin: every unit takes the bin of the first unit with its value
        _, first, inv = np.unique(xs, return_index=True, return_inverse=True)
        key = np.unique(key[first][inv], return_inverse=True)[1]
    nb = key.max() + 1
    bw = np.bincount(key, weights=w, minlength=nb)
    bmu = np.bincount(key, weights=mu, minlength=nb)
    bd = np.bincount(key, weights=d, minlength=nb)
    bx = np.log(np.maximum(bmu / np.where(bw > 0, bw, 1.0), 1e-12))
    sol = dp_partition(bx, bw, bmu, bd, min(seg.max_groups, nb), floor=floor, loss=seg.cluster_loss)
    parts = {}
    for k, (_, bounds) in sol.items():
        blab = np.searchsorted(np.asarray(bounds, np.int64), np.arange(nb), side="right")
        lab = np.empty(units.n, np.int64)
        lab[order] = blab[key]
        parts[k], _ = renumber(units, lab, risk=mu_units)
    return parts


def rules_partitions(seg: Any, units: Any) -> tuple[dict[int, np.ndarray], dict[int, list], list[str]]:
    """The user's rules as one partition: the first matching rule labels a unit; unmatched units go to "other"."""
    feats = seg.features_
    parsed = parse_rules(seg.rules, tuple(seg.ordered_features))
    lab = np.full(units.n, -1, np.int64)
    for i, (_, r) in enumerate(parsed):
        lab[(lab < 0) & rule_mask(units, r)] = i
    names = [n for n, _ in parsed]
    if (lab < 0).any():
        if seg.other == "error":
            ex = units.frame.filter(pl.Series(lab < 0)).row(0, named=True)
            raise ConfigError(f"rules: {int((lab < 0).sum())} feature combinations match no group, e.g. "
                              f"{ {f: ex[f] for f in feats} }; add a group or use other='group'")
        lab[lab < 0] = len(parsed)
        names.append("other")
    used = np.unique(lab)
    parts = {int(used.size): np.searchsorted(used, lab)}
    rules_by_k: dict[int, list] = {int(used.size): [[parsed[i][1]] if i < len(parsed) else None for i in used]}
    return parts, rules_by_k, [names[i] for i in used]
