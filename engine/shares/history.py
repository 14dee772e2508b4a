"""Realised cost-share history: one row per pool and sharing period.

A pool is a plan (``plan_col``) optionally split further by ``by`` keys. For
each sharing period the table gives the sharing base, the approved claims, the
fee, the uncapped and capped shares, and what the platform pays above the
per-claimant cap and the annual cap.

Notes
-----
Conventions (docs/history.md has worked examples):

* Notice dates come from ``sharing_days`` (days of the month, clipped to the
  month's last day; ``"monthly"`` / ``"month_end"`` = calendar month ends).
  Period t is the half-open interval ``(notice_{t-1}, notice_t]``; its
  ``period_start`` is the day after the previous notice date.
* A claim is paid in the period containing its approval date; when
  ``approved_date`` is null, ``event_date + reporting_lag_days`` is used.
  Only eligible claims are shared (see :func:`engine.cells._exposure.classify_claims`).
* Sharing base N_t = members sharing on the notice date d:
  ``join_date <= d < exit_date`` (docs/domain.md: "the last day of the period").
  Eligible members additionally have ``d >= join_date + waiting_days``.
* ``share_cny = (1 + fee) * amount_approved_cny / N_t`` (uncapped).
* Per-claimant cap c: ``share_capped_cny = sum_claims min((1 + fee) * B / N_t, c)``;
  the platform pays ``sum_claims max(0, (1 + fee) * B - c * N_t)``.
* Annual cap A per member and calendar year (of the notice date): a member
  whose year-to-date capped shares reach A pays nothing more that year; the
  platform pays the rest. The total is exact over join cohorts: members who
  started sharing later in the year reach the cap later.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError
from engine.shares._counts import annual_cap_pass, sharing_counts
from engine.shares._window_days import FAR_DAY
from engine.shares._stream import DEFAULT_BATCH, claimant_rows, column_names, history_cohorts, parts_of, pool_keys
from engine.plans.sharing import capped_share, member_share
from engine.conventions import (ANNUAL_CAP_CNY, FEE, PER_CLAIMANT_CAP_CNY, REPORTING_LAG_DAYS, SHARING_DAYS, WAITING_DAYS,
                                per_month, per_year, periods_per_year)

SharingDays = Sequence[int] | int | str
_EPOCH = dt.date(1970, 1, 1)

HISTORY_COLUMNS = [
    "period_start",
    "notice_date",
    "period_days",
    "sharing_members",
    "eligible_members",
    "claims_approved",
    "amount_approved_cny",
    "fee_cny",
    "cost_with_fee_cny",
    "share_cny",
    "share_capped_cny",
    "platform_paid_per_claimant_cap_cny",
    "platform_paid_per_claimant_cap_per_member_cny",
    "cumulative_share_cny",
    "share_paid_cny",
    "cumulative_paid_cny",
    "platform_paid_annual_cap_per_member_cny",
    "platform_paid_annual_cap_cny",
    "members_paid_cny",
    "share_paid_mean_cny",
]

#: the per-member shares of a history that :func:`with_shares_per_month_year` also gives per month and per year
HISTORY_SHARES: tuple[str, ...] = ("share_cny", "share_capped_cny", "share_paid_cny", "share_paid_mean_cny")


# --------------------------------------------------------------------------- calendar
def parse_sharing_days(sharing_days: SharingDays) -> tuple[int, ...]:
    """Normalise ``sharing_days`` to a sorted tuple of days 1..31 (31 = month end).

    Accepts a sequence of ints, one int, ``"monthly"`` / ``"month_end"`` (month
    ends) or a comma-separated string such as ``"14,28"``.
    """
    if isinstance(sharing_days, str):
        s = sharing_days.strip().lower()
        if s in ("monthly", "month_end", "month-end", "end"):
            return (31,)
        try:
            days: Sequence[int] = [int(x) for x in s.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"sharing_days: '{sharing_days}' is not 'monthly' or a list of days like '14,28'") from None
    elif isinstance(sharing_days, (int, np.integer)):
        days = [int(sharing_days)]
    else:
        days = [int(d) for d in sharing_days]
    if not days or any(d < 1 or d > 31 for d in days):
        raise ConfigError(f"sharing_days: {sharing_days!r} must be days of the month in 1..31")
    return tuple(sorted(set(days)))


def notice_dates(first: dt.date, last: dt.date, sharing_days: SharingDays = SHARING_DAYS) -> list[dt.date]:
    """All notice dates d with ``first <= d <= last`` (a day beyond the month's length is its last day)."""
    days = parse_sharing_days(sharing_days)
    out: set[dt.date] = set()
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        n = calendar.monthrange(y, m)[1]
        for d in days:
            day = dt.date(y, m, min(d, n))
            if first <= day <= last:
                out.add(day)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return sorted(out)


@api_input(dates=("start", "end"))
def sharing_calendar(start: dt.date, end: dt.date, sharing_days: SharingDays = SHARING_DAYS) -> pl.DataFrame:
    """The sharing periods whose notice date lies in ``[start, end]``: ``period_start``, ``notice_date``."""
    prev_first = dt.date(start.year - 1, 12, 1) if start.month == 1 else dt.date(start.year, start.month - 1, 1)
    nd = notice_dates(min(prev_first, start - dt.timedelta(days=62)), end, sharing_days)
    rows = [(nd[i - 1] + dt.timedelta(days=1), nd[i]) for i in range(1, len(nd)) if nd[i] >= start]
    return pl.DataFrame(rows, schema={"period_start": pl.Date, "notice_date": pl.Date}, orient="row")


# --------------------------------------------------------------------------- helpers
def _days(s: pl.Series | np.ndarray) -> np.ndarray:
    """Dates as int64 day numbers since 1970-01-01 (null -> far future)."""
    if isinstance(s, pl.Series):
        return s.cast(pl.Int64).fill_null(FAR_DAY).to_numpy()
    return np.asarray(s, dtype=np.int64)


def _collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


# --------------------------------------------------------------------------- main entry
def eligible_claims(
    members: pl.DataFrame, claims: pl.DataFrame, *, waiting_days: int, terminate_on_claim: bool
) -> pl.DataFrame:
    """Claims with ``eligible`` True (classified by :func:`engine.cells._exposure.classify_claims` when needed)."""
    if "eligible" not in claims.columns:
        try:
            from engine.cells._exposure import classify_claims
        except ImportError as exc:  # pragma: no cover - exposure module is part of the package
            raise ConfigError(f"claims: no 'eligible' column and engine.exposure is unavailable ({exc})") from None
        claims = _collect(
            classify_claims(members, claims, waiting_days=waiting_days, terminate_on_claim=terminate_on_claim)
        )
    return claims.filter(pl.col("eligible").fill_null(False))


@api_input(frames=("members", "claims"), dates=("start", "end"))
def share_history(
    members: pl.DataFrame | pl.LazyFrame,
    claims: pl.DataFrame | pl.LazyFrame,
    *,
    start: dt.date,
    end: dt.date,
    sharing_days: SharingDays = SHARING_DAYS,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    per_claimant_cap: float | None = PER_CLAIMANT_CAP_CNY,
    annual_cap: float | None = ANNUAL_CAP_CNY,
    plan_col: str | None = "plan_id",
    by: Sequence[str] | None = None,
    terminate_on_claim: bool = True,
    batch_size: int | None = None,
    executor: Executor | None = None,
) -> pl.DataFrame:
    """Realised share history per pool and sharing period.

    Parameters
    ----------
    members, claims : validated frames (data contract). ``members`` may be a list of frames or
        LazyFrames (partitions, e.g. one per file): each is read in batches and reduced to counts.
        Claims may carry an ``eligible`` column; otherwise they are classified with
        :func:`engine.cells._exposure.classify_claims`.
    start, end : periods whose notice date lies in ``[start, end]`` (inclusive).
    sharing_days : days of the month of the notice dates (``(14, 28)``:
        Xianghubao), one day, or ``"monthly"`` (calendar month ends).
    fee : management fee as a fraction of approved claims.
    waiting_days : waiting period (eligible members: ``d >= join + waiting_days``).
    reporting_lag_days : approval date assumed ``event_date + lag`` when null.
    per_claimant_cap : maximum per member per claim (CNY), None = no cap.
    annual_cap : maximum per member per calendar year (CNY), None = no cap.
    plan_col : pool column; None = one pool. A missing default ``plan_id``
        column means one pool labelled ``"all"``.
    by : further member columns splitting pools.
    batch_size : members per batch of the counting pass (default 1,000,000); results do not depend on it.
    executor : a ``concurrent.futures.Executor`` (thread or *spawned* process pool,
        :func:`engine.cells.process_pool`): one task per partition counts its members; the
        driver sums the counts (integers, exact). Bit-identical to the run without one.

    Returns
    -------
    DataFrame sorted by pool keys and ``notice_date`` with the pool keys and
    :data:`HISTORY_COLUMNS`. Shares are null where no member shares.

    Notes
    -----
    ``share_cny = (1 + fee) * amount_approved_cny / sharing_members``;
    ``share_capped_cny = sum_c min((1 + fee) B_c / N, cap)``;
    identity: ``cost_with_fee_cny = members_paid_cny +
    platform_paid_per_claimant_cap_cny + platform_paid_annual_cap_cny``.
    Cumulation for the annual cap starts at the first notice of the start
    year (periods before ``start`` in that year are computed, not returned).

    The members enter only through additive integer counts (members by pool, join date and
    exit date; :mod:`engine.shares._stream`) and the rows of the claimants, so no step holds
    all member rows and the result does not depend on how the members are partitioned.
    """
    _check_history_args(start, end, fee, waiting_days, reporting_lag_days, per_claimant_cap, annual_cap)
    parts = parts_of(members)
    keys, const = pool_keys(column_names(parts), plan_col, by)
    c = _collect(claims)
    m = claimant_rows(parts, c.get_column("member_id").unique(), [*keys, "join_date", "exit_date"], const)
    c = eligible_claims(m, c, waiting_days=waiting_days, terminate_on_claim=terminate_on_claim)
    cohorts = history_cohorts(parts, keys, const, batch_size=batch_size or DEFAULT_BATCH, executor=executor)
    return history_from_counts(cohorts, m, c, keys, start=start, end=end, sharing_days=sharing_days, fee=fee,
                               waiting_days=waiting_days, reporting_lag_days=reporting_lag_days,
                               per_claimant_cap=per_claimant_cap, annual_cap=annual_cap)


def history_from_counts(
    cohorts: pl.DataFrame,
    m: pl.DataFrame,
    c: pl.DataFrame,
    keys: list[str],
    *,
    start: dt.date,
    end: dt.date,
    sharing_days: SharingDays,
    fee: float,
    waiting_days: int,
    reporting_lag_days: int,
    per_claimant_cap: float | None,
    annual_cap: float | None,
) -> pl.DataFrame:
    """:func:`share_history` from the members' counts: the table of the pools ``keys``.

    Parameters
    ----------
    cohorts : members counted by (pool ``keys``, join_date, exit_date), ``_n``
        (:func:`engine.shares._stream.history_counts`).
    m : the claimants' member rows (``member_id``, the pool keys, join_date, exit_date).
    c : their claims, with ``eligible`` (only eligible claims are shared).
    start, end, sharing_days, fee, waiting_days, reporting_lag_days, per_claimant_cap, annual_cap :
        as in :func:`share_history`.

    Returns
    -------
    DataFrame, as :func:`share_history`.

    Notes
    -----
    See :func:`share_history`; the counts are the only member input besides the claimants.
    """
    _check_history_args(start, end, fee, waiting_days, reporting_lag_days, per_claimant_cap, annual_cap)
    c = c.filter(pl.col("eligible").fill_null(False))
    cal_all = sharing_calendar(dt.date(start.year, 1, 1), end, sharing_days)
    if cal_all.height == 0 or cal_all["notice_date"].max() < start:  # type: ignore[operator]
        raise ConfigError(f"start/end: no notice date between {start} and {end} for sharing_days {sharing_days!r}")
    T = _days(cal_all["notice_date"])
    t_prev = int(_days(cal_all["period_start"])[0]) - 1
    years = cal_all["notice_date"].dt.year().to_numpy()
    year_start = np.searchsorted(years, years, side="left")  # years are sorted

    pools, jd, xd, wt, code = _pool_cohorts(cohorts, keys)
    n_pools = pools.height
    N = sharing_counts(jd, xd, T, wt, pool=code, n_pools=n_pools)
    NE = sharing_counts(jd, xd, T, wt, pool=code, n_pools=n_pools, delay_days=waiting_days)
    cnt, amount, capped_sum, plat_pc_sum = _claim_sums(
        m, c, keys, pools, T, t_prev, N, fee=fee, reporting_lag_days=reporting_lag_days,
        per_claimant_cap=per_claimant_cap,
    )

    has = N > 0
    cost = (1.0 + fee) * amount
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(has, cost / np.where(has, N, 1.0), np.nan)
    share_capped = np.where(has, capped_sum, np.nan)
    s0 = np.nan_to_num(share_capped)
    cum_full, paid_full, plat_ac, members_paid, cum_paid = annual_cap_pass(
        s0, year_start, jd, xd, T, wt, code, n_pools, annual_cap
    )

    keep = np.flatnonzero(T >= (start - _EPOCH).days)
    nan_if = lambda x: np.where(has, x, np.nan)  # noqa: E731
    plen = (T - np.concatenate([[t_prev], T[:-1]]))
    values = {
        "period_days": np.broadcast_to(plen, N.shape),
        "sharing_members": N,
        "eligible_members": NE,
        "claims_approved": cnt,
        "amount_approved_cny": amount,
        "fee_cny": fee * amount,
        "cost_with_fee_cny": cost,
        "share_cny": share,
        "share_capped_cny": share_capped,
        "platform_paid_per_claimant_cap_cny": plat_pc_sum,
        "platform_paid_per_claimant_cap_per_member_cny": share - share_capped,
        "cumulative_share_cny": nan_if(cum_full),
        "share_paid_cny": nan_if(paid_full),
        "cumulative_paid_cny": nan_if(cum_paid),
        "platform_paid_annual_cap_per_member_cny": nan_if(s0 - paid_full),
        "platform_paid_annual_cap_cny": plat_ac,
        "members_paid_cny": members_paid,
    }
    return _history_frame(values, pools, keys, cal_all, keep, n_pools)


def _check_history_args(
    start: dt.date,
    end: dt.date,
    fee: float,
    waiting_days: int,
    reporting_lag_days: int,
    per_claimant_cap: float | None,
    annual_cap: float | None,
) -> None:
    """Raise ConfigError on a reversed period, a negative fee or delay, or a cap that is not positive."""
    if end < start:
        raise ConfigError(f"end: {end} is before start {start}")
    if fee < 0 or waiting_days < 0 or reporting_lag_days < 0:
        raise ConfigError("fee, waiting_days and reporting_lag_days must be >= 0")
    for name, cap in (("per_claimant_cap", per_claimant_cap), ("annual_cap", annual_cap)):
        if cap is not None and not cap > 0:
            raise ConfigError(f"{name}: {cap} must be > 0 or None")


def _pool_cohorts(
    agg: pl.DataFrame, keys: list[str]
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pools (keys and ``_pool`` index) and member cohorts (join day, exit day, count and pool code) from
    the members counted by (pool keys, join date, exit date)."""
    pools = agg.select(keys).unique().sort(keys).with_row_index("_pool")
    # no sort: the counts are summed by np.bincount with integer weights (exact in any order)
    agg = agg.join(pools, on=keys, how="left", nulls_equal=True)
    jd, xd = _days(agg["join_date"]), _days(agg["exit_date"])
    wt = agg["_n"].cast(pl.Float64).to_numpy()
    code = agg["_pool"].cast(pl.Int64).to_numpy()
    return pools, jd, xd, wt, code


def _claim_sums(
    m: pl.DataFrame,
    c: pl.DataFrame,
    keys: list[str],
    pools: pl.DataFrame,
    T: np.ndarray,
    t_prev: int,
    N: np.ndarray,
    *,
    fee: float,
    reporting_lag_days: int,
    per_claimant_cap: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pool and period: claim count, approved amount, capped share and platform per-claimant-cap payment.

    Notes
    -----
    A claim falls in the first period whose notice date is on or after its
    approval date (``event_date + reporting_lag_days`` when null);
    ``platform = max(0, (1 + fee) B - cap N)`` where ``N > 0``.
    """
    n_pools, P = pools.height, T.size
    claimants = m.select("member_id", *keys).filter(pl.col("member_id").is_in(c.get_column("member_id").unique().implode()))
    # claims in their input order (the float sums below follow it), whatever the members' order
    cl = c.join(claimants.join(pools, on=keys, how="left", nulls_equal=True), on="member_id", how="inner",
                maintain_order="left")
    appr = pl.col("approved_date") if "approved_date" in cl.columns else pl.lit(None, dtype=pl.Date)
    cl = cl.with_columns(
        pl.coalesce(appr, pl.col("event_date") + pl.duration(days=reporting_lag_days)).alias("_appr")
    )
    ad = _days(cl["_appr"])
    t_idx = np.searchsorted(T, ad, side="left")
    inside = (ad > t_prev) & (t_idx < P)
    pc = cl["_pool"].cast(pl.Int64).to_numpy()[inside]
    ti = t_idx[inside]
    amt = cl["amount"].cast(pl.Float64).to_numpy()[inside]
    n_at = N[pc, ti]
    total = (1.0 + fee) * amt
    per_member = member_share(amt, n_at, fee)
    capv = np.inf if per_claimant_cap is None else float(per_claimant_cap)
    capped = capped_share(per_member, per_claimant_cap)
    # no cap (inf) times no sharing member (0) is only computed where the where() discards it
    plat_pc = np.where(n_at > 0, np.maximum(0.0, total - capv * np.where(n_at > 0, n_at, 1.0)), 0.0)
    size = n_pools * P
    flat = pc * P + ti
    cnt = np.bincount(flat, minlength=size).reshape(n_pools, P)
    amount = np.bincount(flat, amt, minlength=size).reshape(n_pools, P)
    capped_sum = np.bincount(flat, np.nan_to_num(capped), minlength=size).reshape(n_pools, P)
    plat_pc_sum = np.bincount(flat, plat_pc, minlength=size).reshape(n_pools, P)
    return cnt, amount, capped_sum, plat_pc_sum


def _history_frame(
    values: dict[str, Any],
    pools: pl.DataFrame,
    keys: list[str],
    cal_all: pl.DataFrame,
    keep: np.ndarray,
    n_pools: int,
) -> pl.DataFrame:
    """Long history frame from the (pools x periods) arrays, restricted to the returned periods.

    Notes
    -----
    ``share_paid_mean_cny = members_paid_cny / sharing_members`` (null where
    no member shares).
    """
    cols: dict[str, Any] = {
        "_pool": np.repeat(np.arange(n_pools), keep.size),
        "period_start": np.tile(cal_all["period_start"].to_numpy()[keep], n_pools),
        "notice_date": np.tile(cal_all["notice_date"].to_numpy()[keep], n_pools),
    }
    for k, v in values.items():
        cols[k] = np.asarray(v)[:, keep].reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["share_paid_mean_cny"] = np.where(cols["sharing_members"] > 0, cols["members_paid_cny"] / np.where(cols["sharing_members"] > 0, cols["sharing_members"], 1), np.nan)
    out = pl.DataFrame(cols).with_columns(
        pl.col("period_days", "sharing_members", "eligible_members", "claims_approved").round(0).cast(pl.Int64),
        pl.col("period_start", "notice_date").cast(pl.Date),
    )
    out = out.with_columns(pl.col(pl.Float64).fill_nan(None))
    out = pools.join(out, on="_pool", how="right").drop("_pool")
    return out.select(*keys, *HISTORY_COLUMNS).sort(*keys, "notice_date")


def with_shares_per_month_year(history: pl.DataFrame, sharing_days: SharingDays = SHARING_DAYS) -> pl.DataFrame:
    """``history`` with ``<share>_per_month`` and ``<share>_per_year`` right after each per-period share of
    :data:`HISTORY_SHARES` (the columns written to ``history.parquet``).

    Parameters
    ----------
    history : DataFrame
        A :func:`share_history` table.
    sharing_days : days of the month of the notice dates, as given to :func:`share_history`.

    Returns
    -------
    DataFrame

    Notes
    -----
    With P = 12 x (notice days a month) periods a year (:func:`engine.conventions.periods_per_year`):
    ``x_per_month = x x P / 12`` and ``x_per_year = x x P`` (:func:`engine.conventions.per_month`,
    :func:`engine.conventions.per_year`): what a member would pay a month or a year at that period's share.
    """
    ppy = periods_per_year(parse_sharing_days(sharing_days))
    shares = [c for c in HISTORY_SHARES if c in history.columns]
    out = history.with_columns(*(per_month(pl.col(c), ppy).alias(f"{c}_per_month") for c in shares),
                               *(per_year(pl.col(c), ppy).alias(f"{c}_per_year") for c in shares))
    order = [x for c in history.columns for x in ((c, f"{c}_per_month", f"{c}_per_year") if c in shares else (c,))]
    return out.select(order)


def history_summary(history: pl.DataFrame, keys: Sequence[str] = ("plan_id",)) -> pl.DataFrame:
    """Totals per pool and calendar year: cost, members' payments and the platform's cap payments."""
    ks = [k for k in keys if k in history.columns]
    if "notice_date" not in history.columns:
        raise DataError("history: no 'notice_date' column (not a share_history table)")
    return (
        history.group_by(*ks, pl.col("notice_date").dt.year().alias("year"))
        .agg(
            pl.len().alias("periods"),
            pl.col("claims_approved").sum(),
            pl.col("cost_with_fee_cny").sum(),
            pl.col("members_paid_cny").sum(),
            pl.col("platform_paid_per_claimant_cap_cny").sum(),
            pl.col("platform_paid_annual_cap_cny").sum(),
            pl.col("share_paid_cny").sum().alias("annual_share_paid_cny"),
        )
        .sort(*ks, "year")
    )
