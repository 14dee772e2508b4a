"""``fentan project --from DIR``: the projection's groups table from another command's output directory.

Recognised directories (first match wins):

- a ``fentan run`` or ``fentan plans`` output (``plans.parquet``): one projected plan per plan of
  the plan comparison (``pooled/<plan>`` and ``<plan file>/<plan>``, ``vertical/<plan>`` for a
  ``fentan plans`` output), one group per group row;
  annual rate = expected claims per period x periods per year / members, benefit = the group's
  claims-weighted benefit (from its expected share under equal sharing; else its mean benefit). The plans' sharing frequency becomes the default ``--periods-per-year``; for a run,
  the plans' fee, caps and waiting period (its ``config.toml`` and plan files) and its reporting
  lag become the defaults too, when every plan has the same.
- a ``fentan segment --out`` output (``segments.parquet``) or a saved segmentation model
  directory (``groups.parquet`` with ``model.json``): one plan ``segments`` with one group per risk
  group (its name, members and observed rate), or with ``--plan-per-group`` one plan per risk group;
  the benefit per claim comes from ``--benefit``.
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
                 pl.col("mean_benefit_cny").alias("benefit_cny"), "periods_per_year",
                 *[c for c in ("expected_share_cny", "rule") if c in df.columns]))
    if g.height == 0:
        raise ConfigError(f"{path}: no group with members to project")
    ppy = g["periods_per_year"].unique().to_list()
    defaults: dict[str, Any] = {}
    if len(ppy) == 1 and float(ppy[0]).is_integer():
        defaults["periods_per_year"] = int(ppy[0])
    return g.rename({"periods_per_year": "periods_per_year_"}), defaults


def _cost_benefit(g: pl.DataFrame, fee: float) -> pl.DataFrame:
    """Benefit per claim that keeps each group's expected cost (claims-weighted, not members-weighted).

    Under equal sharing ``expected_share_cny`` = claims x benefit x (1 + fee) / members, so a group
    mixing the 300,000 and 100,000 CNY bands gets its claims-weighted benefit; other rows keep
    ``mean_benefit_cny``.
    """
    if "expected_share_cny" not in g.columns:
        return g
    claims = pl.col("members") * pl.col("rate")
    equal = pl.col("rule") == "equal" if "rule" in g.columns else pl.lit(True)
    b = pl.col("expected_share_cny") * pl.col("members") * pl.col("periods_per_year_") / (claims * (1.0 + fee))
    return (g.with_columns(pl.when(equal & (claims > 0) & b.is_finite() & (b > 0)).then(b)
                           .otherwise(pl.col("benefit_cny")).alias("benefit_cny"))
            .drop([c for c in ("expected_share_cny", "rule", "periods_per_year_") if c in g.columns]))


def _run_rules(run_dir: Path, ppy: int | None) -> dict[str, Any]:
    """Fee, caps, waiting period and reporting lag of a ``fentan run``'s plans (its ``config.toml``),
    when every plan agrees; else nothing, with a one-line warning (the flags then apply to all plans)."""
    import sys
    import tomllib

    from engine.conventions import days_to_periods, per_claimant_cap_scale
    from engine.plans.planset import load_plans

    cfg_path = run_dir / "config.toml"
    if not cfg_path.is_file():
        return {}
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        files = [raw["plans"]["pooled"]] if raw.get("plans", {}).get("pooled") else []
        files += list(raw.get("plans", {}).get("files", []))
        plans = [plan for f in files for plan in load_plans(f if Path(f).is_absolute() else run_dir / f)]
    except Exception as exc:  # a moved or edited plan file: project with the flags only
        print(f"fentan project: warning: {cfg_path}: plan files not read ({type(exc).__name__}); fee and caps "
              "come from the flags only", file=sys.stderr)
        return {}
    n = raw.get("plans", {}).get("scale_caps_to_members")  # the run scaled its per-claimant caps: the same here
    scale = per_claimant_cap_scale(n) if n else 1.0
    rules = {(p.fee, None if p.per_claimant_cap is None else p.per_claimant_cap * scale, p.annual_cap, p.waiting_days)
             for p in plans}
    if len(rules) != 1:
        print(f"fentan project: warning: {cfg_path}: the plans' fee, caps or waiting period differ; "
              "one set applies to every plan (give --fee, --per-claimant-cap, --annual-cap, --waiting-periods)",
              file=sys.stderr)
        return {}
    fee, per_claimant, annual, waiting_days = rules.pop()
    out: dict[str, Any] = {"fee": fee, "per_claimant_cap": per_claimant, "annual_cap": annual}
    lag = raw.get("history", {}).get("reporting_lag_days")
    if ppy:
        out["waiting_periods"] = days_to_periods(waiting_days, ppy)
        if lag is not None:
            out["reporting_lag_periods"] = days_to_periods(lag, ppy)
    return {k: v for k, v in out.items() if v is not None}


def _from_segments(path: Path, benefit: float | None, plan_per_group: bool = False) -> tuple[pl.DataFrame, dict[str, Any]]:
    if benefit is None:
        raise ConfigError(f"{path}: a segmentation has no benefit per claim; pass --benefit CNY with --from")
    if not benefit > 0:
        raise ConfigError(f"--benefit: must be > 0 CNY, got {benefit}")
    df = _read(path)
    _need(df, ("members", "rate"), path)
    name = pl.col("name") if "name" in df.columns else pl.lit("G") + pl.col("group").cast(pl.String)
    g = (df.filter(pl.col("members") > 0)
         .select((name.cast(pl.String) if plan_per_group else pl.lit("segments")).alias("plan"),
                 name.cast(pl.String).alias("group"), "members",
                 pl.col("rate").fill_nan(0.0).fill_null(0.0), pl.lit(float(benefit)).alias("benefit_cny")))
    if g.height == 0:
        raise ConfigError(f"{path}: no group with members to project")
    return g, {}


def groups_from_dir(directory: str | Path, benefit: float | None = None, fee: float | None = None,
                    plan_per_group: bool = False) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Groups table (plan, group, members, rate, benefit_cny) and default assumptions from an output directory.

    ``fee`` (the ``--fee`` flag) converts a plans table's expected shares back to benefits; default:
    the run's plans' fee, else :data:`engine.conventions.FEE`. ``plan_per_group``: a segmentation's
    groups become one plan each (vertical plans) instead of the groups of one plan ``segments``.
    """
    from engine.conventions import FEE
    from engine.projection.assumptions import groups_from_table

    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"--from: {d} is not a directory (give a run, plans or segment output directory)")
    if (d / "plans.parquet").is_file():
        g, defaults = _from_plans(d / "plans.parquet")
        defaults.update(_run_rules(d, defaults.get("periods_per_year")))
        g = _cost_benefit(g, fee if fee is not None else defaults.get("fee", FEE))
    elif (d / "segments.parquet").is_file():
        g, defaults = _from_segments(d / "segments.parquet", benefit, plan_per_group)
    elif (d / "groups.parquet").is_file() and (d / "model.json").is_file():
        g, defaults = _from_segments(d / "groups.parquet", benefit, plan_per_group)
    else:
        raise ConfigError(f"--from: {d} has no plans.parquet, segments.parquet or segmentation model "
                          "(groups.parquet + model.json)")
    return groups_from_table(g, benefit="benefit_cny", risk=None), defaults
