"""The numeric heart of the exposure core: day intervals -> (key, period) day counts.

No member x period rows are made. Each member's interval ``[lo, hi]`` (day
numbers, inclusive, inside the study window ``[S, E]``) becomes a few *events*
``(key, day t, sign)``: ``+1`` at ``lo`` under the key of ``lo``, ``-1`` at
``hi + 1`` under the key of ``hi``, and at each day ``t`` in ``(lo, hi]`` where
the key changes (a birthday, a duration boundary) ``-1`` under the old key and
``+1`` under the new one.

Notes
-----
An event ``(g, t, s)`` adds ``s`` to every day ``t .. E`` of key ``g``. Its
contribution to period ``p`` is ``s * |p ∩ [t, E]|``: the *partial* days
``end(p(t)) - t + 1`` of the period holding ``t``, and the full (window-clipped)
length ``len(p')`` of each later period. So, with ``np.bincount`` over the flat
index ``g * (P + 1) + p``::

    days[g, p] = partial[g, p] + len(p) * cumsum_p(full)[g, p]
    partial[g, p(t)] += s * (end(p(t)) - t + 1)      full[g, p(t) + 1] += s

which is exact integer arithmetic (float64 sums of integers < 2**53). The work
is O(events + keys x periods).

When a birthday and a duration boundary fall on the same day ``t``, the
birthday event uses the duration of ``t - 1`` and the duration event the age
of ``t``, so the changes compose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine.dates import (
    DayTable,
    MonthTable,
    age_from_civil,
    birthday,
    months_from_civil,
    next_period_start,
    period_start,
)

NEVER = 2**31 - 1  # day number standing for "no exit" / "no claim"


@dataclass
class Calendar:
    """The study window ``[start, end]`` (day numbers) cut into calendar periods."""

    start: int
    end: int
    period: str
    first: np.ndarray = field(init=False)  # first day (calendar, not clipped) of each period
    length: np.ndarray = field(init=False)  # window-clipped length of each period
    pidx: np.ndarray = field(init=False)  # period index of day start + i
    rem: np.ndarray = field(init=False)  # days from start + i to the end of its (clipped) period
    days: DayTable = field(init=False)

    def __post_init__(self) -> None:
        firsts = [int(period_start(np.array([self.start]), self.period)[0])]
        while True:
            nxt = next_period_start(firsts[-1], self.period)
            if nxt > self.end:
                break
            firsts.append(nxt)
        self.first = np.array(firsts, dtype=np.int64)
        bounds = np.append(np.maximum(self.first, self.start), self.end + 1)
        self.length = np.diff(bounds)
        self.pidx = (np.searchsorted(self.first, np.arange(self.start, self.end + 1), side="right") - 1).astype(np.int32)
        ends = bounds[1:] - 1
        self.rem = (ends[self.pidx] - np.arange(self.start, self.end + 1) + 1).astype(np.int32)
        self.days = DayTable(self.start, self.end + 1)

    @property
    def n_periods(self) -> int:
        return int(self.first.shape[0])


@dataclass
class Members:
    """Per-member arrays of one batch (day numbers as int64; ``NEVER`` = none)."""

    birth: np.ndarray
    join: np.ndarray
    exit: np.ndarray
    cover_end: np.ndarray  # last at-risk day allowed by claims (first eligible claim day) or NEVER
    sid: np.ndarray  # static key id
    n_sid: int


@dataclass
class KeySpec:
    """Which day-varying keys to split on: ``age`` and ``dim`` (None, 'duration' or 'band')."""

    age: bool
    dim: str | None
    edges: np.ndarray  # duration band lower edges in months (starting at 0)


class _Ctx:
    """Member attributes from lookup tables, shared by the sharing and at-risk passes."""

    def __init__(self, cal: Calendar, mem: Members, spec: KeySpec) -> None:
        self.cal, self.mem, self.spec = cal, mem, spec
        if spec.age:
            bt = DayTable(int(mem.birth.min()), int(mem.birth.max())) if mem.birth.size else DayTable(0, 0)
            k = mem.birth - bt.lo
            self.by = bt.year[k].astype(np.int64)
            self.bmd = bt.md[k].astype(np.int64)
            y0 = int(cal.days.year[0])
            y1 = int(cal.days.year[-1])
            yrs = np.arange(y0, y1 + 1)
            codes = np.arange(0, 32 * 13)
            mm, dd = codes // 32, codes % 32
            ok = (mm >= 1) & (mm <= 12) & (dd >= 1)
            self.bday_y0 = y0
            table = np.zeros((yrs.size, codes.size), dtype=np.int64)
            for i, y in enumerate(yrs):  # a handful of years x 416 codes
                table[i, ok] = birthday(np.full(ok.sum(), y), codes[ok])
            self.bday = table
        if spec.dim is not None:
            jt = DayTable(int(mem.join.min()), int(mem.join.max())) if mem.join.size else DayTable(0, 0)
            k = mem.join - jt.lo
            self.jmi = jt.mi[k].astype(np.int64)
            self.jd = jt.day[k].astype(np.int64)
            self.months = MonthTable(int(self.jmi.min()), int(cal.days.mi[-1]) + 1)
            if spec.dim == "band":
                maxdur = int(cal.days.mi[-1] - self.jmi.min()) + 2
                self.band_of = (np.searchsorted(spec.edges, np.arange(max(maxdur, 1)), side="right") - 1).astype(np.int64)

    # -- key functions on day numbers t (inside the window) for member indices ix
    def age(self, ix: np.ndarray, t: np.ndarray) -> np.ndarray:
        d = self.cal.days
        k = t - d.lo
        return age_from_civil(d.year[k], d.md[k], self.by[ix], self.bmd[ix])

    def dur(self, ix: np.ndarray, t: np.ndarray) -> np.ndarray:
        d = self.cal.days
        k = t - d.lo
        return months_from_civil(d.mi[k], d.day[k], d.last[k], self.jmi[ix], self.jd[ix])

    def dim(self, ix: np.ndarray, t: np.ndarray) -> np.ndarray:
        v = self.dur(ix, t)
        return self.band_of[v] if self.spec.dim == "band" else v


class _Grid:
    """Accumulates events into (key, period) day counts."""

    def __init__(self, cal: Calendar, n_keys: int) -> None:
        self.cal = cal
        self.np1 = cal.n_periods + 1
        self.size = n_keys * self.np1
        self.partial = np.zeros(self.size, dtype=np.float64)
        self.full = np.zeros(self.size, dtype=np.int64)

    def add(self, g: np.ndarray, t: np.ndarray, sign: int) -> None:
        keep = t <= self.cal.end
        if not keep.all():
            g, t = g[keep], t[keep]
        if g.size == 0:
            return
        k = t - self.cal.start
        idx = g * self.np1 + self.cal.pidx[k]
        if sign > 0:
            self.partial += np.bincount(idx, weights=self.cal.rem[k], minlength=self.size)
            self.full += np.bincount(idx + 1, minlength=self.size)
        else:
            self.partial -= np.bincount(idx, weights=self.cal.rem[k], minlength=self.size)
            self.full -= np.bincount(idx + 1, minlength=self.size)

    def days(self) -> np.ndarray:
        """Day counts, shape (keys, periods), int64."""
        part = np.rint(self.partial).astype(np.int64).reshape(-1, self.np1)
        full = np.cumsum(self.full.reshape(-1, self.np1), axis=1)
        return (part + full * np.append(self.cal.length, 0))[:, :-1]


def _interval_events(ctx: _Ctx, lo: np.ndarray, hi: np.ndarray, grid: _Grid, keyer) -> None:
    """Add the events of intervals ``[lo, hi]`` (member i = index) to ``grid``."""
    ix = np.flatnonzero(lo <= hi)
    if ix.size == 0:
        return
    lo, hi = lo[ix], hi[ix]
    spec = ctx.spec
    a_lo = ctx.age(ix, lo) if spec.age else None
    a_hi = ctx.age(ix, hi) if spec.age else None
    d_lo = ctx.dim(ix, lo) if spec.dim else None
    d_hi = ctx.dim(ix, hi) if spec.dim else None
    grid.add(keyer(ix, a_lo, d_lo), lo, +1)
    grid.add(keyer(ix, a_hi, d_hi), hi + 1, -1)
    if spec.age:
        nb = a_hi - a_lo
        for j in range(1, int(nb.max(initial=0)) + 1):
            sel = np.flatnonzero(nb >= j)
            a_new = a_lo[sel] + j
            iy = ix[sel]
            t = ctx.bday[ctx.by[iy] + a_new - ctx.bday_y0, ctx.bmd[iy]]
            d_prev = ctx.dim(iy, t - 1) if spec.dim else None
            grid.add(keyer(iy, a_new - 1, d_prev), t, -1)
            grid.add(keyer(iy, a_new, d_prev), t, +1)
    if spec.dim:
        nd = d_hi - d_lo
        for j in range(1, int(nd.max(initial=0)) + 1):
            sel = np.flatnonzero(nd >= j)
            iy = ix[sel]
            v_new = d_lo[sel] + j
            months = spec.edges[v_new] if spec.dim == "band" else v_new
            t = ctx.months.anniversary(ctx.jmi[iy] + months, ctx.jd[iy])
            a_t = ctx.age(iy, t) if spec.age else None
            grid.add(keyer(iy, a_t, v_new - 1), t, -1)
            grid.add(keyer(iy, a_t, v_new), t, +1)


def accumulate(cal: Calendar, mem: Members, spec: KeySpec, waiting_days: int) -> dict[str, np.ndarray]:
    """Sharing and at-risk day counts of one batch, as sparse cells (reference implementation).

    :mod:`engine.exposure` uses the faster :mod:`engine.cells_fast`; this event
    version is kept as an independent check of it (tests compare the two).

    Returns
    -------
    dict of equal-length arrays: ``sid``, ``age`` (if keyed), ``dim`` (if keyed),
    ``p`` (period index), ``exposure_days``, ``sharing_days``; only cells with
    sharing days > 0.
    """
    if mem.birth.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {k: empty for k in ("sid", "p", "exposure_days", "sharing_days", "age", "dim")}
    s0 = np.maximum(mem.join, cal.start)
    s1 = np.minimum(mem.exit - 1, cal.end)
    r0 = np.maximum(mem.join + waiting_days, s0)
    r1 = np.minimum(s1, mem.cover_end)
    ctx = _Ctx(cal, mem, spec)
    live = np.flatnonzero(s0 <= s1)
    if spec.age and live.size:
        amin = int(ctx.age(live, s0[live]).min())
        amax = int(ctx.age(live, s1[live]).max())
    else:
        amin, amax = 0, 0
    if spec.dim and live.size:
        dmin = int(ctx.dim(live, s0[live]).min())
        dmax = int(ctx.dim(live, s1[live]).max())
    else:
        dmin, dmax = 0, 0
    na, nd = amax - amin + 1, dmax - dmin + 1
    n_keys = max(mem.n_sid, 1) * na * nd

    def keyer(ix, a, d):
        g = mem.sid[ix].astype(np.int64) * (na * nd)
        if a is not None:
            g = g + (a - amin) * nd
        if d is not None:
            g = g + (d - dmin)
        return g

    share = _Grid(cal, n_keys)
    _interval_events(ctx, s0, s1, share, keyer)
    risk = _Grid(cal, n_keys)
    _interval_events(ctx, r0, r1, risk, keyer)
    sd = share.days()
    ed = risk.days()
    g, p = np.nonzero(sd)
    out = {"sid": g // (na * nd), "p": p, "exposure_days": ed[g, p], "sharing_days": sd[g, p]}
    if spec.age:
        out["age"] = (g // nd) % na + amin
    if spec.dim:
        out["dim"] = g % nd + dmin
    return out


def encode_column(s: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Integer codes ``0..k-1`` of a column and the ``k`` values (null included) they stand for."""
    if s.dtype.is_integer() and s.null_count() == 0 and s.len():
        lo, hi = int(s.min()), int(s.max())
        if hi - lo <= 100_000:
            return (s.to_numpy().astype(np.int64) - lo), pl.Series(s.name, np.arange(lo, hi + 1)).cast(s.dtype)
    vals = s.head(50_000).drop_nulls().unique().sort()
    if vals.len() > 32 or s.dtype == pl.Null:
        vals = s.drop_nulls().unique().sort()
    k = vals.len()
    if k <= 32:
        expr: Any = pl
        for i, v in enumerate(vals.to_list()):
            expr = expr.when(pl.col(s.name) == v).then(pl.lit(i, dtype=pl.Int64))
        expr = expr.when(pl.col(s.name).is_null()).then(pl.lit(k, dtype=pl.Int64)).otherwise(pl.lit(-1, dtype=pl.Int64))
        codes = s.to_frame().select(expr).to_series().to_numpy()
        if (codes >= 0).all():
            return codes, pl.concat([vals, pl.Series(s.name, [None], dtype=s.dtype)])
        vals = s.drop_nulls().unique().sort()
        k = vals.len()
    codes = (
        s.to_frame()
        .select(pl.col(s.name).replace_strict(vals, pl.int_range(k, eager=True), default=k, return_dtype=pl.Int64))
        .to_series()
        .to_numpy()
    )
    return codes, pl.concat([vals, pl.Series(s.name, [None], dtype=s.dtype)])


def _encode_one_pass(mb: pl.DataFrame, cols: list[str]) -> tuple[np.ndarray, list[tuple[None, pl.Series]]] | None:
    """The static id ``sum_i code_i x prod_{j > i} k_j`` computed in one polars expression.

    Values are taken from the first rows (small integer ranges, or at most 32 distinct
    values); None when a value outside them occurs (the caller encodes column by column).
    """
    sid: Any = pl.lit(0, dtype=pl.Int64)
    parts: list[tuple[None, pl.Series]] = []
    for c in cols:
        s = mb.get_column(c)
        if s.dtype.is_integer() and s.null_count() == 0 and s.len():
            lo, hi = int(s.min()), int(s.max())
            if hi - lo > 100_000:
                return None
            code = pl.col(c).cast(pl.Int64) - lo
            vals = pl.Series(c, np.arange(lo, hi + 1)).cast(s.dtype)
        else:
            if s.dtype == pl.Null:
                return None
            vals = s.head(50_000).drop_nulls().unique().sort()
            k = vals.len()
            if k > 32:
                return None
            code: Any = pl
            for i, v in enumerate(vals.to_list()):
                code = code.when(pl.col(c) == v).then(pl.lit(i, dtype=pl.Int64))
            code = code.when(pl.col(c).is_null()).then(pl.lit(k, dtype=pl.Int64)).otherwise(pl.lit(None, dtype=pl.Int64))
            vals = pl.concat([vals, pl.Series(c, [None], dtype=s.dtype)])
        sid = sid * vals.len() + code
        parts.append((None, vals))
    if float(np.prod([v.len() for _, v in parts], dtype=np.float64)) > 2.0**40:
        return None
    out = mb.select(sid.alias("__sid")).to_series()
    if out.null_count():  # a value outside the sampled ones
        return None
    return out.to_numpy(), parts


def encode_static(mb: pl.DataFrame, cols: list[str]) -> tuple[np.ndarray, int, Any]:
    """Static key id per member, the number of ids, and a decoder ``sid array -> DataFrame``."""
    n = mb.height
    if not cols:
        return np.zeros(n, dtype=np.int64), 1, lambda sid: pl.DataFrame()
    fast = _encode_one_pass(mb, cols)
    if fast is not None:
        sid, parts = fast
        cards = [int(v.len()) for _, v in parts]
        total = int(np.prod(cards, dtype=np.float64))
    else:
        parts = [encode_column(mb.get_column(c)) for c in cols]
        cards = [int(v.len()) for _, v in parts]
        total = int(np.prod(cards, dtype=np.float64))
        sid = np.zeros(n, dtype=np.int64)
        for (codes, _), k in zip(parts, cards):
            sid = sid * k + codes
    inverse = None
    if total > 200_000:  # compress to the combinations present
        uniq, sid = np.unique(sid, return_inverse=True)
        inverse, total = uniq, int(uniq.size)

    def decode(ids: np.ndarray) -> pl.DataFrame:
        code = inverse[ids] if inverse is not None else ids
        out = {}
        for (_, vals), k, c in zip(reversed(parts), reversed(cards), reversed(cols)):
            out[c] = vals.gather(pl.Series(code % k))
            code = code // k
        return pl.DataFrame([out[c] for c in cols])

    return sid, max(total, 1), decode
