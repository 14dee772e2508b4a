"""Choice of the number of risk groups K: seeded k-fold held-out Poisson deviance with a one-standard-error rule.

What is a fold's unit when the data are cells? A cell (one row: one combination
of every key, period included) sums the exposure and claims of many members, so
members cannot be dealt to folds one by one; the cell is kept whole in one fold.
Under the Poisson model the claims of different cells are independent, so a
held-out cell's claims are new data even when other cells of the same feature
combination (other periods, ages of an ``adjust_for`` key, duration bands) are in
the training folds: a split that only carves out noise does not predict them.
Dealing whole feature combinations to folds instead would leave a held-out
combination without any training data, and a group defined by a few
combinations (``city_tier in {4,5} & channel in {subsidy}``) could never be
validated. When each feature combination is a single cell (one period, no other
key), the two coincide; pass cells by period.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from engine.segmentation.metrics import poisson_deviance


def cell_folds(n_cells: int, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..n_folds-1) of every cell: a seeded random permutation dealt round-robin (balanced sizes)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(n_cells, np.int64)
    folds[rng.permutation(n_cells)] = np.arange(n_cells) % n_folds
    return folds


def cv_deviance(
    units: Any,
    cell_unit: np.ndarray,
    cell_d: np.ndarray,
    cell_m: np.ndarray,
    cell_mu: np.ndarray,
    partition: Callable[[Any], dict[int, np.ndarray]],
    ks: list[int],
    *,
    n_folds: int,
    seed: int,
    keep_prediction: bool = False,
) -> np.ndarray:
    """Held-out Poisson deviance per fold and K, shape (n_folds, len(ks)).

    Parameters
    ----------
    units : :class:`engine.segment_tree.Units` of the whole data.
    cell_unit, cell_d, cell_m, cell_mu : per cell: its unit, observed claims, measure
        (exposure x base rate) and the model's predicted claims.
    partition : fits the segmentation on training units (sums over the training
        cells only) and returns ``{k: group label of every unit}``.
    ks : the K values to score; a fold whose fit stops below K scores its largest fit.
    keep_prediction : the training units keep the measure and predicted claims of
        every cell (the cluster method partitions the model's predictions); only
        the held-out observed claims are hidden.

    Notes
    -----
    For fold f and K, group g's rate is rho_g = D_g / M_g over the training cells,
    and the fold's score is the Poisson deviance
    2 sum_c [D_c log(D_c / mu_c) - (D_c - mu_c)], mu_c = M_c rho_g(c), over the
    held-out cells c (M = exposure, or exposure x base rate with ``adjust_for``).
    """
    folds = cell_folds(cell_d.size, n_folds, seed)
    out = np.zeros((n_folds, len(ks)))
    n = units.n
    masks = units.extra.setdefault("_masks", {})
    for f in range(n_folds):
        test = folds == f
        keep = ~test

        def sums(x: np.ndarray, w: np.ndarray = keep) -> np.ndarray:
            return np.bincount(cell_unit, weights=x * w, minlength=n)

        d_tr, m_tr = sums(cell_d), sums(cell_m)
        tr = dataclasses.replace(
            units, D=d_tr, extra={"_masks": masks},  # rule masks depend on the feature values only: shared
            M=units.M if keep_prediction else m_tr,
            E=units.E,  # not used by the fits
            mu=units.mu if keep_prediction or units.mu is None else sums(cell_mu),
        )
        parts = partition(tr)
        avail = sorted(parts)
        d_te, m_te, u_te = cell_d[test], cell_m[test], cell_unit[test]  # the held-out cells, for every K
        for j, k in enumerate(ks):
            kk = max([a for a in avail if a <= k], default=avail[0])
            lab = parts[kk]
            n_g = int(lab.max()) + 1
            d = np.bincount(lab, weights=d_tr, minlength=n_g)
            m = np.bincount(lab, weights=m_tr, minlength=n_g)
            rho = d / np.where(m > 0, m, 1.0)
            mu = np.maximum(m_te * rho[lab[u_te]], 1e-12)
            out[f, j] = poisson_deviance(d_te, mu)
    return out


def one_se_choice(dev: np.ndarray, ks: list[int]) -> tuple[int, pl.DataFrame]:
    """The smallest K whose held-out deviance is within one standard error of the best K.

    Notes
    -----
    CV(K) = sum over folds of the held-out deviance (every unit is held out once).
    K* = argmin CV. The standard error is that of the paired difference to K*:
    se(K) = sqrt(F) sd_f(dev_f(K) - dev_f(K*)) over the F folds, which removes the
    fold-to-fold variation common to every K (which units a fold holds). The
    chosen K is the smallest with CV(K) - CV(K*) <= se(K). ``cv_se`` (sqrt(F) sd_f
    of dev_f(K)) is reported too.
    """
    nf = dev.shape[0]
    tot = dev.sum(0)
    best = int(np.argmin(tot))
    ddof = 1 if nf > 1 else 0
    se = np.sqrt(nf) * dev.std(0, ddof=ddof)
    se_diff = np.sqrt(nf) * (dev - dev[:, [best]]).std(0, ddof=ddof)
    ok = tot - tot[best] <= se_diff + 1e-9 * np.abs(tot[best])
    choice = int(np.flatnonzero(ok)[0])
    table = pl.DataFrame({
        "k": ks, "cv_deviance": tot, "cv_se": se, "cv_se_diff": se_diff,
        "cv_gain": tot[0] - tot if ks[0] == 1 else np.full(len(ks), np.nan),
        "cv_best": np.arange(len(ks)) == best, "chosen": np.arange(len(ks)) == choice,
    }, schema_overrides={"k": pl.Int64})
    return int(ks[choice]), table


def selection_text(table: pl.DataFrame, k: int, n_folds: int, *, why_no_tree: str | None = None,
                   max_groups: int | None = None) -> str:
    """One sentence saying why K groups were chosen, with the numbers (no split: why not)."""
    if why_no_tree is not None:
        return f"one group: {why_no_tree}"
    t = {r["k"]: r for r in table.iter_rows(named=True)}
    best = next(r for r in t.values() if r["cv_best"])
    one = t.get(1)
    if k == 1 and one is not None:
        return (f"one group: no split pays off out of sample. {n_folds}-fold held-out Poisson deviance "
                f"K=1 {one['cv_deviance']:.1f}, lowest K={best['k']} {best['cv_deviance']:.1f}: a saving of "
                f"{one['cv_deviance'] - best['cv_deviance']:.1f}, within one standard error "
                f"({one['cv_se_diff']:.1f})")
    r = t[k]
    base = f"K=1 {one['cv_deviance']:.1f}, " if one is not None else ""
    text = f"K={k}: {n_folds}-fold held-out Poisson deviance {base}"
    if k == best["k"]:
        text += f"lowest at K={k} {r['cv_deviance']:.1f}"
        prev = t.get(k - 1)
        if prev is not None:
            text += (f"; K={k - 1} is {prev['cv_deviance'] - r['cv_deviance']:.1f} higher, more than one "
                     f"standard error ({prev['cv_se_diff']:.1f})")
        if max_groups is not None and k == max_groups:
            text += "; the deviance still falls at the largest K tried (max_groups): more groups may pay off"
        return text
    return (text + f"K={k} {r['cv_deviance']:.1f}, lowest at K={best['k']} {best['cv_deviance']:.1f}; K={k} is "
            f"the smallest K within one standard error of it (se {r['cv_se_diff']:.1f})")


def claims_for_rel_width(max_width: float, alpha: float = 0.05) -> float:
    """Fewest claims D whose rate interval (Garwood, level 1 - alpha) has relative width <= ``max_width``.

    Notes
    -----
    With rate D / E the exact interval is [chi2(a/2, 2D), chi2(1 - a/2, 2D + 2)] / (2E),
    so its width relative to the rate, (chi2(1 - a/2, 2D + 2) - chi2(a/2, 2D)) / (2D),
    depends on D only and falls with D (about 2 z / sqrt(D)); found by bisection.
    E.g. 0.5 -> 66 claims, 0.6 -> 47 claims at 95%.
    """
    from scipy.stats import chi2

    def width(d: float) -> float:
        return float((chi2.ppf(1 - alpha / 2, 2 * d + 2) - chi2.ppf(alpha / 2, 2 * d)) / (2 * d))

    lo, hi = 1.0, 1.0
    while width(hi) > max_width:
        lo, hi = hi, hi * 2
        if hi > 1e9:
            break
    while hi - lo > 0.5:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if width(mid) > max_width else (lo, mid)
    return float(np.ceil(hi))
