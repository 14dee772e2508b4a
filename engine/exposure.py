"""Exposure core: members and claims reduced to cells of sufficient statistics.

:func:`classify_claims` decides which claims are eligible (independent of any
study window); :func:`exposure` returns the cells (period x keys) with exposure
days/years, sharing days/years, claims and amount.

Notes
-----
Conventions (domain.md section 4), with day numbers and ``X`` = exit_date
(null = never), ``w`` = waiting_days:

* shares on day d:  ``join <= d < X``;
* at risk on day d: shares, ``d >= join + w`` and no eligible claim before d
  (with ``terminate_on_claim``: cover ends on the day of the first eligible
  claim, which is itself at risk);
* a claim is eligible when its event day is at risk; otherwise it is set aside
  with a reason: ``before_join`` (event < join), ``in_waiting_period``
  (event < join + w), ``after_exit`` (event >= X), ``after_first_claim``
  (event after the member's first eligible claim); :func:`exposure` adds
  ``outside_study`` for eligible claims outside ``[start, end]``. A claim whose
  member is absent from ``members`` gets ``unknown_member`` (cannot happen
  after :func:`engine.validate`).

Several eligible claims on the *same* first day are all eligible (that day is
at risk for each of them); later ones are ``after_first_claim``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from engine.errors import ConfigError, DataError

REASONS = ("before_join", "in_waiting_period", "after_exit", "after_first_claim", "outside_study")
PERIODS = ("month", "quarter", "year")
_CLAIM_TMP = ("__ord", "__join", "__exit", "__first")


def _lazy(frame: pl.LazyFrame | pl.DataFrame, what: str) -> pl.LazyFrame:
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    if isinstance(frame, pl.LazyFrame):
        return frame
    raise ConfigError(f"{what}: expected a polars DataFrame or LazyFrame, got {type(frame).__name__}")


def _check_waiting(waiting_days: Any) -> int:
    if isinstance(waiting_days, bool) or not isinstance(waiting_days, int) or waiting_days < 0:
        raise ConfigError(f"waiting_days: must be a non-negative integer, got {waiting_days!r}")
    return int(waiting_days)


def _need(schema: pl.Schema, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in schema]
    if missing:
        raise DataError(f"{what}: missing required column(s) {', '.join(repr(c) for c in missing)}")


def classify_claims(
    members: pl.LazyFrame | pl.DataFrame,
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    waiting_days: int = 90,
    terminate_on_claim: bool = True,
) -> pl.DataFrame:
    """Mark each claim eligible or not, with the reason, independent of any study window.

    Parameters
    ----------
    members : contract members (``member_id``, ``join_date``, ``exit_date`` used).
    claims : contract claims (``member_id``, ``event_date`` used; all columns kept).
    waiting_days : days after ``join_date`` before cover starts.
    terminate_on_claim : cover ends with the first eligible claim.

    Returns
    -------
    DataFrame
        The claims in their input order, every input column, plus ``eligible``
        (Boolean) and ``reason`` (String, null when eligible).

    Notes
    -----
    First matching rule, with ``J`` = join_date, ``X`` = exit_date::

        event < J                -> before_join
        event < J + waiting_days -> in_waiting_period
        X not null, event >= X   -> after_exit
        terminate_on_claim and event > min(event of the member's claims passing
            the rules above)     -> after_first_claim
        otherwise eligible

    A claim before joining, in the waiting period or after exit never ends cover.
    """
    w = _check_waiting(waiting_days)
    m = _lazy(members, "members")
    c = _lazy(claims, "claims")
    _need(m.collect_schema(), ("member_id", "join_date", "exit_date"), "members")
    c_schema = c.collect_schema()
    _need(c_schema, ("member_id", "event_date"), "claims")
    clash = [x for x in (*_CLAIM_TMP, "eligible", "reason") if x in c_schema]
    if clash:
        raise DataError(f"claims: column '{clash[0]}' is reserved by classify_claims")
    cdf = c.with_row_index("__ord").collect()
    ids = cdf.get_column("member_id").unique()
    mm = (
        m.select("member_id", pl.col("join_date").alias("__join"), pl.col("exit_date").alias("__exit"))
        .filter(pl.col("member_id").is_in(ids.implode()))
        .collect()
    )
    if mm.get_column("member_id").is_duplicated().any():
        dup = mm.filter(pl.col("member_id").is_duplicated()).get_column("member_id")[0]
        raise DataError(f"members: member_id '{dup}' occurs more than once (run engine.validate first)")
    return _classify_joined(cdf, mm, w, terminate_on_claim)


def _classify_joined(cdf: pl.DataFrame, mm: pl.DataFrame, w: int, terminate_on_claim: bool) -> pl.DataFrame:
    """Classify ``cdf`` (claims with ``__ord``) against ``mm`` (member_id, __join, __exit)."""
    j = cdf.join(mm, on="member_id", how="left")
    ev = pl.col("event_date")
    base = (
        pl.when(pl.col("__join").is_null())
        .then(pl.lit("unknown_member"))
        .when(ev < pl.col("__join"))
        .then(pl.lit("before_join"))
        .when(ev < pl.col("__join") + pl.duration(days=w))
        .then(pl.lit("in_waiting_period"))
        .when((ev >= pl.col("__exit")).fill_null(False))
        .then(pl.lit("after_exit"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    j = j.with_columns(base.alias("reason"))
    if terminate_on_claim:
        first = ev.filter(pl.col("reason").is_null()).min().over("member_id")
        j = j.with_columns(
            pl.when(pl.col("reason").is_null() & (ev > first))
            .then(pl.lit("after_first_claim"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
    return (
        j.sort("__ord")
        .with_columns(pl.col("reason").is_null().alias("eligible"))
        .select([*(x for x in cdf.columns if x != "__ord"), "eligible", "reason"])
    )
