"""The data's as-of date and the study window: explicit, or derived from the claims, never from one member.

The **as-of date** is the day the data was extracted: nothing in it can happen later. It is
``[data] as_of`` (or ``--as-of``) when given; otherwise the latest claim approval date
(the event date for a claim without one) that is not after today. A join, exit, event or
approval after the as-of date is set aside with a reason (:mod:`engine.validate`), so a typo
such as a join in 2030 never moves the study window.

The **study window** of ``fentan run`` is ``[study] start`` / ``end`` when given; otherwise it
starts on the first day of the month of the earliest clean claim's event and ends on the as-of
date. With no clean claim the start is the earliest join of a clean member.

Every date comes with the words saying what defined it; they are printed and kept in
``account.json`` under ``window``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

__all__ = ["derive_as_of", "study_window"]


def derive_as_of(claims: pl.LazyFrame, today: dt.date | None = None) -> tuple[dt.date, str]:
    """The as-of date derived from the claims, and what defined it.

    Parameters
    ----------
    claims : claims in the contract dtypes (``event_date``, optional ``approved_date``).
    today : the latest possible date (default: today's date); later claim dates are ignored here
        (and set aside by validation).

    Returns
    -------
    (date, source)
        ``source`` names the column and the number of claims on that date, or ``"today"``
        when the claims hold no date.
    """
    today = today or dt.date.today()
    names = claims.collect_schema().names()
    when = pl.col("event_date")
    what = "event date"
    if "approved_date" in names:
        when = pl.coalesce(pl.col("approved_date"), pl.col("event_date"))
        what = "approval date (event date when none)"
    d = claims.select(when.alias("d")).filter(pl.col("d") <= today)
    row = d.select(pl.col("d").max().alias("max"), (pl.col("d") == pl.col("d").max()).sum().alias("n")).collect()
    last = row["max"][0] if row.height else None
    if last is None:
        return today, "today: the claims hold no date on or before today"
    n = int(row["n"][0])
    return last, f"latest claim {what}, {n:,} claim{'s' if n != 1 else ''} on that day"


def study_window(start: dt.date | None, end: dt.date | None, as_of: dt.date, as_of_source: str,
                 members: pl.DataFrame, claims: pl.DataFrame, *, where: str = "study") -> dict[str, Any]:
    """The study window and what defined each end (see the module notes).

    Parameters
    ----------
    start, end : explicit dates (``[study] start`` / ``end``) or None.
    as_of, as_of_source : the data's as-of date and what defined it.
    members, claims : clean rows (after validation).
    where : prefix of the keys named as the source of explicit dates.

    Returns
    -------
    dict
        ``as_of``, ``as_of_source``, ``study_start``, ``study_start_source``, ``study_end``,
        ``study_end_source`` (dates as :class:`datetime.date`).
    """
    if end is not None:
        end_src = f"{where}.end"
    else:
        end, end_src = as_of, "the as-of date"
    if start is not None:
        start_src = f"{where}.start"
    elif claims.height and claims["event_date"].drop_nulls().len():
        first = claims["event_date"].min()
        start, start_src = first.replace(day=1), f"first day of the month of the earliest claim event ({first})"
    else:
        start, start_src = members["join_date"].min(), "earliest join of a clean member (no clean claim)"
    return {"as_of": as_of, "as_of_source": as_of_source, "study_start": start, "study_start_source": start_src,
            "study_end": end, "study_end_source": end_src}
