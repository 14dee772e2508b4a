"""The report's share views: decomposition bars with values and plain names, readable fan charts.

:data:`DRIVER_LABELS` is the one mapping from a share driver's id
(:data:`engine.shares._drivers.DRIVERS`) to the words a reader sees. The fan charts show
the share members pay (after the caps) on its own scale, apart from the cost per member
before the caps, so neither squashes the other.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.report.chart import Chart, Series
from engine.report.document import Report
from engine.report.i18n import engine_message, t

#: share driver id -> plain-language label (English; translated by :func:`driver_label`)
DRIVER_LABELS: dict[str, str] = {
    "fee": "management fee",
    "period_length": "window length",
    "dilution": "dilution (membership growth)",
    "waiting": "waiting period (new members cannot claim yet)",
    "reporting_lag": "reporting lag (claims approved later)",
    "ageing": "age, sex and benefit mix",
    "select": "select effect wearing off",
    "mix": "rating-factor mix (who joined, who left)",
    "incidence": "incidence (actual against expected)",
}


def driver_label(driver: str) -> str:
    """The plain-language label of a driver id (the id itself when unknown), translated."""
    return t(DRIVER_LABELS[driver]) if driver in DRIVER_LABELS else driver


def decomposition_charts(dec: pl.DataFrame) -> list[Chart]:
    """One horizontal bar chart per comparison: each driver's contribution, its value in its label.

    ``dec`` is the run's ``decomposition`` table (``comparison``, ``driver``, ``contribution_cny``,
    ``share_a_cny``, ``share_b_cny``). The bar labels carry the signed value in CNY, so the value
    is readable without hovering.
    """
    out = []
    for comp in dec["comparison"].unique(maintain_order=True).to_list():
        d = dec.filter(pl.col("comparison") == comp)
        v = d["contribution_cny"].fill_null(0.0).to_list()
        labels = [f"{driver_label(k)}: {x:+,.2f}" for k, x in zip(d["driver"].to_list(), v, strict=True)]
        a, b = float(d["share_a_cny"][0]), float(d["share_b_cny"][0])
        out.append(Chart(
            t("{comparison}: {a:,.2f} -> {b:,.2f} CNY per member", comparison=comp, a=a, b=b),
            t("contribution to the change (CNY per member over the window)"), t("driver"),
            (Series(t("contribution (CNY per member)"), v, labels, kind="hbar"),),
            facet="decomposition", meta={"drivers": d["driver"].to_list(), "values": v},
            caption=t("Exact attribution: the contributions add up to the change {d:+,.2f} CNY.", d=b - a)))
    return out


def decomposition_table(dec: pl.DataFrame) -> pl.DataFrame:
    """The decomposition with plain driver names and the value of each contribution."""
    return pl.DataFrame({
        "comparison": dec["comparison"],
        "driver": [driver_label(k) for k in dec["driver"].to_list()],
        "factor before": dec["factor_a"],
        "factor after": dec["factor_b"],
        "contribution (CNY per member)": dec["contribution_cny"],
    })


def fan_charts(periods: pl.DataFrame, summary: dict[str, Any]) -> list[Chart]:
    """Two charts per projected plan: the share paid (after caps) and the cost before the caps.

    Notes
    -----
    Share paid: P5-P95 band, median and mean of the share after the per-claimant and annual caps,
    on its own scale. Cost before the caps (mean per member): mean share paid + mean platform
    payment / mean members, against the sustainable share (uncapped, dashed); the gap is what the
    platform pays.
    """
    out = []
    for plan in periods["plan"].unique(maintain_order=True).to_list():
        d = periods.filter(pl.col("plan") == plan).sort("period")
        x = d["period"].to_list()
        info = summary.get(plan, {})
        spiral = t(" - death spiral") if info.get("death_spiral") else ""
        out.append(Chart(
            t("{plan}: share paid (after caps){spiral}", plan=plan, spiral=spiral), t("sharing period"),
            t("CNY per member per sharing period"),
            (Series(t("P5-P95"), x, [], kind="band", lower=d["share_p5_cny"].to_list(),
                    upper=d["share_p95_cny"].to_list()),
             Series(t("median share paid"), x, d["share_p50_cny"].to_list(), kind="line"),
             Series(t("mean share paid"), x, d["share_mean_cny"].to_list(), kind="line")),
            facet=f"fan:{plan}", meta={"plan": plan},
            caption=t("Band: P5-P95 of the share members pay after the per-claimant and annual caps, over the "
                      "Monte Carlo scenarios.")))
        members = d["members"].to_numpy()
        paid = d["share_mean_cny"].to_numpy()
        platform = d["platform_paid_mean_cny"].to_numpy() if "platform_paid_mean_cny" in d.columns else 0.0 * paid
        cost = paid + platform / (members + (members <= 0))
        series = [Series(t("mean cost before caps"), x, cost.tolist(), kind="line"),
                  Series(t("mean share paid"), x, paid.tolist(), kind="line")]
        sus = info.get("sustainable_share_cny")
        if sus is not None:
            series.append(Series(t("sustainable share (before caps) {v:,.2f}", v=sus), x, [sus] * len(x), kind="line",
                                 dash=True))
        out.append(Chart(
            t("{plan}: cost per member before caps", plan=plan), t("sharing period"),
            t("CNY per member per sharing period"), tuple(series), facet=f"fan:{plan}", meta={"plan": plan},
            caption=t("Cost before caps = share paid + the platform's payment over the caps, per member (means over "
                      "the scenarios); the gap between the two lines is paid by the platform.")))
    return out


def add_share_views(rep: Report, ctx: Any, summary: dict[str, Any]) -> None:
    """Add the decomposition (values, plain driver names) and the fan charts to ``rep``."""
    tb = ctx.tables
    dec = tb.get("decomposition")
    s = rep.section("drivers", t("What moved the share: drivers with their values"))
    if dec is not None and "contribution_cny" in dec.columns:
        for c in decomposition_charts(dec):
            Report.chart(s, c)
        Report.table(s, decomposition_table(dec))
    else:
        Report.text(s, t("No decomposition: the study is too short or the drivers could not be computed."))
        if dec is not None and "note" in dec.columns and dec.height:
            Report.text(s, engine_message(str(dec["note"][0])))
    s = rep.section("fan-charts", t("Projected shares: paid, and cost before caps"))
    for c in fan_charts(tb["projection"], summary):
        Report.chart(s, c)


__all__ = ["DRIVER_LABELS", "add_share_views", "decomposition_charts", "decomposition_table", "driver_label",
           "fan_charts"]
