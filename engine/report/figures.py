"""Chart builders of the run report: each returns :class:`~engine.report.chart.Chart` specifications.

One builder per figure; a figure of several panels is a list of charts sharing a ``facet``
(side by side when wide, stacked when narrow). The report draws them interactively (plotly)
or as PNG (matplotlib, ``--static``) through :mod:`engine.report.render`; the builders need
neither library. Every title, axis label and legend entry goes through
:func:`engine.report.i18n.t`; names of plans, factors and levels are shown as the user wrote them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.report.chart import PALETTE, Chart, Series
from engine.report.i18n import t

#: colours with a meaning (positive = overpays / raises the share, negative = the reverse)
RED, GREEN, GREY, BLACK = "#d62728", "#2ca02c", "#7f7f7f", "#222222"
PER_1000 = "claims per 1,000 exposure-years"
#: points of the Lorenz curve drawn (one per held-out cell, up to this many)
LORENZ_POINTS = 500


def thin(n: int, most: int = LORENZ_POINTS) -> np.ndarray:
    """Indices of at most ``most`` of ``n`` points, evenly spaced, the first and last kept (a curve drawn
    with a subset of its own points: the page stays small whatever the number of cells)."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


def _sex_title(sex: Any) -> str:
    return t({"M": "male", "F": "female"}.get(sex, "all")) if sex is not None else t("all")


def incidence_by_age(inc: pl.DataFrame) -> list[Chart]:
    """Crude rate with its Garwood interval by attained age, one panel per sex, against the basis."""
    sexes = sorted(inc["sex"].unique().to_list()) if "sex" in inc.columns else [None]
    out = []
    for sex in sexes:
        d = (inc.filter(pl.col("sex") == sex) if sex is not None else inc).sort("age")
        a = d["age"].to_list()
        series = [Series(t("95% interval (Garwood)"), a, [], kind="band", lower=(d["rate_lower"] * 1000).to_list(),
                         upper=(d["rate_upper"] * 1000).to_list()),
                  Series(t("observed (crude)"), a, (d["rate"] * 1000).to_list(), kind="markers")]
        if "expected_rate" in d.columns:
            series.append(Series(t("CI2020 basis"), a, (d["expected_rate"] * 1000).to_list(), color=RED))
        out.append(Chart(_sex_title(sex), t("attained age (years)"), t(PER_1000), tuple(series), y_log=True,
                         facet="incidence"))
    return out


def lorenz_and_calibration(y: np.ndarray, mu: np.ndarray, e: np.ndarray, calib: pl.DataFrame, gini: float) -> list[Chart]:
    """Lorenz curve (held-out cells) next to the calibration by decile of predicted rate."""
    from engine.estimators.metrics import lorenz_curve

    lor = []
    if y.sum() > 0:
        x, c = lorenz_curve(y, mu, e)
        keep = thin(len(x))
        lor.append(Series(t("GLM (Gini {gini})", gini=f"{gini:.3f}"), x[keep].tolist(), c[keep].tolist()))
    lor.append(Series(t("no discrimination"), [0.0, 1.0], [0.0, 1.0], dash=True, color=GREY))
    charts = [Chart(t("Lorenz curve (held-out cells)"), t("cumulative share of exposure (lowest predicted risk first)"),
                    t("cumulative share of claims"), tuple(lor), facet="model")]
    if calib.height:
        b = calib["bin"].to_list()
        cal = (Series(t("predicted"), b, (calib["predicted_rate"] * 1000).to_list(), kind="bar"),
               Series(t("observed (95%)"), b, (calib["observed_rate"] * 1000).to_list(), kind="errorbars",
                      lower=(calib["observed_lower"] * 1000).to_list(), upper=(calib["observed_upper"] * 1000).to_list(),
                      color=RED))
        charts.append(Chart(t("calibration (held-out cells)"), t("decile of predicted rate"), t(PER_1000), cal,
                            x_categorical=True, facet="model"))
    return charts


def _cv_chart(fr: pl.DataFrame) -> Chart:
    """Held-out Poisson deviance by K with one-standard-error bars and the chosen K."""
    d = fr.filter(pl.col("cv_deviance").is_not_null())
    k, dev, se = d["k"].to_list(), d["cv_deviance"].to_list(), d["cv_se_diff"].fill_null(0.0).to_list()
    series = [Series(t("held-out deviance +- 1 se"), k, dev, kind="errorbars",
                     lower=[v - s for v, s in zip(dev, se, strict=True)], upper=[v + s for v, s in zip(dev, se, strict=True)]),
              Series(t("lowest deviance"), [min(k), max(k)], [min(dev)] * 2, dash=True, color=GREY)]
    rec = d.filter(pl.col("recommended"))
    if rec.height:
        series.append(Series(t("chosen K = {k} (one-se rule)", k=int(rec["k"][0])), rec["k"].to_list(),
                             rec["cv_deviance"].to_list(), kind="markers", color=RED))
    return Chart(t("choice of K (cross-validation)"), t("number of risk groups K"),
                 t("held-out Poisson deviance (sum over folds)"), tuple(series), x_categorical=True, facet="frontier")


def frontier(fr: pl.DataFrame) -> list[Chart]:
    """Granularity frontier: residual cross-subsidy and the largest share CV by K (and the K criterion).

    No chart when a single K was searched (a frontier of one point): the report says so in words.
    """
    k = fr["k"].to_list()
    if len(k) < 2:
        return []
    xs = fr["residual_cross_subsidy_pct"].to_list()
    series = [Series(t("residual cross-subsidy"), k, xs, markers=True),
              Series(t("largest share CV (%)"), k, (100 * fr["share_cv_max"]).to_list(), axis="y2", dash=True,
                     markers=True)]
    rec = fr.filter(pl.col("recommended"))
    if rec.height:
        kr = int(rec["k"][0])
        lo, hi = min(v for v in xs if v is not None), max(v for v in xs if v is not None)
        series.append(Series(t("recommended K = {k}", k=kr), [kr, kr], [lo, hi], color=GREEN))
    charts = [Chart(t("granularity frontier: cross-subsidy and volatility by K"), t("number of risk groups K"),
                    t("residual cross-subsidy (% of pooled share)"), tuple(series),
                    y2_label=t("largest period share CV (%)"), facet="frontier")]
    if "cv_deviance" in fr.columns and fr["cv_deviance"].null_count() < fr.height:
        charts.append(_cv_chart(fr))
    return charts


def realised_shares(hist: pl.DataFrame, plan_col: str | None) -> list[Chart]:
    """Realised share per notice date (before caps and paid) and the members sharing."""
    keys = hist[plan_col].unique(maintain_order=True).to_list() if plan_col and plan_col in hist.columns else [None]
    shares, members = [], []
    for i, k in enumerate(keys):
        d = hist.filter(pl.col(plan_col) == k) if k is not None else hist
        x = d["notice_date"].to_list()
        lab = f" ({k})" if k is not None and len(keys) > 1 else ""
        colour = PALETTE[i % len(PALETTE)]
        shares += [Series(t("share before caps") + lab, x, d["share_cny"].to_list(), color=colour),
                   Series(t("share paid") + lab, x, d["share_paid_cny"].to_list(), dash=True, color=colour)]
        members.append(Series(t("sharing members") + lab, x, (d["sharing_members"] / 1000).to_list(), color=colour))
    return [Chart(t("realised shares per notice date"), t("notice date"), t("CNY per member per period"),
                  tuple(shares), facet="history"),
            Chart(t("members sharing per notice date"), t("notice date"), t("sharing members (000)"),
                  tuple(members), facet="history")]


def leverage(summary: dict[str, Any]) -> list[Chart]:
    """Leverage (benefit / annual share) and the sustainable share per plan."""
    labels = [k for k, v in summary.items() if v.get("leverage") is not None and v.get("sustainable_share_cny") is not None]
    lev = [summary[k]["leverage"] for k in labels]
    sus = [summary[k]["sustainable_share_cny"] for k in labels]
    return [Chart(t("leverage per plan"), t("leverage = benefit / annual share"), t("plan"),
                  (Series(t("leverage"), lev, labels, kind="hbar", values=True),), facet="leverage"),
            Chart(t("sustainable share per plan"), t("sustainable share (CNY per member per period)"), t("plan"),
                  (Series(t("sustainable share"), sus, labels, kind="hbar", values=True, color="#ff7f0e"),),
                  facet="leverage")]


def cross_subsidy(xs: pl.DataFrame) -> Chart | None:
    """Heat map of the net cross-subsidy payer -> beneficiary group in the pooled plan (None below 2 groups)."""
    if xs.height == 0 or len(set(xs["payer_group"].to_list()) | set(xs["beneficiary_group"].to_list())) < 2:
        return None
    d = xs.filter((pl.col("plan_file") == xs["plan_file"][0]) & (pl.col("plan") == xs["plan"][0]))
    names = sorted(set(d["payer_group"].to_list()) | set(d["beneficiary_group"].to_list()))
    grid = np.zeros((len(names), len(names)))
    for a, b, v in d.select("payer_group", "beneficiary_group", "net_cny_per_member_year").iter_rows():
        grid[names.index(a), names.index(b)] = v or 0.0
    tick = [f"G{n}" if str(n).isdigit() else str(n) for n in names]
    return Chart(t("net cross-subsidy in pooled plan '{plan}' (CNY per payer member-year)", plan=d["plan"][0]),
                 t("beneficiary group"), t("payer group"),
                 (Series(t("CNY per payer member-year"), tick, tick, kind="heatmap", z=grid.tolist(),
                         values=len(names) <= 12),), x_categorical=True)


def class_cross_subsidy(cls: pl.DataFrame) -> Chart | None:
    """Heat map of the cross-subsidy (CNY per member-year) by age band x factor level in the pooled plan."""
    if cls.height == 0:
        return None
    bands = sorted(cls["age_band"].unique().to_list(), key=lambda b: int(b.split("-")[0].rstrip("+")))
    levels = sorted(cls["factor_level"].unique().to_list())
    grid = np.full((len(bands), len(levels)), np.nan)
    for b, lv, v in cls.select("age_band", "factor_level", "cross_subsidy_cny_per_year").iter_rows():
        grid[bands.index(b), levels.index(lv)] = v
    return Chart(t("cross-subsidy in pooled plan '{plan}' (CNY per member-year; + = overpays)", plan=cls["plan"][0]),
                 str(cls["factor"][0]), t("age band"),
                 (Series(t("CNY per member-year"), levels, bands, kind="heatmap", z=grid.tolist(), values=True),),
                 x_categorical=True)
