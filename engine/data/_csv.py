"""CSV members and claims files (``.csv``, ``.csv.gz``) read under the Parquet data contract.

Notes
-----
A CSV file has a header line; the separator is a comma; UTF-8. The contract's columns
(:mod:`engine.data.schema`) are read as text, then typed strictly:

- dates must be ISO ``YYYY-MM-DD`` (``2019-01-31``); an empty field is null (as a Parquet null);
- ``amount`` must be a number (``1200``, ``1200.5``, ``1.2e3``; ``nan`` and ``inf`` are numbers,
  set aside later as ``nonfinite_amount``);
- ids and ``sex`` stay as written (``007`` stays ``007``; a Parquet integer id ``7`` reads ``7``).

A value that does not parse is refused, as a Parquet column of the wrong type is: one line
naming the file, the column, the line of the file and the value. Every file is checked in
full when it is read (one extra pass over each CSV file), so a bad value is never silently
null (a null ``exit_date`` means "still a member"). Other columns (rating factors) keep the
types polars infers over the whole file. A file that cannot be parsed as CSV (ragged lines,
bad quoting, not UTF-8) is refused with the file named.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from engine.errors import InputFileError, SchemaError, first_line

__all__ = ["CSV_SUFFIXES", "is_csv", "scan_csv_file"]

#: file name endings of CSV data files (compared lower-case)
CSV_SUFFIXES = (".csv", ".csv.gz")
_ISO = r"^\d{4}-\d{2}-\d{2}$"


def is_csv(f: Path | str) -> bool:
    """True for a ``.csv`` or ``.csv.gz`` file name (any case)."""
    return str(f).lower().endswith(CSV_SUFFIXES)


def _bad_value(name: str, dst: pl.DataType) -> pl.Expr | None:
    """True where the text of column ``name`` does not parse as ``dst`` (None: nothing to check)."""
    col = pl.col(name)
    if dst == pl.Date():
        return col.is_not_null() & (~col.str.contains(_ISO) | col.str.to_date("%Y-%m-%d", strict=False).is_null())
    if dst == pl.Float64():
        return col.is_not_null() & col.str.strip_chars().cast(pl.Float64, strict=False).is_null()
    return None


def _typed(name: str, dst: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dst == pl.Date():
        return col.str.to_date("%Y-%m-%d", strict=False).alias(name)
    if dst == pl.Float64():
        return col.str.strip_chars().cast(pl.Float64, strict=False).alias(name)
    return col


def scan_csv_file(file: Path, contract: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """One CSV file as a LazyFrame with the contract's columns typed (see the module notes).

    Raises
    ------
    InputFileError
        The file cannot be parsed as CSV.
    SchemaError
        A contract value does not parse: the file, column, line and value named.
    """
    if file.stat().st_size == 0:
        raise InputFileError(f"{file}: the file is empty (0 bytes)")
    try:
        header = pl.scan_csv(file, infer_schema=False, glob=False).collect_schema().names()
    except Exception as exc:  # noqa: BLE001 - polars raises several types for bad files
        raise InputFileError(f"{file}: not a readable CSV file ({first_line(exc)})") from None
    if len(set(header)) != len(header):
        dup = next(c for c in header if header.count(c) > 1)
        raise SchemaError(f"{file}: column '{dup}' appears twice in the header")
    text_cols = {c: pl.String for c in contract if c in header}
    lf = pl.scan_csv(file, schema_overrides=text_cols, infer_schema_length=None, glob=False)
    checks = {c: e for c in text_cols if (e := _bad_value(c, contract[c])) is not None}
    try:
        if checks:
            bad = (lf.select(list(checks)).with_row_index("__fentan_line")
                   .filter(pl.any_horizontal(list(checks.values()))).head(1).collect())
        else:
            lf.select(pl.len()).collect()
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(f"{file}: not a readable CSV file ({first_line(exc)})") from None
    if checks and bad.height:
        row = bad.row(0, named=True)
        for c, e in checks.items():
            if bad.select(e).item():
                what = "a date (YYYY-MM-DD)" if contract[c] == pl.Date() else "a number"
                raise SchemaError(f"{file}: column '{c}', line {row['__fentan_line'] + 2}: "
                                  f"'{str(row[c])[:40]}' is not {what}")
    return lf.with_columns([_typed(c, contract[c]) for c in checks])
