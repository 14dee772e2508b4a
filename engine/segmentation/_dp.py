"""Optimal exposure-weighted partition of a 1-D risk axis by dynamic programming (Fisher-Jenks).

Units are sorted by their predicted rate; a K-group partition into contiguous runs
of that order minimises either the weighted within-group squared deviation of the
log-rate or the Poisson deviance of replacing each unit's predicted rate by its
group's rate. Both are Bregman-type losses for which the optimal partition of a
line is contiguous in the sorted order (Fisher 1958), so the DP is the global
optimum.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError


def segment_costs(x: np.ndarray, w: np.ndarray, mu: np.ndarray, loss: str) -> np.ndarray:
    """Matrix ``C[i, j]`` = loss of one group holding sorted units ``i..j-1`` (``i < j``; else inf).

    A group without weight (exposure) costs inf.

    Notes
    -----
    ``sse``: sum w (x - xbar)^2 = S2 - S1^2 / W with S1 = sum w x, S2 = sum w x^2,
    x = log predicted rate. ``deviance``: with expected claims mu_u = w_u r_u,
    2 [sum mu log r - Mu log(Mu / W)], the Poisson deviance of the predicted counts
    against the group's pooled rate Mu / W (the sum of mu - W r_g terms is zero).
    """
    n = x.size
    idx_i = np.arange(n + 1)[:, None]
    idx_j = np.arange(n + 1)[None, :]
    if loss == "sse":
        c0 = np.concatenate([[0.0], np.cumsum(w)])
        c1 = np.concatenate([[0.0], np.cumsum(w * x)])
        c2 = np.concatenate([[0.0], np.cumsum(w * x * x)])
        W = c0[None, :] - c0[:, None]
        S1 = c1[None, :] - c1[:, None]
        S2 = c2[None, :] - c2[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            C = S2 - np.where(W > 0, S1 * S1 / np.where(W > 0, W, 1.0), 0.0)
    elif loss == "deviance":
        r = np.exp(x)
        a = np.concatenate([[0.0], np.cumsum(np.where(mu > 0, mu * np.log(np.where(r > 0, r, 1.0)), 0.0))])
        m = np.concatenate([[0.0], np.cumsum(mu)])
        c0 = np.concatenate([[0.0], np.cumsum(w)])
        A = a[None, :] - a[:, None]
        Mu = m[None, :] - m[:, None]
        W = c0[None, :] - c0[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            C = 2.0 * (A - np.where(Mu > 0, Mu * np.log(np.where(Mu > 0, Mu, 1.0) / np.where(W > 0, W, 1.0)), 0.0))
    else:
        raise ConfigError(f"cluster_loss: '{loss}' is not one of 'deviance', 'sse'")
    C = np.maximum(C, 0.0)
    C[idx_j <= idx_i] = np.inf
    C[W <= 0] = np.inf  # a group needs exposure
    return C


def dp_partition(
    x: np.ndarray,
    w: np.ndarray,
    mu: np.ndarray,
    d: np.ndarray,
    kmax: int,
    *,
    floor: float = 0.0,
    loss: str = "deviance",
) -> dict[int, tuple[float, list[int]]]:
    """Optimal partitions of the sorted axis into k = 1..kmax contiguous groups.

    Parameters
    ----------
    x : log predicted rate per unit, sorted ascending.
    w : exposure measure per unit (weights).
    mu : predicted claims per unit (used by the deviance loss).
    d : observed claims per unit; every group must hold at least ``floor`` of them.

    Returns
    -------
    dict k -> (loss, boundaries) where boundaries are the start indices of groups
    2..k (so group g holds units ``b[g-1]:b[g]`` with b = [0, *boundaries, n]).
    Only feasible k are present.

    Notes
    -----
    F_k(j) = min_{i<j} F_{k-1}(i) + C(i, j), F_0(0) = 0; infeasible segments
    (observed claims below ``floor``) cost +inf. O(kmax n^2) time, O(n^2) memory,
    vectorised over i.
    """
    n = x.size
    C = segment_costs(x, w, mu, loss)
    cd = np.concatenate([[0.0], np.cumsum(d)])
    Dseg = cd[None, :] - cd[:, None]
    C[Dseg < floor - 1e-9] = np.inf
    F = np.full(n + 1, np.inf)
    F[0] = 0.0
    back = []
    out: dict[int, tuple[float, list[int]]] = {}
    for k in range(1, kmax + 1):
        tot = F[:, None] + C
        arg = np.argmin(tot, axis=0)
        Fk = tot[arg, np.arange(n + 1)]
        back.append(arg)
        F = Fk
        if np.isfinite(F[n]):
            bounds = []
            j = n
            for kk in range(k, 0, -1):
                i = int(back[kk - 1][j])
                bounds.append(i)
                j = i
            bounds = sorted(bounds)[1:]
            out[k] = (float(F[n]), bounds)
    return out


def isotonic_by_profile(x: np.ndarray, w: np.ndarray, age: np.ndarray, prof: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing in age) fit of x within each profile."""
    from sklearn.isotonic import IsotonicRegression

    out = x.copy()
    for p in np.unique(prof):
        m = prof == p
        if m.sum() > 1:
            out[m] = IsotonicRegression().fit(age[m], x[m], sample_weight=np.maximum(w[m], 1e-12)).predict(age[m])
    return out
