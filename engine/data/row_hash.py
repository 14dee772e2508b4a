"""An order-independent data fingerprint computed file by file: a sum of row hashes (a multiset hash).

:func:`engine.data.persist.fingerprint` with ``ignore_row_order`` sorts every row first, so it
holds all of them; the data fingerprint of a ``fentan run`` report is taken over 10^7 or 10^8
members, which never sit in memory together. Here each row gets two 64-bit hashes, summed
modulo 2^64 over every row: the sums add across files, so the fingerprint is the same for any
split and any row order, and one file at a time is held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

__all__ = ["multiset_fingerprint", "row_hashes", "STRING_BASE", "LANE_SEEDS", "NULL_CODE"]

#: base of the polynomial hash of a string's bytes (odd, so invertible modulo 2^64)
STRING_BASE = 0x100000001B3
#: initial value of each of the two row-hash lanes
LANE_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)
#: code of a null value (any column)
NULL_CODE = 0xA5A5A5A5A5A5A5A5
#: rows hashed at once (the byte arrays of a string column's hash are 8 bytes per byte of text)
CHUNK_ROWS = 200_000
_U = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, elementwise (uint64, wrapping)."""
    x = x ^ (x >> _U(30))
    x = x * _U(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U(27))
    x = x * _U(0x94D049BB133111EB)
    return x ^ (x >> _U(31))


def _string_codes(s: pl.Series) -> np.ndarray:
    """mix(poly ^ length) per string: poly = sum_k (byte_k + 1) * STRING_BASE^k mod 2^64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(s.fill_null("").to_arrow(), pa.large_string())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    _, off_buf, data_buf = arr.buffers()
    offs = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8)[offs[0]: offs[-1]] if data_buf is not None else np.zeros(0, np.uint8)
    offs = offs - offs[0]
    n = data.size
    powers = np.concatenate([np.ones(1, _U), np.cumprod(np.full(max(n - 1, 0), STRING_BASE, dtype=_U))])[:n]  # P^k
    inv = pow(STRING_BASE, -1, 2**64)
    inv_pow = np.cumprod(np.full(n + 1, inv, dtype=_U)) * _U(STRING_BASE)  # inv^k, k = 0 .. n
    cum = np.concatenate([np.zeros(1, _U), np.cumsum((data.astype(_U) + _U(1)) * powers, dtype=_U)])
    poly = (cum[offs[1:]] - cum[offs[:-1]]) * inv_pow[offs[:-1]]
    return _mix(poly ^ np.diff(offs).astype(_U))


def _codes(s: pl.Series) -> np.ndarray:
    """One uint64 code per value: mix(canonical 64 bits) for numbers, dates and booleans; strings as above."""
    t = s.dtype
    if t == pl.Categorical or t == pl.Enum:
        s, t = s.cast(pl.String), pl.String
    if t == pl.String:
        codes = _string_codes(s)
    elif t == pl.Boolean or t.is_temporal() or t.is_integer() or t.is_float():
        v = s.to_physical().fill_null(0)
        if v.dtype.is_float():
            f = v.cast(pl.Float64).to_numpy() + 0.0  # -0.0 + 0.0 == +0.0
            bits = np.where(np.isnan(f), np.float64("nan"), f).view(_U)
        else:
            bits = v.cast(pl.Int64).to_numpy().astype(np.int64).view(_U)
        codes = _mix(bits)
    else:  # nested, binary, decimal, objects: the text of their Python values
        codes = _string_codes(pl.Series([repr(x) for x in s.to_list()], dtype=pl.String))
    if s.null_count():
        codes = np.where(s.is_null().to_numpy(), _U(NULL_CODE), codes)
    return codes


def row_hashes(df: pl.DataFrame) -> list[np.ndarray]:
    """Per lane, the hash of every row of ``df``: h = seed; h = mix(h ^ code(column)) over the columns in order."""
    codes = [_codes(df.get_column(c)) for c in df.columns]
    out = []
    for seed in LANE_SEEDS:
        h = np.full(df.height, seed, dtype=_U)
        for c in codes:
            h = _mix(h ^ c)
        out.append(h)
    return out


def multiset_fingerprint(parts: Sequence[Any], chunk_rows: int = CHUNK_ROWS) -> str:
    """SHA-256 fingerprint of the rows of ``parts`` (frames or LazyFrames, one held at a time), whatever their
    split and order.

    Notes
    -----
    sha256(tag, column names and dtypes in name order, row count, S_1, S_2) with
    S_l = sum over rows of h_l(row) mod 2^64, h_l the row hash of :func:`row_hashes` on the columns in
    name order. Sums commute, so any permutation of the rows, cut into any files, gives the same value;
    a change of any value changes it except with probability about 2^-128 (not a defence against a
    crafted collision).
    """
    sums, rows, schema = [0, 0], 0, None
    for p in parts:
        df = p.collect() if isinstance(p, pl.LazyFrame) else p
        df = df.select(sorted(df.columns))
        schema = schema or repr([(n, str(t)) for n, t in df.schema.items()])
        rows += df.height
        for off in range(0, df.height, chunk_rows):  # bounded temporaries; the sums do not depend on the cut
            for i, h in enumerate(row_hashes(df.slice(off, chunk_rows))):
                sums[i] = (sums[i] + int(h.sum(dtype=_U))) % 2**64
    h = hashlib.sha256(b"fentan-multiset-fingerprint-1\0")
    h.update((schema or "[]").encode())
    h.update(rows.to_bytes(8, "little") + b"".join(s.to_bytes(8, "little") for s in sums))
    return h.hexdigest()
