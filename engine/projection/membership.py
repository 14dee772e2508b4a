"""Joiners and leavers from a membership curve (dated membership points), for the calendar projection.

An analyst outside a platform sees its membership curve, not its joiners and leavers. This
module interpolates the curve to days and splits each day's net change into joiners and
lapses under a base (gross) lapse rate; a net outflow larger than the base lapses becomes
lapses, so the lapse rate varies in time. The points can also be counted from a member file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.projection._calendar_model import DAYS_PER_YEAR, daily_hazard
from engine.errors import ConfigError, DataError
from engine.data._coerce import api_input


@dataclass
class MembershipCurve:
    """Daily membership, joiners and lapses derived from a curve (see :func:`membership_from_curve`).

    Attributes
    ----------
    daily : ``date``, ``members`` (sharing at the end of the day), ``joiners``, ``lapses``,
        ``lapse_annual`` (the annual rate equivalent to that day's exit probability).
    points : the dated points used, ``date``, ``members``.
    """

    daily: pl.DataFrame
    points: pl.DataFrame
    method: str
    base_lapse_annual: float

    @property
    def start(self) -> dt.date:
        """First day of the curve."""
        return self.daily["date"][0]

    @property
    def members0(self) -> float:
        """Members on the first day (they enter the projection as seasoned members)."""
        return float(self.daily["members"][0])

    def inputs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`engine.projection.calendar.project_calendar` (``joiners``, ``lapse_annual``).

        Day 0's joiners are the first day's members already counted in ``members0``, so they are 0.
        """
        j = self.daily["joiners"].to_numpy().copy()
        j[0] = 0.0
        return {"joiners": j, "lapse_annual": self.daily["lapse_annual"].to_numpy()}

    @property
    def summary(self) -> pl.DataFrame:
        """Monthly totals: members at the month's last day, joiners, lapses, mean annual lapse rate."""
        return (self.daily.group_by(pl.col("date").dt.truncate("1mo").alias("month"), maintain_order=True)
                .agg(pl.col("members").last(), pl.col("joiners").sum(), pl.col("lapses").sum(),
                     pl.col("lapse_annual").mean()))

    def print_summary(self) -> None:
        """Print the monthly table."""
        from rich.console import Console

        Console(width=120).print(self.summary)

    def plot_members(self, ax: Any = None) -> Any:
        """Interpolated members with the dated points; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        ax.plot(self.daily["date"].to_list(), self.daily["members"].to_numpy(), label=f"{self.method} interpolation")
        ax.plot(self.points["date"].to_list(), self.points["members"].to_numpy(), "o", label="points")
        ax.set_ylabel("members")
        ax.legend()
        return ax


def _points(points: pl.DataFrame) -> pl.DataFrame:
    for c in ("date", "members"):
        if c not in points.columns:
            raise DataError(f"membership points: column '{c}' is required (date, members)")
    p = points.select(pl.col("date").cast(pl.Date), pl.col("members").cast(pl.Float64)).sort("date")
    if p.height < 1 or p["date"].null_count() or p["members"].null_count():
        raise DataError("membership points: need at least one point without nulls")
    if p["date"].n_unique() != p.height:
        raise DataError("membership points: two points on the same date")
    if (p["members"] < 0).any():
        raise DataError("membership points: members must be >= 0")
    return p


def interpolate(points: pl.DataFrame, start: dt.date, end: dt.date, method: str = "linear") -> np.ndarray:
    """Members on every day from ``start`` to ``end`` (inclusive) from dated points.

    Notes
    -----
    ``"linear"``: piecewise linear in members between consecutive points. ``"log"``: linear
    in log members (a constant growth rate between two points), linear on a segment that
    touches 0. Before the first point: an error (the curve must cover the start). After the
    last point the membership stays at the last value.
    """
    p = _points(points)
    if method not in ("linear", "log"):
        raise ConfigError(f"method: '{method}' must be 'linear' or 'log'")
    if start < p["date"][0]:
        raise DataError(f"membership points: the first point {p['date'][0]} is after the start {start}")
    x = (p["date"].to_physical().to_numpy() - (start - dt.date(1970, 1, 1)).days).astype(float)
    y = p["members"].to_numpy()
    days = np.arange((end - start).days + 1, dtype=float)
    lin = np.interp(days, x, y)
    if method == "linear":
        return lin
    pos = y > 0
    logy = np.log(np.where(pos, y, 1.0))
    out = np.exp(np.interp(days, x, logy))
    seg = np.clip(np.searchsorted(x, days, side="right") - 1, 0, len(x) - 1)
    nxt = np.clip(seg + 1, 0, len(x) - 1)
    both = pos[seg] & pos[nxt]
    return np.where(both, out, lin)


@api_input(frames=("points",), dates=("start", "end"))
def membership_from_curve(
    points: pl.DataFrame,
    start: dt.date,
    end: dt.date,
    *,
    base_lapse_annual: float = 0.0,
    method: str = "linear",
) -> MembershipCurve:
    """Daily joiners and lapses that reproduce a membership curve exactly.

    Parameters
    ----------
    points : DataFrame ``date``, ``members`` (dated membership points).
    start, end : days covered (inclusive).
    base_lapse_annual : q, the gross annual lapse rate assumed while the pool grows (a net
        curve cannot show it; a documented assumption).
    method : interpolation, ``"linear"`` or ``"log"`` (:func:`interpolate`).

    Returns
    -------
    MembershipCurve

    Notes
    -----
    With M_d the interpolated members, h = 1 - (1 - q)^(1/365.25) and the net change
    Delta_d = M_d - M_{d-1}: base lapses b_d = h M_{d-1}; if Delta_d + b_d >= 0 the day has
    joiners Delta_d + b_d and lapses b_d; otherwise (a net outflow larger than the base
    lapses) it has no joiners and lapses -Delta_d. The day's exit probability is
    lapses_d / M_{d-1} and ``lapse_annual`` = 1 - (1 - that)^365.25, so the lapse varies in
    time. M_d = M_{d-1} - lapses_d + joiners_d holds exactly, and the calendar projection
    fed with these joiners and lapse rates reproduces the curve.
    """
    if not 0.0 <= base_lapse_annual < 1.0:
        raise ConfigError(f"base_lapse_annual: {base_lapse_annual} must be in [0, 1)")
    if end < start:
        raise ConfigError(f"end: {end} is before start {start}")
    M = interpolate(points, start, end, method)
    h = float(daily_hazard(np.array([base_lapse_annual]))[0])
    prev = np.r_[0.0, M[:-1]]
    delta = M - prev
    base = h * prev
    grow = delta + base >= 0
    joiners = np.where(grow, delta + base, 0.0)
    lapses = np.where(grow, base, -delta)
    joiners[0], lapses[0] = M[0], 0.0
    p_exit = np.divide(lapses, prev, out=np.zeros_like(M), where=prev > 0)
    lapse_annual = -np.expm1(DAYS_PER_YEAR * np.log1p(-np.minimum(p_exit, 1.0 - 1e-15)))
    dates = pl.date_range(start, end, "1d", eager=True)
    daily = pl.DataFrame({"date": dates, "members": M, "joiners": joiners, "lapses": lapses,
                          "lapse_annual": lapse_annual})
    return MembershipCurve(daily, _points(points), method, float(base_lapse_annual))


@api_input(frames=("members",))
def points_from_members(members: pl.DataFrame | pl.LazyFrame, dates: list[dt.date] | pl.Series) -> pl.DataFrame:
    """Membership points counted from a member file: members sharing on each date.

    A member shares on day d if ``join_date <= d`` and (``exit_date`` is null or
    ``d < exit_date``) (domain convention). Returns ``date``, ``members``.
    """
    lf = members.lazy() if isinstance(members, pl.DataFrame) else members
    names = lf.collect_schema().names()
    if "join_date" not in names:
        raise DataError("members: column 'join_date' is required to count the membership")
    ex = pl.col("exit_date") if "exit_date" in names else pl.lit(None, dtype=pl.Date)
    spans = lf.select(pl.col("join_date").cast(pl.Date), ex.cast(pl.Date).alias("exit_date")).collect()
    j = np.sort(spans["join_date"].to_physical().to_numpy())
    e = np.sort(spans["exit_date"].drop_nulls().to_physical().to_numpy())
    d = pl.Series("date", list(dates), dtype=pl.Date)
    dn = d.to_physical().to_numpy()
    counts = np.searchsorted(j, dn, side="right") - np.searchsorted(e, dn, side="right")
    return pl.DataFrame({"date": d, "members": counts.astype(np.float64)})


__all__ = ["MembershipCurve", "interpolate", "membership_from_curve", "points_from_members"]
