"""Share projection on the calendar: dated sharing periods, waiting and lag in days, calendar-year totals.

:func:`project_calendar` projects one pool with an exogenous membership (joiners and lapse
given per day, e.g. from a membership curve, :mod:`engine.projection.membership`) on a real
sharing calendar (the 14th and 28th, or month ends). Every output row is dated, and the
calendar-year table gives the **annual share of a member present all year**: the sum of
the period shares whose notice date falls in the year (what platforms publish).
:func:`engine.projection.project` remains the period-based model with feedback (lapse
responding to the share, adverse selection, death spiral).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine.conventions import FEE, REPORTING_LAG_DAYS, SHARING_DAYS, WAITING_DAYS

from engine.projection._calendar_model import DAYS_PER_YEAR, cohort_paths, daily_hazard, paid_by_day, per_day, select_kernel
from engine.errors import ConfigError, DataError
from engine.data._coerce import api_input

QUANTILES = (0.05, 0.5, 0.95)


@dataclass
class CalendarProjection:
    """Result of :func:`project_calendar`.

    Attributes
    ----------
    periods : one row per sharing period (dated): members, eligible, joiners, lapses,
        expected claims incurred and paid, the expected-value share, its Monte Carlo fan,
        the sustainable share and leverage.
    years : one row per calendar year: the annual share of a member present all year
        (expected path and Monte Carlo fan), the sustainable annual share, totals.
    facts : sustainable share at the end, the date from which the share stays within
        ``tolerance`` of it, assumptions.
    shares : (n_scenarios, n_periods) simulated shares (CNY per member).
    """

    periods: pl.DataFrame
    years: pl.DataFrame
    facts: dict[str, Any] = field(default_factory=dict)
    shares: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    @property
    def summary(self) -> pl.DataFrame:
        """The calendar-year table (annual shares with their fan)."""
        return self.years

    def _repr_html_(self) -> str:
        """Compact HTML card: periods and years projected, the scalar facts."""
        from engine._results import frames_card, scalars

        return frames_card(self, {"periods": self.periods.height, "years": self.years.height,
                                  "scenarios": int(self.shares.shape[0]), **scalars(self.facts)},
                           "share per period and annual shares by calendar year")

    def print_summary(self) -> None:
        """Print the calendar-year table and the facts."""
        from rich.console import Console
        from rich.table import Table

        t = Table(title="annual share of a member present all year (CNY)")
        cols = ["year", "complete", "periods", "annual_share_cny", "annual_share_p05_cny", "annual_share_p95_cny",
                "sustainable_annual_share_cny", "members_end"]
        for c in cols:
            t.add_column(c, justify="right")
        for r in self.years.select(cols).iter_rows():
            t.add_row(*[f"{v:,.2f}" if isinstance(v, float) else str(v) for v in r])
        con = Console(width=140)
        con.print(t)
        con.print({k: v for k, v in self.facts.items() if not isinstance(v, (list, dict))})

    def plot_shares(self, ax: Any = None) -> Any:
        """Share per period with the 5-95% fan and the sustainable share; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        p = self.periods
        x = p["notice_date"].to_list()
        ax.fill_between(x, p["share_p05_cny"].to_numpy(), p["share_p95_cny"].to_numpy(), alpha=0.25, label="5-95%")
        ax.plot(x, p["det_share_cny"].to_numpy(), label="expected path")
        ax.plot(x, p["sustainable_share_cny"].to_numpy(), ls="--", color="grey", label="sustainable")
        ax.set_ylabel("share per period (CNY)")
        ax.legend()
        return ax

    def plot_members(self, ax: Any = None) -> Any:
        """Members sharing and eligible on each notice date; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        p = self.periods
        x = p["notice_date"].to_list()
        ax.plot(x, p["members"].to_numpy(), label="sharing")
        ax.plot(x, p["eligible"].to_numpy(), label="past the waiting period")
        ax.set_ylabel("members")
        ax.legend()
        return ax


@api_input(dates=("start", "end"))
def calendar_periods(start: dt.date, end: dt.date, sharing_days: Any) -> pl.DataFrame:
    """Sharing periods from ``start`` to the last notice date <= ``end``; the first starts on ``start``.

    Columns ``period`` (0, 1, ...), ``period_start``, ``notice_date``, ``days``, ``year``
    (of the notice date), ``first_day`` and ``last_day`` (day index from ``start``).
    """
    from engine.shares.history import sharing_calendar

    if end < start:
        raise ConfigError(f"end: {end} is before start {start}")
    cal = sharing_calendar(start, end, sharing_days)
    if cal.height == 0:
        raise ConfigError(f"sharing calendar: no notice date between {start} and {end}")
    cal = cal.with_columns(pl.max_horizontal(pl.col("period_start"), pl.lit(start)).alias("period_start"))
    return cal.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int32).alias("period"),
        ((pl.col("notice_date") - pl.col("period_start")).dt.total_days() + 1).cast(pl.Int32).alias("days"),
        pl.col("notice_date").dt.year().alias("year"),
        (pl.col("period_start") - pl.lit(start)).dt.total_days().cast(pl.Int32).alias("first_day"),
        (pl.col("notice_date") - pl.lit(start)).dt.total_days().cast(pl.Int32).alias("last_day"),
    ).select("period", "period_start", "notice_date", "days", "year", "first_day", "last_day")


def _groups(groups: pl.DataFrame) -> dict[str, np.ndarray]:
    for c in ("group", "members", "rate", "benefit_cny"):
        if c not in groups.columns:
            raise DataError(f"groups: column '{c}' is required (group, members, rate, benefit_cny)")
    g = {c: groups[c].cast(pl.Float64).to_numpy() for c in ("members", "rate", "benefit_cny")}
    mix = groups["joiner_mix"].cast(pl.Float64).to_numpy() if "joiner_mix" in groups.columns else g["members"].copy()
    if not mix.sum() > 0:
        raise DataError("groups: joiners need a 'joiner_mix' column when no group has members at the start")
    g["mix"] = mix / mix.sum()
    g["ageing"] = (groups["ageing_annual"].cast(pl.Float64).to_numpy() if "ageing_annual" in groups.columns
                   else np.zeros(groups.height))
    for k, v in g.items():
        if np.any(~np.isfinite(v)) or np.any(v < 0):
            raise DataError(f"groups: '{k}' must be finite and >= 0")
    return g


@api_input(frames=("groups",), dates=("start", "end"))
def project_calendar(
    groups: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    sharing_days: Any = SHARING_DAYS,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    joiners: float | Sequence[float] | np.ndarray = 0.0,
    lapse_annual: float | Sequence[float] | np.ndarray = 0.0,
    select_factors: Any = None,
    incidence_level: float = 1.0,
    per_claimant_cap: float | None = None,
    annual_cap: float | None = None,
    n_scenarios: int = 1000,
    seed: int = 0,
    tolerance: float = 0.05,
) -> CalendarProjection:
    """Project one pool's shares on a dated sharing calendar.

    Parameters
    ----------
    groups : DataFrame
        One row per risk group: ``group``, ``members`` (on ``start``, seasoned: past the
        wait, select worn off), ``rate`` (annual incidence), ``benefit_cny``; optional
        ``joiner_mix`` (share of the joiners, default the members' mix) and
        ``ageing_annual`` (incidence drift per year).
    start, end : date
        First day projected and last day (the last period ends on the last notice date <= end).
    sharing_days : days of the month of the notice dates (``(14, 28)``, ``"monthly"`` = month ends).
    fee : management fee on claims.
    waiting_days, reporting_lag_days : int
        Days after joining before a member can claim; days from the event to payment.
    joiners : float or array (D,)
        Joiners per day (D = days from ``start`` to the last notice date, inclusive; an
        array may be longer, the days after the last notice date are ignored).
    lapse_annual : float or array (D,)
        Annual lapse rate, constant or varying by day.
    select_factors : select table (``engine.select_factors`` output ...) or None.
    incidence_level : multiplier of every group's rate (calibrated by the replay).
    per_claimant_cap : CNY per member per claim (the excess is paid by the platform).
    annual_cap : CNY per member per calendar year, applied to the member present all year.
    n_scenarios, seed : Monte Carlo of the claim counts (seeded).
    tolerance : the share counts as having reached the sustainable share once it stays
        within this relative distance until the end.

    Returns
    -------
    CalendarProjection

    Notes
    -----
    Days d = 0..D-1 from ``start``. Members, eligible members and the select-weighted
    risk per day come from :func:`engine.projection._calendar_model.cohort_paths`; the expected claims
    incurred on day d in group g are ``level x rate_g x (1 + ageing_g)^(d / 365.25) x
    risk_{g,d} / 365.25`` and are paid on day d + lag (before day 0, the seasoned members'
    steady rate). Period k covers its days (period_start .. notice_date); its sharing base
    N_k is the members sharing on the notice date; the share is
    ``S_k = sum_g paid_{g,k} x min((1 + fee) B_g / N_k, cap)``. A closed seasoned pool gives
    ``(1 + fee) x rate x B x days_k / 365.25`` exactly. The sustainable share of period k
    puts every current member past the wait with the select effect worn off and no lag:
    ``sum_g M_{g,k} rate_g sel_ult days_k / 365.25 x min((1 + fee) B_g / N_k, cap)``.
    Monte Carlo: the claims paid per group and period are Poisson with the expected
    count (disjoint event days, so independent between periods). The annual share of a
    member present all year is the sum of the period shares with a notice date in the
    year, after the annual cap. Not modelled here: lapses responding to the share, claimant
    exits (within the membership given), several plans.
    """
    if waiting_days < 0 or reporting_lag_days < 0:
        raise ConfigError("waiting_days and reporting_lag_days must be >= 0")
    if fee < 0 or incidence_level < 0 or n_scenarios < 1:
        raise ConfigError("fee and incidence_level must be >= 0 and n_scenarios >= 1")
    cal = calendar_periods(start, end, sharing_days)
    D = int(cal["last_day"][-1]) + 1
    g = _groups(groups)
    J = per_day(joiners, D, "joiners")[None, :] * g["mix"][:, None]
    h = daily_hazard(per_day(lapse_annual, D, "lapse_annual"))
    kernel, ult = select_kernel(select_factors, D, int(waiting_days))
    paths = cohort_paths(g["members"], J, h, kernel, int(waiting_days), ult)
    paths["joiners"] = J
    days = np.arange(D)
    lam = incidence_level * g["rate"][:, None] * (1.0 + g["ageing"][:, None]) ** (days[None, :] / DAYS_PER_YEAR)
    incurred = lam * paths["risk"] / DAYS_PER_YEAR
    paid = paid_by_day(incurred, incidence_level * g["rate"] * g["members"] * ult / DAYS_PER_YEAR,
                       int(reporting_lag_days))
    first = cal["first_day"].to_numpy()
    last = cal["last_day"].to_numpy()
    per = lambda a: np.add.reduceat(a, first, axis=1)  # noqa: E731 - sums over each period's days
    paid_k, inc_k = per(paid), per(incurred)
    M_k = paths["members"][:, last]
    N = M_k.sum(axis=0)
    if np.any(N <= 0):
        raise DataError(f"membership: no member shares on {cal['notice_date'][int(np.argmax(N <= 0))]}")
    cost = (1.0 + fee) * g["benefit_cny"][:, None] / N[None, :]
    if per_claimant_cap is not None:
        cost = np.minimum(cost, float(per_claimant_cap))
    det = (paid_k * cost).sum(axis=0)
    dk = cal["days"].to_numpy().astype(float)
    sus = (M_k * incidence_level * g["rate"][:, None] * (1.0 + g["ageing"][:, None]) ** (last / DAYS_PER_YEAR)
           * ult * dk / DAYS_PER_YEAR * cost).sum(axis=0)
    rng = np.random.default_rng(seed)
    draws = rng.poisson(np.broadcast_to(paid_k.T, (n_scenarios, *paid_k.T.shape)))
    sims = (draws * cost.T[None, :, :]).sum(axis=2)
    years = cal["year"].to_numpy()
    det_c, sims_c = _annual_cap(det, years, annual_cap), _annual_cap(sims, years, annual_cap)
    periods = _periods_frame(cal, paths, last, first, paid_k, inc_k, det_c, sims_c, sus, g, dk)
    yrs = _years_frame(periods, sims_c, years, start, end)
    facts = _facts(periods, tolerance, g, dk)
    facts.update({"start": start.isoformat(), "end": end.isoformat(), "waiting_days": int(waiting_days),
                  "reporting_lag_days": int(reporting_lag_days), "fee": float(fee), "seed": int(seed),
                  "n_scenarios": int(n_scenarios), "incidence_level": float(incidence_level)})
    return CalendarProjection(periods, yrs, facts, sims_c)


def _annual_cap(shares: np.ndarray, years: np.ndarray, cap: float | None) -> np.ndarray:
    """Shares charged to a member present all year: cumulative within each calendar year at most ``cap``."""
    if cap is None:
        return shares
    out = np.array(shares, dtype=float, copy=True)
    for y in np.unique(years):
        sel = years == y
        cum = np.cumsum(out[..., sel], axis=-1)
        capped = np.minimum(cum, float(cap))
        out[..., sel] = np.diff(capped, axis=-1, prepend=0.0)
    return out


def _periods_frame(cal: pl.DataFrame, paths: dict[str, np.ndarray], last: np.ndarray, first: np.ndarray,
                   paid_k: np.ndarray, inc_k: np.ndarray, det: np.ndarray, sims: np.ndarray, sus: np.ndarray,
                   g: dict[str, np.ndarray], dk: np.ndarray) -> pl.DataFrame:
    q = np.quantile(sims, QUANTILES, axis=0)
    bmax = float(g["benefit_cny"].max())
    annualised = det * DAYS_PER_YEAR / dk
    return cal.drop("first_day", "last_day").with_columns(
        pl.Series("members", paths["members"][:, last].sum(axis=0)),
        pl.Series("eligible", paths["eligible"][:, last].sum(axis=0)),
        pl.Series("joiners", np.add.reduceat(paths["joiners"].sum(axis=0), first)),
        pl.Series("lapses", np.add.reduceat(paths["lapses"].sum(axis=0), first)),
        pl.Series("claims_incurred", inc_k.sum(axis=0)),
        pl.Series("claims_paid", paid_k.sum(axis=0)),
        pl.Series("claims_paid_cny", (paid_k * g["benefit_cny"][:, None]).sum(axis=0)),
        pl.Series("det_share_cny", det),
        pl.Series("share_mean_cny", sims.mean(axis=0)),
        pl.Series("share_p05_cny", q[0]), pl.Series("share_p50_cny", q[1]), pl.Series("share_p95_cny", q[2]),
        pl.Series("sustainable_share_cny", sus),
        pl.Series("leverage_max_benefit", np.divide(bmax, annualised, out=np.full(det.size, np.inf),
                                                    where=annualised > 0)),
    )


def _years_frame(periods: pl.DataFrame, sims: np.ndarray, years: np.ndarray, start: dt.date,
                 end: dt.date) -> pl.DataFrame:
    rows = []
    for y in np.unique(years):
        sel = years == y
        p = periods.filter(pl.col("year") == int(y))
        ann = sims[:, sel].sum(axis=1)
        rows.append({
            "year": int(y), "periods": int(sel.sum()),
            "complete": start <= dt.date(int(y), 1, 1) and end >= dt.date(int(y), 12, 31),
            "first_notice": p["notice_date"][0], "last_notice": p["notice_date"][-1],
            "annual_share_cny": float(p["det_share_cny"].sum()),
            "annual_share_mean_cny": float(ann.mean()),
            "annual_share_p05_cny": float(np.quantile(ann, 0.05)),
            "annual_share_p50_cny": float(np.quantile(ann, 0.5)),
            "annual_share_p95_cny": float(np.quantile(ann, 0.95)),
            "sustainable_annual_share_cny": float(p["sustainable_share_cny"].sum()),
            "members_end": float(p["members"][-1]), "joiners": float(p["joiners"].sum()),
            "lapses": float(p["lapses"].sum()), "claims_paid": float(p["claims_paid"].sum()),
            "claims_paid_cny": float(p["claims_paid_cny"].sum()),
        })
    return pl.DataFrame(rows)


def _facts(periods: pl.DataFrame, tolerance: float, g: dict[str, np.ndarray], dk: np.ndarray) -> dict[str, Any]:
    det = periods["det_share_cny"].to_numpy()
    sus = periods["sustainable_share_cny"].to_numpy()
    inside = np.abs(det - sus) <= tolerance * sus
    # first period from which the share stays within the tolerance until the end
    out_idx = np.nonzero(~inside)[0]
    k = 0 if out_idx.size == 0 else int(out_idx[-1]) + 1
    reached = periods["notice_date"][k].isoformat() if k < periods.height else None
    per_year = sus[-1] * DAYS_PER_YEAR / dk[-1]
    return {"sustainable_share_end_cny": float(sus[-1]), "sustainable_annual_share_end_cny": float(per_year),
            "sustainable_reached_on": reached, "tolerance": float(tolerance),
            "leverage_sustainable_max_benefit": float(g["benefit_cny"].max() / per_year) if per_year > 0 else None}


__all__ = ["CalendarProjection", "calendar_periods", "project_calendar"]
