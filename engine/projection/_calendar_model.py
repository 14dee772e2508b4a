"""Daily cohort arithmetic behind :func:`engine.projection.calendar.project_calendar`.

Everything is an expected value on a grid of calendar days; claims are drawn per
sharing period in :mod:`engine.projection.calendar`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.conventions import DAYS_PER_YEAR

from engine.errors import ConfigError

#: days of one tenure month in the select kernel (365.25 / 12)
MONTH_DAYS = DAYS_PER_YEAR / 12.0


def per_day(value: float | Sequence[float] | np.ndarray, n_days: int, what: str) -> np.ndarray:
    """A scalar or an array of one value per day of the grid, as float64 (n_days,); later days are ignored."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n_days, float(a))
    elif a.ndim == 1 and a.size > n_days:  # e.g. a curve to 31 Dec, the last notice on the 28th
        a = a[:n_days]
    if a.shape != (n_days,):
        raise ConfigError(f"{what}: expected one value per day ({n_days}), got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ConfigError(f"{what}: values must be finite and >= 0")
    return a


def daily_hazard(lapse_annual: np.ndarray) -> np.ndarray:
    """Daily exit probability h = 1 - (1 - q)^(1 / 365.25) from annual lapse rates q in [0, 1)."""
    if np.any(lapse_annual >= 1.0):
        raise ConfigError("lapse: annual lapse rates must be below 1")
    return -np.expm1(np.log1p(-lapse_annual) / DAYS_PER_YEAR)


def select_kernel(select: Any, n_days: int, waiting_days: int) -> tuple[np.ndarray, float]:
    """k(tau) = [tau >= waiting] x sel(completed months of tau days) for tau = 0..n_days-1, and sel_ultimate.

    Notes
    -----
    A tenure month is 365.25 / 12 days here (the kernel must not depend on the join date
    for the convolution); ``select`` is anything :func:`engine.estimators._select_table.select_table`
    reads, or None (factor 1).
    """
    tau = np.arange(n_days)
    if select is None:
        sel, ult = np.ones(n_days), 1.0
    else:
        from engine.estimators._select_table import factor_at, select_table

        t = select_table(select)
        sel = factor_at(t, np.floor(tau / MONTH_DAYS))
        ult = float(t["factor"][-1])
    return np.where(tau >= waiting_days, sel, 0.0), ult


def cohort_paths(
    pre: np.ndarray, joiners: np.ndarray, hazard: np.ndarray, kernel: np.ndarray, waiting_days: int,
    sel_ultimate: float,
) -> dict[str, np.ndarray]:
    """Expected daily paths per group: members, eligible, incurred-claims weight, lapses.

    Parameters
    ----------
    pre : (G,) members on day 0, seasoned (past the wait, select worn off).
    joiners : (G, D) joiners per group and day (they share from their join day).
    hazard : (D,) daily exit probability; h[0] is not used (day 0 is the start).
    kernel : (D,) select kernel k(tau), 0 inside the waiting period.

    Returns
    -------
    dict with (G, D) arrays ``members``, ``eligible``, ``risk`` (sum over members of their
    select factor: expected claims on day d = rate x risk / 365.25) and ``lapses``.

    Notes
    -----
    C_d = prod_{k=1..d} (1 - h_k) (C_0 = 1); a member who joined on day j is present on
    day d >= j with probability C_d / C_j. With x_j = J_j / C_j:
    M_d = C_d (pre + sum_{j<=d} x_j), E_d = C_d (pre + sum_{j<=d-w} x_j),
    risk_d = C_d (pre sel_ult + sum_j x_j k(d - j)) (a convolution), lapses_d = M_{d-1} h_d.
    """
    h = hazard.copy()
    h[0] = 0.0
    C = np.exp(np.cumsum(np.log1p(-h)))
    x = joiners / C[None, :]
    cx = np.cumsum(x, axis=1)
    D = C.size
    M = C[None, :] * (pre[:, None] + cx)
    shifted = np.zeros_like(cx)
    if waiting_days < D:
        shifted[:, waiting_days:] = cx[:, :D - waiting_days]
    E = C[None, :] * (pre[:, None] + shifted)
    conv = np.stack([np.convolve(row, kernel)[:D] for row in x]) if x.size else x
    risk = C[None, :] * (pre[:, None] * sel_ultimate + conv)
    lapses = np.zeros_like(M)
    lapses[:, 1:] = M[:, :-1] * h[None, 1:]
    return {"members": M, "eligible": E, "risk": risk, "lapses": lapses}


def paid_by_day(incurred: np.ndarray, pre_daily: np.ndarray, lag_days: int) -> np.ndarray:
    """Claims paid on day d = incurred on day d - lag; before day 0 the seasoned members' steady rate."""
    G, D = incurred.shape
    out = np.empty_like(incurred)
    k = min(lag_days, D)
    out[:, :k] = pre_daily[:, None]
    out[:, k:] = incurred[:, :D - k]
    return out


__all__ = ["DAYS_PER_YEAR", "MONTH_DAYS", "cohort_paths", "daily_hazard", "paid_by_day", "per_day", "select_kernel"]
