"""Assemble the run report (``report.html``) from a finished run's context.

Sections (ids): headline, account, incidence, model, segmentation, history,
projection, leverage, cross-subsidy, plans. Figures are chart specifications
(:mod:`engine.report.figures`) drawn interactively or as PNG (``[output] static``); the text is in
``[output] language`` (:mod:`engine.report.i18n`). The file is self-contained.
"""

from __future__ import annotations

from typing import Any

import polars as pl

import engine.report.figures as rf
from engine.report._assumptions import add_assumptions
from engine.report._economics import ECONOMICS_SECTIONS, add_economics
from engine.report._pricing import add_pricing
from engine.report._share_views import add_share_views
from engine.report.document import Report
from engine.report.i18n import engine_message, t, t_user, use_language

#: section ids in order (tests check them)
SECTIONS = ("headline", *ECONOMICS_SECTIONS, "account", "incidence", "model", "segmentation", "history", "projection",
            "leverage", "cross-subsidy", "plans", "assumptions", "groups", "relativities", "actual-expected", "drivers",
            "fan-charts")


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    return t("n/a") if v is None or v != v else fmt.format(v)


#: a share per sharing period -> its columns per period, per month and per year (summary.json and the Parquet
#: outputs, converted by engine.conventions.per_month / per_year where they are written)
PER_PERIOD_MONTH_YEAR = {c: (c, f"{c}_per_month", f"{c}_per_year")
                         for c in ("sustainable_share_cny", "share_after_caps_cny", "share_current_mix_cny",
                                   "share_end_mean_cny", "share_end_p95_cny")}


def _side_by_side(v: dict[str, Any], key: str, label: str) -> dict[str, Any]:
    """``{"<label>, CNY per period": ..., "... per month": ..., "... per year": ...}`` from one plan's summary."""
    return {f"{label}, CNY per {unit}": v.get(k)
            for unit, k in zip(("period", "month", "year"), PER_PERIOD_MONTH_YEAR[key], strict=True)}


def _with_units(columns: list[str], df: pl.DataFrame) -> list[str]:
    """``columns`` with each per-period share followed by its per-month and per-year columns (those in ``df``)."""
    return [x for c in columns for x in PER_PERIOD_MONTH_YEAR.get(c, (c,)) if x in df.columns]


def _yes(flag: Any) -> str:
    return t("YES") if flag else t("no")


def build_report(ctx: Any, account: dict[str, Any], summary: dict[str, Any]) -> str:
    """The complete HTML document of a run, in ``[output] language``, static or interactive per ``[output] static``."""
    cfg = ctx.cfg
    with use_language(cfg.output.language):
        return _build(ctx, account, summary)


def _build(ctx: Any, account: dict[str, Any], summary: dict[str, Any]) -> str:
    cfg, f, tb = ctx.cfg, ctx.facts, ctx.tables
    # no path or wall time here: the report is byte-identical for the same data and configuration
    # (the configuration's location and the run's times are in config.toml and run.json)
    title = t_user(cfg.output.title)  # the default title is translated; a user's own title stays as written
    rep = Report(title, t("study {start} to {end}; resolved configuration in config.toml beside this report",
                          start=f.get("study_start"), end=f.get("study_end")),
                 mode="static" if cfg.output.static else "interactive")
    _headline(rep, f, account, summary)
    add_economics(rep, ctx, summary)
    _account(rep, account)
    _incidence(rep, tb)
    _model(rep, ctx, f, tb)
    _segmentation(rep, f, tb)
    _history(rep, cfg, tb)
    _projection(rep, cfg, tb, summary)
    _leverage(rep, summary)
    _cross_subsidy(rep, tb)
    _plans(rep, tb)
    add_assumptions(rep, ctx, account)
    add_pricing(rep, ctx)
    add_share_views(rep, ctx, summary)
    return rep.render()


def _headline(rep: Report, f: dict[str, Any], account: dict[str, Any], summary: dict[str, Any]) -> None:
    """Headline answers: data used, model quality, risk groups and the pooled plan's share, leverage and spiral."""
    s = rep.section("headline", t("Headline answers"))
    pooled = next((v for k, v in summary.items() if v["planset"] == "pooled"), None)
    items = [
        (t("members used / read"), f"{account['members']['used']:,} / {account['members']['read']:,}", False),
        (t("eligible claims used / read"), f"{account['claims']['used']:,} / {account['claims']['read']:,}", False),
        (t("actual / expected vs CI2020"), _num(f.get("ae_vs_basis"), "{:.2f}"), False),
        (t("Gini of the GLM (held-out)"), _num(f.get("gini"), "{:.3f}"), False),
        (t("risk groups (recommended)"), f"{f.get('groups')} ({f.get('recommended_groups')})", False),
    ]
    if pooled:
        items += [
            (t("pooled sustainable share, CNY per member per period / month / year"),
             " / ".join(_num(pooled.get(k)) for k in PER_PERIOD_MONTH_YEAR["sustainable_share_cny"]), False),
            (t("pooled leverage"), _num(pooled.get("leverage"), "{:,.0f}"), False),
            (t("pooled death spiral"), _yes(pooled.get("death_spiral")), bool(pooled.get("death_spiral"))),
        ]
    if f.get("share_late_cny") is not None:
        items.append((t("share per member over {month} (3 months, before caps) -> stationary "
                        "(no dilution, no lag, select worn off)", month=f["share_late_month"]),
                      f"{f['share_late_cny']:,.2f} -> {f['share_late_stationary_cny']:,.2f}", False))
    Report.kpis(s, items)
    rows = [{"plan": k, "members": round(v.get("members") or 0),
             **_side_by_side(v, "sustainable_share_cny", "sustainable share"),
             **_side_by_side(v, "share_after_caps_cny", "paid after the caps"),
             "leverage": v.get("leverage"), "share CV": v.get("share_cv"), "death spiral": _yes(v.get("death_spiral")),
             "P(annual cap binds), max": v.get("cap_binds_probability_max")} for k, v in summary.items()]
    Report.table(s, pl.DataFrame(rows))
    Report.text(s, t("Sustainable share: the share of a stationary pool (growth stopped, every member past the waiting "
                     "period, select effects worn off, the mix at its equilibrium; engine.projection._project); paid after "
                     "the caps: the share of the members sharing at the end of the study, all past the waiting period, "
                     "after the per-claimant and annual caps (engine.plans.compare); leverage = benefit / annual share at "
                     "today's mix; share CV: volatility of one period's share; P(annual cap binds): largest probability "
                     "over the projection periods. Per month = per period x periods a year / 12; per year = per period x "
                     "periods a year."))
    for w in f.get("warnings", []):
        Report.text(s, t("warning: {w}", w=engine_message(w)))


def engine_notes(df: pl.DataFrame, col: str = "note") -> pl.DataFrame:
    """``df`` with each non-empty ``col`` value (a message of the engine, e.g. why two groups' rates cannot be told
    apart) shown through :func:`engine.report.i18n.engine_message` (a lead-in in Chinese, unchanged in English)."""
    if col not in df.columns:
        return df
    shown = [v if not v else engine_message(v) for v in df.get_column(col).cast(pl.String).to_list()]
    return df.with_columns(pl.Series(col, shown, dtype=pl.String))


def _account(rep: Report, account: dict[str, Any]) -> None:
    """Row account: rows read, used and set aside (with the reason) per table."""
    s = rep.section("account", t("Row account"))
    acc_rows = []
    for what, a in account.items():
        if not (isinstance(a, dict) and "read" in a):
            continue
        acc_rows.append({"table": t(what), "status": t("read"), "rows": a["read"]})
        acc_rows.append({"table": t(what), "status": t("used"), "rows": a["used"]})
        for reason, n in a["set_aside"].items():
            acc_rows.append({"table": t(what), "status": t("set aside: {reason}", reason=reason), "rows": n})
    Report.table(s, pl.DataFrame(acc_rows), max_rows=200)
    Report.text(s, t("read = used + set aside holds for members and claims; claims set aside include those found "
                     "ineligible at exposure time (waiting period, before joining, after exit, after a first claim, "
                     "outside the study window). Every set-aside row is in rejected/ with its reason."))
    w = account.get("window") or {}
    if w:
        Report.text(s, t("As-of date {as_of} ({as_of_source}); study window {start} ({start_source}) to {end} "
                         "({end_source}). A join, exit, event or approval after the as-of date is set aside.",
                         as_of=w.get("as_of"), as_of_source=t_user(str(w.get("as_of_source"))),
                         start=w.get("study_start"), start_source=t_user(str(w.get("study_start_source"))),
                         end=w.get("study_end"), end_source=t_user(str(w.get("study_end_source")))))


def _incidence(rep: Report, tb: dict[str, pl.DataFrame]) -> None:
    """Crude incidence by age and sex against the CI2020 basis."""
    s = rep.section("incidence", t("Incidence by age against CI2020"))
    Report.charts(s, rf.incidence_by_age(tb["incidence"]))
    Report.text(s, t("Crude incidence = claims / exposure-years (central exposure after the waiting period), with "
                     "exact Poisson (Garwood) intervals; the line is the CI2020 basis."))


def _model(rep: Report, ctx: Any, f: dict[str, Any], tb: dict[str, pl.DataFrame]) -> None:
    """Risk model: Lorenz curve and calibration, held-out deviance, GLM coefficients, select factors, credibility."""
    s = rep.section("model", t("Risk model: GLM, Lorenz curve, calibration"))
    factors = tuple(ctx.cfg.study.factors)  # the user's names: table headers shown as written
    y, mu, e = ctx.lorenz
    Report.charts(s, rf.lorenz_and_calibration(y, mu, e, tb["calibration"], f.get("gini") or float("nan")))
    Report.kpis(s, [(t("held-out mean Poisson deviance (model / null)"),
                     f"{_num(f.get('heldout_deviance'), '{:.4f}')} / {_num(f.get('heldout_deviance_null'), '{:.4f}')}", False),
                    (t("deviance explained (held out)"), _num(f.get("heldout_deviance_explained"), "{:.1%}"), False)])
    Report.table(s, tb["glm_coefficients"])
    Report.text(s, t("Select factors by duration band (incidence relative to the ultimate band):"))
    Report.table(s, tb["select_factors"])
    Report.text(s, t("Limited-fluctuation credibility by rating factor:"))
    Report.table(s, tb["credibility"], keep=factors)


def _segmentation(rep: Report, f: dict[str, Any], tb: dict[str, pl.DataFrame]) -> None:
    """Risk groups: the granularity frontier and the segments table."""
    s = rep.section("segmentation", t("Risk groups and granularity"))
    charts = rf.frontier(tb["frontier"])
    Report.charts(s, charts)
    if not charts:
        Report.text(s, t("only K = {k} meets the claims floor of a group: no frontier to draw.",
                         k=", ".join(str(k) for k in tb["frontier"]["k"].to_list())))
    if f.get("segmentation_choice"):
        Report.text(s, t("Number of groups: {choice}.", choice=engine_message(f["segmentation_choice"])))
    Report.table(s, engine_notes(tb["segments"]).select([c for c in ("group", "name", "rule", "members", "exposure_years", "claims", "rate",
                                                       "rate_lower", "rate_upper", "relativity_to_portfolio",
                                                       "expected_claims_per_period", "share_cv",
                                                       "cross_subsidy_pct_of_pooled_share", "note")
                                           if c in tb["segments"].columns]))


def _history(rep: Report, cfg: Any, tb: dict[str, pl.DataFrame]) -> None:
    """Realised shares and the attribution of their change."""
    s = rep.section("history", t("Realised shares and their decomposition"))
    plan_col = cfg.history.plan_col if cfg.history.plan_col in tb["history"].columns else None
    Report.charts(s, rf.realised_shares(tb["history"], plan_col))
    dec = tb["decomposition"]
    if "contribution_cny" in dec.columns:
        Report.text(s, t("Exact {method} attribution of the change in the share between two 3-month "
                         "windows and to the sustainable share (no residual): see the section on the drivers.",
                         method=cfg.history.decompose))
    else:
        note = str(dec["note"][0])  # the engine's reason, as its messages: English
        Report.text(s, t("decomposition not computed: {reason}", reason=engine_message(note.split(": ", 1)[-1])))


def _projection(rep: Report, cfg: Any, tb: dict[str, pl.DataFrame], summary: dict[str, Any]) -> None:
    """Projected share fan charts and the projection table per plan."""
    s = rep.section("projection", t("Projected shares per plan"))
    pc = cfg.projection
    Report.text(s, t("{scenarios} Monte Carlo scenarios over {horizon} sharing periods (seed {seed}); the fan charts "
                     "of each plan are in the section on the fan charts.",
                     scenarios=f"{pc.scenarios:,}", horizon=pc.horizon, seed=pc.seed))
    pp = tb["projection_plans"]
    Report.table(s, pp.select(_with_units(["plan", "members_start", "members_end", "share_end_mean_cny",
                                           "share_end_p95_cny", "sustainable_share_cny", "death_spiral",
                                           "death_spiral_period"], pp)))
    Report.text(s, t("Shares in CNY per member: per sharing period, per month (x periods a year / 12) and per year "
                     "(x periods a year)."))


def _leverage(rep: Report, summary: dict[str, Any]) -> None:
    """Leverage per plan."""
    s = rep.section("leverage", t("Leverage"))
    Report.charts(s, rf.leverage(summary))


def _cross_subsidy(rep: Report, tb: dict[str, pl.DataFrame]) -> None:
    """Cross-subsidy in the pooled plan: by class, and between the risk groups."""
    s = rep.section("cross-subsidy", t("Cross-subsidy in the pooled plan"))
    chart = rf.class_cross_subsidy(tb["cross_subsidy_classes"])
    if chart is not None:
        Report.chart(s, chart)
    Report.text(s, t("Each class's own annual cost (1 + fee) x GLM rate x benefit against the equal pooled payment: "
                     "positive (red) classes overpay, negative (blue) classes are subsidised."))
    chart = rf.cross_subsidy(tb["cross_subsidy"])
    if chart is not None:
        Report.chart(s, chart)
        Report.text(s, t("Between the segmentation's risk groups: positive, the payer group overpays for the "
                         "beneficiary group (CNY per payer member-year)."))
    else:
        Report.text(s, t("The segmentation kept a single risk group: no flow between groups to show."))


def _plans(rep: Report, tb: dict[str, pl.DataFrame]) -> None:
    """Plan comparison: plans and the payment changes per group."""
    s = rep.section("plans", t("Plan comparison"))
    p = tb["plans"].filter(pl.col("level") == "plan")
    Report.table(s, p.select(_with_units(["plan_file", "planset", "plan", "members", "expected_claims_per_period",
                                          "share_current_mix_cny", "share_after_caps_cny", "leverage", "share_cv",
                                          "cap_binding"], p)))
    ch = tb["changes"]
    Report.table(s, ch.select([c for c in ("plan_file", "group", "annual_payment_before_cny", "annual_payment_after_cny",
                                           "leverage_before", "leverage_after") if c in ch.columns]))
