"""Assigning cells or members to the groups of a fitted segmentation (:meth:`RiskSegmenter.assign`).

Members get their attained age and completed months on the date ``at``; factor columns are read as
the fitted levels (a null as ``"missing"`` for a factor fitted as text, :mod:`engine.data.factor_levels`);
rows are then matched by the groups' rules or by the fitted feature combinations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from engine.cells.dates import attained_age_expr, completed_months_expr
from engine.data.factor_levels import as_levels
from engine.errors import ConfigError, DataError
from engine.segmentation._tree import rule_expr

__all__ = ["assign_groups", "align_levels", "with_features"]


def with_features(frame: pl.DataFrame, feats: Sequence[str], at: Any) -> pl.DataFrame:
    """``frame`` with every feature column: ``age`` / ``duration`` computed on ``at`` from the dates if absent."""
    df = frame
    for f in feats:
        if f in df.columns:
            continue
        if f == "age" and "birth_date" in df.columns:
            if at is None:
                raise ConfigError("at: a date is needed to compute attained age from birth_date")
            df = df.with_columns(attained_age_expr(pl.col("birth_date"), at).alias("age"))
        elif f == "duration" and "join_date" in df.columns:
            if at is None:
                raise ConfigError("at: a date is needed to compute duration from join_date")
            df = df.with_columns(completed_months_expr(pl.col("join_date"), at).alias("duration"))
        else:
            raise DataError(f"frame: column '{f}' needed for assignment is missing")
    return df


def align_levels(df: pl.DataFrame, feats: Sequence[str], units: pl.DataFrame | None) -> pl.DataFrame:
    """Factor columns of ``df`` typed as the fitted levels (``units``' columns), a null as ``"missing"``.

    A factor fitted as text (it held a null, so its levels are ``"1"``, ``"2"``, ...,
    ``"missing"``) is compared as text, a null being ``"missing"``; a factor fitted with integer
    levels keeps a null as null (an unseen level).
    """
    cols = []
    for f in feats:
        if f in ("age", "duration") or f not in df.columns or units is None or f not in units.columns:
            continue
        s, target = df.get_column(f), units.schema[f]
        if target == pl.String:
            cols.append(as_levels(s).cast(pl.String))
        elif s.dtype != target:
            cols.append(s.cast(target, strict=False))  # a value not of the fitted type matches no group
    return df.with_columns(cols) if cols else df


def _rules_expr(rules: Sequence[Any]) -> pl.Expr:
    """Group id by the first group whose rules match; the "other" group (rules None) takes the rest."""
    expr = pl.lit(None, dtype=pl.Int32)
    for g in reversed(range(len(rules))):
        if rules[g] is not None:
            expr = pl.when(pl.any_horizontal([rule_expr(r) for r in rules[g]])).then(
                pl.lit(g + 1, dtype=pl.Int32)).otherwise(expr)
    other = [g + 1 for g, r in enumerate(rules) if r is None]
    return expr.fill_null(pl.lit(other[0], dtype=pl.Int32)) if other else expr


def assign_groups(frame: pl.DataFrame | pl.LazyFrame, feats: Sequence[str], rules: Sequence[Any] | None,
                  units: pl.DataFrame | None, at: Any = None, unknown: str = "error") -> pl.Series:
    """Group id (Int32, 1..K) of every row of ``frame``; see :meth:`RiskSegmenter.assign`."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    df = align_levels(with_features(frame, feats, at), feats, units)
    if rules is not None:
        out = df.with_columns(_rules_expr(rules).alias("__group"))["__group"]
    elif feats:
        out = df.select(feats).with_row_index("_i").join(units, on=list(feats), how="left").sort("_i")["group"]
    else:
        out = pl.Series("group", [1] * df.height, dtype=pl.Int32)
    n_null = out.null_count()
    if n_null and unknown == "error":
        raise DataError(f"frame: {n_null} rows match no group (unseen feature values); use unknown='null' to keep them")
    return out.alias("group").cast(pl.Int32)
