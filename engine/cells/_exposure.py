"""Exposure core: members and claims reduced to cells of sufficient statistics.

:func:`classify_claims` decides which claims are eligible (independent of any
study window); :func:`exposure` returns the cells (period x keys) with exposure
days/years, sharing days/years, claims and amount.

Notes
-----
Conventions (docs/domain.md section 4), with day numbers and ``X`` = exit_date
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
import numbers
from concurrent.futures import Executor
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.cells.calendar import Calendar, KeySpec
from engine.cells._sink import CellSink
from engine.cells._batch import View, as_lazy, check_columns, claimant_cells, claimant_frame, parts_of
from engine.cells._executor import Extra, check_executor, member_cells
from engine.cells.dates import day_number
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, EngineError
from engine.conventions import DAYS_PER_YEAR, WAITING_DAYS

PERIODS = ("month", "quarter", "year")
_CLAIM_TMP = ("__ord", "__join", "__exit", "__first")


def _check_waiting(waiting_days: Any) -> int:
    if isinstance(waiting_days, bool) or not isinstance(waiting_days, numbers.Integral) or waiting_days < 0:
        raise ConfigError(f"waiting_days: must be a non-negative integer, got {waiting_days!r}")
    return int(waiting_days)


def _need(schema: pl.Schema, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in schema]
    if missing:
        raise DataError(f"{what}: missing required column(s) {', '.join(repr(c) for c in missing)}")


@api_input(frames=("members", "claims"))
def classify_claims(
    members: pl.LazyFrame | pl.DataFrame,
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    waiting_days: int = WAITING_DAYS,
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
    Existing ``eligible`` / ``reason`` columns of ``claims`` are dropped and recomputed.
    """
    w = _check_waiting(waiting_days)
    m = as_lazy(members, "members")
    c = as_lazy(claims, "claims")
    _need(m.collect_schema(), ("member_id", "join_date", "exit_date"), "members")
    c_schema = c.collect_schema()
    _need(c_schema, ("member_id", "event_date"), "claims")
    clash = [x for x in _CLAIM_TMP if x in c_schema]
    if clash:
        raise DataError(f"claims: column '{clash[0]}' is reserved by classify_claims")
    c = c.drop([x for x in ("eligible", "reason") if x in c_schema])  # recomputed
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
    out = _classify_joined(cdf, mm, w, terminate_on_claim)
    return out.select([*(x for x in cdf.columns if x != "__ord"), "eligible", "reason"])


def _classify_joined(cdf: pl.DataFrame, mm: pl.DataFrame, w: int, terminate_on_claim: bool) -> pl.DataFrame:
    """Classify ``cdf`` (claims with ``__ord``) against ``mm`` (member_id, __join, __exit, ...).

    Returns the joined frame sorted by ``__ord`` with ``reason`` and ``eligible``.
    """
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
    return j.sort("__ord").with_columns(pl.col("reason").is_null().alias("eligible"))


# --------------------------------------------------------------------------- exposure
DAY_KEYS = ("age", "duration", "duration_band")
SUMS = ("exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount")
DEFAULT_BATCH = 1_000_000


def _check_args(start, end, period, by, duration_bands, batch_size) -> tuple[list[str], np.ndarray]:
    for name, v in (("start", start), ("end", end)):
        if not isinstance(v, dt.date) or isinstance(v, dt.datetime):
            raise ConfigError(f"{name}: expected a datetime.date, got {v!r}")
    if end < start:
        raise ConfigError(f"end: {end} is before start {start}")
    if period not in PERIODS:
        raise ConfigError(f"period: must be one of {', '.join(PERIODS)}, got {period!r}")
    if isinstance(by, str):
        by = (by,)
    by = list(by)
    if any(not isinstance(b, str) or not b for b in by):
        raise ConfigError(f"by: expected column names, got {by!r}")
    if len(set(by)) != len(by):
        raise ConfigError(f"by: a key is repeated in {by!r}")
    if "period" in by or any(b in SUMS for b in by):
        raise ConfigError(f"by: 'period' and the sum columns cannot be keys ({by!r})")
    edges = list(duration_bands)
    if (
        not edges
        or any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) for e in edges)
        or edges[0] != 0
        or any(b <= a for a, b in zip(edges, edges[1:]))
    ):
        raise ConfigError(f"duration_bands: must be increasing integers starting at 0, got {tuple(duration_bands)!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size: must be a positive integer, got {batch_size!r}")
    return by, np.asarray(edges, dtype=np.int64)


def band_labels(edges: Sequence[int]) -> list[str]:
    """Labels of the bands with lower edges ``edges`` (months, ages): ``"0-2", ..., "24+"``.

    Notes
    -----
    Band i covers the integers edges[i] .. edges[i+1] - 1 and is labelled "lo-hi", or "lo"
    when it holds one value (edges (0, 1) give "0"); the last band is open: "lo+".
    """
    edges = list(edges)
    out = [f"{a}-{b - 1}" if b - 1 > a else f"{a}" for a, b in zip(edges, edges[1:])]
    return [*out, f"{edges[-1]}+"]


@api_input(frames=("members", "claims"), dates=("start", "end"))
def exposure(
    members: pl.LazyFrame | pl.DataFrame | Sequence[pl.LazyFrame | pl.DataFrame],
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    period: str = "month",
    waiting_days: int = WAITING_DAYS,
    terminate_on_claim: bool = True,
    by: Sequence[str] = ("age", "sex"),
    duration_bands: Sequence[int] = (0, 3, 6, 12, 24),
    batch_size: int | None = None,
    return_rejected: bool = False,
    executor: Executor | None = None,
) -> pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]:
    """Cells of exposure, sharing days, claims and amount by period and keys.

    Parameters
    ----------
    members : clean contract members (after :func:`engine.validate`): a frame, or a
        list of frames (partitions) processed one by one.
    claims : clean contract claims (collected in memory: they are few).
    start, end : study window, both inclusive.
    period : ``"month"``, ``"quarter"`` or ``"year"`` (calendar periods).
    waiting_days : days after ``join_date`` before cover starts.
    terminate_on_claim : cover ends with the first eligible claim (event day at risk).
    by : keys after ``period``, in this order: ``age`` (age last birthday),
        ``duration`` (completed months since joining), ``duration_band`` (labels
        from ``duration_bands``) and any member column (e.g. ``sex``).
    duration_bands : lower edges in months of the duration bands (start at 0).
    batch_size : members per batch (default 1,000,000); results do not depend on it.
    return_rejected : also return the claims set aside, with ``reason``.
    executor : a ``concurrent.futures.Executor`` (thread or *spawned* process pool, see
        :func:`engine.cells.process_pool`): one task per member partition counts its members'
        days; the driver sums them (integers, exact) and keeps the claimants pass. The cells
        are bit-identical to the run without one. A process pool that forks is refused.

    Returns
    -------
    DataFrame, or (DataFrame, DataFrame) with ``return_rejected``
        Cells sorted by ``period`` and ``by``, with ``exposure_days``,
        ``exposure_years``, ``sharing_days``, ``sharing_years``, ``claims``,
        ``amount``; only cells with a sharing day. Rejected claims keep every
        claim column plus ``reason``.

    Notes
    -----
    On day d a member shares if ``join <= d < exit`` and is at risk if it shares,
    ``d >= join + waiting_days`` and ``d <= first eligible claim`` (with
    ``terminate_on_claim``). ``exposure_years = exposure_days / 365.25``. A
    claim counts in the cell of its event day. Claims read = ``sum(claims)`` +
    rows of the rejected claims (checked). See :mod:`engine.cells.calendar` for the
    algorithm.
    """
    (cells,), rejected = exposure_tables(
        members, claims, bys=[by], start=start, end=end, period=period, waiting_days=waiting_days,
        terminate_on_claim=terminate_on_claim, duration_bands=duration_bands, batch_size=batch_size, executor=executor)
    return (cells, rejected) if return_rejected else cells


def exposure_tables(
    members: pl.LazyFrame | pl.DataFrame | Sequence[pl.LazyFrame | pl.DataFrame],
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    bys: Sequence[Sequence[str]],
    start: dt.date,
    end: dt.date,
    period: str = "month",
    waiting_days: int = WAITING_DAYS,
    terminate_on_claim: bool = True,
    duration_bands: Sequence[int] = (0, 3, 6, 12, 24),
    batch_size: int | None = None,
    executor: Executor | None = None,
    claimant_cols: Sequence[str] = (),
    claimants_out: list[pl.DataFrame] | None = None,
    extra: Extra | None = None,
) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """The cells of :func:`exposure` for several ``by`` lists from one pass over the members.

    Parameters
    ----------
    members, claims, start, end, period, waiting_days, terminate_on_claim, duration_bands, batch_size, executor
        As :func:`exposure` (polars frames: no conversion of other inputs).
    bys : one list of keys per cell table (each as ``by`` of :func:`exposure`).
    claimant_cols : member columns read too, for ``claimants_out`` and ``extra`` only (e.g. the history's keys).
    claimants_out : a list to which the claimants' member rows (``member_id``, the dates, the static keys,
        ``claimant_cols`` and ``__part``, in partition order) are appended: found in the same read, so a
        later stage need not look them up again.
    extra : ``(fn, out)``: ``(partition index, fn(batch))`` of every batch of members read is appended to
        ``out`` (another reduction in the same read, e.g. the history's counts); without an executor only.

    Returns
    -------
    (list of DataFrame, DataFrame)
        One cell table per element of ``bys``, each identical to ``exposure(..., by=bys[i])``,
        and the claims set aside (the same for every ``by``).

    Notes
    -----
    Each batch of members is read and decoded once (dates, sharing and at-risk intervals);
    its day counts are then added into each table's key space. The claimants' member rows
    (``member_id`` in the claims) are found in the same read and classified once; each
    table gets their lost at-risk days, claims and amounts.
    """
    if isinstance(bys, str) or not len(bys):
        raise ConfigError(f"bys: expected a non-empty list of key lists, got {bys!r}")
    checked = [_check_args(start, end, period, by, duration_bands, batch_size) for by in bys]
    edges = checked[0][1]
    w = _check_waiting(waiting_days)
    check_executor(executor)
    bs = batch_size or DEFAULT_BATCH
    cdf = _claims_frame(claims)
    views = [View(_spec(by, edges), [b for b in by if b not in DAY_KEYS]) for by, _ in checked]
    static = list(dict.fromkeys(x for v in views for x in v.static))
    cal = Calendar(day_number(start), day_number(end), period)
    parts = parts_of(members)
    check_columns(parts, static)
    ids = cdf.get_column("member_id").drop_nulls().unique().sort()
    cols = list(dict.fromkeys(["member_id", "birth_date", "join_date", "exit_date", *static, *claimant_cols]))
    sinks = [CellSink(cal, v.spec, v.static) for v in views]
    n_batches, found = member_cells(parts, cal, views, w, cols, bs, sinks, executor, ids, extra)
    if not n_batches:
        raise DataError("members: no member rows")
    cm = claimant_frame(found)
    if claimants_out is not None:
        claimants_out.append(cm)
    mm = cm.select("member_id", pl.col("join_date").alias("__join"), pl.col("exit_date").alias("__exit")).with_row_index("__row")
    cb = cdf.filter(pl.col("member_id").is_in(mm.get_column("member_id").implode()))
    cl = _classify_joined(cb, mm, w, terminate_on_claim)
    rejected = _rejected(cdf, [cl], start, end)
    tables = []
    for (by, _), view, sink in zip(checked, views, sinks, strict=True):
        if cm.height:
            claimant_cells(cm, cl, cal, view.spec, view.static, w, terminate_on_claim, sink)
        cells = _final(sink, by, edges)
        used = int(cells["claims"].sum())
        if used + rejected.height != cdf.height:
            raise EngineError(f"internal: claims account does not balance: {cdf.height} != {used} + {rejected.height}")
        tables.append(cells)
    return tables, rejected


def _spec(by: list[str], edges: np.ndarray) -> KeySpec:
    """The day-varying keys of ``by``: age, and duration or its band."""
    dim = "duration" if "duration" in by else ("band" if "duration_band" in by else None)
    return KeySpec(age="age" in by, dim=dim, edges=edges)


def _claims_frame(claims: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """The claims collected with their input order ``__ord`` (``eligible`` / ``reason`` dropped: recomputed)."""
    c = as_lazy(claims, "claims")
    c_schema = c.collect_schema()
    _need(c_schema, ("member_id", "event_date", "amount"), "claims")
    clash = [x for x in _CLAIM_TMP if x in c_schema]
    if clash:
        raise DataError(f"claims: column '{clash[0]}' is reserved by exposure")
    c = c.drop([x for x in ("eligible", "reason") if x in c_schema])
    return c.with_row_index("__ord").collect()


def _final(sink: CellSink, by: list[str], edges: np.ndarray) -> pl.DataFrame:
    """The cells of a sink: keys, years added, sorted by period and ``by``."""
    keys = ["period", *by]
    cells = sink.final(keys, by, band_labels(edges.tolist()))
    if cells is None:
        return _combine(sink.frames(), keys, by, edges)
    return cells.with_columns(
        (pl.col("exposure_days") / DAYS_PER_YEAR).alias("exposure_years"),
        (pl.col("sharing_days") / DAYS_PER_YEAR).alias("sharing_years"),
    ).select([*keys, *SUMS])


def _combine(
    parts: list[pl.DataFrame], keys: list[str], by: list[str], edges: np.ndarray
) -> pl.DataFrame:
    """Sum batch cells over keys, label duration bands, add years, sort."""
    if not parts:
        raise DataError("members: no member rows")
    df = pl.concat(parts, how="vertical_relaxed")
    labels = band_labels(edges.tolist())
    if "duration_band" in by:
        if "duration" in df.columns:
            idx = np.searchsorted(edges, df.get_column("duration").to_numpy(), side="right") - 1
        else:
            idx = df.get_column("band").to_numpy()
        df = df.with_columns(pl.Series("duration_band", labels, dtype=pl.String).gather(pl.Series(idx.astype(np.int64))))
    df = df.group_by(keys).agg(pl.col("exposure_days", "sharing_days", "claims", "amount").sum())
    df = df.with_columns(
        (pl.col("exposure_days") / DAYS_PER_YEAR).alias("exposure_years"),
        (pl.col("sharing_days") / DAYS_PER_YEAR).alias("sharing_years"),
    )
    return df.select([*keys, *SUMS]).sort(keys, nulls_last=True)


def _rejected(cdf: pl.DataFrame, classified: list[pl.DataFrame], start: dt.date, end: dt.date) -> pl.DataFrame:
    """Claims set aside, input order, every claim column plus ``reason``."""
    claim_cols = [x for x in cdf.columns if x != "__ord"]
    parts = [p.select("__ord", "eligible", "reason", "event_date") for p in classified if p.height]
    cl = pl.concat(parts) if parts else pl.DataFrame(schema={"__ord": pl.UInt32, "eligible": pl.Boolean, "reason": pl.String, "event_date": pl.Date})
    if cl.get_column("__ord").is_duplicated().any():
        raise DataError("members: a member_id occurs in more than one batch or partition (run engine.validate first)")
    cl = cl.with_columns(
        pl.when(pl.col("eligible") & ~pl.col("event_date").is_between(start, end))
        .then(pl.lit("outside_study"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    ).select("__ord", "reason")
    out = cdf.join(cl, on="__ord", how="left").with_columns(pl.col("reason").fill_null(pl.lit("unknown_member")))
    out = out.filter(~(pl.col("__ord").is_in(cl.filter(pl.col("reason").is_null())["__ord"].implode())))
    return out.sort("__ord").select([*claim_cols, "reason"])
