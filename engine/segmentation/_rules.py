"""User-defined segmentations (``method="rules"``): parse a config of groups into rules.

Config: a list of dicts, each with an optional ``name`` and conditions per feature.
An ordered feature (``age``, ``duration``) takes ``[lo, hi]`` (inclusive; ``null``
for unbounded) or ``{"min": lo, "max": hi}``; any other feature takes a list of
allowed values (or a single value). A dict ``{"groups": [...]}`` is also accepted.
Groups are tried in order; a row belongs to the first group it matches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.segmentation._tree import Rule, rule_text


def parse_rules(config: Any, ordered: tuple[str, ...] | list[str]) -> list[tuple[str, Rule]]:
    """Return ``[(name, rule), ...]`` from a rules config, raising :class:`ConfigError` on bad input."""
    if isinstance(config, dict) and "groups" in config:
        config = config["groups"]
    if not isinstance(config, (list, tuple)) or not config:
        raise ConfigError("rules: expected a non-empty list of groups (dicts of feature conditions)")
    out: list[tuple[str, Rule]] = []
    names = set()
    for i, item in enumerate(config):
        if not isinstance(item, dict):
            raise ConfigError(f"rules[{i}]: expected a dict of feature conditions, got {type(item).__name__}")
        name = str(item.get("name", f"G{i + 1}"))
        if name in names:
            raise ConfigError(f"rules[{i}].name: '{name}' is used twice")
        names.add(name)
        rule: Rule = {}
        for f, cond in item.items():
            if f == "name":
                continue
            if f in ordered:
                if isinstance(cond, dict):
                    unknown = set(cond) - {"min", "max"}
                    if unknown:
                        raise ConfigError(f"rules[{i}].{f}: unknown key '{sorted(unknown)[0]}' (use min, max)")
                    lo, hi = cond.get("min"), cond.get("max")
                elif isinstance(cond, (list, tuple)) and len(cond) == 2:
                    lo, hi = cond
                else:
                    raise ConfigError(f"rules[{i}].{f}: expected [lo, hi] (inclusive) for an ordered feature")
                for v in (lo, hi):
                    if v is not None and not isinstance(v, int):
                        raise ConfigError(f"rules[{i}].{f}: bounds must be integers or null, got {v!r}")
                if lo is not None and hi is not None and lo > hi:
                    raise ConfigError(f"rules[{i}].{f}: lower bound {lo} exceeds upper bound {hi}")
                rule[f] = ("range", lo, hi)
            else:
                vals = list(cond) if isinstance(cond, (list, tuple, set)) else [cond]
                if not vals:
                    raise ConfigError(f"rules[{i}].{f}: the list of values is empty")
                rule[f] = ("in", vals)
        out.append((name, rule))
    return out


def rules_for_labels(units: Any, labels: np.ndarray, max_terms: int = 6) -> list[list[Rule]] | None:
    """Exact rules reproducing a labelling of the units (e.g. cluster groups), or None.

    A classification tree (sklearn, unweighted, grown until every leaf is pure) is
    fitted on integer-coded features: ordered features by value, categorical ones
    by the mean label of their units (so categories that go together are adjacent).
    Each pure leaf is a conjunction of code ranges, translated back to an age band
    or a category set; a group is the union (OR) of its leaves. Returns None when a
    group would need more than ``max_terms`` leaves, or when the rules do not
    reproduce the labels exactly.

    Notes
    -----
    Unit codes absent from a leaf's range cannot occur among the training units, so
    the rules are exact on them; for an ordered feature a band runs up to one below
    the next level, so unseen integer values between levels are covered too.
    """
    from sklearn.tree import DecisionTreeClassifier

    feats = units.features
    cols, maps = [], {}
    for f in feats:
        c = units.codes[f]
        if f in units.ordered:
            rank = np.arange(len(units.levels[f]))
        else:
            k = len(units.levels[f])
            mean = np.bincount(c, weights=labels, minlength=k) / np.maximum(np.bincount(c, minlength=k), 1)
            order = np.lexsort((np.arange(k), mean))
            rank = np.empty(k, np.int64)
            rank[order] = np.arange(k)
        maps[f] = rank
        cols.append(rank[c])
    X = np.column_stack(cols).astype(float)
    tree = DecisionTreeClassifier(random_state=0).fit(X, labels)
    t = tree.tree_
    out: dict[int, list[Rule]] = {}

    def walk(node: int, bounds: dict[str, tuple[float, float]]) -> None:
        if t.children_left[node] == -1:
            lab = int(tree.classes_[int(np.argmax(t.value[node][0]))])
            rule: Rule = {}
            for f, (lo, hi) in bounds.items():
                n_lv = len(units.levels[f])
                # codes with lo < code <= hi (thresholds lie between integer codes)
                lo_c = 0 if not np.isfinite(lo) else max(int(np.floor(lo)) + 1, 0)
                hi_c = n_lv - 1 if not np.isfinite(hi) else min(int(np.floor(hi)), n_lv - 1)
                if lo_c == 0 and hi_c == n_lv - 1:
                    continue
                if f in units.ordered:
                    lv = units.levels[f]
                    rule[f] = ("range", lv[lo_c] if lo_c > 0 else None, lv[hi_c + 1] - 1 if hi_c < n_lv - 1 else None)
                else:
                    inv = np.argsort(maps[f])
                    vals = [units.levels[f][int(inv[r])] for r in range(lo_c, hi_c + 1)]
                    rule[f] = ("in", sorted(vals, key=lambda v: (str(type(v)), v)))
            out.setdefault(lab, []).append(rule)
            return
        f = feats[t.feature[node]]
        thr = t.threshold[node]
        lo, hi = bounds.get(f, (-np.inf, np.inf))
        walk(t.children_left[node], {**bounds, f: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, f: (max(lo, thr), hi)})

    walk(0, {})
    k = int(labels.max()) + 1
    if any(len(out.get(g, [])) > max_terms for g in range(k)) or any(g not in out for g in range(k)):
        return None
    from engine.segmentation._tree import rule_mask

    check = np.full(units.n, -1)
    for g in range(k):
        for r in out[g]:
            check[rule_mask(units, r)] = g
    if not np.array_equal(check, labels):
        return None
    return [out[g] for g in range(k)]


def describe_units(units: Any, mask: np.ndarray) -> str:
    """Rule text when the group's units form a product set, else its factor profile (values by exposure)."""
    sub = units.frame.filter(pl.Series(mask))
    feats = units.features
    sets = {f: sorted(sub[f].unique().to_list(), key=lambda v: (str(type(v)), v)) for f in feats}
    size = int(np.prod([len(s) for s in sets.values()])) if feats else 1
    all_units = units.frame.filter(pl.all_horizontal([pl.col(f).is_in(sets[f]) for f in feats])) if feats else units.frame
    if size == sub.height and all_units.height == sub.height:
        rule: Rule = {}
        for f in feats:
            if len(sets[f]) == len(units.levels[f]):
                continue
            if f in units.ordered and sets[f] == list(range(sets[f][0], sets[f][-1] + 1)):
                rule[f] = ("range", sets[f][0], sets[f][-1])
            else:
                rule[f] = ("in", sets[f])
        return rule_text(rule, feats)
    parts = []
    for f in feats:
        if f in units.ordered:
            lo, hi = sub[f].min(), sub[f].max()
            mean = float((sub[f] * sub["E"]).sum() / max(float(sub["E"].sum()), 1e-300))
            parts.append(f"{f}: {lo}-{hi} (mean {mean:.1f})")
            continue
        w = sub.group_by(f).agg(pl.col("E").sum()).sort("E", f, descending=[True, False])
        tot = float(w["E"].sum())
        top = ", ".join(f"{v} {e / tot:.0%}" for v, e in w.head(3).iter_rows())
        parts.append(f"{f}: {top}")
    return "mixed; " + "; ".join(parts)
