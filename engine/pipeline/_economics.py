"""Units and the caps' cost in a run's outputs: shares per sharing period, per month and per year side by side,
the platform's subsidy per plan and year, and the caps as applied (scaled or not).

The formulas live elsewhere, once: :func:`engine.conventions.per_month` / :func:`engine.conventions.per_year`,
:func:`engine.projection._caps.caps_cost_projected` / :func:`engine.projection._caps.caps_cost_realised`,
:func:`engine.conventions.per_claimant_cap_scale`. This module only places them in the tables and summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from engine.conventions import PER_CLAIMANT_CAP_DESIGN_MEMBERS, per_month, per_year

#: per-period share columns of ``plans.parquet`` given per month and per year too
PLAN_SHARES = ("share_current_mix_cny", "share_after_per_claimant_cap_cny", "share_after_caps_cny", "payment_cny")
#: per-period share columns of ``projection_plans.parquet`` given per month and per year too
PROJECTION_SHARES = ("sustainable_share_cny", "share_end_mean_cny", "share_end_p95_cny")


def with_share_units(df: pl.DataFrame, columns: Iterable[str], ppy: str = "periods_per_year") -> pl.DataFrame:
    """Add ``<col>_per_month`` and ``<col>_per_year`` beside each per-period share column ``<col>``.

    Notes
    -----
    x_month = x ppy / 12 and x_year = x ppy with ppy the plan's sharing periods a year
    (:func:`engine.conventions.per_month`, :func:`engine.conventions.per_year`).
    """
    cols = [c for c in columns if c in df.columns]
    return df.with_columns(*(per_month(pl.col(c), pl.col(ppy)).alias(f"{c}_per_month") for c in cols),
                           *(per_year(pl.col(c), pl.col(ppy)).alias(f"{c}_per_year") for c in cols))


def caps_facts(cfg: Any, plansets: Any, scale: float) -> dict[str, Any]:
    """The caps as applied in a run, for ``summary.json`` (``facts.caps``).

    ``per_claimant_cap_scale`` = PER_CLAIMANT_CAP_DESIGN_MEMBERS / ``[plans] scale_caps_to_members``
    (1 when not scaled); every per-claimant cap below is already multiplied by it.
    """
    hc = cfg.history
    pooled, files = plansets
    plans = []
    for label, pset in ([("pooled", pooled)] if pooled is not None else []) + list(files):
        for p in pset:
            plans.append({"plan_file": label, "plan": p.name, "per_claimant_cap_cny": p.per_claimant_cap,
                          "annual_cap_cny": p.annual_cap, "periods_per_year": p.periods_per_year})
    return {
        "per_claimant_cap_design_members": PER_CLAIMANT_CAP_DESIGN_MEMBERS,
        "scale_caps_to_members": cfg.plans.scale_caps_to_members,
        "per_claimant_cap_scale": scale,
        "history_per_claimant_cap_cny": (hc.per_claimant_cap * scale) if hc.per_claimant_cap else None,
        "history_annual_cap_cny": hc.annual_cap or None,
        "plans": plans,
    }


def plan_entry(r: dict[str, Any], q: dict[str, Any] | None, caps: pl.DataFrame | None,
               num: Any) -> dict[str, Any]:
    """Summary keys of one plan for units and caps: shares per period, month and year; cap flags; leverage before
    and after the caps; the platform's subsidy per projection year.

    ``r``: the plan's row of ``plans.parquet``; ``q``: its row of ``projection_plans.parquet`` (or None);
    ``caps``: its rows of ``caps_cost_projection.parquet``; ``num``: float or None for non-finite values.
    """
    ppy = float(r["periods_per_year"])
    out: dict[str, Any] = {"periods_per_year": ppy}
    for c in ("share_current_mix_cny", "share_after_caps_cny"):
        out[f"{c}_per_month"], out[f"{c}_per_year"] = num(r.get(f"{c}_per_month")), num(r.get(f"{c}_per_year"))
    out.update(leverage_before_caps=num(r.get("leverage")), leverage_after_caps=num(r.get("leverage_after_caps")),
               per_claimant_cap_binding=_flag(r.get("per_claimant_cap_binding")),
               annual_cap_binding=_flag(r.get("annual_cap_binding")))
    if q is not None:
        sus = num(q.get("sustainable_share_cny"))
        out.update(sustainable_share_cny_per_month=None if sus is None else per_month(sus, ppy),
                   sustainable_share_cny_per_year=None if sus is None else per_year(sus, ppy))
    if caps is not None and caps.height:
        out["caps_cost_by_year"] = [{k: (num(v) if isinstance(v, float) else v) for k, v in row.items() if k != "plan"}
                                    for row in caps.iter_rows(named=True)]
        first = caps.row(0, named=True)
        out.update(platform_paid_cny_first_year=num(first["platform_paid_cny"]),
                   platform_paid_pct_of_cost_first_year=num(first["platform_paid_pct_of_cost"]))
    return out


def _flag(v: Any) -> bool | None:
    return None if v is None else bool(v)
