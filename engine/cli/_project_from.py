"""``fentan project --from DIR``: the projection's groups table from another command's output directory.

Recognised directories (first match wins):

- a ``fentan run`` or ``fentan plans`` output (``plans.parquet``): one projected plan per plan of
  the plan comparison (``pooled/<plan>`` and ``<plan file>/<plan>``, ``vertical/<plan>`` for a
  ``fentan plans`` output), one group per group row;
  annual rate = expected claims per period x periods per year / members, benefit = the group's
  mean benefit. The plans' sharing frequency becomes the default ``--periods-per-year``.
- a ``fentan segment --out`` output (``segments.parquet``) or a saved segmentation model
  directory (``groups.parquet`` with ``model.json``): one plan ``segments`` with one group per risk
  group (its name, members and observed rate); the benefit per claim comes from ``--benefit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import ConfigError, InputFileError

__all__ = ["groups_from_dir"]


def _read(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for unreadable files
        raise InputFileError(f"{path}: cannot read Parquet ({type(exc).__name__})") from None


def _need(df: pl.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ConfigError(f"{path}: column '{missing[0]}' not found (needed by project --from)")


def _from_plans(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    df = _read(path)
    _need(df, ("planset", "plan", "level", "group", "members", "expected_claims_per_period", "periods_per_year",
               "mean_benefit_cny"), path)
    file_col = pl.col("plan_file") if "plan_file" in df.columns else pl.col("planset")
    label = (pl.when(pl.col("planset") == "pooled").then(pl.lit("pooled/") + pl.col("plan"))
             .otherwise(file_col.cast(pl.String) + pl.lit("/") + pl.col("plan")))
    g = (df.filter(pl.col("level") == "group", pl.col("members") > 0)
         .with_columns(label.alias("plan"), pl.col("group").cast(pl.String))
         .unique(subset=["plan", "group"], keep="first", maintain_order=True)
         .select("plan", "group", "members",
                 (pl.col("expected_claims_per_period") * pl.col("periods_per_year") / pl.col("members")).alias("rate"),
                 pl.col("mean_benefit_cny").alias("benefit_cny"), "periods_per_year"))
    if g.height == 0:
        raise ConfigError(f"{path}: no group with members to project")
    ppy = g["periods_per_year"].unique().to_list()
    defaults: dict[str, Any] = {}
    if len(ppy) == 1 and float(ppy[0]).is_integer():
        defaults["periods_per_year"] = int(ppy[0])
    return g.drop("periods_per_year"), defaults


def _from_segments(path: Path, benefit: float | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    if benefit is None:
        raise ConfigError(f"{path}: a segmentation has no benefit per claim; pass --benefit CNY with --from")
    if not benefit > 0:
        raise ConfigError(f"--benefit: must be > 0 CNY, got {benefit}")
    df = _read(path)
    _need(df, ("members", "rate"), path)
    name = pl.col("name") if "name" in df.columns else pl.lit("G") + pl.col("group").cast(pl.String)
    g = (df.filter(pl.col("members") > 0)
         .select(pl.lit("segments").alias("plan"), name.cast(pl.String).alias("group"), "members",
                 pl.col("rate").fill_nan(0.0).fill_null(0.0), pl.lit(float(benefit)).alias("benefit_cny")))
    if g.height == 0:
        raise ConfigError(f"{path}: no group with members to project")
    return g, {}


def groups_from_dir(directory: str | Path, benefit: float | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Groups table (plan, group, members, rate, benefit_cny) and default assumptions from an output directory."""
    from engine.projection.assumptions import groups_from_table

    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"--from: {d} is not a directory (give a run, plans or segment output directory)")
    if (d / "plans.parquet").is_file():
        g, defaults = _from_plans(d / "plans.parquet")
    elif (d / "segments.parquet").is_file():
        g, defaults = _from_segments(d / "segments.parquet", benefit)
    elif (d / "groups.parquet").is_file() and (d / "model.json").is_file():
        g, defaults = _from_segments(d / "groups.parquet", benefit)
    else:
        raise ConfigError(f"--from: {d} has no plans.parquet, segments.parquet or segmentation model "
                          "(groups.parquet + model.json)")
    return groups_from_table(g, benefit="benefit_cny", risk=None), defaults
