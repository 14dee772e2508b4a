"""Existence checks for a Poisson GLM fit: separation (an infinite MLE) and numerically zero fitted rates.

A Newton fit can *look* converged when a coefficient runs to minus infinity: once the
fitted mean of the cells it drives underflows, the step on it vanishes. These checks do
not rely on the step size; :class:`engine.glm.PoissonGLM` calls :func:`divergence` after
every fit and reports ``converged_ = False`` with a warning naming the terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: a fitted rate below this fraction of the crude overall rate is treated as diverged
ZERO_RATE_RATIO = 1e-10
#: tolerance of the separation linear programme
_LP_TOL = 1e-7
#: smallest / largest singular value of the design on the cells with claims above which it has full rank
_RANK_RATIO = 1e-6


def separated_direction(X: np.ndarray, claims: np.ndarray, free: np.ndarray) -> np.ndarray | None:
    """A direction along which the Poisson log-likelihood rises without bound, or None.

    Parameters
    ----------
    X : design with the intercept as first column (cells x coefficients), full column rank.
    claims : claims per cell.
    free : boolean per coefficient, True when it is not penalised (a ridge keeps the
        penalised ones finite, so they are held at 0 in the search).

    Returns
    -------
    The direction v (one entry per coefficient) or None when the MLE exists.

    Notes
    -----
    Along b + s v the log-likelihood is sum_c [D_c s x_c'v - mu_c exp(s x_c'v)] + const. It
    increases for ever as s -> infinity exactly when x_c'v = 0 on every cell with claims
    (D_c > 0), x_c'v <= 0 on every cell without claims and x_c'v < 0 on at least one of
    them: the MLE does not exist (quasi-complete separation; e.g. a factor level or an
    interaction cell without claims, or a spline basis whose support has no claims). We
    solve the linear programme max sum_{D_c = 0} -x_c'v subject to X_P v = 0 and
    -1 <= X_Z v <= 0 (P, Z: cells with and without claims); a positive optimum is a
    separating direction. With full column rank the programme is bounded.
    """
    from scipy.optimize import linprog

    zero = claims <= 0
    if not zero.any() or not free.any():
        return None
    Xz, Xp = X[zero], X[~zero]
    if _full_rank(Xp[:, free]):  # X_P v = 0 only for v = 0: the optimum is 0 (no linear programme needed)
        return None
    bounds = [(None, None) if f else (0.0, 0.0) for f in free]
    res = linprog(c=Xz.sum(axis=0), A_ub=np.vstack([Xz, -Xz]),
                  b_ub=np.concatenate([np.zeros(len(Xz)), np.ones(len(Xz))]),
                  A_eq=Xp if len(Xp) else None, b_eq=np.zeros(len(Xp)) if len(Xp) else None,
                  bounds=bounds, method="highs")
    if res.status != 0 or -res.fun <= _LP_TOL:
        return None
    v = np.asarray(res.x, dtype=float)
    v[np.abs(v) < _LP_TOL] = 0.0
    return v


def _full_rank(A: np.ndarray) -> bool:
    """True when ``A`` (rows x columns) has full column rank with a wide margin.

    The smallest singular value must exceed ``_RANK_RATIO`` x the largest: then only v = 0
    solves A v = 0, and the separation programme's optimum is 0. A design near rank
    deficiency (ratio below the margin) goes to the linear programme as before.
    """
    if A.shape[0] < A.shape[1] or A.shape[1] == 0:
        return False
    s = np.linalg.svd(A, compute_uv=False)
    return bool(np.all(np.isfinite(s))) and s[-1] > _RANK_RATIO * s[0]


def divergence(
    X: np.ndarray, claims: np.ndarray, exposure: np.ndarray, beta: np.ndarray, free: np.ndarray,
    names: Sequence[str],
) -> str | None:
    """Why a fitted Poisson GLM has no finite MLE (a message naming the terms), or None.

    Notes
    -----
    Two checks: (1) :func:`separated_direction` (exact, the MLE does not exist); (2) a cell
    whose fitted rate exp(x_c'b) is below ``ZERO_RATE_RATIO`` x the crude rate sum D / sum E
    (a coefficient running away numerically, whatever the step size says).
    """
    v = separated_direction(X, claims, free)
    if v is not None:
        terms = [n for n, x in zip(names, v, strict=True) if x != 0.0]
        n_cells = int(np.sum((X[claims <= 0] @ v) < -_LP_TOL))
        return (f"the MLE does not exist: {n_cells} cell(s) without claims can be fitted with a rate -> 0 "
                f"along the terms {terms[:8]}")
    crude = claims.sum() / exposure.sum()
    with np.errstate(over="ignore", under="ignore"):
        ratio = np.exp(X @ beta) / crude
    if np.any(ratio < ZERO_RATE_RATIO):
        return (f"{int(np.sum(ratio < ZERO_RATE_RATIO))} cell(s) have a fitted rate numerically 0 (a coefficient "
                "running away, or a curve extrapolated far beyond its claims)")
    return None


__all__ = ["ZERO_RATE_RATIO", "divergence", "separated_direction"]
