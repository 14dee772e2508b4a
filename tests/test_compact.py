"""engine.data._compact.compact: the same rows, values and dtypes, in buffers of their own."""

from __future__ import annotations

import polars as pl

from engine.data._compact import compact


def test_same_values_dtypes_and_nulls() -> None:
    df = pl.DataFrame({"id": ["M0000000000001", None, "x"], "raw": [b"\x00\xff", None, b""], "n": [1, 2, None]})
    out = compact(df.filter(pl.col("n").is_not_null() | pl.col("id").is_null()))
    want = df.filter(pl.col("n").is_not_null() | pl.col("id").is_null())
    assert out.schema == want.schema
    assert out.equals(want)


def test_empty_and_no_strings() -> None:
    df = pl.DataFrame({"id": ["a"], "n": [1]})
    assert compact(df.clear()).schema == df.schema
    ints = pl.DataFrame({"n": [1, 2]})
    assert compact(ints) is ints


def test_long_strings_copied_out_of_the_parent() -> None:
    """A few long strings of a large column keep only their own bytes (not the parent's buffers)."""
    parent = pl.DataFrame({"id": pl.int_range(0, 200_000, eager=True).cast(pl.String).str.zfill(20)})
    kept = parent.filter(pl.col("id").str.ends_with("00000"))
    out = compact(kept)
    assert out.equals(kept)
    # the string-view buffers behind the column (the filtered one holds the parent's 4 MB)
    newest = pl.CompatLevel.newest()
    held = sum(b.size for b in out.get_column("id").to_arrow(compat_level=newest).buffers() if b is not None)
    assert held < 40 * kept.height + 1024
