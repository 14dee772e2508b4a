"""Report sections on units and the caps' cost: shares per sharing period, per month and per year side by side;
which cap binds, the platform's subsidy per plan and year, leverage before and after the caps.

Every number shown here is read from ``summary.json`` (``summary``, ``facts``) or from a Parquet output of
the run (``ctx.tables``); nothing is recomputed, so the report agrees with the files
(``tests/test_report_numbers.py``). Formulas: :mod:`engine.conventions` (per month, per year, the cap scale),
:mod:`engine.plans.compare` (cap flags, leverage), :mod:`engine.projection._caps` (the subsidy).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.report.chart import Chart, Series
from engine.report.document import Report
from engine.report.i18n import t

#: section ids added by :func:`add_economics`, in order
ECONOMICS_SECTIONS = ("shares", "caps")


def add_economics(rep: Report, ctx: Any, summary: dict[str, Any]) -> None:
    """Add the ``shares`` and ``caps`` sections to ``rep`` from a finished run (``ctx``) and its summary."""
    _shares(rep, summary)
    _caps(rep, ctx.facts, ctx.tables, summary)


def _yes(v: Any) -> str | None:
    return None if v is None else (t("binds") if v else t("does not bind"))


def _period_words(ppy: float) -> str:
    """One sharing period in words, from the periods a year."""
    if ppy == 24:
        return t("half a month")
    if ppy == 12:
        return t("one month")
    return t("{months:g} months", months=12.0 / ppy)


def shares_table(summary: dict[str, Any]) -> pl.DataFrame:
    """Per plan: the sustainable share, the share at today's mix and after the caps, per period, month and year."""
    rows = []
    for label, v in summary.items():
        rows.append({
            "plan file / plan": label,
            "periods a year": None if v.get("periods_per_year") is None else int(v["periods_per_year"]),
            "sustainable share, CNY per period": v.get("sustainable_share_cny"),
            "sustainable share, CNY per month": v.get("sustainable_share_cny_per_month"),
            "sustainable share, CNY per year": v.get("sustainable_share_cny_per_year"),
            "today's mix, CNY per period": v.get("share_current_mix_cny"),
            "today's mix, CNY per month": v.get("share_current_mix_cny_per_month"),
            "today's mix, CNY per year": v.get("share_current_mix_cny_per_year"),
            "paid after the caps, CNY per period": v.get("share_after_caps_cny"),
            "paid after the caps, CNY per month": v.get("share_after_caps_cny_per_month"),
            "paid after the caps, CNY per year": v.get("share_after_caps_cny_per_year"),
        })
    return pl.DataFrame(rows, infer_schema_length=None)


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    return "n/a" if v is None or v != v else fmt.format(v)


def share_cards(summary: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Headline cards of the pooled plan: its share per period / month / year, what members pay a year after the
    caps, the platform's share of the cost and leverage before / after the caps (values as in ``summary.json``)."""
    label, v = next(((k, v) for k, v in summary.items() if v.get("planset") == "pooled"), (None, None))
    if v is None:
        return []
    return [
        (t("{plan}: sustainable share, CNY per member per period / month / year", plan=label),
         " / ".join(_num(v.get(k)) for k in ("sustainable_share_cny", "sustainable_share_cny_per_month",
                                            "sustainable_share_cny_per_year")), False),
        (t("{plan}: paid after the caps, CNY per member per year (today's mix)", plan=label),
         _num(v.get("share_after_caps_cny_per_year")), False),
        (t("{plan}: platform pays, % of cost, first projection year", plan=label),
         _num(v.get("platform_paid_pct_of_cost_first_year"), "{:,.1f}"), False),
        (t("{plan}: leverage before / after the caps", plan=label),
         " / ".join(_num(v.get(k), "{:,.0f}") for k in ("leverage_before_caps", "leverage_after_caps")), False),
    ]


def _shares(rep: Report, summary: dict[str, Any]) -> None:
    s = rep.section("shares", t("Shares per member: per sharing period, per month, per year"))
    cards = share_cards(summary)
    if cards:
        Report.kpis(s, cards)
    ppys = sorted({float(v["periods_per_year"]) for v in summary.values() if v.get("periods_per_year")})
    for ppy in ppys:
        Report.text(s, t("{ppy:g} sharing periods a year: one sharing period is {words}.", ppy=ppy,
                         words=_period_words(ppy)))
    Report.table(s, shares_table(summary))
    Report.text(s, t("Every share is in CNY per member. Per month = per period x periods a year / 12; per year = per "
                     "period x periods a year (a member present all year at that share). Sustainable: the stationary "
                     "pool of the projection; today's mix: the members sharing at the end of the study, all past the "
                     "waiting period; paid after the caps: what a member pays once the platform has paid the excess "
                     "over the per-claimant and annual caps (at the expected claim count)."))


def caps_table(summary: dict[str, Any]) -> pl.DataFrame:
    """Per plan: the caps, which one binds at today's mix, P(annual cap binds), leverage before and after the caps."""
    rows = []
    for label, v in summary.items():
        rows.append({
            "plan file / plan": label,
            "per-claimant cap, CNY per member per claim": v.get("per_claimant_cap_cny"),
            "annual cap, CNY per member per year": v.get("annual_cap_cny"),
            "per-claimant cap binds": _yes(v.get("per_claimant_cap_binding")),
            "annual cap binds": _yes(v.get("annual_cap_binding")),
            "P(annual cap binds in a year), projection, max": v.get("cap_binds_probability_max"),
            "leverage before the caps": v.get("leverage_before_caps"),
            "leverage after the caps": v.get("leverage_after_caps"),
            "platform pays, % of cost, first projection year": v.get("platform_paid_pct_of_cost_first_year"),
        })
    return pl.DataFrame(rows, infer_schema_length=None)


def subsidy_table(df: pl.DataFrame, year_label: str) -> pl.DataFrame:
    """A caps' cost table (``caps_cost_*.parquet``) with English headers (the report translates what it shows)."""
    names = {"plan": "plan file / plan", "year": year_label, "cost_cny": "cost (benefits + fee), CNY",
             "members_paid_cny": "members pay, CNY",
             "platform_paid_per_claimant_cap_cny": "platform pays above the per-claimant cap, CNY",
             "platform_paid_annual_cap_cny": "platform pays above the annual cap, CNY",
             "platform_paid_cny": "platform pays, CNY", "platform_paid_pct_of_cost": "platform pays, % of cost",
             "annual_cap_binds_prob": "P(annual cap binds in the year)"}
    return df.select([pl.col(c).alias(n) for c, n in names.items() if c in df.columns])


def _scale_text(caps: dict[str, Any]) -> str:
    n = caps.get("scale_caps_to_members")
    if not n:
        return t("The per-claimant cap is applied as written: it is a rule designed for a platform of about "
                 "{design:,} members (the members pay at most cap x members for one claim).",
                 design=caps["per_claimant_cap_design_members"])
    return t("The per-claimant cap is a size-dependent rule designed for a platform of about {design:,} members; this "
             "run scales it to a platform of {n:,} members: every per-claimant cap is multiplied by {f:,.6g} (the "
             "members pay at most the same cap x members for one claim). The annual cap, per member, is not scaled.",
             design=caps["per_claimant_cap_design_members"], n=int(n), f=caps["per_claimant_cap_scale"])


def _caps(rep: Report, facts: dict[str, Any], tables: dict[str, pl.DataFrame], summary: dict[str, Any]) -> None:
    s = rep.section("caps", t("The caps' cost"))
    caps = facts.get("caps") or {}
    if caps:
        Report.text(s, _scale_text(caps))
    Report.table(s, caps_table(summary))
    chart = leverage_chart(summary)
    if chart is not None:
        Report.chart(s, chart)
    Report.text(s, t("Per-claimant cap binds: a member's share of one claim, (1 + fee) x benefit / members, exceeds "
                     "the cap; annual cap binds: what is left after the per-claimant cap, times the periods a year, "
                     "exceeds the annual cap; both at today's mix and the expected claim count. P(annual cap binds): "
                     "the largest over the projection years of the probability that a member present since the start "
                     "of the year reaches the annual cap within it (the same event, simulated). Leverage = benefit "
                     "/ annual share, before the caps (what the cost is) and after them (what members pay)."))
    proj = tables.get("caps_cost_projection")
    if proj is not None and proj.height:
        Report.table(s, subsidy_table(proj, "projection year"), max_rows=200)
        Report.chart(s, subsidy_chart(proj))
        Report.text(s, t("Cost = benefits paid + fee; members pay the share after the caps; the platform pays the "
                         "rest. Means over the Monte Carlo scenarios, per projection year (periods a year from the "
                         "start of the projection)."))
    hist = tables.get("caps_cost_history")
    if hist is not None and hist.height:
        Report.text(s, t("Realised, per pool and calendar year of the notice date (the share history):"))
        Report.table(s, subsidy_table(hist, "calendar year"), max_rows=200)
        Report.chart(s, realised_chart(hist))


def realised_chart(hist: pl.DataFrame) -> Chart:
    """The cost and the platform's part of it per calendar year (million CNY), bars per pool (a :class:`Chart`)."""
    series = []
    for pool in hist["plan"].unique(maintain_order=True).to_list():
        h = hist.filter(pl.col("plan") == pool).sort("year")
        years = [str(y) for y in h["year"].to_list()]
        prefix = "" if hist["plan"].n_unique() == 1 else f"{pool}: "
        series.append(Series(prefix + t("cost (benefits + fee)"), years, (h["cost_cny"] / 1e6).to_list(), kind="bar"))
        series.append(Series(prefix + t("platform pays"), years, (h["platform_paid_cny"] / 1e6).to_list(), kind="bar"))
    return Chart(title=t("Realised cost by calendar year, and what the platform paid"), x_label=t("calendar year"),
                 y_label=t("million CNY per calendar year"), series=tuple(series), x_categorical=True,
                 caption=t("The share history's cost (benefits + fee) per calendar year of the notice date, and the "
                           "part of it the platform paid above the caps (the members paid the rest)."))


def subsidy_chart(proj: pl.DataFrame) -> Chart:
    """The platform's share of the cost per projection year, one line per plan (a :class:`Chart`)."""
    series = []
    for plan in proj["plan"].unique(maintain_order=True).to_list():
        p = proj.filter(pl.col("plan") == plan).sort("year")
        series.append(Series(plan, [str(y) for y in p["year"].to_list()], p["platform_paid_pct_of_cost"].to_list(),
                             kind="line"))
    return Chart(title=t("Platform's share of the cost, by projection year"), x_label=t("projection year"),
                 y_label=t("platform pays, % of cost (benefits + fee)"), series=tuple(series), x_categorical=True,
                 caption=t("What the caps cost the platform: the excess over the per-claimant and annual caps, "
                           "as a percentage of the benefits plus the fee."))


def leverage_chart(summary: dict[str, Any]) -> Chart | None:
    """Leverage per plan before and after the caps (horizontal bars; None when no plan has both)."""
    labels = [k for k, v in summary.items()
              if v.get("leverage_before_caps") is not None and v.get("leverage_after_caps") is not None]
    if not labels:
        return None
    after = Series(t("after the caps (what members pay)"), [summary[k]["leverage_after_caps"] for k in labels],
                   labels, kind="hbar")
    before = Series(t("before the caps (the cost)"), [summary[k]["leverage_before_caps"] for k in labels],
                    labels, kind="hbar")
    return Chart(title=t("Leverage before and after the caps"), x_label=t("leverage = benefit / annual share"),
                 y_label="", series=(after, before),
                 caption=t("Before the caps: benefit / the annual share at today's mix; after the caps: benefit / "
                           "what a member pays a year once the platform has paid the excess over the caps."))
