"""The multiset data fingerprint (:mod:`engine.data.row_hash`) against a slow pure-Python oracle.

The oracle is written from the definition in the module notes (Python integers modulo 2^64, a
loop over rows, values and 8-byte words), not from the vectorised code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import struct

import polars as pl
import pytest

from engine.data.row_hash import LANE_MULTS, LANE_SEEDS, NULL_CODE, STRING_SEED, TAG, multiset_fingerprint, row_hashes

M = 2**64


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) % M
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) % M
    return x ^ (x >> 31)


def _string_code(v: str) -> int:
    b = v.encode()
    h = STRING_SEED ^ len(b)
    for j in range(0, len(b), 8):
        h = _mix(h ^ int.from_bytes(b[j: j + 8].ljust(8, b"\0"), "little"))
    return h


def _code(v: object) -> int:
    if v is None:
        return NULL_CODE
    if isinstance(v, str):
        return _string_code(v)
    if isinstance(v, bool):
        return _mix(int(v))
    if isinstance(v, float):
        f = float("nan") if math.isnan(v) else v + 0.0
        return _mix(struct.unpack("<Q", struct.pack("<d", f))[0])
    if isinstance(v, dt.date):
        return _mix((v - dt.date(1970, 1, 1)).days % M)
    if isinstance(v, int):
        return _mix(v % M)
    return _string_code(repr(v))


def _row_hash(row: tuple, lane: int) -> int:
    h = LANE_SEEDS[lane]
    for v in row:
        h = ((h ^ _code(v)) * LANE_MULTS[lane]) % M
    return _mix(h)


def _oracle(df: pl.DataFrame) -> str:
    df = df.select(sorted(df.columns))
    sums = [0, 0]
    for row in df.iter_rows():
        for lane in (0, 1):
            sums[lane] = (sums[lane] + _row_hash(row, lane)) % M
    h = hashlib.sha256(b"fentan-multiset-fingerprint-2\0")
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
    "channel": pl.Series(["web", None, "agent", "web", "", "代理"], dtype=pl.Categorical),
    "sex": ["M", "F", "F", None, "M", "M"],  # short text only: read from the string views in place
})

_rng = random.Random(7)
_ALPHABET = "ab0Zé长期€😀 "
#: every byte length from 0 to 40 and a few long ones, ASCII and not, with nulls
TEXTS = [None if i % 17 == 5 else "".join(_rng.choice(_ALPHABET) for _ in range(_rng.randrange(0, 30)))
         for i in range(300)] + ["x" * n for n in range(41)] + ["é" * 70, "long " * 30]


def test_the_tag_is_version_2() -> None:
    assert TAG == b"fentan-multiset-fingerprint-2\0"


def test_matches_the_slow_oracle() -> None:
    assert multiset_fingerprint([DF]) == _oracle(DF)
    nan_free = DF.with_columns(pl.col("x").fill_nan(0.0))
    assert multiset_fingerprint([nan_free]) == _oracle(nan_free)


@pytest.mark.parametrize("texts", [TEXTS, [t for t in TEXTS if t is None or len(t.encode()) <= 12],
                                   [t for t in TEXTS if t is None or len(t.encode()) > 12],
                                   ["x" * 20] * 30 + ["", "y"], ["", "a", None] * 20 + ["z" * 90], [""] * 5, [None] * 4])
def test_strings_every_length_and_path_match_the_oracle(texts) -> None:
    """Inline views (<= 12 bytes) and offsets into the bytes, few or many short strings, long, non-ASCII, nulls."""
    df = pl.DataFrame({"s": pl.Series(texts, dtype=pl.String), "c": pl.Series(texts, dtype=pl.Categorical)})
    assert multiset_fingerprint([df]) == _oracle(df)
    h0, h1 = row_hashes(df.select("s"))
    assert [int(v) for v in h0] == [_row_hash((t,), 0) for t in texts]
    assert [int(v) for v in h1] == [_row_hash((t,), 1) for t in texts]
    for chunk in (1, 7, 64):
        assert multiset_fingerprint([df], chunk_rows=chunk) == multiset_fingerprint([df])


def test_a_string_code_does_not_depend_on_its_neighbours() -> None:
    """The same text has the same row hash in a column of short texts and in one with a long text."""
    short = pl.DataFrame({"s": ["ab", "", None, "twelve bytes"]})
    mixed = pl.concat([short, pl.DataFrame({"s": ["q" * 100]})])
    assert [int(v) for v in row_hashes(mixed)[0][:4]] == [int(v) for v in row_hashes(short)[0]]
    assert [int(v) for v in row_hashes(short.slice(1, 3))[1]] == [int(v) for v in row_hashes(short)[1][1:]]


def test_nested_values_are_hashed_by_their_text() -> None:
    df = pl.DataFrame({"l": [[1, 2], None, []], "k": [1, 2, 3]})
    assert multiset_fingerprint([df]) == _oracle(df)


def test_any_split_and_order_same_value_content_changes_it() -> None:
    fp = multiset_fingerprint([DF])
    assert multiset_fingerprint([DF.reverse().select(["x", "flag", "sex", "tier", "channel", "join_date", "member_id"])]) == fp
    assert multiset_fingerprint([DF.slice(0, 2).lazy(), DF.slice(2, 0), DF.slice(2, 4).lazy()]) == fp
    assert multiset_fingerprint([DF], chunk_rows=4) == multiset_fingerprint([DF], chunk_rows=1) == fp
    assert multiset_fingerprint([DF.with_columns(pl.col("x").replace(-0.0, 0.0))]) == fp  # -0.0 is 0.0
    assert multiset_fingerprint([DF.with_columns(pl.col("x").replace(float("nan"), -float("nan")))]) == fp  # one NaN
    changed = [DF.with_columns(pl.Series("tier", [1, -3, None, 2**40, 2, 0])),
               DF.with_columns(pl.Series("member_id", ["a1", "", "", "长期会员", "a1", "bb" * 40])),  # null vs ""
               DF.with_columns(pl.Series("sex", ["M", "F", "F", "", "M", "M"])),  # null vs "" (inline)
               DF.with_columns(pl.Series("member_id", ["a1", "", None, "长期会员", "a1", "bb" * 39 + "bc"])),
               DF.with_columns(pl.Series("sex", ["M", "F", "F", None, "M", "M\0"])),  # a trailing NUL byte
               DF.head(5), DF.rename({"flag": "flag2"}), DF.with_columns(pl.col("tier").cast(pl.Float64))]
    assert len({fp, *(multiset_fingerprint([c]) for c in changed)}) == len(changed) + 1


def test_swapping_values_between_rows_changes_it() -> None:
    """The multiset is of rows, not of values per column."""
    a = pl.DataFrame({"p": ["x", "y"], "q": [1, 2]})
    b = pl.DataFrame({"p": ["x", "y"], "q": [2, 1]})
    assert multiset_fingerprint([a]) != multiset_fingerprint([b])
