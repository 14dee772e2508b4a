"""Calendars and key encoding of the exposure core, and the arithmetic of day intervals -> (key, period) day counts.

The accumulation itself is :mod:`engine.cells._accumulate`; an event-by-event reference implementation
of it is kept with the test oracles (``tests/kits/oracle_cells.py``).

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

from engine.cells.dates import DayTable, next_period_start, period_start

NEVER = 2**31 - 1  # day number standing for "no exit" / "no claim"
STATIC_IDS_DENSE_MAX = 200_000  # static key combinations kept dense; above, ids are compressed to those present


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
class KeySpec:
    """Which day-varying keys to split on: ``age`` and ``dim`` (None, 'duration' or 'band')."""

    age: bool
    dim: str | None
    edges: np.ndarray  # duration band lower edges in months (starting at 0)


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


def _present_combinations(parts: list[tuple[np.ndarray, pl.Series]]) -> tuple[np.ndarray, int, Any]:
    """Static ids numbering the key combinations present (rows of the column codes), and their decoder."""
    combos, sid = np.unique(np.stack([codes for codes, _ in parts], axis=1), axis=0, return_inverse=True)

    def decode(ids: np.ndarray) -> pl.DataFrame:
        return pl.DataFrame([vals.gather(pl.Series(combos[ids, j])) for j, (_, vals) in enumerate(parts)])

    return np.asarray(sid, dtype=np.int64).reshape(-1), max(int(combos.shape[0]), 1), decode


def encoded(mb: pl.DataFrame, cols: list[str], cache: dict[tuple[str, ...], Any] | None) -> tuple[np.ndarray, int, Any]:
    """:func:`encode_static` of ``mb``, kept in ``cache`` (one dict per batch frame, keyed by the columns)
    so that several reductions of the same batch encode the same columns once.

    The ids of leading columns of an encoding already made (``sex`` of ``sex, city_tier, channel``)
    are the mixed-radix ids of the longer one divided by the radix of the other columns, when those are
    the one-pass ids (:func:`_encode_one_pass`, not compressed): the same ids, number and decoder as
    :func:`encode_static` of the leading columns (each column's codes do not depend on the others).
    """
    if cache is None:
        return encode_static(mb, cols)
    key = tuple(cols)
    if key not in cache:
        derived = _leading(cache, key)
        if derived is None:
            derived, radix = _encode_static(mb, cols)
            if radix is not None and key:
                cache[(_RADIX, *key)] = radix
        cache[key] = derived
    return cache[key]


_RADIX = "\0radix"  # cache keys (_RADIX, *columns): the one-pass values and cardinalities of an encoding


def _leading(cache: dict[tuple[str, ...], Any], key: tuple[str, ...]) -> tuple[np.ndarray, int, Any] | None:
    """The encoding of columns ``key`` from a cached one-pass encoding of ``key`` followed by other columns."""
    if not key:
        return None
    for k, radix in list(cache.items()):
        if k[0] != _RADIX or len(k) - 1 <= len(key) or k[1:len(key) + 1] != key:
            continue
        parts, cards = radix
        m = len(key)
        sid, _, _ = cache[k[1:]]
        rest = int(np.prod(cards[m:], dtype=np.int64))
        total = int(np.prod(cards[:m], dtype=np.int64))
        return sid // rest, max(total, 1), _decoder(parts[:m], cards[:m], list(key), None)
    return None


def encode_static(mb: pl.DataFrame, cols: list[str]) -> tuple[np.ndarray, int, Any]:
    """Static key id per member, the number of ids, and a decoder ``sid array -> DataFrame``."""
    return _encode_static(mb, cols)[0]


def _encode_static(mb: pl.DataFrame, cols: list[str]) -> tuple[tuple[np.ndarray, int, Any], Any]:
    """:func:`encode_static`, and the one-pass ``(values, cardinalities)`` when the ids are their
    uncompressed mixed-radix ids (None otherwise)."""
    n = mb.height
    if not cols:
        return (np.zeros(n, dtype=np.int64), 1, lambda sid: pl.DataFrame()), None
    fast = _encode_one_pass(mb, cols)
    if fast is not None:
        sid, parts = fast
        cards = [int(v.len()) for _, v in parts]
        total = int(np.prod(cards, dtype=np.float64))
    else:
        parts = [encode_column(mb.get_column(c)) for c in cols]
        cards = [int(v.len()) for _, v in parts]
        if float(np.prod(cards, dtype=np.float64)) > 2.0**62:  # the mixed-radix id would overflow int64
            return _present_combinations(parts), None
        total = int(np.prod(cards, dtype=np.float64))
        sid = np.zeros(n, dtype=np.int64)
        for (codes, _), k in zip(parts, cards):
            sid = sid * k + codes
    inverse = None
    if total > STATIC_IDS_DENSE_MAX:  # compress to the combinations present
        uniq, sid = np.unique(sid, return_inverse=True)
        inverse, total = uniq, int(uniq.size)
    radix = (parts, cards) if fast is not None and inverse is None else None
    return (sid, max(total, 1), _decoder(parts, cards, cols, inverse)), radix


def _decoder(parts: list[Any], cards: list[int], cols: list[str], inverse: np.ndarray | None) -> Any:
    """``ids -> DataFrame`` of the columns ``cols`` of mixed-radix ids (``inverse``: compressed id -> id)."""

    def decode(ids: np.ndarray) -> pl.DataFrame:
        code = inverse[ids] if inverse is not None else ids
        out = {}
        for (_, vals), k, c in zip(reversed(parts), reversed(cards), reversed(cols)):
            out[c] = vals.gather(pl.Series(code % k))
            code = code // k
        return pl.DataFrame([out[c] for c in cols])

    return decode
