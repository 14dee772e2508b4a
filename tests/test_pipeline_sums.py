"""The run's cell sums by risk class (engine.pipeline._stages._sums): integer columns summed as integers.

``_sums`` sums the integer columns (exposure days, sharing days, claims) as Int64 and only the float
columns by :func:`engine.cells.sums.group_sums`; the result must be the very frame (same bytes) as
summing every column with ``group_sums`` and rounding the integer ones, whatever the row order.
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest

from engine.cells.sums import group_sums
from engine.pipeline._stages import _sums

COLS = ("exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount")


def _reference(cells: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Every column through group_sums, integer columns rounded back to Int64 (the former implementation)."""
    cols = [c for c in COLS if c in cells.columns]
    out = group_sums(cells, keys, cols)
    return out.with_columns([pl.col(c).round(0).cast(pl.Int64) for c in ("exposure_days", "sharing_days", "claims")
                             if c in cols])


def _cells(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 40_000, n)
    share = rng.integers(0, 40_000, n)
    return pl.DataFrame({
        "period": rng.integers(0, 12, n),
        "age": rng.integers(0, 60, n).astype(np.int32),
        "sex": rng.choice(["F", "M"], n),
        "channel": pl.Series([c or None for c in rng.choice(["app", "web", ""], n).tolist()], dtype=pl.String),
        "exposure_days": days,
        "exposure_years": days / 365.25,
        "sharing_days": share,
        "sharing_years": share / 365.25,
        "claims": rng.poisson(0.3, n).astype(np.int64),
        "amount": rng.random(n) * 3e5,
        "_null": rng.random(n) < 0.05,
    }).with_columns(pl.when(pl.col("_null")).then(None).otherwise(pl.col("claims")).alias("claims")).drop("_null")


def _bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


@pytest.mark.parametrize("keys", [["age", "sex"], ["age", "sex", "channel"], ["channel"], ["period", "channel"]])
def test_same_frame_as_summing_every_column_as_floats(keys: list[str]) -> None:
    cells = _cells(20_000, 4)
    got, want = _sums(cells, keys), _reference(cells, keys)
    assert got.schema == want.schema
    assert got.columns == [*keys, *COLS]
    assert _bytes(got) == _bytes(want)
    assert got["claims"].dtype == pl.Int64 and got["claims"].sum() == cells["claims"].sum()
    shuffled = _sums(cells.sample(fraction=1.0, shuffle=True, seed=9), keys)
    assert _bytes(shuffled) == _bytes(got)


def test_float_integer_columns_and_missing_columns_and_no_rows() -> None:
    cells = _cells(3_000, 5)
    floaty = cells.with_columns(pl.col("claims").cast(pl.Float64))  # claims as floats: rounded as before
    assert _bytes(_sums(floaty, ["age"])) == _bytes(_reference(floaty, ["age"]))
    few = cells.select("age", "sex", "exposure_years", "claims")
    assert _sums(few, ["sex"]).columns == ["sex", "exposure_years", "claims"]
    assert _bytes(_sums(few, ["sex"])) == _bytes(_reference(few, ["sex"]))
    empty = cells.head(0)
    assert _sums(empty, ["age", "sex"]).height == 0
    assert _sums(empty, ["age", "sex"]).schema == _reference(empty, ["age", "sex"]).schema


def test_only_the_named_sums() -> None:
    cells = _cells(2_000, 6)
    got = _sums(cells, ["age"], ("exposure_years", "claims"))
    assert got.columns == ["age", "exposure_years", "claims"]
    assert _bytes(got) == _bytes(_sums(cells, ["age"]).select("age", "exposure_years", "claims"))
