"""Plan comparison and share projection stages of ``fentan run`` (see :mod:`engine.pipeline.runner`).

Both work on one *risk table* at the end of the study: the members sharing on its last
day by age, sex and the rating factors, with the GLM's predicted annual rate and the
segmentation's risk group (:func:`risk_table`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.pipeline._economics import PLAN_SHARES, PROJECTION_SHARES, caps_facts, plan_entry, with_share_units
from engine.pipeline._stages import _sums, cap_scale, plansets
from engine.projection._caps import caps_cost_projected
from engine.pipeline._state import RunState
from engine.conventions import DAYS_PER_YEAR, REPORTING_LAG_DAYS, days_to_periods


def risk_table(ctx: RunState) -> pl.DataFrame:
    """The members sharing on the last day of the study by age, sex and factors, with GLM ``rate`` and ``group``.

    Notes
    -----
    ``members`` = members sharing on the study's last day (age = attained age that day),
    ``waiting_members`` = those of them still in the waiting period; ``rate`` = the GLM's
    predicted annual rate; ``group`` = the segmentation's risk group; ``exposure_years`` and
    ``claims`` = the last ``plans.recent_years`` of cells (0 for a class without recent exposure).
    """
    from engine.errors import EngineError

    cfg = ctx.cfg
    end: dt.date = ctx.end
    keys = list(ctx.by)
    counts = ctx.sharing_at_end  # counted in the history stage's pass over the members
    if counts is None:
        counts = sharing_at(ctx.members, end, cfg.study.waiting_days, keys, ctx.executor)
    first = end - dt.timedelta(days=round(DAYS_PER_YEAR * cfg.plans.recent_years))
    recent = ctx.cells.filter(pl.col("period") >= first)
    rec = _sums(recent if recent.height else ctx.cells, keys).select(*keys, "exposure_years", "claims")
    table = counts.join(rec, on=keys, how="left").with_columns(pl.col("exposure_years").fill_null(0.0),
                                                               pl.col("claims").fill_null(0))
    try:
        table = table.with_columns(pl.Series("rate", np.asarray(ctx.glm.predict(table), dtype=float)))
    except EngineError as exc:
        raise EngineError(f"risk table at {end}: the GLM cannot score the members ({exc})") from None
    seg = ctx.segmenter
    if seg is not None:
        grp = seg.assign(table, unknown="null")
        n_out = int(grp.null_count())
        if n_out:  # classes never seen in the study (e.g. a new factor level): reported, left out of the groups
            lost = float(table.filter(grp.is_null())["members"].sum())
            ctx.facts.setdefault("warnings", []).append(
                f"risk table: {lost:,.0f} members sharing at {end} are in classes the segmentation never saw; "
                "they are left out of the plan comparison and projection")
            table = table.filter(grp.is_not_null())
            grp = grp.drop_nulls()
        table = table.with_columns(pl.Series("group", grp).cast(pl.String))
    table = table.filter(pl.col("members") > 0)
    ctx.risk_table = table
    ctx.facts["members_sharing_at_end"] = int(table["members"].sum())
    return table


def sharing_at(parts: list[Any], end: dt.date, waiting_days: int, keys: list[str], executor: Any = None) -> pl.DataFrame:
    """Members sharing on ``end`` (``join <= end < exit``) by ``keys``, and those of them still waiting
    (``join > end - waiting_days``), counted per partition (one task each on ``executor``) and summed (integers,
    exact); float columns ``members``, ``waiting_members``, sorted by ``keys``
    (:func:`engine.shares._stream.end_counts`; the history stage counts them in its pass over the members)."""
    from engine.shares._stream import DEFAULT_BATCH, history_counts

    return cast(pl.DataFrame, history_counts(parts, None, {}, [], waiting_days=waiting_days, rel_cols=[],
                                             at_end=(end, waiting_days, keys), batch_size=DEFAULT_BATCH,
                                             executor=executor).at_end)


def stage_plans(ctx: RunState) -> None:
    """Each plan file vs the pooled plan: shares, leverage, volatility, cross-subsidy."""
    from engine.plans.compare import compare_plans

    table = risk_table(ctx)
    pooled, files = ctx.plansets or plansets(ctx)
    plans, xs, changes = [], [], []
    for label, pset in files:
        res = compare_plans(table, pset, pooled=pooled, growth_per_period=ctx.cfg.plans.growth_per_period)
        plans.append(res.plans.with_columns(pl.lit(label).alias("plan_file")))
        xs.append(res.cross_subsidy.with_columns(pl.lit(label).alias("plan_file")))
        changes.append(res.changes.with_columns(pl.lit(label).alias("plan_file")))
    first = ["plan_file"]
    ctx.write("plans", with_share_units(pl.concat(plans, how="diagonal_relaxed").select(first + [pl.exclude(first)]),
                                        PLAN_SHARES))
    ctx.facts["caps"] = caps_facts(ctx.cfg, (pooled, files), cap_scale(ctx.cfg))
    ctx.write("cross_subsidy", pl.concat(xs, how="diagonal_relaxed").select(first + [pl.exclude(first)]))
    ctx.write("changes", pl.concat(changes, how="diagonal_relaxed").select(first + [pl.exclude(first)]))
    ctx.write("cross_subsidy_classes", class_cross_subsidy(table, pooled or files[0][1]))
    segments = segments_in_pooled_plan(ctx.tables.get("segments"), ctx.tables["plans"], ctx.tables["cross_subsidy"])
    if segments is not None:
        ctx.write("segments", segments)


#: columns of the segments table that price the groups in the pooled plan (units in the names)
POOLED_COLUMNS = ("own_share_cny_per_year", "cross_subsidy_cny_per_year", "cross_subsidy_cny_per_period",
                  "cross_subsidy_pct_of_pooled_share")
#: the segmenter's in-study figures, which the run's segments table replaces by the pooled plan's
IN_STUDY_COLUMNS = ("own_share", "cross_subsidy", "cross_subsidy_per_period", "cross_subsidy_pct")


def segments_in_pooled_plan(segments: pl.DataFrame | None, plans: pl.DataFrame,
                            flows: pl.DataFrame) -> pl.DataFrame | None:
    """The segments table with each group's own share and cross-subsidy in the pooled plan.

    Parameters
    ----------
    segments : the segmentation's groups table (``group``, ...), or None.
    plans, flows : the plan comparison's ``plans`` and ``cross_subsidy`` tables.

    Returns
    -------
    The segments table with :data:`POOLED_COLUMNS` taken from the group rows of the pooled
    plan whose cross-subsidy the report draws (the first of ``flows``); None when there is
    nothing to replace.

    Notes
    -----
    One number for one thing: group k's cross-subsidy is the pooled plan's, x_k = s - s_k
    (:func:`engine.plans.sharing.cross_subsidy`, CNY per member per sharing period, on the
    members sharing at the end of the study), so ``cross_subsidy`` = x_k x periods_per_year
    (a year, the row sum of the heat map), ``cross_subsidy_per_period`` = x_k,
    ``cross_subsidy_pct`` = 100 x_k / s and ``own_share`` = s_k x periods_per_year, each
    under a name that carries its unit (:data:`POOLED_COLUMNS`; the heat map's
    ``cross_subsidy_cny_per_year`` is the same number). The segmenter's in-study figures
    (:data:`IN_STUDY_COLUMNS`, over the study's exposure) stay in the fitted model only.
    """
    if segments is None or "group" not in segments.columns or flows.height == 0:
        return None
    pf, pn = flows["plan_file"][0], flows["plan"][0]
    rows = plans.filter((pl.col("planset") == "pooled") & (pl.col("level") == "group")
                        & (pl.col("plan_file") == pf) & (pl.col("plan") == pn))
    if rows.height == 0:
        return None
    ppy = pl.col("periods_per_year")
    priced = rows.select(
        pl.col("group").cast(pl.String).alias("_g"),
        (pl.col("own_share_cny") * ppy).alias("own_share_cny_per_year"),
        (pl.col("cross_subsidy_cny") * ppy).alias("cross_subsidy_cny_per_year"),
        pl.col("cross_subsidy_cny").alias("cross_subsidy_cny_per_period"),
        (100.0 * pl.col("cross_subsidy_cny") / pl.col("payment_cny")).alias("cross_subsidy_pct_of_pooled_share"),
    )
    cols = [c for c in segments.columns if c not in IN_STUDY_COLUMNS]
    out = (segments.drop([c for c in (*POOLED_COLUMNS, *IN_STUDY_COLUMNS) if c in segments.columns])
           .with_columns(pl.col("group").cast(pl.String).alias("_g"))
           .join(priced, on="_g", how="left", maintain_order="left").drop("_g"))
    return out.select([c for c in cols if c in out.columns] + [c for c in POOLED_COLUMNS if c not in cols])


#: age bands of the class cross-subsidy grid (lower edges)
AGE_BANDS = (0, 18, 30, 40, 50, 60)


def class_cross_subsidy(table: pl.DataFrame, pooled: Any) -> pl.DataFrame:
    """Cross-subsidy of every risk class in the first pooled plan, by age band and the first factor.

    Notes
    -----
    For class i with members N_i, GLM rate lambda_i, benefit B_i and fee phi_i, the own
    annual cost is c_i = (1 + phi_i) lambda_i B_i; under equal sharing every member pays
    P = sum_i N_i c_i / sum_i N_i a year; the cross-subsidy of i is P - c_i (positive: the
    class overpays). Classes are summed member-weighted into (age band, factor level) cells.
    """
    from engine.cells._exposure import band_labels
    from engine.plans.planset import PlanSet, assign_plans
    from engine.plans.sharing import cross_subsidy, pooled_share

    plan = next(iter(pooled))
    rows = assign_plans(table, PlanSet((plan,), name="pooled", source=pooled.source), where="risk table (pooled)")
    rows = rows.filter(pl.col("plan").is_not_null())
    keys = [c for c in table.columns if c not in ("age", "sex", "members", "waiting_members", "exposure_years",
                                                    "claims", "rate", "group")]
    col = keys[0] if keys else "sex"
    cost = (1 + pl.col("fee")) * pl.col("rate") * pl.col("benefit_cny")
    rows = rows.with_columns(cost.alias("own_cost_cny_per_year"))
    pay = float(pooled_share(rows["members"], rows["own_cost_cny_per_year"]))
    edges = list(AGE_BANDS)
    labels = band_labels(edges)
    band = pl.lit(labels[-1])
    for lo, lab in reversed(list(zip(edges[1:], labels[:-1]))):
        band = pl.when(pl.col("age") < lo).then(pl.lit(lab)).otherwise(band)
    band = band.alias("age_band")
    out = (rows.with_columns(band, pl.col(col).cast(pl.String).alias("factor_level"))
           .group_by("age_band", "factor_level")
           .agg(pl.col("members").sum(), ((pl.col("members") * pl.col("own_cost_cny_per_year")).sum()
                                          / pl.col("members").sum()).alias("own_cost_cny_per_year"))
           .with_columns(pl.lit(pay).alias("pooled_payment_cny_per_year"),
                         cross_subsidy(pl.lit(pay), pl.col("own_cost_cny_per_year")).alias("cross_subsidy_cny_per_year"),
                         pl.lit(col).alias("factor"), pl.lit(plan.name).alias("plan"))
           .sort("age_band", "factor_level"))
    return out.select("plan", "factor", "age_band", "factor_level", "members", "own_cost_cny_per_year",
                      "pooled_payment_cny_per_year", "cross_subsidy_cny_per_year")


def _groups_for(table: pl.DataFrame, pset: Any, label: str, pooled_name: str | None = None,
                lag_days: int = REPORTING_LAG_DAYS) -> list[tuple[str, dict, pl.DataFrame]]:
    """Per plan: (label, projection settings, groups table); ``lag_days`` = the reporting lag in days."""
    from engine.plans.planset import assign_plans

    rows = assign_plans(table, pset, where=f"risk table ({label})").filter(pl.col("plan").is_not_null())
    if "group" not in rows.columns:
        rows = rows.with_columns(pl.lit("all").alias("group"))
    if pooled_name is not None:
        rows = rows.with_columns(pl.lit(pooled_name).alias("plan"))
    out = []
    by_name = {p.name: p for p in pset}
    for name in rows["plan"].unique(maintain_order=True).to_list():
        r = rows.filter(pl.col("plan") == name)
        g = (r.group_by("group", "benefit_cny")
             .agg(pl.col("members").sum(), pl.col("waiting_members").sum(),
                  ((pl.col("members") * pl.col("rate")).sum() / pl.col("members").sum()).alias("rate"))
             .filter(pl.col("members") > 0).sort("group", "benefit_cny"))
        if g.height == 0:
            continue
        g = g.with_columns((pl.lit("G") + pl.col("group").cast(pl.String) + pl.lit(" ")
                            + (pl.col("benefit_cny") / 1000).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("k")).alias("group"))
        plan = by_name.get(name) or next(iter(pset))
        ppy = plan.periods_per_year
        # waiting period and reporting lag in days, converted to sharing periods once (engine.conventions)
        meta = {"periods_per_year": ppy, "fee": plan.fee, "waiting_periods": days_to_periods(plan.waiting_days, ppy),
                "reporting_lag_periods": days_to_periods(lag_days, ppy),
                "per_claimant_cap": plan.per_claimant_cap, "annual_cap": plan.annual_cap}
        out.append((f"{label}/{name}", meta, g.with_columns(pl.col("rate").fill_nan(0.0))))
    return out


def _project_keywords() -> frozenset[str]:
    """Keyword arguments of :func:`engine.projection.project` that ``[projection] extra`` may set."""
    import inspect

    from engine.projection._project import project

    params = inspect.signature(project).parameters
    return frozenset(k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def stage_projection(ctx: RunState, progress: Any = None) -> None:
    """Deterministic + Monte Carlo share paths for the pooled plan and every plan of every file."""
    from engine.projection._project import project
    from engine.projection.assumptions import groups_from_table

    cfg = ctx.cfg
    pc = cfg.projection
    table = ctx.risk_table
    pooled, files = ctx.plansets
    jobs: list[tuple[str, dict, pl.DataFrame]] = []
    lag = cfg.history.reporting_lag_days
    if pooled is not None:
        jobs += _groups_for(table, pooled, "pooled", lag_days=lag)
    else:
        jobs += _groups_for(table, files[0][1], "pooled", pooled_name="pooled", lag_days=lag)[:1]
    for label, pset in files:
        jobs += _groups_for(table, pset, label, lag_days=lag)
    extra = dict(pc.extra)
    bad = sorted(set(extra) & {"horizon", "n_scenarios", "seed", "chunk_size"})
    if bad:
        raise ConfigError(f"{cfg.source}: projection.extra.{bad[0]}: set it in [projection] directly")
    allowed = _project_keywords()
    unknown = sorted(set(extra) - allowed)
    if unknown:
        raise ConfigError(f"{cfg.source}: projection.extra.{unknown[0]}: not an assumption of the projection "
                          f"(one of {', '.join(sorted(allowed))})")
    periods, plans, results = [], [], {}
    for i, (label, meta, g) in enumerate(jobs):
        if progress is not None:
            progress(f"projection {label} ({i + 1}/{len(jobs)})")
        groups = groups_from_table(g, group="group", members="members", rate="rate", benefit="benefit_cny", risk=None,
                                   waiting_members="waiting_members")
        res = project(groups, horizon=pc.horizon, n_scenarios=pc.scenarios, seed=pc.seed, chunk_size=pc.chunk_size,
                      **{**meta, **extra})
        periods.append(res.periods.with_columns(pl.lit(label).alias("plan")))
        plans.append(res.plans.with_columns(pl.lit(label).alias("plan"),
                                            pl.lit(float(meta["periods_per_year"])).alias("periods_per_year")))
        results[label] = res
    ctx.write("projection", pl.concat(periods, how="diagonal_relaxed"))
    ctx.write("projection_plans", with_share_units(pl.concat(plans, how="diagonal_relaxed"), PROJECTION_SHARES))
    ctx.write("caps_cost_projection", caps_cost_projected(ctx.tables["projection"]))
    ctx.projections = results


def summary(ctx: RunState) -> dict[str, Any]:
    """Per plan: sustainable share, share at today's mix and after caps, leverage, share CV, death spiral,
    probability that the annual cap binds.

    Notes
    -----
    ``sustainable_share_cny`` is the projection's (:func:`engine.projection.dynamics.stationary_shares`), the one
    shown in the headline and the projection table; ``share_current_mix_cny`` and ``share_after_caps_cny``
    come from the plan comparison (:func:`engine.plans.compare.compare_plans`), as does ``leverage``.
    Each share is also given per month and per year (``<key>_per_month`` = x ppy / 12,
    ``<key>_per_year`` = x ppy); ``leverage`` = ``leverage_before_caps``; ``leverage_after_caps`` uses
    the share after the caps. Which cap binds at today's mix: ``per_claimant_cap_binding``,
    ``annual_cap_binding`` (ppy x share after the per-claimant cap > annual cap), ``cap_binding``
    (either); ``cap_binds_probability_max`` / ``_mean`` = max / mean over the projection years of
    P(the annual cap binds in the year), the same event as ``annual_cap_binding``, simulated.
    ``caps_cost_by_year``: the platform's subsidy per projection year
    (:func:`engine.projection._caps.caps_cost_projected`).
    """
    plans = ctx.tables["plans"].filter(pl.col("level") == "plan")
    proj = ctx.tables["projection_plans"]
    out: dict[str, Any] = {}
    seen = set()
    rules = {f"{p['plan_file']}/{p['plan']}": p for p in (ctx.facts.get("caps") or {}).get("plans", [])}
    for r in plans.iter_rows(named=True):
        label = f"pooled/{r['plan']}" if r["planset"] == "pooled" else f"{r['plan_file']}/{r['plan']}"
        if label in seen:
            continue
        seen.add(label)
        entry = {"planset": r["planset"], "plan_file": r["plan_file"] if r["planset"] != "pooled" else None,
                 "plan": r["plan"], "members": _f(r.get("members")),
                 "expected_claims_per_period": _f(r.get("expected_claims_per_period")),
                 # the sustainable share is the projection's (stationary pool, mix at its equilibrium:
                 # shared/domain.md); the plan comparison gives the share at today's mix and after caps
                 "sustainable_share_cny": None,
                 "share_current_mix_cny": _f(r.get("share_current_mix_cny")), "leverage": _f(r.get("leverage")),
                 "share_cv": _f(r.get("share_cv")), "share_after_caps_cny": _f(r.get("share_after_caps_cny")),
                 "cap_binding": bool(r["cap_binding"]) if r.get("cap_binding") is not None else None}
        p = proj.filter(pl.col("plan") == label)
        rule = rules.get(label, {})
        entry.update(per_claimant_cap_cny=rule.get("per_claimant_cap_cny"), annual_cap_cny=rule.get("annual_cap_cny"))
        caps = ctx.tables.get("caps_cost_projection")
        entry.update(plan_entry(r, p.row(0, named=True) if p.height else None,
                                caps.filter(pl.col("plan") == label) if caps is not None else None, _f))
        if p.height:
            q = p.row(0, named=True)
            # P(annual cap binds) per projection year (engine.projection._caps.caps_cost_projected)
            yearly = caps.filter(pl.col("plan") == label) if caps is not None else None
            cap = (yearly["annual_cap_binds_prob"] if yearly is not None and "annual_cap_binds_prob" in yearly.columns
                   else pl.Series([], dtype=pl.Float64))
            entry.update(sustainable_share_cny=_f(q["sustainable_share_cny"]),
                         sustainable_leverage_max=_f(q["sustainable_leverage_max"]),
                         share_end_mean_cny=_f(q["share_end_mean_cny"]), share_end_p95_cny=_f(q["share_end_p95_cny"]),
                         death_spiral=bool(q["death_spiral"]), death_spiral_period=q["death_spiral_period"],
                         cap_binds_probability_max=_f(cap.max()) if cap.len() else None,
                         cap_binds_probability_mean=_f(cap.mean()) if cap.len() else None)
        out[label] = entry
    return out


def _f(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if not np.isfinite(v) else v
