"""Death-spiral rule on a plan's membership and share paths.

A plan is in a death spiral when its membership falls and its share rises *without
converging*: exits do not slow down and the share's rise does not slow down (or the share
already sits well above the sustainable share). The rule reads only the two paths (and,
optionally, the sustainable share), looks back at most one window and needs no full window
of history, so a collapse that completes within the first year is caught.
"""

from __future__ import annotations

import numpy as np

from engine.errors import ConfigError


def _decline_starts(M: np.ndarray) -> np.ndarray:
    """r[t]: first period of the uninterrupted fall of M that ends at t (r[t] = t if M_t >= M_{t-1})."""
    r = np.zeros(M.size, dtype=np.int64)
    for t in range(1, M.size):
        r[t] = r[t - 1] if M[t] < M[t - 1] else t
    return r


def _rate(x: np.ndarray, i: int, j: int) -> float:
    """Mean log change per period from i to j (j > i); -inf/inf guarded by positive paths."""
    return float(np.log(x[j] / x[i]) / (j - i))


def spiral_period(
    members: np.ndarray,
    share: np.ndarray,
    sustainable: np.ndarray | float | None = None,
    window: int = 12,
    members_drop: float = 0.05,
    share_rise: float = 0.05,
    overshoot: float = 0.10,
    persistence: float = 0.9,
    min_periods: int = 3,
) -> int | None:
    """First period at which the death-spiral rule holds, else None.

    Parameters
    ----------
    members, share : array (H,)
        Members sharing and share per member, period by period (positive).
    sustainable : array (H,), float or None
        The sustainable share (at each period's incidence level); None: condition 4 uses
        the slowing test only.
    window : int
        W, the longest look-back in periods (default one year of monthly periods).
    members_drop, share_rise : float
        Minimum relative fall of membership and rise of the share over the span.
    overshoot : float
        A share above (1 + overshoot) x the sustainable share counts as not converging.
    persistence : float
        rho: a rate that keeps at least rho of its earlier pace counts as "not slowing".
    min_periods : int
        k, the shortest span judged (periods of uninterrupted decline).

    Returns
    -------
    The first t (0-based) at which all four conditions hold, or None.

    Notes
    -----
    At period t let a = max(r_t, t - W), where r_t is the first period of the
    uninterrupted fall of membership ending at t (M_s < M_{s-1} for s = r_t + 1 .. t), and
    c = a + (t - a) // 2. The span [a, t] is judged when t - a >= k. With per-period log
    rates g(x; i, j) = ln(x_j / x_i) / (j - i), the spiral holds at t when

    1. membership fell: M_t < (1 - members_drop) M_a (and fell in every period of [a, t]);
    2. the share rose: S_t > (1 + share_rise) S_a;
    3. exits are not slowing: g(M; c, t) <= rho g(M; a, c) (the recent fall is at least
       rho times as fast as the earlier one; a pool shrinking to a stable core fails here);
    4. the share is not converging: S_t > (1 + overshoot) S*_t, or
       g(S; c, t) >= rho g(S; a, c) (a share rising towards its sustainable level, its
       rise decaying, fails here).

    Conditions 3 and 4 together are the feedback of a spiral: a run-off at a constant lapse
    rate (3 holds) with the share converging (4 fails) is not one, nor is a share that rises
    while exits slow down. The rule is causal (period t uses the paths up to t only), so
    projecting to t - 1 cannot detect it earlier. Geometric paths (constant rates) satisfy
    3 and 4 exactly: a collapse from 1M to 0.17M members with the share rising from 30 to
    109 in 12 monthly periods is detected at t = k.
    """
    M = np.asarray(members, dtype=np.float64)
    S = np.asarray(share, dtype=np.float64)
    if M.shape != S.shape or M.ndim != 1:
        raise ConfigError(f"spiral: members {M.shape} and share {S.shape} must be paths of the same length")
    if window < 2 or min_periods < 2 or not 0.0 < persistence <= 1.0:
        raise ConfigError("spiral: window >= 2, min_periods >= 2 and 0 < persistence <= 1 are required")
    H = M.size
    sus = None if sustainable is None else np.broadcast_to(np.asarray(sustainable, dtype=np.float64), (H,))
    ok = (M > 0) & (S > 0) & np.isfinite(M) & np.isfinite(S)
    starts = _decline_starts(M)
    for t in range(min_periods, H):
        a = max(int(starts[t]), t - window)
        if t - a < min_periods or not ok[a:t + 1].all():
            continue
        c = a + (t - a) // 2
        if not (M[t] < (1.0 - members_drop) * M[a] and S[t] > (1.0 + share_rise) * S[a]):
            continue
        if _rate(M, c, t) > persistence * _rate(M, a, c):  # both negative: the recent fall is slower
            continue
        over = sus is not None and S[t] > (1.0 + overshoot) * sus[t]
        if over or _rate(S, c, t) >= persistence * _rate(S, a, c):
            return t
    return None


__all__ = ["spiral_period"]
