"""Reference accumulator (test oracle): day intervals -> (key, period) day counts, event by event.

The engine uses the faster :mod:`engine.cells._accumulate`; this independent event version checks
it. The arithmetic (events, partial and full period days) is described in :mod:`engine.cells.calendar`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.cells.calendar import Calendar, KeySpec
from engine.cells.dates import DayTable, MonthTable, birthday


@dataclass
class Members:
    """Per-member arrays of one batch (day numbers as int64; ``NEVER`` = none)."""

    birth: np.ndarray
    join: np.ndarray
    exit: np.ndarray
    cover_end: np.ndarray  # last at-risk day allowed by claims (first eligible claim day) or NEVER
    sid: np.ndarray  # static key id
    n_sid: int


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
        return d.year[k] - self.by[ix] - (d.md[k] < self.bmd[ix])

    def dur(self, ix: np.ndarray, t: np.ndarray) -> np.ndarray:
        d = self.cal.days
        k = t - d.lo
        return (d.mi[k] - self.jmi[ix]) - (d.day[k] < np.minimum(self.jd[ix], d.last[k]))

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

    :func:`engine.exposure` uses the faster :mod:`engine.cells._accumulate`; this event
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
