"""Assemble the run report (``report.html``) from a finished run's context.

Sections (ids): headline, account, incidence, model, segmentation, history,
projection, leverage, cross-subsidy, plans. Each figure is a PNG data URI
(:mod:`engine.report.document`), so the file is self-contained.
"""

from __future__ import annotations

from typing import Any

import polars as pl

import engine.report.figures as report_figures
from engine._optional import available
from engine.report._assumptions import add_assumptions
from engine.report._economics import ECONOMICS_SECTIONS, add_economics
from engine.report._pricing import add_pricing
from engine.report._share_views import add_share_views
from engine.report.document import Report

#: section ids in order (tests check them)
SECTIONS = ("headline", *ECONOMICS_SECTIONS, "account", "incidence", "model", "segmentation", "history", "projection",
            "leverage", "cross-subsidy", "plans", "assumptions", "groups", "relativities", "actual-expected", "drivers",
            "fan-charts")


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    return "n/a" if v is None or v != v else fmt.format(v)


class _NoFigures:
    """Stands in for the figure module when matplotlib is absent: every figure is ``None``."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def build_report(ctx: Any, account: dict[str, Any], summary: dict[str, Any]) -> str:
    """The complete HTML document of a run."""
    cfg, f, t = ctx.cfg, ctx.facts, ctx.tables
    rf: Any = report_figures if available("matplotlib") else _NoFigures()
    # no path or wall time here: the report is byte-identical for the same data and configuration
    # (the configuration's location and the run's times are in config.toml and run.json)
    rep = Report(cfg.output.title, f"study {f.get('study_start')} to {f.get('study_end')}; "
                                   "resolved configuration in config.toml beside this report")
    _headline(rep, f, account, summary)
    add_economics(rep, ctx, summary)
    _account(rep, account)
    _incidence(rep, t, rf)
    _model(rep, ctx, f, t, rf)
    _segmentation(rep, f, t, rf)
    _history(rep, cfg, t, rf)
    _projection(rep, cfg, t, summary, rf)
    _leverage(rep, summary, rf)
    _cross_subsidy(rep, t, rf)
    _plans(rep, t)
    add_assumptions(rep, ctx, account)
    add_pricing(rep, ctx)
    add_share_views(rep, ctx, summary)
    return rep.render()


def _headline(rep: Report, f: dict[str, Any], account: dict[str, Any], summary: dict[str, Any]) -> None:
    """Headline answers: data used, model quality, risk groups and the pooled plan's share, leverage and spiral."""
    s = rep.section("headline", "Headline answers")
    pooled = next((v for k, v in summary.items() if v["planset"] == "pooled"), None)
    items = [
        ("members used / read", f"{account['members']['used']:,} / {account['members']['read']:,}", False),
        ("eligible claims used / read", f"{account['claims']['used']:,} / {account['claims']['read']:,}", False),
        ("actual / expected vs CI2020", _num(f.get("ae_vs_basis"), "{:.2f}"), False),
        ("Gini of the GLM (held-out)", _num(f.get("gini"), "{:.3f}"), False),
        ("risk groups (recommended)", f"{f.get('groups')} ({f.get('recommended_groups')})", False),
    ]
    if pooled:
        items += [
            ("pooled sustainable share, CNY / period", _num(pooled.get("sustainable_share_cny")), False),
            ("pooled leverage", _num(pooled.get("leverage"), "{:,.0f}"), False),
            ("pooled death spiral", "YES" if pooled.get("death_spiral") else "no", bool(pooled.get("death_spiral"))),
        ]
    if f.get("share_late_cny") is not None:
        items.append((f"share per member over {f['share_late_month']} (3 months, before caps) -> stationary "
                      "(no dilution, no lag, select worn off)",
                      f"{f['share_late_cny']:,.2f} -> {f['share_late_stationary_cny']:,.2f}", False))
    Report.kpis(s, items)
    rows = [{"plan": k, "members": round(v.get("members") or 0), "sustainable share (CNY/period)": v.get("sustainable_share_cny"),
             "today's mix, after caps": v.get("share_after_caps_cny"), "leverage": v.get("leverage"), "share CV": v.get("share_cv"),
             "death spiral": "YES" if v.get("death_spiral") else "no",
             "P(annual cap binds), max": v.get("cap_binds_probability_max")} for k, v in summary.items()]
    Report.table(s, pl.DataFrame(rows))
    Report.text(s, "Sustainable share: the share of a stationary pool (growth stopped, every member past the waiting "
                   "period, select effects worn off, the mix at its equilibrium; engine.projection._project); today's mix, "
                   "after caps: the share of the members sharing at the end of the study, all past the waiting period, "
                   "after the per-claimant and annual caps (engine.plans.compare); leverage = benefit / annual share at "
                   "today's mix; share CV: volatility of one period's share; P(annual cap binds): largest probability "
                   "over the projection periods.")
    for w in f.get("warnings", []):
        Report.text(s, f"warning: {w}")


def _account(rep: Report, account: dict[str, Any]) -> None:
    """Row account: rows read, used and set aside (with the reason) per table."""
    s = rep.section("account", "Row account")
    acc_rows = []
    for what, a in account.items():
        if not (isinstance(a, dict) and "read" in a):
            continue
        acc_rows.append({"table": what, "status": "read", "rows": a["read"]})
        acc_rows.append({"table": what, "status": "used", "rows": a["used"]})
        for reason, n in a["set_aside"].items():
            acc_rows.append({"table": what, "status": f"set aside: {reason}", "rows": n})
    Report.table(s, pl.DataFrame(acc_rows), max_rows=200)
    Report.text(s, "read = used + set aside holds for members and claims; claims set aside include those found "
                   "ineligible at exposure time (waiting period, before joining, after exit, after a first claim, "
                   "outside the study window). Every set-aside row is in rejected/ with its reason.")
    w = account.get("window") or {}
    if w:
        Report.text(s, f"As-of date {w.get('as_of')} ({w.get('as_of_source')}); study window {w.get('study_start')} "
                       f"({w.get('study_start_source')}) to {w.get('study_end')} ({w.get('study_end_source')}). "
                       "A join, exit, event or approval after the as-of date is set aside.")


def _incidence(rep: Report, t: dict[str, pl.DataFrame], rf: Any) -> None:
    """Crude incidence by age and sex against the CI2020 basis."""
    s = rep.section("incidence", "Incidence by age against CI2020")
    Report.figure(s, rf.incidence_by_age(t["incidence"]), "incidence by age and sex against the CI2020 basis")
    Report.text(s, "Crude incidence = claims / exposure-years (central exposure after the waiting period), with "
                   "exact Poisson (Garwood) intervals; the line is the CI2020 basis.")


def _model(rep: Report, ctx: Any, f: dict[str, Any], t: dict[str, pl.DataFrame], rf: Any) -> None:
    """Risk model: Lorenz curve and calibration, held-out deviance, GLM coefficients, select factors, credibility."""
    s = rep.section("model", "Risk model: GLM, Lorenz curve, calibration")
    y, mu, e = ctx.lorenz
    Report.figure(s, rf.lorenz_and_calibration(y, mu, e, t["calibration"], f.get("gini") or float("nan")),
                  "Lorenz curve and calibration")
    Report.kpis(s, [("held-out mean Poisson deviance (model / null)",
                     f"{_num(f.get('heldout_deviance'), '{:.4f}')} / {_num(f.get('heldout_deviance_null'), '{:.4f}')}", False),
                    ("deviance explained (held out)", _num(f.get("heldout_deviance_explained"), "{:.1%}"), False)])
    Report.table(s, t["glm_coefficients"])
    Report.text(s, "Select factors by duration band (incidence relative to the ultimate band):")
    Report.table(s, t["select_factors"])
    Report.text(s, "Limited-fluctuation credibility by rating factor:")
    Report.table(s, t["credibility"])


def _segmentation(rep: Report, f: dict[str, Any], t: dict[str, pl.DataFrame], rf: Any) -> None:
    """Risk groups: the granularity frontier and the segments table."""
    s = rep.section("segmentation", "Risk groups and granularity")
    Report.figure(s, rf.frontier(t["frontier"]), "granularity frontier")
    if f.get("segmentation_choice"):
        Report.text(s, f"Number of groups: {f['segmentation_choice']}.")
    Report.table(s, t["segments"].select([c for c in ("group", "name", "rule", "members", "exposure_years", "claims", "rate",
                                                      "rate_lower", "rate_upper", "relativity",
                                                      "expected_claims_per_period", "share_cv", "cross_subsidy_pct_of_pooled_share", "note")
                                          if c in t["segments"].columns]))


def _history(rep: Report, cfg: Any, t: dict[str, pl.DataFrame], rf: Any) -> None:
    """Realised shares and the attribution of their change."""
    s = rep.section("history", "Realised shares and their decomposition")
    plan_col = cfg.history.plan_col if cfg.history.plan_col in t["history"].columns else None
    Report.figure(s, rf.realised_shares(t["history"], plan_col), "realised shares")
    dec = t["decomposition"]
    if "contribution_cny" in dec.columns:
        Report.figure(s, rf.decomposition(dec), "decomposition of the share change")
        Report.text(s, f"Exact {cfg.history.decompose} attribution of the change in the share between two 3-month "
                       "windows and to the sustainable share (no residual).")
    else:
        Report.text(s, str(dec["note"][0]))


def _projection(rep: Report, cfg: Any, t: dict[str, pl.DataFrame], summary: dict[str, Any], rf: Any) -> None:
    """Projected share fan charts and the projection table per plan."""
    s = rep.section("projection", "Projected shares per plan")
    Report.figure(s, rf.fan_charts(t["projection"], summary), "projected share fan charts")
    pc = cfg.projection
    Report.text(s, f"{pc.scenarios:,} Monte Carlo scenarios over {pc.horizon} sharing periods (seed {pc.seed}); "
                   "band = P5-P95 of the share after the caps, dashed = sustainable share, dotted = share at today's "
                   "mix after the per-claimant and annual caps (when they bind, the platform pays the difference).")
    Report.table(s, t["projection_plans"].select([c for c in ("plan", "members_start", "members_end",
                                                               "share_end_mean_cny", "share_end_p95_cny",
                                                               "sustainable_share_cny", "death_spiral",
                                                               "death_spiral_period") if c in t["projection_plans"].columns]))


def _leverage(rep: Report, summary: dict[str, Any], rf: Any) -> None:
    """Leverage per plan."""
    s = rep.section("leverage", "Leverage")
    Report.figure(s, rf.leverage(summary), "leverage per plan")


def _cross_subsidy(rep: Report, t: dict[str, pl.DataFrame], rf: Any) -> None:
    """Cross-subsidy in the pooled plan: by class, and between the risk groups."""
    s = rep.section("cross-subsidy", "Cross-subsidy in the pooled plan")
    fig = rf.class_cross_subsidy(t["cross_subsidy_classes"])
    if fig is not None:
        Report.figure(s, fig, "cross-subsidy by age band and factor")
    Report.text(s, "Each class's own annual cost (1 + fee) x GLM rate x benefit against the equal pooled payment: "
                   "positive (red) classes overpay, negative (blue) classes are subsidised.")
    fig = rf.cross_subsidy(t["cross_subsidy"])
    if fig is not None:
        Report.figure(s, fig, "cross-subsidy between risk groups")
        Report.text(s, "Between the segmentation's risk groups: positive, the payer group overpays for the "
                       "beneficiary group (CNY per payer member-year).")
    else:
        Report.text(s, "The segmentation kept a single risk group: no flow between groups to show.")


def _plans(rep: Report, t: dict[str, pl.DataFrame]) -> None:
    """Plan comparison: plans and the payment changes per group."""
    s = rep.section("plans", "Plan comparison")
    p = t["plans"].filter(pl.col("level") == "plan")
    Report.table(s, p.select([c for c in ("plan_file", "planset", "plan", "members", "expected_claims_per_period",
                                          "share_current_mix_cny", "leverage", "share_cv", "cap_binding")
                              if c in p.columns]))
    ch = t["changes"]
    Report.table(s, ch.select([c for c in ("plan_file", "group", "annual_payment_before_cny", "annual_payment_after_cny",
                                           "leverage_before", "leverage_after") if c in ch.columns]))
