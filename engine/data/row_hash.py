"""An order-independent data fingerprint computed file by file: a sum of row hashes (a multiset hash).

:func:`engine.data.persist.fingerprint` with ``ignore_row_order`` sorts every row first, so it
holds all of them; the data fingerprint of a ``fentan run`` report is taken over 10^7 or 10^8
members, which never sit in memory together. Here each row gets two 64-bit hashes, summed
modulo 2^64 over every row: the sums add across files, so the fingerprint is the same for any
split and any row order, and one file at a time is held.

Notes
-----
All arithmetic is on unsigned 64-bit integers modulo 2^64; ``mix`` is the splitmix64 finaliser
(a bijection). The code of one value is

* null (any column): ``NULL_CODE``;
* a number, date, datetime, duration or boolean: mix(b) with b its 64 canonical bits (the
  integer, or the physical day / time count, as a two's-complement int64; a float as the
  IEEE-754 bits of a float64, with -0.0 read as +0.0 and every NaN as the one canonical NaN);
* a string (categoricals and enums by their text): with B its UTF-8 bytes, L = len(B) and
  w_0 .. w_{W-1} the W = ceil(L / 8) little-endian 64-bit words of B zero-padded to 8W bytes,
  h_0 = STRING_SEED xor L, h_{j+1} = mix(h_j xor w_j), code = h_W (so "" is STRING_SEED);
* anything else (nested, binary, decimal, objects): the string code of ``repr`` of its Python value.

The hash of a row in lane l is mix(h) after h = LANE_SEEDS[l], h = (h xor code(value)) * LANE_MULTS[l]
over the columns in name order. Each step is a bijection of h for a given code and of the code for a
given h, so two rows that differ in one column always differ in h; the codes are mixed, so rows that
differ in more columns collide in a lane with probability about 2^-64.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = ["multiset_fingerprint", "lane_sums", "fingerprint_from_sums", "row_hashes", "string_codes", "STRING_SEED", "LANE_SEEDS", "LANE_MULTS", "NULL_CODE", "TAG"]

#: initial value of a string's hash, before its length is mixed in (xor) and its words folded in
STRING_SEED = 0x5851F42D4C957F2D
#: initial value of each of the two row-hash lanes
LANE_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)
#: odd multiplier of each lane, applied after each column's code is folded in
LANE_MULTS = (0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)
#: code of a null value (any column)
NULL_CODE = 0xA5A5A5A5A5A5A5A5
#: the first bytes hashed into the fingerprint: its definition's name and version
TAG = b"fentan-multiset-fingerprint-2\0"
#: rows hashed at once (a few uint64 arrays of this length: 256 KB each, they stay in the cache)
CHUNK_ROWS = 1 << 15
_U = np.uint64
_SEEDS = np.array(LANE_SEEDS, dtype=_U)[:, None]
_MULTS = np.array(LANE_MULTS, dtype=_U)[:, None]
_M1, _M2 = _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)
_S30, _S27, _S31 = _U(30), _U(27), _U(31)
#: MASKS[r] keeps the low r bytes of a little-endian word (r = 0 .. 8)
_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=_U)


def _mix(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """The splitmix64 finaliser, elementwise and in place on ``x`` (uint64, wrapping); returns ``x``.

    Notes
    -----
    x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31.
    ``tmp`` (same shape, uint64) is scratch space; one is allocated when not given.
    """
    tmp = np.empty_like(x) if tmp is None else tmp
    for shift, mult in ((_S30, _M1), (_S27, _M2), (_S31, None)):
        np.right_shift(x, shift, out=tmp)
        np.bitwise_xor(x, tmp, out=x)
        if mult is not None:
            np.multiply(x, mult, out=x)
    return x


def _large_strings(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (int64 offsets, uint8 bytes) of an Arrow string array of any layout (null slots: whatever they hold)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(arr, pa.large_string())
    _, off_buf, data_buf = arr.buffers()
    offs = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)[offs[0]: offs[-1]] if data_buf is not None else np.zeros(0, np.uint8)
    return offs - offs[0], data


def _inline_views(arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(lengths, bytes 0-7, bytes 8-11) of the strings of an Arrow string-view array, read in place
    from its 16-byte views (int32 length, then the bytes of a string of at most 12 bytes, inline);
    None when a string is longer than 12 bytes."""
    buf, n, at = arr.buffers()[1], len(arr), 16 * arr.offset
    lens = np.ndarray((n,), dtype="<i4", buffer=buf, offset=at, strides=(16,)).astype(np.int64)
    if int(lens.max()) > 12:
        return None
    lo = np.ndarray((n,), dtype="<u8", buffer=buf, offset=at + 4, strides=(16,))
    hi = np.ndarray((n,), dtype="<u4", buffer=buf, offset=at + 12, strides=(16,))
    return lens, lo, hi



def _words(data: np.ndarray) -> np.ndarray:
    """words[p] = the little-endian uint64 of data[p: p + 8] (zeros past the end), p = 0 .. len(data).

    An unaligned view at a stride of one byte over a zero-padded copy: no word is materialised.
    """
    pad = np.zeros(-(-(data.size + 9) // 8) * 8, dtype=np.uint8)
    pad[: data.size] = data
    return np.lib.stride_tricks.as_strided(pad.view("<u8"), shape=(data.size + 1,), strides=(1,), writeable=False)


def _fold_words(lens: np.ndarray, read: Callable[[int, np.ndarray | None], np.ndarray]) -> np.ndarray:
    """code = h_W of every string of byte length ``lens`` (module notes); ``read(j, rows)`` gives word j
    of the strings ``rows`` (None: every string), its bytes past a string's end free to hold anything.

    Notes
    -----
    h_0 = STRING_SEED xor L, h_{j+1} = mix(h_j xor w_j), w_j the j-th little-endian 64-bit word of the
    zero-padded bytes. Word j of every string still that long is folded in at once; a long string
    costs its own rows only.
    """
    n = lens.size
    h = lens.astype(_U)
    h ^= _U(STRING_SEED)
    nwords = (lens + 7) >> 3
    for j in range(int(nwords.max()) if n else 0):
        short = np.flatnonzero(nwords <= j)  # strings with no word j
        rows = None if short.size * 4 <= n else np.flatnonzero(nwords > j)
        rem = lens - 8 * j if rows is None else lens[rows] - 8 * j
        w = read(j, rows)
        if int(rem.min()) < 8:  # some strings end inside this word
            w &= np.take(_MASKS, rem, mode="clip")
        if rows is None:  # few short strings: hash every row, then put the short ones back
            kept = h[short]
            h ^= w
            _mix(h)
            h[short] = kept
        else:
            h[rows] = _mix(h[rows] ^ w)
    return h


def string_codes(offs: np.ndarray, words: np.ndarray) -> np.ndarray:
    """The code of every string from byte ``offs[i]`` to ``offs[i + 1]`` of the bytes seen through ``words``
    (:func:`_words`): word j of string i is ``words[offs[i] + 8j]``."""
    starts, top = offs[:-1], words.size - 1

    def read(j: int, rows: np.ndarray | None) -> np.ndarray:
        idx = starts + 8 * j if rows is None else starts[rows] + 8 * j
        if j:  # a string shorter than 8j bytes (put back later) may point past the end
            np.minimum(idx, top, out=idx)
        return words[idx].astype(_U)

    return _fold_words(np.diff(offs), read)


def _inline_codes(lens: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The code of every string of at most 12 bytes given its int64 length and its bytes 0-7 and 8-11
    (:func:`_inline_views`).

    Notes
    -----
    When every string has one word (1-8 bytes) or every string two (9-12 bytes), the words are folded
    in directly: h = mix(STRING_SEED ^ L ^ w_0), then h = mix(h ^ w_1) (:func:`_fold_words`' value,
    about half its operations; a constant length masks with one scalar).
    """
    a, b = (int(lens.min()), int(lens.max())) if lens.size else (0, 0)
    if a >= 1 and (b <= 8 or (a >= 9 and b <= 12)):
        two = b > 8
        mask = _MASKS[8] if two else _MASKS[a] if a == b else np.take(_MASKS, lens)
        h = np.bitwise_and(lo, mask)
        h ^= _U(STRING_SEED ^ a) if a == b else lens.astype(_U) ^ _U(STRING_SEED)
        _mix(h)
        if two:
            h ^= hi.astype(_U) & (_MASKS[a - 8] if a == b else np.take(_MASKS, lens - 8))
            _mix(h)
        return h

    def read(j: int, rows: np.ndarray | None) -> np.ndarray:
        src = lo if j == 0 else hi
        return (src if rows is None else src[rows]).astype(_U)

    return _fold_words(lens, read)


def _numbers(arr: Any) -> np.ndarray | None:
    """The physical values of an Arrow numeric, temporal or boolean array as a numpy array (integers
    or floats of their own width; null slots hold anything), read in place; None for other types."""
    import pyarrow as pa

    t, n, at = arr.type, len(arr), arr.offset
    if pa.types.is_boolean(t):
        bits = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[at: at + n]
    if pa.types.is_floating(t):
        kind = "f"
    elif pa.types.is_integer(t):
        kind = "u" if pa.types.is_unsigned_integer(t) else "i"
    elif pa.types.is_temporal(t) and t.bit_width in (32, 64):
        kind = "i"
    else:
        return None
    return np.frombuffer(arr.buffers()[1], dtype=f"<{kind}{t.bit_width // 8}")[at: at + n]


class _Column:
    """One column of a record batch ready to be coded in row ranges: its strings' views, or offsets and
    bytes, or its numbers' physical values, or a dictionary's codes and indices; and its null mask."""

    def __init__(self, arr: Any, series: Callable[[], pl.Series]) -> None:
        """``arr``: the column as an Arrow array; ``series()``: the same rows as a polars Series (for
        values hashed by their text)."""
        import pyarrow as pa

        t, n = arr.type, len(arr)
        self.views = self.offs = self.values = self.dict_codes = None
        self.nulls = None
        if arr.null_count:
            valid = arr.indices.buffers()[0] if pa.types.is_dictionary(t) else arr.buffers()[0]
            self.nulls = (np.ones(n, bool) if valid is None else
                          np.unpackbits(np.frombuffer(valid, dtype=np.uint8), bitorder="little")[arr.offset: arr.offset + n] == 0)
        if pa.types.is_dictionary(t):  # categoricals, enums: their values coded once
            d = arr.dictionary
            self.dict_codes = _Column(d, lambda: pl.Series(d)).codes(0, len(d), np.empty(len(d), _U))
            self.values = _numbers(arr.indices)
        elif t == pa.string_view() and n:
            self.views = _inline_views(arr)
            if self.views is not None and self.nulls is not None and not self.nulls.all():
                # a null slot's length is free (its code is NULL_CODE): a valid row's, so the lengths
                # of the valid rows alone choose the path of :func:`_inline_codes`
                self.views[0][self.nulls] = self.views[0][int(np.argmin(self.nulls))]
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t) or t == pa.string_view()):
            self.values = _numbers(arr) if not pa.types.is_null(t) else np.zeros(n, np.int64)
        if self.views is None and self.values is None:  # long strings; nested, binary, decimal, objects: their text
            strings = arr if pa.types.is_string(t) or pa.types.is_large_string(t) or t == pa.string_view() else \
                pa.array([repr(x) for x in series().to_list()], type=pa.large_string())
            self.offs, data = _large_strings(strings)
            self.words = _words(data)

    def codes(self, lo: int, hi: int, tmp: np.ndarray) -> np.ndarray:
        """The codes of rows lo .. hi - 1 (module notes); ``tmp`` is uint64 scratch of hi - lo."""
        if self.dict_codes is not None:
            codes = np.take(self.dict_codes, self.values[lo:hi], mode="clip") if len(self.dict_codes) else np.zeros(hi - lo, _U)
        elif self.views is not None:
            codes = _inline_codes(*(v[lo:hi] for v in self.views))
        elif self.offs is not None:
            codes = string_codes(self.offs[lo: hi + 1], self.words)
        elif self.values.dtype.kind == "f":
            f = self.values[lo:hi].astype(np.float64)
            f += 0.0  # -0.0 + 0.0 == +0.0
            f[np.isnan(f)] = np.float64("nan")  # one NaN
            codes = _mix(f.view(_U), tmp)
        else:
            codes = _mix(self.values[lo:hi].astype(np.int64).view(_U), tmp)
        if self.nulls is not None:
            np.copyto(codes, _U(NULL_CODE), where=self.nulls[lo:hi])
        return codes


def _lane_hashes(cols: list[_Column], lo: int, hi: int) -> np.ndarray:
    """The (2, hi - lo) hashes of rows lo .. hi - 1, one row per lane: h = seed; h = (h ^ code(column)) * mult
    over the columns in order; mix(h)."""
    tmp = np.empty(hi - lo, dtype=_U)
    h = np.repeat(_SEEDS, hi - lo, axis=1)
    for c in cols:
        np.bitwise_xor(h, c.codes(lo, hi, tmp), out=h)
        np.multiply(h, _MULTS, out=h)
    return _mix(h)


def _batches(df: pl.DataFrame, chunk_rows: int) -> Iterator[np.ndarray]:
    """Per range of at most ``chunk_rows`` rows of ``df``, in order, the lane hashes of its rows: the frame
    is exported to Arrow in place, one record batch (a run of rows) at a time."""
    start = 0
    for batch in df.to_arrow(compat_level=pl.CompatLevel.newest()).to_batches():
        cols = [_Column(batch.column(i), lambda c=c, a=start, k=batch.num_rows: df.get_column(c).slice(a, k))
                for i, c in enumerate(df.columns)]
        for lo in range(0, batch.num_rows, chunk_rows):  # bounded temporaries
            yield _lane_hashes(cols, lo, min(lo + chunk_rows, batch.num_rows))
        start += batch.num_rows


def row_hashes(df: pl.DataFrame) -> list[np.ndarray]:
    """Per lane, the hash of every row of ``df``: h = seed; h = (h ^ code(column)) * mult over the columns in
    order; mix(h) (module notes)."""
    parts = list(_batches(df, max(df.height, 1)))
    return list(np.concatenate(parts, axis=1)) if parts else [np.zeros(0, _U), np.zeros(0, _U)]


def lane_sums(df: pl.DataFrame, keep: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS) -> list[int]:
    """Per lane, the sum modulo 2^64 of the row hashes of ``df`` (columns taken as they are ordered),
    over the rows where ``keep`` (bool, one per row) is true, or every row when None.

    Notes
    -----
    S_l = sum over kept rows of h_l(row) mod 2^64 (:func:`row_hashes`); the sums of two sets of rows add.
    """
    sums, start = [0, 0], 0
    drop = None if keep is None else np.flatnonzero(~np.asarray(keep, dtype=bool))  # few rows: zeroed, not selected
    for hashes in _batches(df, chunk_rows):
        n = hashes.shape[1]
        if drop is not None:
            a, b = np.searchsorted(drop, (start, start + n))
            hashes[:, drop[a:b] - start] = 0
        start += n
        for i, h in enumerate(hashes.sum(axis=1, dtype=_U)):
            sums[i] = (sums[i] + int(h)) % 2**64
    return sums


def fingerprint_from_sums(schema: pl.Schema | None, rows: int, sums: Sequence[int]) -> str:
    """The value of :func:`multiset_fingerprint` from its parts: the frames' ``schema`` (None: no part),
    their row count and the lane sums ``S_1, S_2`` (:func:`lane_sums`) over the columns in name order."""
    text = "[]" if schema is None else repr([(n, str(schema[n])) for n in sorted(schema)])
    h = hashlib.sha256(TAG)
    h.update(text.encode())
    h.update(int(rows).to_bytes(8, "little") + b"".join((int(s) % 2**64).to_bytes(8, "little") for s in sums))
    return h.hexdigest()


def multiset_fingerprint(parts: Sequence[Any], chunk_rows: int = CHUNK_ROWS) -> str:
    """SHA-256 fingerprint of the rows of ``parts`` (frames or LazyFrames, one held at a time), whatever their
    split and order.

    Notes
    -----
    sha256(TAG, column names and dtypes in name order, row count, S_1, S_2) with
    S_l = sum over rows of h_l(row) mod 2^64, h_l the row hash of :func:`row_hashes` on the columns in
    name order (value codes in the module notes). Sums commute, so any permutation of the rows, cut
    into any files, gives the same value; a change of any value changes it except with probability
    about 2^-128 (not a defence against a crafted collision).
    """
    sums, rows, schema = [0, 0], 0, None
    for p in parts:
        df = p.collect() if isinstance(p, pl.LazyFrame) else p
        df = df.select(sorted(df.columns))
        schema = df.schema if schema is None else schema
        rows += df.height
        for i, s in enumerate(lane_sums(df, chunk_rows=chunk_rows)):  # the sums do not depend on the cut
            sums[i] = (sums[i] + s) % 2**64
    return fingerprint_from_sums(schema, rows, sums)
