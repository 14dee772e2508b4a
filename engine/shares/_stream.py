"""Additive member counts of the share history and of the decomposition windows, per partition, summed.

The history and the driver decomposition need from the members only integer counts:

* **cohorts** (history): members counted by (pool keys, ``join_date``, ``exit_date``); the members
  sharing and eligible on every notice day, and the join cohorts of the annual cap, follow from them;
* **window days** (decomposition): eligible days by age, sex, duration (and relativity columns) on
  the window's notice date, the members sharing on it (N) and their sharing days in the window;
* **claimants**: the member rows of members with a claim (few), for the claims pass.

Each partition (a file, a frame; an in-memory frame larger than a batch is cut into batch-sized
slices) is read in batches and reduced to these counts, in this process or as one task per
partition on a ``concurrent.futures.Executor``; the driver sums them. Every sum is a sum of
integers, so the result does not depend on the partitioning, the batching or the order of the
tasks: it is bit-identical to the count of all members at once. No step holds all member rows.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any, NamedTuple, cast

import numpy as np
import polars as pl

from engine.shares._window_days import Window, _Civil, _day_numbers, _window_batch
from engine.shares._cohorts import member_counts, merge_cohorts
from engine.errors import ConfigError

#: members per batch of the counting passes (results do not depend on it)
DEFAULT_BATCH = 1_000_000


def parts_of(members: Any) -> list[pl.DataFrame | pl.LazyFrame]:
    """The partitions of ``members``: a frame, a LazyFrame, or a list or tuple of them."""
    parts = list(members) if isinstance(members, (list, tuple)) else [members]
    for p in parts:
        if not isinstance(p, (pl.DataFrame, pl.LazyFrame)):
            raise ConfigError(f"members: expected a polars DataFrame or LazyFrame (or a list of them), "
                              f"got {type(p).__name__}")
    return parts


def column_names(parts: Sequence[pl.DataFrame | pl.LazyFrame]) -> list[str]:
    """Columns present in every partition (the first partition's order)."""
    names = [p.columns if isinstance(p, pl.DataFrame) else p.collect_schema().names() for p in parts]
    common = set(names[0]).intersection(*map(set, names[1:])) if names else set()
    return [c for c in names[0] if c in common] if names else []


def pool_keys(names: Sequence[str], plan_col: str | None, by: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """Pool key columns and the constant columns to add (``{column: value}``) for the members' columns ``names``.

    A missing default ``plan_id`` column means one pool labelled ``"all"``; no key at all means one
    pool ``pool = "all"``. A missing ``by`` column or a missing non-default ``plan_col`` is an error.
    """
    keys: list[str] = []
    const: dict[str, str] = {}
    if plan_col is not None:
        if plan_col not in names:
            if plan_col != "plan_id":
                raise ConfigError(f"plan_col: members have no column '{plan_col}'")
            const["plan_id"] = "all"
        keys.append(plan_col)
    for k in by or ():
        if k not in names:
            raise ConfigError(f"by: members have no column '{k}'")
        if k not in keys:
            keys.append(k)
    if not keys:
        const["pool"] = "all"
        keys = ["pool"]
    return keys, const


def _sum_counts(frames: list[pl.DataFrame], keys: list[str], value_cols: list[str]) -> pl.DataFrame:
    """Integer counts of several partitions summed by ``keys`` (exact: the order does not matter)."""
    frames = [f for f in frames if f.height] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    both = pl.concat(frames, how="vertical_relaxed")
    return both.group_by(keys).agg([pl.col(c).cast(pl.Int64).sum() for c in value_cols])


# --------------------------------------------------------------------------- one task
def _batches(part: Any, cols: list[str], batch_size: int, fn: Any) -> list[Any]:
    """``fn`` of each batch of ``cols`` of one partition (:func:`engine.cells._batch.batches`).

    A lazy partition of at most ``batch_size`` rows (a file) is read whole, once, and sliced in
    memory: a slice of a lazy file minus its set-aside rows would read the whole file again.
    """
    from engine.cells._batch import batches

    if isinstance(part, pl.LazyFrame) and int(part.select(pl.len()).collect().item()) <= batch_size:
        part = part.select(cols).collect()
    return list(batches([part], cols, batch_size, fn))


def _with_const(mb: pl.DataFrame, const: dict[str, str]) -> pl.DataFrame:
    return mb.with_columns([pl.lit(v, dtype=pl.String).alias(k) for k, v in const.items()]) if const else mb


def _cohort_batch(mb: pl.DataFrame, keys: list[str], const: dict[str, str]) -> pl.DataFrame:
    return member_counts(_with_const(mb, const), keys)


def _empty(part: Any, cols: list[str]) -> pl.DataFrame:
    lf = part.lazy() if isinstance(part, pl.DataFrame) else part
    return lf.select(cols).clear().collect()


#: members sharing at the end: (the day, waiting days, keys such as ``age, sex, factors...``)
AtEnd = tuple[dt.date, int, list[str]]


def _member_batch(mb: pl.DataFrame, cache: dict | None = None, *, keys: list[str] | None, const: dict[str, str],
                  windows: list[Window], waiting_days: int, rel_cols: list[str], plan: tuple[str, str] | None,
                  at_end: AtEnd | None) -> tuple[Any, list[Any], Any]:
    """One batch reduced to its cohort counts (None without pool keys), its window counts and the members
    sharing at the end (None without ``at_end``); ``cache``: static key encodings of ``mb`` already made
    (:func:`engine.cells.calendar.encoded`)."""
    cohorts = _cohort_batch(mb, keys, const) if keys is not None else None
    return (cohorts, _window_batch(mb, windows, waiting_days, rel_cols, plan, cache),
            end_counts(mb, *at_end, cache=cache) if at_end is not None else None)


def end_counts(mb: pl.DataFrame, end: dt.date, waiting_days: int, keys: list[str],
               cache: dict | None = None) -> pl.DataFrame:
    """Members sharing on ``end`` by ``keys`` (``members``) and those of them still waiting (``waiting_members``), Int64.

    Notes
    -----
    Sharing on ``end``: ``join <= end < exit``; still waiting: ``join > end - waiting_days``;
    ``age`` (Int32) is the attained age on ``end`` (:func:`engine.cells.dates.age_from_civil`, read from
    the batch's table by birth day, as in the window counts). Counted on a dense grid of (other keys, age).
    """
    from engine.cells.calendar import encoded
    from engine.cells.dates import day_number

    if mb.get_column("birth_date").null_count() or mb.get_column("join_date").null_count():
        return _end_counts_polars(mb, end, waiting_days, keys)
    e = day_number(end)
    j, x = _day_numbers(mb, "join_date"), _day_numbers(mb, "exit_date")
    alive = np.flatnonzero((j <= e) & (x > e))
    static = [k for k in keys if k != "age"]
    sid, n_sid, decode = encoded(mb, static, cache)
    age = _Civil(_day_numbers(mb, "birth_date"), j).on(e, alive)[0] if "age" in keys else np.zeros(alive.size, np.int64)
    a0 = int(age.min()) if age.size else 0
    na = int(age.max()) - a0 + 1 if age.size else 1
    code = sid[alive].astype(np.int64) * na + (age - a0)
    waiting = (j[alive] > e - waiting_days).astype(np.float64)
    members = np.bincount(code, minlength=n_sid * na)
    held = np.flatnonzero(members)
    frame = decode(held // na)
    frame = pl.concat([frame, pl.DataFrame({"age": (held % na + a0).astype(np.int32),
                                            "members": members[held].astype(np.int64),
                                            "waiting_members": np.bincount(code, waiting, minlength=n_sid * na)[held]
                                            .astype(np.int64)})], how="horizontal")
    return frame.select(*keys, "members", "waiting_members")


def _end_counts_polars(mb: pl.DataFrame, end: dt.date, waiting_days: int, keys: list[str]) -> pl.DataFrame:
    """:func:`end_counts` for members with a null birth or join date (polars expressions)."""
    from engine.cells.dates import attained_age_expr

    alive = mb.lazy().filter((pl.col("join_date") <= end) & (pl.col("exit_date").is_null() | (pl.col("exit_date") > end)))
    waiting_from = end - dt.timedelta(days=waiting_days)
    return (alive.with_columns(attained_age_expr(pl.col("birth_date"), pl.lit(end)).alias("age"),
                               (pl.col("join_date") > waiting_from).cast(pl.Int64).alias("waiting_members"))
            .group_by(keys).agg(pl.len().cast(pl.Int64).alias("members"), pl.col("waiting_members").sum())
            .collect())


def _sum_end(frames: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """Members sharing at the end of several batches or partitions summed by ``keys`` (integers: exact)."""
    frames = [f for f in frames if f.height] or frames[:1]
    return pl.concat(frames, how="vertical_relaxed").group_by(keys).agg(pl.col("members", "waiting_members").sum())


def _columns(keys: list[str] | None, const: dict[str, str], windows: list[Window], rel_cols: list[str],
             plan: tuple[str, str] | None, at_end: AtEnd | None) -> list[str]:
    """The member columns the counts read."""
    cols = [k for k in keys if k not in const] + ["join_date", "exit_date"] if keys is not None else []
    if windows:
        cols += ["birth_date", "join_date", "exit_date", "sex", *rel_cols, *([plan[0]] if plan is not None else [])]
    if at_end is not None:
        cols += ["birth_date", "join_date", "exit_date", *[k for k in at_end[2] if k != "age"]]
    return list(dict.fromkeys(cols))


def counts_task(part: Any, keys: list[str] | None, const: dict[str, str], windows: list[Window], waiting_days: int,
                rel_cols: list[str], plan: tuple[str, str] | None, at_end: AtEnd | None,
                batch_size: int) -> tuple[Any, list[Any], Any]:
    """One task: the counts of one partition, each batch read once for all of them (picklable)."""
    cols = _columns(keys, const, windows, rel_cols, plan, at_end)
    fn = functools.partial(_member_batch, keys=keys, const=const, windows=windows, waiting_days=waiting_days,
                           rel_cols=rel_cols, plan=plan, at_end=at_end)
    return _part_counts(_batches(part, cols, batch_size, fn) or [fn(_empty(part, cols))], keys, rel_cols, at_end)


def _part_counts(per_batch: list[Any], keys: list[str] | None, rel_cols: list[str],
                 at_end: AtEnd | None) -> tuple[Any, list[Any], Any]:
    """The counts of one partition: its batches' counts (:func:`_member_batch`) summed."""
    cohorts = merge_cohorts([b[0] for b in per_batch], keys) if keys is not None else None
    end = _sum_end([b[2] for b in per_batch], at_end[2]) if at_end is not None else None
    return cohorts, _sum_windows([b[1] for b in per_batch], rel_cols), end


def _sum_windows(results: list[list[tuple[pl.DataFrame, int, int]]],
                 rel_cols: list[str]) -> list[tuple[pl.DataFrame, int, int]]:
    keys = ["age", "sex", "duration", *rel_cols]
    out = []
    for i in range(len(results[0])):
        cells = _sum_counts([r[i][0] for r in results], keys, ["_days"])
        out.append((cells, sum(r[i][1] for r in results), sum(r[i][2] for r in results)))
    return out


# --------------------------------------------------------------------------- the map and the sum
def _tasks(parts: Sequence[Any], batch_size: int) -> list[Any]:
    from engine.cells._executor import _tasks as cell_tasks

    return cell_tasks(parts, batch_size)


def map_parts(fn: Any, parts: Sequence[Any], batch_size: int, executor: Executor | None) -> list[Any]:
    """``fn(part)`` of every partition, in this process or one task each on ``executor`` (results in part order)."""
    from engine.cells._executor import check_executor

    check_executor(executor)
    if executor is None:
        return [fn(p) for p in parts]
    futures = [executor.submit(fn, p) for p in _tasks(parts, batch_size)]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


class MemberCounts(NamedTuple):
    """What :func:`history_counts` counts (None for what was not asked)."""

    #: members by (pool keys, join_date, exit_date), ``_n``
    cohorts: pl.DataFrame | None
    #: per window: eligible days by cell (``_days``, sorted by its keys), N, sharing days
    windows: list[tuple[pl.DataFrame, int, int]]
    #: members sharing at the end by its keys (``members``, ``waiting_members``: Float64), sorted by the keys
    at_end: pl.DataFrame | None


def history_counts(parts: Sequence[Any], keys: list[str] | None, const: dict[str, str], windows: list[Window], *,
                   waiting_days: int, rel_cols: list[str], plan: tuple[str, str] | None = None,
                   at_end: AtEnd | None = None, batch_size: int = DEFAULT_BATCH,
                   executor: Executor | None = None) -> MemberCounts:
    """The history's cohorts, the decomposition windows' counts and the members sharing at the end, one pass.

    Parameters
    ----------
    parts : the member partitions.
    keys, const : pool keys and constant columns (:func:`pool_keys`); None: no cohorts.
    windows : ``(period_start, notice_date)`` of the windows (members of ``plan = (column, value)`` only),
        their counts keyed by ``age, sex, duration, rel_cols``; waiting_days as in the history.
    at_end : ``(end, waiting_days, keys)``: members sharing on ``end`` by ``keys`` (:func:`end_counts`).

    Returns
    -------
    MemberCounts

    Notes
    -----
    Each batch of each partition is read once and reduced to every count; every sum across batches
    and partitions is a sum of integers (exact, in any order).
    """
    fn = functools.partial(counts_task, keys=keys, const=const, windows=windows, waiting_days=waiting_days,
                           rel_cols=rel_cols, plan=plan, at_end=at_end, batch_size=batch_size)
    return _total(map_parts(fn, parts, batch_size, executor), keys, rel_cols, at_end)


class BatchCounter(NamedTuple):
    """The history's counts of one batch of members (``fn``, on a frame holding ``cols``), for a pass over
    the members made by another stage (:func:`engine.cells._exposure.exposure_tables`' ``extra``); then
    :func:`counts_of_batches`."""

    cols: list[str]
    fn: Any
    keys: list[str] | None
    rel_cols: list[str]
    at_end: AtEnd | None


def batch_counter(keys: list[str] | None, const: dict[str, str], windows: list[Window], *, waiting_days: int,
                  rel_cols: list[str], plan: tuple[str, str] | None = None,
                  at_end: AtEnd | None = None) -> BatchCounter:
    """The per-batch counts of :func:`history_counts` (same arguments), to run in another pass over the members."""
    fn = functools.partial(_member_batch, keys=keys, const=const, windows=windows, waiting_days=waiting_days,
                           rel_cols=rel_cols, plan=plan, at_end=at_end)
    return BatchCounter(_columns(keys, const, windows, rel_cols, plan, at_end), fn, keys, rel_cols, at_end)


#: batches' counts a :class:`FoldedCounts` holds before adding them to its running total
FOLD_EVERY = 8


class FoldedCounts:
    """The ``(partition index, counter.fn(batch))`` of the batches of a pass over the members, added up as they
    come: every :data:`FOLD_EVERY` batches, the held counts are summed into a running total
    (:func:`_part_counts`, exact integer sums), so memory holds the total and a few batches' counts,
    not every batch's (each batch's cohorts are a few megabytes: about 1 GB over 10^8 members).

    ``append`` takes what :func:`engine.cells._executor.member_cells` appends to its ``extra`` list.
    """

    def __init__(self, counter: BatchCounter, every: int = FOLD_EVERY) -> None:
        self.counter, self.every = counter, every
        self.total: Any = None
        self.pending: list[Any] = []
        self.seen: set[int] = set()

    def append(self, item: tuple[int, Any]) -> None:
        i, counts = item
        self.seen.add(i)
        self.pending.append(counts)
        if len(self.pending) >= self.every:
            self.fold()

    def fold(self) -> Any:
        """The counts of every batch appended so far (None before the first), as one batch's."""
        if self.pending:
            c = self.counter
            held = [self.total, *self.pending] if self.total is not None else self.pending
            self.total, self.pending = _part_counts(held, c.keys, c.rel_cols, c.at_end), []
        return self.total


def counts_of_batches(parts: Sequence[Any], found: FoldedCounts) -> MemberCounts:
    """:func:`history_counts` from the counts of every batch of ``parts`` (:class:`FoldedCounts`; a partition
    without a batch counts as an empty one): the same sums, the same result.

    Notes
    -----
    Every sum is of integers, so adding the batches in any grouping gives the same counts; the
    window and end counts are sorted by their keys (:func:`_total`) and the cohorts' row order is
    not used (:func:`engine.shares.history._pool_cohorts` sums them by ``np.bincount``).
    """
    c = found.counter
    res = [_part_counts([c.fn(_empty(p, c.cols))], c.keys, c.rel_cols, c.at_end)
           for i, p in enumerate(parts) if i not in found.seen]
    total = found.fold()
    if total is not None:
        res.insert(0, total)
    return _total(res, c.keys, c.rel_cols, c.at_end)


def _total(res: list[Any], keys: list[str] | None, rel_cols: list[str], at_end: AtEnd | None) -> MemberCounts:
    """The counts of every partition (:func:`_part_counts`) summed."""
    cohorts = merge_cohorts([r[0] for r in res], keys) if keys is not None else None
    cell_keys = ["age", "sex", "duration", *rel_cols]
    counts = [(cells.sort(cell_keys, nulls_last=True), n, y) for cells, n, y in _sum_windows([r[1] for r in res], rel_cols)]
    end = None
    if at_end is not None:
        ek = at_end[2]
        end = _sum_end([r[2] for r in res], ek).select(*ek, pl.col("members", "waiting_members").cast(pl.Float64)).sort(ek)
    return MemberCounts(cohorts, counts, end)


def history_cohorts(parts: Sequence[Any], keys: list[str], const: dict[str, str], *, batch_size: int = DEFAULT_BATCH,
                    executor: Executor | None = None) -> pl.DataFrame:
    """Members counted by (pool keys, join_date, exit_date) over every partition (``_n``, exact integer sums)."""
    counts = history_counts(parts, keys, const, [], waiting_days=0, rel_cols=[], batch_size=batch_size,
                            executor=executor)
    return cast(pl.DataFrame, counts.cohorts)


def window_counts(parts: Sequence[Any], windows: list[Window], *, waiting_days: int, rel_cols: list[str],
                  plan: tuple[str, str] | None = None, batch_size: int = DEFAULT_BATCH,
                  executor: Executor | None = None) -> list[tuple[pl.DataFrame, int, int]]:
    """Per window, over every partition: eligible days by cell (``_days``, sorted by its keys), N, sharing days."""
    return history_counts(parts, None, {}, windows, waiting_days=waiting_days, rel_cols=rel_cols, plan=plan,
                          batch_size=batch_size, executor=executor).windows


def claimant_rows(parts: Sequence[Any], ids: pl.Series, cols: list[str], const: dict[str, str],
                  found: pl.DataFrame | None = None) -> pl.DataFrame:
    """The member rows (``cols``) of the members in ``ids``, from every partition (duplicates refused).

    ``found``: these rows already read (:func:`engine.cells._exposure.exposure_tables`' ``claimants_out``,
    ``__part`` included), used instead of a look-up when they hold every column read.
    """
    from engine.cells._batch import claimants

    read = [c for c in cols if c not in const and c not in ("member_id", "birth_date", "join_date", "exit_date")]
    if found is not None and all(c in found.columns for c in read):
        rows = found.drop("__part")
    else:
        rows = claimants(parts, ids, read).drop("__part")
    return _with_const(rows, const).select(list(dict.fromkeys(["member_id", *cols])))
