"""Poisson regression tree on aggregated cells, and the rule representation of groups.

A *unit* is one distinct combination of the segmentation features (cells summed
over every other key). The tree works on units only, so its cost does not
depend on the number of members.

Rules
-----
A rule is a dict ``feature -> condition``; an ordered (integer) feature has the
condition ``("range", lo, hi)`` with inclusive bounds (``None`` = unbounded), a
categorical feature ``("in", [values])``. A group is one rule (tree, rules) or a
set of units (cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

Rule = dict[str, tuple]


# --------------------------------------------------------------------------- units
@dataclass
class Units:
    """Sufficient statistics per distinct feature combination.

    ``codes[f]`` are integer codes into ``levels[f]`` (sorted ascending for ordered
    features); ``D`` observed claims, ``M`` offset measure (exposure x base rate;
    equal to exposure when nothing is adjusted for), ``E`` exposure-years,
    ``mu`` model-expected claims (``None`` before a model is used).
    """

    frame: pl.DataFrame
    features: list[str]
    ordered: list[str]
    codes: dict[str, np.ndarray]
    levels: dict[str, list[Any]]
    D: np.ndarray
    M: np.ndarray
    E: np.ndarray
    mu: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.D.size)


def make_units(frame: pl.DataFrame, features: list[str], ordered: list[str]) -> Units:
    """Build :class:`Units` from a frame with the feature columns and ``D``, ``M``, ``E`` (and ``mu``)."""
    frame = frame.sort(features)
    codes: dict[str, np.ndarray] = {}
    levels: dict[str, list[Any]] = {}
    for f in features:
        uniq = frame.get_column(f).unique().sort()
        levels[f] = uniq.to_list()
        codes[f] = np.searchsorted(uniq.to_numpy(), frame.get_column(f).to_numpy())
    mu = frame.get_column("mu").to_numpy().astype(float) if "mu" in frame.columns else None
    return Units(
        frame=frame,
        features=list(features),
        ordered=[f for f in features if f in ordered],
        codes=codes,
        levels=levels,
        D=frame.get_column("D").to_numpy().astype(float),
        M=frame.get_column("M").to_numpy().astype(float),
        E=frame.get_column("E").to_numpy().astype(float),
        mu=mu,
    )


def _ll(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Maximised Poisson log-likelihood kernel ``d log(d/m)`` (0 when d = 0)."""
    d = np.asarray(d, float)
    m = np.asarray(m, float)
    pos = d > 0
    if d.ndim == 0 or m.shape != d.shape:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pos, d * np.log(np.where(pos, d, 1.0) / np.where(m > 0, m, 1.0)), 0.0)
    out = np.zeros(d.shape)  # the same element-wise arithmetic on the positive claims only
    dp, mp = d[pos], m[pos]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[pos] = dp * np.log(dp / np.where(mp > 0, mp, 1.0))
    return out


# --------------------------------------------------------------------------- rules
def rule_mask(units: Units, rule: Rule) -> np.ndarray:
    """Boolean mask (read-only) of the units satisfying ``rule``.

    Masks are kept in ``units.extra["_masks"]`` by :func:`rule_key`: the searches ask for the
    same rules many times, and a mask depends only on the units' feature values (the
    cross-validation folds share it).
    """
    cache = units.extra.setdefault("_masks", {})
    key = rule_key(rule)
    mask = cache.get(key)
    if mask is None:
        mask = _rule_mask(units, rule)
        mask.flags.writeable = False
        cache[key] = mask
    return mask


def _rule_mask(units: Units, rule: Rule) -> np.ndarray:
    mask = np.ones(units.n, bool)
    for f, cond in rule.items():
        if f in units.codes and cond[0] != "range":  # on integer codes: no string comparisons
            lv = units.levels[f]
            allowed = set(cond[1])
            hit = np.fromiter((v in allowed for v in lv), bool, len(lv))
            mask &= hit[units.codes[f]]
            continue
        vals = units.frame.get_column(f).to_numpy()
        if cond[0] == "range":
            lo, hi = cond[1], cond[2]
            if lo is not None:
                mask &= vals >= lo
            if hi is not None:
                mask &= vals <= hi
        else:
            mask &= np.isin(vals, np.asarray(cond[1], dtype=vals.dtype))
    return mask


def rule_expr(rule: Rule) -> pl.Expr:
    """A polars boolean expression for ``rule`` (true = the row satisfies it)."""
    e = pl.lit(True)
    for f, cond in rule.items():
        if cond[0] == "range":
            if cond[1] is not None:
                e = e & (pl.col(f) >= cond[1])
            if cond[2] is not None:
                e = e & (pl.col(f) <= cond[2])
        else:
            e = e & pl.col(f).is_in(list(cond[1]))
    return e


def rule_text(rule: Rule, features: list[str]) -> str:
    """Readable text such as ``age 40-49 & city_tier in {4,5}`` ("all" for the empty rule)."""
    parts = []
    for f in features:
        if f not in rule:
            continue
        cond = rule[f]
        if cond[0] == "range":
            lo, hi = cond[1], cond[2]
            if lo is None and hi is None:
                continue
            if lo is None:
                parts.append(f"{f} <= {hi}")
            elif hi is None:
                parts.append(f"{f} >= {lo}")
            elif lo == hi:
                parts.append(f"{f} {lo}")
            else:
                parts.append(f"{f} {lo}-{hi}")
        else:
            parts.append(f"{f} in {{{','.join(str(v) for v in sorted(cond[1], key=str))}}}")
    return " & ".join(parts) if parts else "all"


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """JSON form: ``{"age": {"range": [lo, hi]}, "city_tier": {"in": [4, 5]}}``."""
    return {f: ({"range": [c[1], c[2]]} if c[0] == "range" else {"in": list(c[1])}) for f, c in rule.items()}


def rule_from_json(obj: dict[str, Any]) -> Rule:
    """Inverse of :func:`rule_to_json`."""
    out: Rule = {}
    for f, c in obj.items():
        if "range" in c:
            out[f] = ("range", c["range"][0], c["range"][1])
        else:
            out[f] = ("in", list(c["in"]))
    return out


def rule_key(rule: Rule) -> tuple:
    """Hashable, order-free identity of a rule (same units, same conditions)."""
    def cond(c: tuple) -> tuple:
        return tuple(sorted(c[1], key=lambda v: (str(type(v)), v))) if c[0] == "in" else (c[1], c[2])

    return tuple(sorted((f, c[0], cond(c)) for f, c in rule.items()))


# --------------------------------------------------------------------------- tree
@dataclass
class _Leaf:
    mask: np.ndarray
    rule: Rule
    split: tuple | None = None  # (gain, feature, left_codes, right_codes)


def _monotone_ok(units: Units, leaf_rate: np.ndarray, age: str) -> bool:
    """True when, within every combination of the other features, the rate never falls with age."""
    order = units.extra.get("_mono_order")
    if order is None:
        others = [f for f in units.features if f != age]
        keys = [units.codes[f] for f in reversed(others)] if others else []
        order = np.lexsort([units.codes[age], *keys]) if keys else np.argsort(units.codes[age], kind="stable")
        prof = np.zeros(units.n, np.int64)
        for f in others:
            prof = prof * (len(units.levels[f]) + 1) + units.codes[f]
        units.extra["_mono_order"] = order
        units.extra["_mono_same"] = prof[order][1:] == prof[order][:-1]
        order = units.extra["_mono_order"]
    same = units.extra["_mono_same"]
    r = leaf_rate[order]
    return bool(np.all((np.diff(r) >= -1e-12 * np.maximum(1.0, np.abs(r[1:]))) | ~same))


def _allowed(units: Units, rule: Rule | None, max_clauses: int | None) -> list[str]:
    """Features a node may split on: all, or only those already in its rule once it has ``max_clauses`` clauses."""
    if rule is None or max_clauses is None or len(rule) < max_clauses:
        return units.features
    return [f for f in units.features if f in rule]


def _candidates(units: Units, mask: np.ndarray, floor: float, rule: Rule | None = None,
                max_clauses: int | None = None, lookahead: bool = False,
                best_per_feature: bool = False) -> list[tuple]:
    """All feasible splits of the units in ``mask``: (score, feature, left_codes, right_codes, gain), best first.

    With ``best_per_feature`` only each feature's best split is listed (the first of the
    full list for that feature), in the same order: enough for the callers that take the
    best split, or the best split of each feature.

    The score is the split's deviance gain, or with ``lookahead`` the gain plus the
    best gains of its two children (:mod:`engine.segmentation._lookahead`). With
    ``max_clauses``, a node whose ``rule`` already has that many clauses only
    splits on the features in it (a band or a set narrows, no clause is added).
    """
    out = []
    Dm, Mm = units.D[mask], units.M[mask]
    Dn, Mn = Dm.sum(), Mm.sum()
    base = _ll(Dn, Mn)
    for f in _allowed(units, rule, max_clauses):
        k = len(units.levels[f])
        c = units.codes[f][mask]
        d = np.bincount(c, weights=Dm, minlength=k)
        m = np.bincount(c, weights=Mm, minlength=k)
        present = np.flatnonzero(m > 0)
        if present.size < 2:
            continue
        if f in units.ordered:
            order = present
        else:  # sort categories by rate: the optimal binary split is contiguous in this order
            rate = d[present] / m[present]
            order = present[np.lexsort((present, rate))]
        cd, cm = np.cumsum(d[order]), np.cumsum(m[order])
        dl, ml = cd[:-1], cm[:-1]
        dr, mr = Dn - dl, Mn - ml
        gain = 2.0 * (_ll(dl, ml) + _ll(dr, mr) - base)
        ok = (dl >= floor) & (dr >= floor)
        score = gain
        if lookahead and ok.any():
            from engine.segmentation._lookahead import child_gains

            child = dict(rule or {}, **{f: ("in", [])})
            gl, gr = child_gains(units, mask, f, order, floor, _allowed(units, child, max_clauses))
            score = gain + gl + gr
        idx = np.flatnonzero(ok)
        if best_per_feature and idx.size and not np.isnan(score[idx]).any():
            idx = idx[[int(np.argmax(score[idx]))]]  # the first of the feature's best: the stable sort's pick
        for i in idx:
            out.append((float(score[i]), f, order[: i + 1], order[i + 1 :], float(gain[i])))
    out.sort(key=lambda t: (-t[0], units.features.index(t[1])))
    return out


def _child_rule(units: Units, rule: Rule, f: str, codes: np.ndarray, parent_codes: np.ndarray) -> Rule:
    new = dict(rule)
    if f in units.ordered:
        lv = units.levels[f]
        lo, hi = rule.get(f, ("range", None, None))[1:]
        if codes.max() < parent_codes.max():  # left child: ends just before the right child's first level
            hi = lv[parent_codes[parent_codes > codes.max()].min()] - 1
        else:  # right child: starts at its first present level
            lo = lv[codes.min()]
        new[f] = ("range", lo, hi)
    else:
        new[f] = ("in", sorted((units.levels[f][i] for i in codes), key=lambda v: (str(type(v)), v)))
    return new


def split_node(units: Units, mask: np.ndarray, rule: Rule, cand: tuple) -> list[tuple[np.ndarray, Rule]]:
    """The (mask, rule) of the two children of the node ``mask`` / ``rule`` split by ``cand`` (of :func:`_candidates`)."""
    f, lc, rc = cand[1:4]
    c = units.codes[f]
    k = len(units.levels[f])

    def present(m: np.ndarray) -> np.ndarray:  # sorted distinct codes of the units in m (np.unique, by counting)
        return np.flatnonzero(np.bincount(c[m], minlength=k))

    if f in units.ordered:  # thresholds: codes without exposure fall in the band around them
        lm = mask & (c < np.min(rc))
    else:  # categories without exposure in the node go to the right child
        lm = mask & np.isin(c, lc)
    rm = mask & ~lm
    node_codes = present(mask)
    return [(lm, _child_rule(units, rule, f, present(lm), node_codes)),
            (rm, _child_rule(units, rule, f, present(rm), node_codes))]


def grow_tree(
    units: Units,
    *,
    max_groups: int,
    floor: float,
    min_gain: float,
    monotone_age: str | None = None,
    max_tries: int = 50,
    max_clauses: int | None = None,
    lookahead: bool = False,
    start: list[Rule] | None = None,
    cache: dict | None = None,
) -> list[list[Rule]]:
    """Grow a best-first Poisson tree; return the leaf rules after 1, 2, ..., K splits-1.

    Parameters
    ----------
    floor : minimum observed claims per leaf (the per-period floor times periods).
    min_gain : minimum Poisson deviance reduction of a split.
    monotone_age : name of the age feature when group rates must not fall with age.
    max_clauses : a leaf's rule holds at most this many features (clauses); None = no limit.
    lookahead : score splits by their gain plus their children's best gains (finds
        interactions whose first split gains little alone); a split is taken when
        that score reaches ``min_gain``.
    start : grow from these leaves (a partition of the units) instead of the root.
    cache : best split of each leaf by its rule (:func:`rule_key`), shared by trees grown on the
        same units with the same floor, min_gain, max_clauses and lookahead (not with monotone_age).

    Notes
    -----
    A node with claims D and offset measure M has maximised log-likelihood
    D log(D/M) - D + const; a split's deviance gain is
    2 [D_L log(D_L/M_L) + D_R log(D_R/M_R) - D log(D/M)]. For a categorical feature
    the categories are sorted by D/M and only splits contiguous in that order are
    scanned; this finds the best binary split for the Poisson deviance (Breiman
    et al. 1984, sec. 9.4; the deviance is a Bregman divergence). Ordered features
    are scanned at every threshold. Among the leaves, the split with the largest
    gain is taken first (best-first), so the sequence of trees is nested.
    """
    leaves = [_Leaf(rule_mask(units, r), r) for r in start] if start else [_Leaf(np.ones(units.n, bool), {})]
    seq = [[leaf.rule for leaf in leaves]]

    def leaf_rates(ls: list[_Leaf]) -> np.ndarray:
        r = np.zeros(units.n)
        for lf in ls:
            d, m = units.D[lf.mask].sum(), units.M[lf.mask].sum()
            r[lf.mask] = d / m if m > 0 else 0.0
        return r

    def best_split(leaf: _Leaf) -> tuple | None:
        key = rule_key(leaf.rule) if cache is not None and not monotone_age else None
        if key is not None and key in cache:
            return cache[key]
        cands = [c for c in _candidates(units, leaf.mask, floor, leaf.rule, max_clauses, lookahead,
                                        best_per_feature=not monotone_age) if c[0] >= min_gain]
        if not monotone_age:
            if key is not None:
                cache[key] = cands[0] if cands else None
            return cands[0] if cands else None
        for cand in cands[:max_tries]:
            trial = [lf for lf in leaves if lf is not leaf] + _children(leaf, cand)
            if _monotone_ok(units, leaf_rates(trial), monotone_age):
                return cand
        return None

    def _children(leaf: _Leaf, cand: tuple) -> list[_Leaf]:
        return [_Leaf(m, r) for m, r in split_node(units, leaf.mask, leaf.rule, cand)]

    while len(leaves) < max_groups:
        for lf in leaves:
            if lf.split is None:
                lf.split = best_split(lf) or (None,)
        cand_leaves = [lf for lf in leaves if lf.split and lf.split[0] is not None]
        if not cand_leaves:
            break
        best = max(cand_leaves, key=lambda lf: lf.split[0])
        kids = _children(best, best.split)
        leaves = [lf for lf in leaves if lf is not best] + kids
        if monotone_age:  # feasibility of other leaves' stored splits may change: recompute
            for lf in leaves:
                lf.split = None
        seq.append([lf.rule for lf in leaves])
    return seq
