"""Batch driver of :func:`engine.exposure`: streaming member batches and the claimants pass.

Cells are additive, so the members are processed in two independent parts
whose cells are summed (:func:`engine.cells._exposure._combine`):

1. **every member**, batch by batch, *as if it had no claim*: sharing days and
   at-risk days (sharing minus waiting period). Only the columns that make
   keys are read (dates, the static ``by`` columns and ``member_id``);
   LazyFrames are streamed in batches of ``batch_size`` rows without counting
   them first (the next batch is read while the current one is counted). Each
   batch is decoded once and counted into the key space of every requested
   cell table (:class:`View`);
2. **the claimants** (members with at least one claim, a small set found in
   the same read by a ``member_id`` filter of each batch): their claims are
   classified, their at-risk days after the first eligible claim are
   *subtracted*, and their eligible claims and amounts are added to the cell
   of the event day.

Notes
-----
With ``s0 = max(join, start)``, ``s1 = min(exit - 1, end)``,
``r0 = min(max(join + w, s0), s1 + 1)`` and ``c0 = min(max(first_claim + 1, r0), s1 + 1)``::

    sharing  = days [s0, s1]
    exposure = days [s0, s1] - days [s0, r0 - 1] - days [c0, s1]

All day counts are integers, so the sum does not depend on the batching.
Claim amounts are summed per cell in claim input order (``np.bincount``), so
the floating-point result is the same on every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from engine.cells.calendar import NEVER, Calendar, KeySpec, encode_static, encoded
from engine.cells._sink import CellSink
from engine.cells._accumulate import MAX_MEMBERS, Day, Events, Space, grid_cells, merge
from engine.data._compact import compact
from engine.errors import ConfigError, DataError

#: members per half below which a batch is not split across two threads
PARALLEL_MIN = 100_000
#: longest waiting period used in day arithmetic (longer ones are equivalent: never at risk)
_W_CAP = 10**6


def as_lazy(frame: Any, what: str) -> pl.LazyFrame:
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    if isinstance(frame, pl.LazyFrame):
        return frame
    raise ConfigError(f"{what}: expected a polars DataFrame or LazyFrame, got {type(frame).__name__}")


def parts_of(members: Any) -> list[pl.LazyFrame | pl.DataFrame]:
    parts = list(members) if isinstance(members, (list, tuple)) else [members]
    for p in parts:
        as_lazy(p, "members")
    return parts


def check_columns(parts: Sequence[Any], static: list[str]) -> None:
    """Every partition has the member columns and the static ``by`` keys."""
    need = ["member_id", "birth_date", "join_date", "exit_date", *static]
    for p in parts:
        names = p.columns if isinstance(p, pl.DataFrame) else as_lazy(p, "members").collect_schema().names()
        missing = [x for x in need if x not in names]
        if missing:
            what = "by" if missing[0] in static else "members"
            raise DataError(f"{what}: members have no column '{missing[0]}'")


def _frames(parts: Sequence[Any], cols: list[str], batch_size: int) -> Iterator[tuple[int, pl.DataFrame]]:
    """(partition index, slice of at most ``batch_size`` rows of ``cols``), partition by partition.

    A DataFrame is cut into zero-copy slices; a LazyFrame is streamed in batches
    (``collect_batches``) without counting its rows first: one read of each file.
    Empty slices are skipped.
    """
    for i, part in enumerate(parts):
        if isinstance(part, pl.DataFrame):
            sel = part.select(cols)
            for off in range(0, sel.height, batch_size):
                yield i, sel.slice(off, batch_size)
            continue
        for frame in as_lazy(part, "members").select(cols).collect_batches(chunk_size=batch_size, lazy=True):
            if frame.height:
                yield i, frame


def indexed_batches(parts: Sequence[Any], cols: list[str], batch_size: int,
                    prepare: Callable[[pl.DataFrame], Any]) -> Iterator[tuple[int, Any]]:
    """(partition index, ``prepare(frame)``) of each slice of ``batch_size`` rows of ``cols``, partition by partition.

    Slices are read and prepared one ahead on a background thread (polars and numpy
    release the GIL), so reading overlaps counting; at most two are held.
    """
    it = _frames(parts, cols, batch_size)

    def job() -> tuple[int, Any] | None:
        item = next(it, None)
        return None if item is None else (item[0], prepare(item[1]))

    with ThreadPoolExecutor(max_workers=1) as ex:
        nxt = ex.submit(job)
        while True:
            cur = nxt.result()
            if cur is None:
                return
            nxt = ex.submit(job)  # the generator is advanced by one thread at a time: after the last result
            yield cur
            del cur


def batches(parts: Sequence[Any], cols: list[str], batch_size: int, prepare: Callable[[pl.DataFrame], Any]) -> Iterator[Any]:
    """``prepare(frame)`` of each slice of ``batch_size`` rows of ``cols``, partition by partition
    (:func:`indexed_batches` without the partition index)."""
    for _, prepared in indexed_batches(parts, cols, batch_size, prepare):
        yield prepared


def _day_array(s: pl.Series) -> np.ndarray:
    """Dates as int32 day numbers (null -> NEVER)."""
    return s.to_physical().fill_null(NEVER).cast(pl.Int32).to_numpy()


def _intervals(birth: np.ndarray, join: np.ndarray, exit_: np.ndarray, cal: Calendar, w: int) -> tuple[np.ndarray, ...]:
    s0 = np.maximum(join, np.int32(cal.start))
    s1 = np.minimum(exit_ - 1, np.int32(cal.end))
    live = s0 <= s1
    idx = None if live.all() else np.flatnonzero(live)
    if idx is not None:
        s0, s1, join, birth = s0[idx], s1[idx], join[idx], birth[idx]
    r0 = np.minimum(np.maximum(join + np.int32(min(w, _W_CAP)), s0), s1 + 1)
    return idx, birth, join, s0, s1, r0


def _frame(space: Space, cal: Calendar, spec: KeySpec, cells: dict[str, np.ndarray], decode: Any,
           sums: dict[str, np.ndarray]) -> pl.DataFrame:
    """Batch cells with decoded keys: period, age, duration|band, static keys, then ``sums``."""
    keyed = [pl.Series("period", cal.first[cells["p"]].astype(np.int32)).cast(pl.Date)]
    if spec.age:
        keyed.append(pl.Series("age", cells["age"]).cast(pl.Int32))
    if spec.dim:
        keyed.append(pl.Series("duration" if spec.dim == "duration" else "band", cells["dim"]).cast(pl.Int32))
    static_df = decode(np.asarray(cells["sid"], dtype=np.int64))
    vals = pl.DataFrame({k: v for k, v in sums.items()})
    return pl.concat([pl.DataFrame(keyed), static_df, vals], how="horizontal")


def _events(space: Space, lo: np.ndarray | None, sub_lo: np.ndarray | None = None,
            days: dict[Any, Any] | None = None) -> Events:
    """:meth:`Space.accumulate` over parts of at most ``MAX_MEMBERS`` members; two threads for large batches.

    ``days``: ``"all"`` -> the :class:`Day` arrays of every member; the day arrays of each part
    (and what :meth:`Space.accumulate` adds to them) are kept under the part's number, for the
    next key space of the same members (``lo`` None: same parts).
    """
    n = space.s1.size
    k = -(-n // MAX_MEMBERS)
    if n >= 2 * PARALLEL_MIN and (os.cpu_count() or 1) >= 2:
        k = max(k, 2)
    if k <= 1:
        return space.accumulate(lo, sub_lo, None if days is None else days.setdefault(0, {**days["all"]}))
    cuts = [n * i // k for i in range(k + 1)]
    parts = [slice(a, b) for a, b in zip(cuts, cuts[1:])]

    def one(i: int, part: slice) -> Events:
        mine = None if days is None else days.setdefault(i + 1, {k: d.part(part) for k, d in days["all"].items()})
        return space.view(part).accumulate(None if lo is None else lo[part], None if sub_lo is None else sub_lo[part], mine)

    with ThreadPoolExecutor(max_workers=2) as ex:
        evs = list(ex.map(one, range(k), parts))
    out = evs[0]
    for ev in evs[1:]:
        out = merge(out, ev)
    return out


def _member_space(mb: pl.DataFrame, cal: Calendar, spec: KeySpec, static: list[str],
                  w: int) -> tuple[Space, np.ndarray, Any, np.ndarray | None]:
    """Key space of the members of ``mb`` sharing in the window, their first at-risk days, the decoder
    of static key ids and the rows of ``mb`` kept (None: all)."""
    birth = _day_array(mb.get_column("birth_date"))
    join = _day_array(mb.get_column("join_date"))
    exit_ = _day_array(mb.get_column("exit_date"))
    idx, birth, join, s0, s1, r0 = _intervals(birth, join, exit_, cal, w)
    sid, n_sid, decode = encode_static(mb, static)
    sid = sid if idx is None else sid[idx]
    return Space(cal, spec, birth, join, sid, n_sid, s0, s1), r0, decode, idx


class View(NamedTuple):
    """One cell table of a pass over the members: its day-varying keys and static ``by`` columns."""

    spec: KeySpec
    static: list[str]


class Prepared(NamedTuple):
    """A batch of members decoded once for every view: live members' day numbers, sharing interval
    ``[s0, s1]``, first at-risk day ``r0``, per view (static ids, number of ids, decoder), and the
    claimants' rows (None without ``ids``)."""

    cal: Calendar
    views: Sequence[View]
    birth: np.ndarray
    join: np.ndarray
    s0: np.ndarray
    s1: np.ndarray
    r0: np.ndarray
    keys: list[tuple[np.ndarray, int, Any]]
    rows: pl.DataFrame | None
    #: ``extra(frame)`` of the batch's member rows (None without ``extra``): another reduction in the same read
    extra: Any = None


def prepare_batch(mb: pl.DataFrame, cal: Calendar, views: Sequence[View], w: int,
                  ids: pl.Series | None = None,
                  extra: Callable[[pl.DataFrame, dict[tuple[str, ...], Any]], Any] | None = None) -> Prepared:
    """Day arrays and intervals, then per view the static key ids of a batch of members (run on the reading thread).

    The dates and intervals are decoded once for every view; the key spaces are built one at a
    time by :func:`batch_cells` (so a batch read ahead holds no key space). With ``ids``, the
    batch's rows whose ``member_id`` has a claim are returned too (the claimants, found in the same read);
    with ``extra``, ``extra(mb, encodings)`` too (e.g. the history's member counts of the batch; ``encodings``
    holds the views' static key encodings of ``mb``, :func:`engine.cells.calendar.encoded`).
    """
    # the few rows kept hold their own bytes, not the batch's (engine.data._compact)
    rows = compact(mb.filter(pl.col("member_id").is_in(ids.implode()))) if ids is not None else None
    birth = _day_array(mb.get_column("birth_date"))
    join = _day_array(mb.get_column("join_date"))
    exit_ = _day_array(mb.get_column("exit_date"))
    idx, birth, join, s0, s1, r0 = _intervals(birth, join, exit_, cal, w)
    keys = []
    cache: dict[tuple[str, ...], Any] = {}
    for view in views:
        sid, n_sid, decode = encoded(mb, view.static, cache)
        keys.append((sid if idx is None else sid[idx], n_sid, decode))
    return Prepared(cal, views, birth, join, s0, s1, r0, keys, rows, None if extra is None else extra(mb, cache))


def batch_cells(prepared: Prepared, sinks: Sequence[CellSink]) -> None:
    """Sharing and at-risk days of a prepared batch of members (ignoring claims), added to each view's sink.

    One key space at a time; the ages of the first view with ``age`` and the interval days
    (:class:`Day` of ``s0``, ``s1 + 1`` and ``r0``) are reused by the others.
    """
    b = prepared
    ages = None
    days: dict[Any, Any] = {}
    for view, (sid, n_sid, decode), sink in zip(b.views, b.keys, sinks, strict=True):
        space = Space(b.cal, view.spec, b.birth, b.join, sid, n_sid, b.s0, b.s1, ages=ages)
        if view.spec.age and ages is None:
            ages = space.ages()
        if not days:
            days = {"all": {"s0": space.day(b.s0), "end": space.day(b.s1 + 1), "sub": space.day(b.r0)}}
        ev = _events(space, None, b.r0, days)
        dense = {"sharing_days": space.days(ev), "exposure_days": space.days(ev, sub=True)}
        del ev

        def frame(space: Space = space, decode: Any = decode, dense: dict[str, np.ndarray] = dense) -> pl.DataFrame:
            cells = grid_cells(space, dense, "sharing_days")
            m = cells["p"].size
            sums = {"exposure_days": cells["exposure_days"], "sharing_days": cells["sharing_days"],
                    "claims": np.zeros(m, dtype=np.int64), "amount": np.zeros(m, dtype=np.float64)}
            return _frame(space, space.cal, space.spec, cells, decode, sums)

        sink.add(space, decode, dense, frame)
        del space, dense, frame


def claimant_frame(found: Sequence[tuple[int, pl.DataFrame]]) -> pl.DataFrame:
    """The claimants' member rows found batch by batch, ``(partition, rows)`` in partition order, with
    ``__part``; a ``member_id`` found twice is refused (:func:`claimants` on rows already read)."""
    frames = [f.with_columns(pl.lit(i, dtype=pl.Int32).alias("__part")) for i, f in found]
    return _no_duplicates(pl.concat(frames, how="vertical_relaxed"))


def claimants(parts: Sequence[Any], ids: pl.Series, static: list[str]) -> pl.DataFrame:
    """Member rows whose ``member_id`` has a claim, from every partition (``__part`` = partition)."""
    cols = list(dict.fromkeys(["member_id", "birth_date", "join_date", "exit_date", *static]))
    frames = []
    for i, p in enumerate(parts):
        f = as_lazy(p, "members").filter(pl.col("member_id").is_in(ids.implode())).select(cols).collect()
        frames.append(f.with_columns(pl.lit(i, dtype=pl.Int32).alias("__part")))
    return _no_duplicates(pl.concat(frames, how="vertical_relaxed"))


def _no_duplicates(cm: pl.DataFrame) -> pl.DataFrame:
    """``cm`` (claimant rows with ``__part``) when no ``member_id`` repeats, else the DataError naming it."""
    dup = cm.filter(pl.col("member_id").is_duplicated())
    if dup.height:
        first = dup.get_column("member_id")[0]
        if dup.filter(pl.col("member_id") == first).get_column("__part").n_unique() > 1:
            raise DataError(f"members: member_id '{first}' occurs in more than one batch or partition "
                            "(run engine.validate first)")
        raise DataError(f"members: member_id '{first}' occurs more than once (run engine.validate first)")
    return cm


def claimant_cells(cm: pl.DataFrame, cl: pl.DataFrame, cal: Calendar, spec: KeySpec, static: list[str], w: int,
                   terminate: bool, sink: CellSink) -> None:
    """Claimants: minus the at-risk days after the first eligible claim, plus claims and amounts.

    ``cl`` are the classified claims of ``cm`` with ``__row`` (row of ``cm``), sorted by input order.
    """
    space, r0, decode, idx = _member_space(cm, cal, spec, static, w)
    s0, s1 = space.s0, space.s1
    pos = np.full(cm.height, -1, dtype=np.int64)  # row of cm -> live position
    pos[np.arange(cm.height) if idx is None else idx] = np.arange(s0.size)
    elig = cl.filter(pl.col("eligible"))
    lost = np.zeros((space.n_keys, cal.n_periods), dtype=np.int64)
    if terminate and elig.height:
        first = elig.group_by("__row").agg(pl.col("event_date").min())
        cover = np.full(cm.height, NEVER, dtype=np.int64)
        cover[first.get_column("__row").to_numpy()] = _day_array(first.get_column("event_date"))
        cover = cover if idx is None else cover[idx]
        c0 = np.minimum(np.maximum(cover + 1, r0), s1.astype(np.int64) + 1).astype(np.int32)
        lost = space.days(_events(space, c0))
    inwin = elig.filter(pl.col("event_date").is_between(pl.lit(cal.start).cast(pl.Date), pl.lit(cal.end).cast(pl.Date)))
    p_live = pos[inwin.get_column("__row").to_numpy()]
    t = _day_array(inwin.get_column("event_date"))
    if (p_live < 0).any() or ((t < s0[p_live]) | (t > s1[p_live])).any():  # an eligible event day is a sharing day
        raise DataError("internal: an eligible claim lies outside its member's sharing days")
    flat = space.flat(space.row(p_live, t), t).astype(np.int64)
    amount = inwin.get_column("amount").cast(pl.Float64).fill_null(0.0).to_numpy()
    np1 = space.np1
    n_claims = np.bincount(flat, minlength=space.size).reshape(-1, np1)[:, :-1].astype(np.int64)
    amt = np.bincount(flat, weights=amount, minlength=space.size).reshape(-1, np1)[:, :-1]
    dense = {"exposure_days": -lost, "claims": n_claims, "amount": amt}

    def frame() -> pl.DataFrame:
        cells = grid_cells(space, {**dense, "mark": (lost != 0) | (n_claims != 0)}, "mark")
        m = cells["p"].size
        sums = {"exposure_days": cells["exposure_days"], "sharing_days": np.zeros(m, dtype=np.int64),
                "claims": cells["claims"], "amount": cells["amount"]}
        return _frame(space, cal, spec, cells, decode, sums)

    sink.add(space, decode, dense, frame)
