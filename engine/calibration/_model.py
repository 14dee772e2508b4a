"""The replay's likelihood: expected claims paid per group and sharing period, and the published aggregates.

Every aggregate a platform publishes (claimants in a period, cumulative claimants at a
date, claimants in a year, the share of a period, the annual share) is a linear function
of the claims paid per risk group g and sharing period k, X_gk, which are independent
Poisson(mu_gk(theta)). :class:`ReplayModel` computes mu(theta) on the dated calendar
(membership from the curve, waiting and lag in days) and the Gaussian log-likelihood of
the aggregates with their exact Poisson moments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from engine.projection._calendar_model import DAYS_PER_YEAR, MONTH_DAYS, daily_hazard, paid_by_day, per_day
from engine.projection.calendar import calendar_periods
from engine.errors import ConfigError, DataError

#: aggregate kinds: counts (weights 1) and shares (weights = cost per claim per member)
KINDS = ("claimants_period", "claimants_cumulative", "claimants_year", "share_period", "annual_share")
PARAMS = ("level", "s0", "tau_months")


def select_curve(months: np.ndarray, s0: float, tau: float) -> np.ndarray:
    """Incidence relative to the ultimate, by months since cover began: 1 - (1 - s0) exp(-m / tau)."""
    return 1.0 - (1.0 - s0) * np.exp(-np.asarray(months, dtype=float) / tau)


@dataclass
class Aggregate:
    """One published figure: ``kind``, its ``date``, the observed ``value`` and its rounding half-unit."""

    kind: str
    date: dt.date
    value: float
    rounding: float = 0.0
    label: str = ""


class ReplayModel:
    """Expected claims paid per (group, period) given the parameters, and the aggregates' likelihood.

    Parameters
    ----------
    periods : output of :func:`engine.projection.calendar.calendar_periods`.
    members0 : (G,) seasoned members on day 0; joiners : (D,) per day; lapse_annual : (D,).
    mix : (G,) share of the joiners per group; base_rate : (G,) annual rates at level 1;
    benefit : (G,) CNY.
    fee, waiting_days, lag_days, per_claimant_cap : the platform's rules.
    aggregates : the published figures; model_error : relative sd added to each aggregate.
    select_table : a fixed select table (:func:`engine.estimators._select_table.select_table`) used
        instead of the parametric curve (then ``s0`` and ``tau`` are not read).

    Notes
    -----
    Cohorts as in :func:`engine.projection._calendar_model.cohort_paths`: x_j = J_j / C_j, the risk
    on day d is C_d (pre + sum_j x_j k(d - j)) with k(tau) = [tau >= w] sel((tau - w) / (365.25/12))
    (months since cover began), incurred = level x base_rate x risk / 365.25, paid = incurred
    lagged. The aggregate a = sum_gk W_a,gk X_gk: counts take W = 1 on the periods they
    cover (a period by its notice date; cumulative = notice dates up to the date; a year =
    notice dates in the year), shares take W = min((1 + fee) B_g / N_k, cap). With X_gk
    independent Poisson(mu_gk): E a = W mu and Cov(a, b) = sum_gk W_a W_b mu, so
    overlapping aggregates (a period inside a year) are handled exactly at second order; to
    this add (model_error x E a)^2 and the rounding variance u^2 / 3 on the diagonal (u at
    least 1/2 for counts, which are integers). The
    log-likelihood is the multivariate normal one (counts of 10^2 - 10^4 claims).
    """

    def __init__(self, periods: pl.DataFrame, members0: np.ndarray, joiners: np.ndarray, lapse_annual: np.ndarray,
                 mix: np.ndarray, base_rate: np.ndarray, benefit: np.ndarray, *, fee: float, waiting_days: int,
                 lag_days: int, per_claimant_cap: float | None, aggregates: list[Aggregate],
                 model_error: float = 0.0, select_table: pl.DataFrame | None = None) -> None:
        self.periods = periods
        self.D = int(periods["last_day"][-1]) + 1
        self.first = periods["first_day"].to_numpy()
        self.last = periods["last_day"].to_numpy()
        self.pre = np.asarray(members0, dtype=float)
        self.base_rate = np.asarray(base_rate, dtype=float)
        self.benefit = np.asarray(benefit, dtype=float)
        self.w, self.lag = int(waiting_days), int(lag_days)
        J = per_day(joiners, self.D, "joiners")[None, :] * np.asarray(mix, dtype=float)[:, None]
        h = daily_hazard(per_day(lapse_annual, self.D, "lapse_annual"))
        h[0] = 0.0
        self.C = np.exp(np.cumsum(np.log1p(-h)))
        self.x = J / self.C[None, :]
        self._n_fft = 1 << int(np.ceil(np.log2(2 * self.D)))
        self._fx = np.fft.rfft(self.x, self._n_fft, axis=1)  # the joiners never change: transform once
        self.members = self.C[None, :] * (self.pre[:, None] + np.cumsum(self.x, axis=1))
        N = self.members[:, self.last].sum(axis=0)
        if np.any(N <= 0):
            raise DataError("replay: a sharing period has no member on its notice date (start the curve earlier)")
        cost = (1.0 + fee) * self.benefit[:, None] / N[None, :]
        self.cost = cost if per_claimant_cap is None else np.minimum(cost, float(per_claimant_cap))
        self.N = N
        self.aggregates = list(aggregates)
        self.W = np.stack([self._weights(a) for a in self.aggregates]) if self.aggregates else np.zeros((0, 0))
        self.y = np.array([a.value for a in self.aggregates], dtype=float)
        # a count is an integer: at least half a unit of rounding (variance 1/12), which also keeps the normal
        # approximation proper where the expected count is near 0
        self.round_var = np.array([max(a.rounding, 0.5 if a.kind.startswith("claimants") else 0.0) ** 2 / 3.0
                                   for a in self.aggregates])
        self.model_error = float(model_error)
        self.select_table = select_table

    # ------------------------------------------------------------------ aggregates
    def _weights(self, a: Aggregate) -> np.ndarray:
        nd = self.periods["notice_date"]
        G, K = self.cost.shape
        if a.kind in ("claimants_period", "share_period"):
            sel = (nd == a.date).to_numpy()
            if not sel.any():
                raise DataError(f"aggregate {a.label or a.kind}: {a.date} is not a notice date of the calendar")
        elif a.kind == "claimants_cumulative":
            sel = (nd <= a.date).to_numpy()
        elif a.kind in ("claimants_year", "annual_share"):
            sel = (self.periods["year"] == a.date.year).to_numpy()
            if a.kind == "annual_share" and self.periods["period_start"][0] > dt.date(a.date.year, 1, 1):
                raise DataError(f"aggregate {a.label}: the replay starts after 1 January {a.date.year}")
        else:
            raise ConfigError(f"aggregate kind '{a.kind}' is unknown; known: {', '.join(KINDS)}")
        base = self.cost if a.kind in ("share_period", "annual_share") else np.ones((G, K))
        return (base * sel[None, :]).ravel()

    # ------------------------------------------------------------------ model
    def kernel(self, s0: float, tau: float) -> np.ndarray:
        """k(tau_days) = [tau >= w] x select curve at the months since cover began."""
        t = np.arange(self.D)
        if self.select_table is not None:  # a fixed select table (by completed months since joining)
            from engine.estimators._select_table import factor_at

            return np.where(t >= self.w, factor_at(self.select_table, np.floor(t / MONTH_DAYS)), 0.0)
        return np.where(t >= self.w, select_curve(np.maximum(t - self.w, 0) / MONTH_DAYS, s0, tau), 0.0)

    def daily(self, level: float, s0: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
        """Expected claims incurred and paid per group and day (G, D)."""
        k = self.kernel(s0, tau)
        conv = np.fft.irfft(self._fx * np.fft.rfft(k, self._n_fft)[None, :], self._n_fft, axis=1)[:, :self.D]
        conv[conv < 1e-9 * max(float(conv.max(initial=0.0)), 1e-300)] = 0.0  # FFT round-off around 0
        risk = self.C[None, :] * (self.pre[:, None] + conv)
        inc = level * self.base_rate[:, None] * risk / DAYS_PER_YEAR
        return inc, paid_by_day(inc, level * self.base_rate * self.pre / DAYS_PER_YEAR, self.lag)

    def mu(self, level: float, s0: float, tau: float) -> np.ndarray:
        """Expected claims paid per group and period (G, K)."""
        _, paid = self.daily(level, s0, tau)
        return np.add.reduceat(paid, self.first, axis=1)

    def moments(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the aggregates given mu (see the class Notes)."""
        m = self.W @ mu.ravel()
        cov = (self.W * mu.ravel()[None, :]) @ self.W.T
        cov = cov + np.diag((self.model_error * m) ** 2 + self.round_var)
        return m, cov

    def loglik(self, level: float, s0: float, tau: float) -> float:
        """Gaussian log-likelihood of the observed aggregates."""
        if not (np.isfinite(level) and np.isfinite(s0) and np.isfinite(tau)) or level <= 0 or s0 < 0 or tau <= 0:
            return -np.inf
        with np.errstate(all="ignore"):
            m, cov = self.moments(self.mu(level, s0, tau))
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(cov))):
            return -np.inf
        try:
            L = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return -np.inf
        z = np.linalg.solve(L, self.y - m)
        return float(-0.5 * z @ z - np.log(np.diag(L)).sum() - 0.5 * len(m) * np.log(2 * np.pi))

    def simulate(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Aggregates from Poisson claims X ~ Poisson(mu), plus model error and rounding noise (seeded)."""
        X = rng.poisson(mu)
        a = self.W @ X.ravel().astype(float)
        m = self.W @ mu.ravel()
        noise = rng.normal(0.0, 1.0, a.size) * np.sqrt((self.model_error * m) ** 2 + self.round_var)
        return a + noise


def window(start: dt.date, end: dt.date, sharing_days: object) -> pl.DataFrame:
    """The replay's calendar (:func:`engine.projection.calendar.calendar_periods`)."""
    return calendar_periods(start, end, sharing_days)


__all__ = ["KINDS", "PARAMS", "Aggregate", "ReplayModel", "select_curve", "window"]
