"""K selection for :class:`engine.segmentation.RiskSegmenter`: cross-validation, or why no split is made.

Sets on the segmenter: ``cv_`` (the cross-validation table, one row per K, or None),
``cv_k_`` (the K it chooses, or None) and ``selection_`` (one sentence with the numbers).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from engine.segment_cv import cv_deviance, one_se_choice, selection_text


def why_no_split(seg: Any, units: Any, floor: float) -> str:
    """Why the full data allow no second group: too few claims for the floor, or no split gains enough."""
    from engine.segment_tree import _candidates

    total = float(units.D.sum())
    if total < 2 * floor:
        return (f"the data hold {total:.0f} claims and each group needs at least {floor:.0f} "
                f"({seg._floor_source()})")
    if seg.method != "tree":
        return f"no partition of the predicted risk leaves {floor:.0f} claims in every group ({seg._floor_source()})"
    cands = _candidates(units, np.ones(units.n, bool), floor, {}, seg.max_clauses, seg.lookahead)
    if not cands:
        return f"no split leaves at least {floor:.0f} claims on both sides ({seg._floor_source()})"
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
            return seg._tree(u, f_floor, age)[0]
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
