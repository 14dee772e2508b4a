"""Counting kernels of the share history: members sharing per notice day, join cohorts per year, the annual cap.

Difference arrays over notice indices found with ``searchsorted``; no loop over
members. Used by :func:`engine.shares.history.share_history`.
"""

from __future__ import annotations

import numpy as np


def notice_index(notice_days: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``searchsorted(T, days, 'left')``: the index of the first notice day ``T >= day`` of each day number.

    Notes
    -----
    Day numbers are integers, so the index of every day between the first notice and the day after the last
    is tabulated once (``table[d - T_0] = searchsorted(T, d)``) and read at each day clipped to that range
    (a day before ``T_0`` has index 0, a day after the last notice ``P``): a gather instead of a binary
    search per member row, same result. A calendar spanning more days than there are rows is searched directly.
    """
    T = np.asarray(notice_days, dtype=np.int64)
    d = np.asarray(days, dtype=np.int64)
    if T.size == 0:
        return np.zeros(d.size, dtype=np.int64)
    lo, hi = int(T[0]), int(T[-1]) + 1
    if hi - lo > d.size + 100_000:
        return np.searchsorted(T, d, side="left")
    table = np.searchsorted(T, np.arange(lo, hi + 1, dtype=np.int64), side="left")
    return table[np.clip(d, lo, hi) - lo]


def sharing_counts(
    join_days: np.ndarray,
    exit_days: np.ndarray,
    notice_days: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    pool: np.ndarray | None = None,
    n_pools: int = 1,
    delay_days: int = 0,
) -> np.ndarray:
    """Members sharing (``join + delay <= d < exit``) on each notice day, per pool.

    A difference array over notice indices (:func:`notice_index`, ``searchsorted``):
    O(n + P) for n member rows and P notice dates, no loop over members.

    Returns
    -------
    ndarray of shape (n_pools, P), float64 counts (sums of ``weights``).

    Notes
    -----
    ``a = searchsorted(T, join + delay, 'left')`` is the first notice with
    ``T >= join + delay``; ``e = searchsorted(T, exit, 'left')`` the first with
    ``T >= exit``. A member counts on notices ``a <= t < e``: +w at a, -w at
    max(a, e), cumulative sum.
    """
    T = np.asarray(notice_days, dtype=np.int64)
    P = T.size
    w = np.ones(join_days.size) if weights is None else np.asarray(weights, dtype=np.float64)
    code = np.zeros(join_days.size, dtype=np.int64) if pool is None else np.asarray(pool, dtype=np.int64)
    a = notice_index(T, np.asarray(join_days, dtype=np.int64) + delay_days)
    e = notice_index(T, exit_days)
    e = np.maximum(a, e)
    size = n_pools * (P + 1)
    diff = np.bincount(code * (P + 1) + a, w, minlength=size) - np.bincount(code * (P + 1) + e, w, minlength=size)
    return np.cumsum(diff.reshape(n_pools, P + 1), axis=1)[:, :P]


def cohort_counts(
    first: np.ndarray,
    stop: np.ndarray,
    lo: int,
    hi: int,
    weights: np.ndarray,
    pool: np.ndarray,
    n_pools: int,
) -> np.ndarray:
    """``n[p, k, t]`` for one calendar year (notices ``lo <= t < hi``, local indices).

    Parameters
    ----------
    first, stop : notice indices of the member rows, found once for every year:
        ``first = searchsorted(T, join, 'left')`` (the first notice with ``T >= join``) and
        ``stop = searchsorted(T, exit, 'left')`` (the first notice with ``T >= exit``).
    lo, hi : the year's notices.
    weights, pool, n_pools : member counts of the rows, their pool codes and the number of pools.

    Notes
    -----
    Members of pool p sharing on notice t whose sharing this year began at
    notice k. A member sharing on notices ``[a, e)`` is in cohort
    ``k = max(a, lo)`` on ``t in [k, min(e, hi))``: a two-dimensional
    difference array, no loop over members.
    """
    L = hi - lo
    k = np.maximum(first, lo)
    end = np.minimum(stop, hi)
    ok = np.flatnonzero(k < end)
    kk, ee, ww, pp = k[ok] - lo, end[ok] - lo, weights[ok], pool[ok]
    size = n_pools * L * (L + 1)
    base = pp * L * (L + 1) + kk * (L + 1)
    diff = np.bincount(base + kk, ww, minlength=size) - np.bincount(base + ee, ww, minlength=size)
    return np.cumsum(diff.reshape(n_pools, L, L + 1), axis=2)[:, :, :L]


def annual_cap_split(
    shares: np.ndarray, cohorts: np.ndarray, cap: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the annual cap per join cohort within one calendar year.

    Parameters
    ----------
    shares : (pools, L) capped share per member in the year's periods (0 where undefined).
    cohorts : (pools, L, L) from :func:`cohort_counts`.
    cap : annual cap per member (None = no cap).

    Returns
    -------
    cumulative_full, paid_full, platform_total, members_paid_total, each (pools, L):
    the year-to-date share and the payment of a member sharing since the year's
    first notice, the platform's total annual-cap payment, and the members' total.

    Notes
    -----
    For cohort k (first notice shared this year), cumulative share
    ``C_k(t) = S(t) - S(k-1)`` with S the year-to-date cumulative sum; it pays
    ``min(A, C_k(t)) - min(A, C_k(t-1))`` in period t (exactly s_t while
    ``C_k(t) <= A``) and the platform pays the rest.
    """
    A = np.inf if cap is None else float(cap)
    L = shares.shape[1]
    S = np.cumsum(shares, axis=1)
    S_before = S - shares
    t = np.arange(L)
    upper = t[:, None] <= t[None, :]  # [k, t]: cohort k exists at t
    C = S[:, None, :] - S_before[:, :, None]  # C[p, k, t] = S(t) - S(k-1)
    C_prev = C - shares[:, None, :]
    paid = np.where(C <= A, shares[:, None, :], np.maximum(0.0, A - C_prev))
    paid = np.where(upper[None], paid, 0.0)
    platform_each = np.where(upper[None], shares[:, None, :] - paid, 0.0)
    platform_total = np.einsum("pkt,pkt->pt", cohorts, platform_each)
    members_total = np.einsum("pkt,pkt->pt", cohorts, paid)
    return S, paid[:, 0, :], platform_total, members_total


def annual_cap_pass(
    s0: np.ndarray,
    year_start: np.ndarray,
    jd: np.ndarray,
    xd: np.ndarray,
    T: np.ndarray,
    wt: np.ndarray,
    code: np.ndarray,
    n_pools: int,
    annual_cap: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the annual cap one calendar year at a time: cumulative share, paid, platform, members' total, cumulative paid."""
    P = T.size
    cum_full, paid_full, plat_ac, members_paid = (np.zeros_like(s0) for _ in range(4))
    starts = np.unique(year_start)
    first = notice_index(T, jd)  # notice indices once, for every year
    stop = notice_index(T, xd)
    for i, lo in enumerate(starts):  # one calendar year at a time: memory pools x L^2, L <= 31
        hi = int(starts[i + 1]) if i + 1 < starts.size else P
        cohorts = cohort_counts(first, stop, int(lo), hi, wt, code, n_pools)
        blocks = annual_cap_split(s0[:, lo:hi], cohorts, annual_cap)
        for arr, blk in zip((cum_full, paid_full, plat_ac, members_paid), blocks, strict=True):
            arr[:, lo:hi] = blk
    cum_paid = np.zeros_like(paid_full)
    for i, lo in enumerate(starts):
        hi = int(starts[i + 1]) if i + 1 < starts.size else P
        cum_paid[:, lo:hi] = np.cumsum(paid_full[:, lo:hi], axis=1)
    return cum_full, paid_full, plat_ac, members_paid, cum_paid
