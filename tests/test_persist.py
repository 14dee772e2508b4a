"""``engine.data.persist.fingerprint``: stable across processes and chunking, sensitive to content."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.persist import fingerprint, load_model, save_model


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "period": [dt.date(2020, 1, 1), dt.date(2020, 2, 1), dt.date(2020, 3, 1)],
        "age": pl.Series([30, 31, None], dtype=pl.Int32),
        "sex": ["M", None, "F"],
        "exposure_years": [0.5, 1.25, float("nan")],
        "claims": [0, 1, 2],
        "flag": [True, None, False],
    })


def test_same_data_same_fingerprint_in_another_process() -> None:
    df = _frame()
    code = ("import datetime as dt, polars as pl\n"
            "from engine.data.persist import fingerprint\n"
            "df = pl.DataFrame({'period': [dt.date(2020, 1, 1), dt.date(2020, 2, 1), dt.date(2020, 3, 1)],"
            " 'age': pl.Series([30, 31, None], dtype=pl.Int32), 'sex': ['M', None, 'F'],"
            " 'exposure_years': [0.5, 1.25, float('nan')], 'claims': [0, 1, 2], 'flag': [True, None, False]})\n"
            "print(fingerprint(df))\n")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert other == fingerprint(df)
    assert len(other) == 64


def test_chunking_does_not_matter() -> None:
    df = _frame()
    chunked = pl.concat([df.head(1), df.tail(2)], rechunk=False)
    assert chunked.n_chunks() > 1
    assert fingerprint(chunked) == fingerprint(df)


def test_row_order_matters_unless_ignored() -> None:
    df = _frame()
    rev = df.reverse()
    assert fingerprint(rev) != fingerprint(df)
    assert fingerprint(rev, ignore_row_order=True) == fingerprint(df, ignore_row_order=True)


@pytest.mark.parametrize("change", [
    lambda d: d.with_columns(pl.when(pl.col("claims") == 1).then(2).otherwise(pl.col("claims")).alias("claims")),
    lambda d: d.with_columns(pl.col("claims").cast(pl.Int32)),
    lambda d: d.rename({"claims": "claim"}),
    lambda d: d.with_columns(pl.col("age").fill_null(0)),              # null vs 0
    lambda d: d.with_columns(pl.col("sex").fill_null("")),             # null vs empty string
    lambda d: d.with_columns(pl.col("exposure_years").fill_nan(0.0)),  # NaN vs 0
    lambda d: d.with_columns(pl.Series("sex", ["MF", None, ""])),      # same bytes, other split
    lambda d: d.head(2),
])
def test_any_change_changes_the_fingerprint(change) -> None:
    df = _frame()
    assert fingerprint(change(df)) != fingerprint(df)


def test_signed_zero_is_one_value() -> None:
    a = pl.DataFrame({"x": [0.0, 1.0]})
    b = pl.DataFrame({"x": [-0.0, 1.0]})
    assert fingerprint(a) == fingerprint(b)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(allow_nan=False, width=64), st.text(max_size=4)),
                min_size=0, max_size=30), st.randoms(use_true_random=False))
def test_permutations_share_the_order_free_fingerprint(rows, rnd) -> None:
    df = pl.DataFrame(rows, schema={"k": pl.Int64, "x": pl.Float64, "s": pl.String}, orient="row")
    perm = list(range(df.height))
    rnd.shuffle(perm)
    shuffled = df[perm] if perm else df
    assert fingerprint(shuffled, ignore_row_order=True) == fingerprint(df, ignore_row_order=True)


def test_glm_fingerprint_is_persist_fingerprint(tmp_path) -> None:
    from engine.estimators.glm import data_fingerprint

    df = _frame()
    assert data_fingerprint(df) == fingerprint(df)
    save_model(tmp_path / "m", "Dummy", {"a": 1}, {"t": df}, data_fingerprint=fingerprint(df), fit_date="2020-01-01")
    meta, tables = load_model(tmp_path / "m", kind="Dummy")
    assert meta["data_fingerprint"] == fingerprint(tables["t"])
