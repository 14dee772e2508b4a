"""The multiset data fingerprint (:mod:`engine.data.row_hash`) against a slow pure-Python oracle.

The oracle is written from the formula in the module notes (Python integers modulo 2^64, a loop
over rows and bytes), not from the vectorised code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import struct

import polars as pl

from engine.data.row_hash import LANE_SEEDS, NULL_CODE, STRING_BASE, multiset_fingerprint

M = 2**64


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) % M
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) % M
    return x ^ (x >> 31)


def _code(v: object) -> int:
    if v is None:
        return NULL_CODE
    if isinstance(v, str):
        b = v.encode()
        poly = sum((x + 1) * pow(STRING_BASE, k, M) for k, x in enumerate(b)) % M
        return _mix(poly ^ len(b))
    if isinstance(v, bool):
        return _mix(int(v))
    if isinstance(v, float):
        f = float("nan") if math.isnan(v) else v + 0.0
        return _mix(struct.unpack("<Q", struct.pack("<d", f))[0])
    if isinstance(v, dt.date):
        return _mix((v - dt.date(1970, 1, 1)).days % M)
    return _mix(int(v) % M)


def _oracle(df: pl.DataFrame) -> str:
    df = df.select(sorted(df.columns))
    sums = [0, 0]
    for row in df.iter_rows():
        for i, seed in enumerate(LANE_SEEDS):
            h = seed
            for v in row:
                h = _mix(h ^ _code(v))
            sums[i] = (sums[i] + h) % M
    h = hashlib.sha256(b"fentan-multiset-fingerprint-1\0")
    h.update(repr([(n, str(t)) for n, t in df.schema.items()]).encode())
    h.update(df.height.to_bytes(8, "little") + b"".join(s.to_bytes(8, "little") for s in sums))
    return h.hexdigest()


DF = pl.DataFrame({
    "member_id": ["a1", "", None, "长期会员", "a1", "bb" * 40],
    "join_date": [dt.date(2019, 1, 1), None, dt.date(1969, 12, 31), dt.date(2020, 2, 29), dt.date(2019, 1, 1),
                  dt.date(2021, 5, 5)],
    "tier": [1, -3, None, 2**40, 1, 0],
    "x": [0.5, -0.0, float("nan"), None, 0.5, 1e300],
    "flag": [True, False, None, True, True, False],
})


def test_matches_the_slow_oracle() -> None:
    assert multiset_fingerprint([DF]) == _oracle(DF)
    assert multiset_fingerprint([DF.with_columns(pl.col("x").fill_nan(0.0))]) == _oracle(DF.with_columns(pl.col("x").fill_nan(0.0)))


def test_any_split_and_order_same_value_content_changes_it() -> None:
    fp = multiset_fingerprint([DF])
    assert multiset_fingerprint([DF.reverse().select(["x", "flag", "tier", "join_date", "member_id"])]) == fp
    assert multiset_fingerprint([DF.slice(0, 2).lazy(), DF.slice(2, 0), DF.slice(2, 4).lazy()]) == fp
    assert multiset_fingerprint([DF], chunk_rows=4) == multiset_fingerprint([DF], chunk_rows=1) == fp
    assert multiset_fingerprint([DF.with_columns(pl.col("x").replace(-0.0, 0.0))]) == fp  # -0.0 is 0.0
    changed = [DF.with_columns(pl.Series("tier", [1, -3, None, 2**40, 2, 0])),
               DF.with_columns(pl.Series("member_id", ["a1", "", "", "长期会员", "a1", "bb" * 40])),  # null vs ""
               DF.head(5), DF.rename({"flag": "flag2"}), DF.with_columns(pl.col("tier").cast(pl.Float64))]
    assert len({fp, *(multiset_fingerprint([c]) for c in changed)}) == len(changed) + 1
