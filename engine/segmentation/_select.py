"""Claims floor and K selection for :class:`engine.segmentation.RiskSegmenter`: cross-validation, or why no split.

Sets on the segmenter: ``cv_`` (the cross-validation table, one row per K, or None),
``cv_k_`` (the K it chooses, or None) and ``selection_`` (one sentence with the numbers).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from engine.segmentation._cv import cv_deviance, one_se_choice, selection_text
from engine.segmentation._search import tree_partitions


def floor_source(seg: Any) -> str:
    """The parameters that set the claims floor, for messages."""
    if seg.min_expected_claims is not None:
        return f"min_expected_claims={seg.min_expected_claims}"
    return f"min_claims={seg.min_claims}" + (f", max_rel_width={seg.max_rel_width}" if seg.max_rel_width else "")


def claims_floor(seg: Any) -> float:
    """Claims floor per group over the fitting data (credibility), from min_claims / max_rel_width / aliases.

    Notes
    -----
    floor = max(min_claims, D(max_rel_width), 1082 z^2) with D(w) the fewest claims whose
    95% Garwood interval has relative width <= w (:func:`engine.segmentation._cv.claims_for_rel_width`)
    and z = ``min_credibility``. The deprecated ``min_expected_claims`` n replaces min_claims
    by n x 12 T / period_months (T = window years), with a DeprecationWarning.
    """
    from engine.conventions import FULL_CREDIBILITY_CLAIMS

    if seg.min_expected_claims is not None:
        warnings.warn("min_expected_claims is deprecated: a risk group needs credibility over the data "
                      "(min_claims, max_rel_width); share stability per period is a plan-design target "
                      "(engine.plans.stability.plan_stability)", DeprecationWarning, stacklevel=3)
        floor = seg.min_expected_claims * 12.0 * seg.window_years_ / seg.period_months
    else:
        floor = float(seg.min_claims)
    if seg.max_rel_width is not None:
        from engine.segmentation._cv import claims_for_rel_width

        floor = max(floor, claims_for_rel_width(seg.max_rel_width))
    if seg.min_credibility:
        floor = max(floor, FULL_CREDIBILITY_CLAIMS * seg.min_credibility**2)
    return float(floor)


def group_notes(seg: Any, units: Any, table: Any) -> list[str]:
    """Per group: which other group's rate it cannot be told from, and whether one rule could hold both.

    Notes
    -----
    Groups g and h with claims D and exposure E have equal rates when, given
    D_g + D_h, D_g ~ Binomial(D_g + D_h, E_g / (E_g + E_h)); the note names the
    most similar other group when this exact two-sided test gives p > 0.05, and says
    whether their union is one conjunction (``engine.segmentation._merge.conjunction_union``)
    or would need two, i.e. why the groups are kept apart (rules stay marketable).
    """
    from scipy.stats import binomtest

    from engine.segmentation._merge import conjunction_union

    k = table.height
    rules = seg.rules_ if seg.rules_ is not None and all(r is not None and len(r) == 1 for r in seg.rules_) else None
    if k < 2 or seg.method == "rules":
        return [""] * k
    d = table["claims"].to_numpy()
    e = table["exposure_years"].to_numpy()
    notes = []
    for g in range(k):
        best = None
        for h in range(k):
            if h == g or d[g] + d[h] <= 0:
                continue
            if _surely_distinguishable(int(round(d[g])), int(round(d[g] + d[h])), e[g] / (e[g] + e[h])):
                continue  # p < 0.01 by the bound: the exact test cannot give p > 0.05
            p = binomtest(int(round(d[g])), int(round(d[g] + d[h])), e[g] / (e[g] + e[h])).pvalue
            if p > 0.05 and (best is None or p > best[1]):
                best = (h, p)
        if best is None:
            notes.append("")
            continue
        h, p = best
        text = f"rate not distinguishable from G{h + 1} (p = {p:.2f})"
        if rules is not None:
            u = conjunction_union(units, rules[g][0], rules[h][0])
            text += "; one rule could hold both" if u is not None else "; together they need two rules"
        notes.append(text)
    return notes


def _surely_distinguishable(k: int, n: int, p: float) -> bool:
    """True when the exact two-sided binomial test of k successes in n at p surely gives a p-value below 0.01.

    Notes
    -----
    The two-sided p-value (scipy's ``binomtest``) sums the probabilities of the outcomes no
    more likely than k (times 1 + 1e-7), at most n + 1 of them, so
    p-value <= (n + 1) (1 + 1e-7) P(X = k) <= (n + 1) (1 + 1e-7) exp(-n KL(k/n || p)),
    with KL(q || p) = q log(q/p) + (1 - q) log((1 - q)/(1 - p)) the Chernoff bound of one
    outcome. A bound below 0.01 (a margin over the 0.05 of :func:`group_notes`) skips the
    exact test, which costs tens of distribution calls, for pairs of groups with clearly
    different rates.
    """
    if n <= 0 or not 0.0 < p < 1.0:
        return False
    q = k / n
    kl = (q * np.log(q / p) if q > 0 else 0.0) + ((1 - q) * np.log((1 - q) / (1 - p)) if q < 1 else 0.0)
    return bool(np.log(n + 1.0) + 1e-6 - n * kl < np.log(0.01))


def why_no_split(seg: Any, units: Any, floor: float) -> str:
    """Why the full data allow no second group: too few claims for the floor, or no split gains enough."""
    from engine.segmentation._tree import _candidates

    total = float(units.D.sum())
    if total < 2 * floor:
        return (f"the data hold {total:.0f} claims and each group needs at least {floor:.0f} "
                f"({floor_source(seg)})")
    if seg.method != "tree":
        return f"no partition of the predicted risk leaves {floor:.0f} claims in every group ({floor_source(seg)})"
    cands = _candidates(units, np.ones(units.n, bool), floor, {}, seg.max_clauses, seg.lookahead,
                        best_per_feature=True)
    if not cands:
        return f"no split leaves at least {floor:.0f} claims on both sides ({floor_source(seg)})"
    best = cands[0]
    return (f"the best split (on {best[1]}) improves the Poisson deviance by {best[4]:.1f}"
            + (f" ({best[0]:.1f} with its children's best splits)" if seg.lookahead else "")
            + f", below min_gain={seg.min_gain}")


def select_k(seg: Any, units: Any, parts: dict[int, np.ndarray], floor: float, age: str | None,
             cell_unit: np.ndarray, cell_d: np.ndarray, cell_m: np.ndarray, cell_mu: np.ndarray) -> None:
    """Choose K by seeded k-fold held-out Poisson deviance with the one-standard-error rule.

    Notes
    -----
    Each fold refits the segmentation (tree or cluster, same parameters) on the other
    folds' units with the claims floor scaled by (F - 1) / F, the share of the data
    it sees. The cluster method partitions the incidence model's predictions, fitted
    once on all the data, so its partitions are the same in every fold: the folds
    refit the group rates on the training cells and score the held-out cells.
    Skipped for ``rules`` (K is the user's), in the refits of the bootstrap (K is
    given) and with the deprecated ``min_marginal_gain`` (the old greedy rule); with
    ``n_groups`` the cross-validated K is still reported (``recommended_k_``).
    """
    seg.cv_, seg.cv_k_ = None, None
    ks = sorted(parts)
    if seg.method == "rules":
        seg.selection_ = f"rules plan: the user's {ks[0]} groups"
        return
    if seg.min_marginal_gain is not None:
        warnings.warn("min_marginal_gain is deprecated: K is chosen by cross-validated Poisson deviance "
                      "(n_folds) unless n_groups is given", DeprecationWarning, stacklevel=4)
        seg.selection_ = f"greedy rule (deprecated min_marginal_gain={seg.min_marginal_gain})"
        return
    if seg.n_groups is not None and getattr(seg, "_skip_cv", False):  # bootstrap refits: K is given
        seg.selection_ = f"K fixed by n_groups={seg.n_groups}"
        return
    if ks == [1]:
        seg.selection_ = "one group: " + why_no_split(seg, units, floor)
        return
    f_floor = floor * (seg.n_folds - 1) / seg.n_folds
    if seg.method == "tree":
        def fit_fold(u: Any) -> dict[int, np.ndarray]:
            return tree_partitions(seg, u, f_floor, age)[0]
    else:  # the DP partitions the model's predictions, the same in every fold: only the group rates are refitted
        def fit_fold(u: Any) -> dict[int, np.ndarray]:
            return parts
    dev = cv_deviance(units, cell_unit, cell_d, cell_m, cell_mu, fit_fold, ks, n_folds=seg.n_folds, seed=seg.random_state,
                      keep_prediction=seg.method == "cluster")
    k, table = one_se_choice(dev, ks)
    seg.cv_, seg.cv_k_ = table, k
    seg.selection_ = selection_text(table, k, seg.n_folds, max_groups=seg.max_groups)
    if seg.n_groups is not None:
        seg.selection_ = f"K fixed by n_groups={seg.n_groups} (cross-validation: {seg.selection_})"
