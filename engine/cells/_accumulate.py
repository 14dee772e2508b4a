"""Fast exposure accumulation: member day intervals -> (key, period) day counts on a small grid.

The same arithmetic as the event-by-event reference sweep (``tests/kits/oracle_cells.py``,
tested against this one), organised for speed and bounded memory:

* every member interval ends on its last sharing day ``s1``: the sharing
  interval ``[s0, s1]``, the at-risk interval ``[r0, s1]`` (ignoring claims)
  and the part after a first claim ``[c0, s1]`` share their closing event, so
  :meth:`Space.accumulate` counts a tail interval and a second one starting
  later (``sub_lo``) in one pass;
* a key change on day t (a birthday, a duration boundary) is recorded once,
  under the new key, and applied as ``+X[g] - X[g - offset]`` where the offset
  is the distance between the new and the old key in the grid (``nd`` rows for
  one year of age, 1 row for one duration step);
* day numbers are int32 and the grid has one row per key and one column per
  period (plus an overflow column for day ``end + 1``), so it fits in the
  processor cache.

Notes
-----
An event ``(g, t)`` adds 1 to every day ``t .. end`` of key ``g``. With
``p(t)`` the period of day t, ``rem(t) = last_day(p(t)) - t + 1`` and
``len(p)`` the window-clipped length of period p::

    R[g, p(t)] += rem(t)        N[g, p(t)] += 1
    days[g, p] = R[g, p] + len(p) * sum_{q < p} N[g, q]

Both sums live in one int64 per cell: an event adds ``rem(t) + 2**32``, so the
low 32 bits sum ``rem`` and the high bits count (at most one event per member
and cell in one accumulator, at most :data:`MAX_MEMBERS` members per call:
``366 x MAX_MEMBERS < 2**32``). Decoded sums are combined with signs (closing
events subtract), exact integer arithmetic throughout. An interval ``[lo, s1]``
is an event at ``lo`` under the key of ``lo`` minus one at ``s1 + 1`` under the
key of ``s1``; an empty interval ``lo = s1 + 1`` puts both on the same key and
day, so they cancel without a mask. Attained age on day t is
``(C(t) - B) >> 9`` with ``C(t) = 512 year(t) + md(t)`` and
``B = 512 year(birth) + md(birth)`` (the (month, day) code ``md = 32 month + day``
is below 512, so the shift is a floor division). When a birthday and a duration
boundary fall on the same day, the birthday uses the duration of the day before
and the duration change the age of the day, so the two changes compose.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np

from engine.cells.calendar import Calendar, KeySpec
from engine.cells.dates import DayTable, MonthTable, birthday

I32 = np.int32
K = np.int64(2**32)  # an event adds rem(t) + K: the low 32 bits sum rem, the high bits count events


class _Tables:
    """Per-day lookup tables over ``[start - 1, end + 1]`` (index ``t - d0``)."""

    def __init__(self, cal: Calendar) -> None:
        S, E = cal.start, cal.end
        self.d0 = S - 1
        dt_ = DayTable(S - 1, E + 1)
        self.C = (512 * dt_.year.astype(np.int64) + dt_.md).astype(I32)
        self.mi = dt_.mi.astype(I32)
        # M = 64 month_index + day, the day of a month's last day coded 63 (see Space.dur)
        self.M = (64 * dt_.mi.astype(np.int64) + np.where(dt_.day < dt_.last, dt_.day, 63)).astype(I32)
        P = cal.n_periods
        pidx = np.full(E - S + 3, P, dtype=I32)
        pidx[1:-1] = cal.pidx
        rem = np.zeros(E - S + 3, dtype=np.int64)
        rem[1:-1] = cal.rem
        self.pidx, self.remk = pidx, rem + K
        self.len_ext = np.append(cal.length, 0).astype(np.int64)
        self.y0, self.y1 = int(dt_.year[1]), int(dt_.year[-2])  # years of the window days
        codes = np.arange(32 * 13)
        ok = ((codes // 32) >= 1) & ((codes // 32) <= 12) & ((codes % 32) >= 1)
        bd = np.zeros((self.y1 - self.y0 + 1, codes.size), dtype=np.int64)
        for i, y in enumerate(range(self.y0, self.y1 + 1)):  # a few years x 416 codes
            bd[i, ok] = birthday(np.full(int(ok.sum()), y), codes[ok])
        # offset (day - d0) of the birthday of (year - y0, md code), index-ready (intp: no conversion per gather)
        self.bday_k = (np.clip(bd, S - 1, E + 1) - self.d0).astype(np.intp).ravel()


def tables(cal: Calendar) -> _Tables:
    """The lookup tables of ``cal`` (built once per calendar)."""
    t = getattr(cal, "_fast_tables", None)
    if t is None:
        t = _Tables(cal)
        cal._fast_tables = t  # type: ignore[attr-defined]
    return t


#: most members in one accumulation call (each accumulator gets at most one event per member and
#: grid cell, and 366 x members must stay below 2**32 for the low bits)
MAX_MEMBERS = 4_000_000
ANNIVERSARY_TABLE_MAX = 4_000_000  # entries (duration value x join day) up to which anniversaries are tabled


class _Acc:
    """Event sums over the flat grid, ``rem(t) + K`` per event (exact int64, one sign)."""

    def __init__(self, size: int) -> None:
        self.v = np.zeros(size, dtype=np.int64)

    def add(self, idx: np.ndarray, w: np.ndarray) -> None:
        if idx.size:
            np.add.at(self.v, idx, w)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(sum of rem, number of events) per grid cell."""
        return self.v & (K - 1), self.v >> 32


Events = dict[str, tuple[np.ndarray, np.ndarray]]


class Day(NamedTuple):
    """Day offsets ``k = t - d0`` (intp) of one day per member and their period index and ``rem + K``
    (:meth:`Space.day`): computed once per batch and shared by every key space of the batch."""

    k: np.ndarray
    p: np.ndarray
    r: np.ndarray

    def part(self, sl: slice) -> Day:
        return Day(self.k[sl], self.p[sl], self.r[sl])


class Ages(NamedTuple):
    """Per-member age attributes of a key space (:meth:`Space.ages`): birth code ``B``, its (month, day)
    code, the birthday key of age ``a0`` and the ages on the first and last sharing days."""

    B: np.ndarray
    bmd: np.ndarray
    kb0: np.ndarray
    a0: np.ndarray
    a1: np.ndarray


class Space:
    """Key space and per-member key attributes of one batch of live members.

    Parameters
    ----------
    cal, spec : calendar and day-varying keys.
    birth, join : day numbers (int32) of the live members (``s0 <= s1``).
    sid, n_sid : static key id per member and the number of ids.
    s0, s1 : first and last sharing day inside the window.
    ages : :meth:`ages` of another space of the same members with ``age`` (e.g. another cell
        table of the same batch): birth codes, ages and birthday keys reused instead of recomputed.

    Notes
    -----
    Keys of the days ``s0`` and ``s1`` (age ``a0, a1``, duration ``d0, d1``) are
    computed once; the key changes inside ``(s0, s1]`` are then the ages
    ``a0 + 1 .. a1`` (birthday of year ``year(birth) + a``) and the durations
    ``d0 + 1 .. d1`` (month boundary of that duration), enumerated step by step
    over the members that still have one.
    """

    _MEMBER = ("base", "B", "bmd", "jk", "J", "s0", "s1", "a0", "a1", "d0", "d1", "ra0", "row0", "row1", "kb0")

    def __init__(self, cal: Calendar, spec: KeySpec, birth: np.ndarray, join: np.ndarray, sid: np.ndarray,
                 n_sid: int, s0: np.ndarray, s1: np.ndarray, ages: Ages | None = None) -> None:
        self.cal, self.spec, self.T = cal, spec, tables(cal)
        T = self.T
        self.np1 = cal.n_periods + 1
        n = s0.size
        amin = amax = dmin = dmax = 0
        a0 = a1 = d0 = d1 = I32(0)
        if spec.age and ages is not None:
            self.B, self.bmd, self.kb0, a0, a1 = ages.B, ages.bmd, ages.kb0, ages.a0, ages.a1
            if n:
                amin, amax = int(a0.min()), int(a1.max())
        elif spec.age:
            lo = int(birth.min()) if n else 0
            bt = DayTable(lo, int(birth.max()) if n else 0)
            btab = (512 * bt.year.astype(np.int64) + bt.md).astype(I32)  # B = 512 year + md, md < 512
            self.B = btab[birth - lo]
            self.bmd = (self.B & 511).astype(np.intp)
            a0, a1 = self.age(None, s0), self.age(None, s1)
            if n:
                amin, amax = int(a0.min()), int(a1.max())
            self.kb0 = (((self.B >> 9) + a0 - T.y0) * 416).astype(np.intp) + self.bmd  # birthday of age a0 (+416 a year)
        if spec.dim is not None:
            lo = int(join.min()) if n else 0
            jt = DayTable(lo, int(join.max()) if n else 0)
            self._jt, self._ann = jt, None
            self.jk = (join - lo).astype(np.intp)
            self.J = (64 * jt.mi.astype(np.int64) + jt.day).astype(I32)[self.jk]  # 64 month_index + day of join
            jmin = int(jt.mi.min())
            maxdur = max(int(T.mi[-1]) - jmin + 2, 1)
            self.months = MonthTable(jmin, int(jt.mi.max()) + max(int(spec.edges[-1]), maxdur) + 1)
            self.band_of = (np.searchsorted(spec.edges, np.arange(maxdur), side="right") - 1).astype(I32)
            d0, d1 = self.dim(None, s0), self.dim(None, s1)
            if n:
                dmin, dmax = int(d0.min()), int(d1.max())
        self.amin, self.na = amin, amax - amin + 1
        self.dmin, self.nd = dmin, dmax - dmin + 1
        self.n_keys = max(int(n_sid), 1) * self.na * self.nd
        self.size = self.n_keys * self.np1
        it = I32 if self.size < 2**31 - 1 else np.int64
        self.base = ((sid.astype(it) * self.na - amin) * self.nd - dmin).astype(it)  # row = base + a nd + d
        self.s0, self.s1, self.a0, self.a1, self.d0, self.d1 = s0, s1, a0, a1, d0, d1
        self.ra0 = self.base + a0 * self.nd  # row of s0 without the duration
        self.row0 = self.ra0 + d0  # rows of the days s0 and s1
        self.row1 = self.base + a1 * self.nd + d1

    def ages(self) -> Ages:
        """The age attributes of the members (a space with ``age``), for another space of the same members."""
        return Ages(self.B, self.bmd, self.kb0, self.a0, self.a1)

    def view(self, part: slice) -> Space:
        """The same key space restricted to members ``part`` (array views, no copy)."""
        v = copy.copy(self)
        for name in self._MEMBER:
            val = getattr(self, name, None)
            if isinstance(val, np.ndarray):
                setattr(v, name, val[part])
        return v

    # -- keys on day numbers t inside [start - 1, end + 1] for members ix (None = all)
    def _g(self, a: np.ndarray, ix: np.ndarray | None) -> np.ndarray:
        return a if ix is None else a[ix]

    def age(self, ix: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        return self.age_k(ix, t - self.T.d0)

    def age_k(self, ix: np.ndarray | None, k: np.ndarray) -> np.ndarray:
        """Age on the days of offsets ``k = t - d0``."""
        # engine.cells.dates.age_from_civil on packed codes 512 year + md (md < 512): the shift takes
        # year - birth_year and borrows one exactly when md < birth_md
        return (self.T.C[k] - self._g(self.B, ix)) >> 9

    def dur(self, ix: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        return self.dur_k(ix, t - self.T.d0)

    def dur_k(self, ix: np.ndarray | None, k: np.ndarray) -> np.ndarray:
        """Completed months since joining on the days of offsets ``k = t - d0``."""
        # engine.cells.dates.months_from_civil on packed codes: with eff = day, or 63 on a month's last
        # day, day < min(join_day, last) is eff < join_day, so (64 mi + eff) - (64 join_mi + join_day)
        # shifted by 6 is mi - join_mi - [eff < join_day] (eff - join_day lies in [-30, 62])
        return (self.T.M[k] - self._g(self.J, ix)) >> 6

    def dim(self, ix: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        return self.dim_k(ix, t - self.T.d0)

    def dim_k(self, ix: np.ndarray | None, k: np.ndarray) -> np.ndarray:
        v = self.dur_k(ix, k)
        return self.band_of[v] if self.spec.dim == "band" else v

    def row(self, ix: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        r = self._g(self.base, ix)
        if self.spec.age:
            r = r + self.age(ix, t) * self.nd
        if self.spec.dim:
            r = r + self.dim(ix, t)
        return r

    def flat(self, row: np.ndarray, t: np.ndarray) -> np.ndarray:
        return row * self.np1 + self.T.pidx[t - self.T.d0]

    def day(self, t: np.ndarray) -> Day:
        """Offsets, period indices and ``rem + K`` of the days ``t`` (one conversion of the index for all gathers)."""
        return self.day_k((t - self.T.d0).astype(np.intp))

    def day_k(self, k: np.ndarray) -> Day:
        """The :class:`Day` of the days of offsets ``k`` (intp)."""
        return Day(k, self.T.pidx[k], self.T.remk[k])

    @staticmethod
    def _steps(steps: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(j, members with at least j steps) for j = 1 .. max(steps)."""
        return [(j, np.flatnonzero(steps >= j)) for j in range(1, int(steps.max(initial=0)) + 1)]

    def event(self, acc: _Acc, row: np.ndarray, t: np.ndarray) -> None:
        """Add the events (key row, day t) to ``acc``."""
        self.event_day(acc, row, self.day(t))

    def event_k(self, acc: _Acc, row: np.ndarray, k: np.ndarray) -> None:
        """Add the events (key row, day of offset k) to ``acc``."""
        acc.add(row * self.np1 + self.T.pidx[k], self.T.remk[k])

    def event_day(self, acc: _Acc, row: np.ndarray, d: Day) -> None:
        """Add the events (key row, day ``d``) to ``acc``."""
        flat = row * self.np1
        flat += d.p
        acc.add(flat, d.r)

    # -- intervals
    def accumulate(self, lo: np.ndarray | None, sub_lo: np.ndarray | None = None,
                   days: dict[str, Day] | None = None) -> Events:
        """Events of the tail intervals ``[lo, s1]`` (``s0 <= lo <= s1 + 1``; None = ``s0``), and of ``[sub_lo, s1]``.

        ``sub_lo`` (``lo <= sub_lo <= s1 + 1``) shares the closing events and the key
        changes after ``sub_lo``. ``days`` may hold the :meth:`day` of ``"s0"``, ``"end"``
        (``s1 + 1``) and ``"sub"`` (``sub_lo``), computed once for several key spaces of the
        same members. At most :data:`MAX_MEMBERS` members per call. Returns
        ``"main"`` (and ``"sub"``) -> (sum of rem, net count) per grid cell, key changes
        applied; :meth:`days` integrates them.
        """
        shared = days if days is not None else {}  # the birthdays of all members are added to it
        days = dict(shared)
        s1 = self.s1
        if s1.size > MAX_MEMBERS:
            raise ValueError(f"internal: {s1.size} members in one accumulation call (max {MAX_MEMBERS})")
        spec = self.spec
        tot = {k: (np.zeros(self.size, dtype=np.int64), np.zeros(self.size, dtype=np.int64))
               for k in (("main", "sub") if sub_lo is not None else ("main",))}
        acc = _Acc(self.size)
        age_off, dim_off = self.nd * self.np1, self.np1

        def fold(into: dict[str, int], off: int = 0) -> None:
            """Decode ``acc`` into the totals (sign per target), applying a key change offset; reset it."""
            rem, cnt = acc.split()
            if off:  # recorded under the new key g: -x[g] under the old key g - off
                rem[:-off] -= rem[off:].copy()
                cnt[:-off] -= cnt[off:].copy()
            for name, sign in into.items():
                r, c = tot[name]
                if sign > 0:
                    r += rem
                    c += cnt
                else:
                    r -= rem
                    c -= cnt
            acc.v[:] = 0

        both = {"main": 1, "sub": 1} if sub_lo is not None else {"main": 1}
        if lo is None:
            lo, a_lo, d_lo = self.s0, self.a0, self.d0
            self.event_day(acc, self.row0, days["s0"] if "s0" in days else self.day(lo))
            fold({"main": 1})
            if spec.age:
                self._age_steps(None, a_lo, self.a1 - a_lo, acc, self.kb0, self.ra0, shared)
                fold(both, age_off)
            if spec.dim:
                self._dim_steps(None, d_lo, self.d1 - d_lo, acc)
                fold(both, dim_off)
        else:
            key_day = np.minimum(lo, s1)
            valid = lo <= s1
            a_lo = self.age(None, key_day) if spec.age else I32(0)
            d_lo = self.dim(None, key_day) if spec.dim else I32(0)
            self.event(acc, self.base + a_lo * self.nd + d_lo, lo)
            fold({"main": 1})
            if spec.age:
                self._age_steps(None, a_lo, np.where(valid, self.a1 - a_lo, 0), acc)
                fold(both, age_off)
            if spec.dim:
                self._dim_steps(None, d_lo, np.where(valid, self.d1 - d_lo, 0), acc)
                fold(both, dim_off)
        self.event_day(acc, self.row1, days["end"] if "end" in days else self.day(s1 + 1))
        fold({k: -1 for k in both})
        if sub_lo is not None:  # [sub_lo, s1] = [lo, s1] - [lo, cut - 1] with cut = min(sub_lo, s1)
            kc = (np.minimum(sub_lo, s1) - self.T.d0).astype(np.intp)
            a_c = self.age_k(None, kc) if spec.age else I32(0)
            d_c = self.dim_k(None, kc) if spec.dim else I32(0)
            self.event_day(acc, self.base + a_c * self.nd + d_c, days["sub"] if "sub" in days else self.day(sub_lo))
            fold({"sub": 1})
            if spec.age:
                m = np.flatnonzero(a_c > a_lo)  # a birthday in (lo, cut]
                self._age_steps(m, a_lo[m], (a_c - a_lo)[m], acc)
                fold({"sub": -1}, age_off)
            if spec.dim:
                m = np.flatnonzero(d_c > d_lo)
                self._dim_steps(m, d_lo[m], (d_c - d_lo)[m], acc)
                fold({"sub": -1}, dim_off)
        return tot

    def _age_steps(self, m: np.ndarray | None, a_lo: np.ndarray, steps: np.ndarray, acc: _Acc,
                   kb: np.ndarray | None = None, ra: np.ndarray | None = None, shared: dict | None = None) -> None:
        """Birthdays reaching ages ``a_lo + 1 .. a_lo + steps`` of members ``m`` (None = all), under the new age.

        With ``shared`` (birthdays of all members from ``a0``), the members and days of each
        step are kept under ``"birthdays"`` and reused by the next key space of the same members.
        """
        T = self.T
        if shared is not None:
            if "birthdays" not in shared:
                shared["birthdays"] = [(s, self.day_k(T.bday_k[kb[s] + 416 * j]))
                                       for j, s in self._steps(steps)]
            for j, (s, d) in enumerate(shared["birthdays"], start=1):
                row = ra[s] + j * self.nd
                if self.spec.dim:
                    row += self.dim_k(s, d.k - 1)
                self.event_day(acc, row, d)
            return
        if kb is None:
            kb = (((self._g(self.B, m) >> 9) + a_lo - T.y0) * 416).astype(np.intp) + self._g(self.bmd, m)
            ra = self._g(self.base, m) + a_lo * self.nd
        for j in range(1, int(steps.max(initial=0)) + 1):
            s = np.flatnonzero(steps >= j)
            k = T.bday_k[kb[s] + 416 * j]
            row = ra[s] + j * self.nd
            if self.spec.dim:
                row += self.dim_k(s if m is None else m[s], k - 1)
            self.event_k(acc, row, k)

    def _anniversary(self, v: np.ndarray, jk: np.ndarray) -> np.ndarray:
        """Offset ``t - d0`` of the day on which the duration key reaches value ``v`` (band index or
        completed months), clipped to the table days (the values asked for fall inside the window)."""
        tab, J = self._ann_table()
        if tab is not None:
            return tab[v.astype(np.intp) * J + jk]
        months = self.spec.edges[v] if self.spec.dim == "band" else v
        jt = self._jt
        return self._offset(self.months.anniversary(jt.mi[jk].astype(np.int64) + months, jt.day[jk]))

    def _ann_table(self) -> tuple[np.ndarray | None, int]:
        """Table of :meth:`_anniversary` offsets at index ``value x J + join key`` and ``J`` (None, 0: too large)."""
        if self._ann is None:
            jt = self._jt
            nv = len(self.spec.edges) if self.spec.dim == "band" else self.dmin + self.nd
            if nv * jt.mi.size <= ANNIVERSARY_TABLE_MAX:  # table (value, join day)
                months = self.spec.edges if self.spec.dim == "band" else np.arange(nv)
                mi = jt.mi.astype(np.int64)[None, :] + np.asarray(months, dtype=np.int64)[:, None]
                dom = np.broadcast_to(jt.day.astype(np.int64)[None, :], mi.shape)
                self._ann = (self._offset(self.months.anniversary(mi.ravel(), dom.ravel())), jt.mi.size)
            else:
                self._ann = (None, 0)
        return self._ann

    def _offset(self, t: np.ndarray) -> np.ndarray:
        """Offsets ``t - d0`` (intp) of days ``t`` clipped to ``[start - 1, end + 1]``."""
        return (np.clip(t, self.T.d0, self.cal.end + 1) - self.T.d0).astype(np.intp)

    def _dim_steps(self, m: np.ndarray | None, d_lo: np.ndarray, steps: np.ndarray, acc: _Acc) -> None:
        """Duration (band) values ``d_lo + 1 .. d_lo + steps`` of members ``m``, under the new value."""
        jk = self._g(self.jk, m)
        row_lo = self._g(self.base, m) + d_lo  # row of value d_lo without the age: value d_lo + j is row_lo + j
        n_steps = int(steps.max(initial=0))
        tab, J = self._ann_table() if n_steps else (None, 0)
        if tab is not None:  # table index of value d_lo + j: at_lo + j J
            at_lo = d_lo.astype(np.intp) * J + jk
        for j in range(1, n_steps + 1):
            s = np.flatnonzero(steps >= j)
            k = tab[at_lo[s] + j * J] if tab is not None else self._anniversary(d_lo[s] + j, jk[s])
            row = row_lo[s] + j
            if self.spec.age:
                row += self.age_k(s if m is None else m[s], k) * self.nd
            self.event_k(acc, row, k)

    def days(self, ev: Events, sub: bool = False) -> np.ndarray:
        """Day counts (keys, periods) of the tail intervals ``[lo, s1]``, or of ``[sub_lo, s1]``."""
        rem, cnt = ev["sub" if sub else "main"]
        full = cnt.reshape(-1, self.np1)
        excl = np.cumsum(full, axis=1) - full
        out = rem.reshape(-1, self.np1) + excl * self.T.len_ext
        return out[:, :-1]

    def keys(self, g: np.ndarray) -> dict[str, np.ndarray]:
        """Static id, age and duration key of grid rows ``g``."""
        out = {"sid": g // (self.na * self.nd)}
        if self.spec.age:
            out["age"] = (g // self.nd) % self.na + self.amin
        if self.spec.dim:
            out["dim"] = g % self.nd + self.dmin
        return out


def merge(a: Events, b: Events) -> Events:
    """Sum of two event sets of the same space (parts of a batch)."""
    return {k: (v[0] + b[k][0], v[1] + b[k][1]) for k, v in a.items()}


def grid_cells(space: Space, days: dict[str, np.ndarray], nonzero_of: str) -> dict[str, Any]:
    """Sparse cells of dense day arrays: rows where ``days[nonzero_of]`` is not 0."""
    g, p = np.nonzero(days[nonzero_of])
    out: dict[str, Any] = space.keys(g)
    out["p"] = p
    for k, v in days.items():
        out[k] = v[g, p]
    return out
