"""Null rating factors as an explicit ``missing`` level, the same in every command.

The data contract allows a rating factor (``city_tier``, ``channel`` ...) to be null. Wherever
a command makes factors keys (the members of ``fentan run`` and ``fentan exposure``, hence their
cells and every later stage) and wherever a model encodes them
(:mod:`engine.estimators.features`, :mod:`engine.estimators.gbm`), a null is the level :data:`MISSING`. The API function
:func:`engine.exposure` keeps a null key as null (the commands fill the members first). A factor
column that holds a null is compared as text: an integer column with nulls becomes
``"1"``, ``"2"``, ..., ``"missing"`` (a column without nulls keeps its type).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from engine.errors import ConfigError

__all__ = ["MISSING", "fill_missing", "as_levels", "as_levels_expr", "check_factor_types"]

#: the level of a null rating factor
MISSING = "missing"


def as_levels(s: pl.Series) -> pl.Series:
    """``s`` as text levels with nulls as :data:`MISSING` (unchanged when it holds no null)."""
    if not s.null_count():
        return s
    return s.cast(pl.String).fill_null(MISSING)


def as_levels_expr(name: str) -> pl.Expr:
    """Column ``name`` as text levels with nulls as :data:`MISSING`: :func:`as_levels` as a lazy expression,
    for a column known to hold a null somewhere (e.g. in another file of the same members)."""
    return pl.col(name).cast(pl.String).fill_null(MISSING)


def fill_missing(df: pl.DataFrame, factors: Sequence[str], sums: Sequence[str] = ()) -> pl.DataFrame:
    """Replace nulls in the ``factors`` columns of ``df`` by :data:`MISSING`.

    Parameters
    ----------
    df : cells (or members).
    factors : factor columns (absent ones are ignored).
    sums : additive columns; when given, rows whose keys now coincide (a null and a literal
        ``"missing"`` level) are added up, every other row is kept as is.

    Returns
    -------
    DataFrame with the same columns (a factor with nulls becomes String).
    """
    cols = [f for f in factors if f in df.columns and df.get_column(f).null_count()]
    if not cols:
        return df
    out = df.with_columns([as_levels(df.get_column(c)) for c in cols])
    if sums:
        keys = [c for c in out.columns if c not in sums]
        if out.select(keys).is_duplicated().any():
            out = out.group_by(keys, maintain_order=True).agg([pl.col(s).sum() for s in sums]).select(df.columns)
        out = out.sort(keys, nulls_last=True, maintain_order=True)
    return out


def check_factor_types(schema: pl.Schema, factors: list[str], where: str) -> None:
    """Refuse a rating factor whose type cannot be a level (a struct, list, array or binary column)."""
    for f in factors:
        dtype = schema.get(f)
        if dtype is not None and (dtype.is_nested() or dtype in (pl.Binary, pl.Object)):
            raise ConfigError(f"{where}: column '{f}' is of type {dtype}; a rating factor must be a string, "
                              "integer, boolean or category column")
