"""Matplotlib figures of the run report (Agg backend; each function returns a figure)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl


def _plt() -> Any:
    from engine._optional import require

    require("matplotlib", "the report's figures").use("Agg")
    plt = require("matplotlib.pyplot", "the report's figures")

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "fentan"})
    return plt


def incidence_by_age(inc: pl.DataFrame) -> Any:
    """Crude rate with Garwood interval by age, one panel per sex, against the basis."""
    plt = _plt()
    sexes = sorted(inc["sex"].unique().to_list()) if "sex" in inc.columns else [None]
    fig, axes = plt.subplots(1, len(sexes), figsize=(11, 4), sharey=True, squeeze=False)
    for ax, sex in zip(axes[0], sexes, strict=True):
        d = inc.filter(pl.col("sex") == sex) if sex is not None else inc
        d = d.sort("age")
        a = d["age"].to_numpy()
        r = d["rate"].to_numpy() * 1000
        lo, hi = d["rate_lower"].to_numpy() * 1000, d["rate_upper"].to_numpy() * 1000
        ax.fill_between(a, lo, hi, alpha=0.25, color="C0", label="95% interval (Garwood)")
        ax.plot(a, r, "o", ms=3, color="C0", label="observed (crude)")
        if "expected_rate" in d.columns:
            ax.plot(a, d["expected_rate"].to_numpy() * 1000, "-", color="C3", label="CI2020 basis")
        ax.set_yscale("symlog", linthresh=0.05)
        ax.set_xlabel("attained age")
        ax.set_title({"M": "male", "F": "female"}.get(sex, "all") if sex else "all")
    axes[0][0].set_ylabel("claims per 1,000 exposure-years")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def lorenz_and_calibration(y: np.ndarray, mu: np.ndarray, e: np.ndarray, calib: pl.DataFrame, gini: float) -> Any:
    """Lorenz curve (held-out cells) next to the calibration by decile."""
    from engine.estimators.metrics import lorenz_curve

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    if y.sum() > 0:
        x, c = lorenz_curve(y, mu, e)
        a1.plot(x, c, color="C0", label=f"GLM (Gini {gini:.3f})")
    a1.plot([0, 1], [0, 1], "--", color="grey", label="no discrimination")
    a1.set_xlabel("cumulative share of exposure (lowest predicted risk first)")
    a1.set_ylabel("cumulative share of claims")
    a1.set_title("Lorenz curve (held-out cells)")
    a1.legend(loc="upper left", fontsize=8)
    if calib.height:
        b = calib["bin"].to_numpy()
        a2.bar(b, calib["predicted_rate"].to_numpy() * 1000, width=0.6, alpha=0.5, label="predicted")
        obs = calib["observed_rate"].to_numpy() * 1000
        err = np.vstack([obs - calib["observed_lower"].to_numpy() * 1000, calib["observed_upper"].to_numpy() * 1000 - obs])
        a2.errorbar(b, obs, yerr=err, fmt="o", color="C3", label="observed (95%)")
        a2.set_xticks(b)
        a2.legend(loc="upper left", fontsize=8)
    a2.set_xlabel("decile of predicted rate")
    a2.set_ylabel("claims per 1,000 exposure-years")
    a2.set_title("calibration (held-out cells)")
    fig.tight_layout()
    return fig


def frontier(fr: pl.DataFrame) -> Any:
    """Granularity frontier: cross-subsidy removed vs share volatility added, by K."""
    plt = _plt()
    cv = "cv_deviance" in fr.columns and fr["cv_deviance"].null_count() < fr.height
    if cv:
        fig, (ax, axc) = plt.subplots(1, 2, figsize=(11, 4.4))
        from engine.segmentation._frontier import plot_cv

        plot_cv(fr, ax=axc)
    else:
        fig, ax = plt.subplots(figsize=(9, 4.4))
    k = fr["k"].to_numpy()
    ax.plot(k, fr["residual_cross_subsidy_pct"].to_numpy(), "o-", label="residual cross-subsidy (%)")
    ax.set_xlabel("number of risk groups K")
    ax.set_ylabel("residual cross-subsidy (% of pooled share)")
    ax2 = ax.twinx()
    ax2.plot(k, 100 * fr["share_cv_max"].to_numpy(), "s--", color="C3", label="largest share CV (%)")
    ax2.set_ylabel("largest period share CV (%)")
    ax2.grid(False)
    rec = fr.filter(pl.col("recommended"))
    if rec.height:
        ax.axvline(int(rec["k"][0]), color="green", alpha=0.5, label=f"recommended K = {int(rec['k'][0])}")
    ax.set_xticks(k)
    if len(k) == 1:
        ax.text(0.5, 0.92, f"only K = {int(k[0])} meets the claims floor of a group",
                transform=ax.transAxes, ha="center", fontsize=9, color="C3")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    ax.set_title("granularity frontier: cross-subsidy and volatility by K", fontsize=10)
    fig.tight_layout()
    return fig


def realised_shares(hist: pl.DataFrame, plan_col: str | None) -> Any:
    """Realised share per notice date (uncapped and paid) and the sharing members."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    keys = hist[plan_col].unique(maintain_order=True).to_list() if plan_col and plan_col in hist.columns else [None]
    for i, k in enumerate(keys):
        d = hist.filter(pl.col(plan_col) == k) if k is not None else hist
        x = d["notice_date"].to_numpy()
        lab = f" ({k})" if k is not None and len(keys) > 1 else ""
        a1.plot(x, d["share_cny"].to_numpy(), color=f"C{i}", label=f"share before caps{lab}")
        a1.plot(x, d["share_paid_cny"].to_numpy(), "--", color=f"C{i}", alpha=0.7, label=f"share paid{lab}")
        a2.plot(x, d["sharing_members"].to_numpy() / 1000, color=f"C{i}")
    a1.set_ylabel("CNY per member per period")
    a1.set_title("realised shares per notice date")
    a1.legend(loc="upper left", fontsize=8)
    a2.set_ylabel("sharing members (000)")
    a2.set_xlabel("notice date")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def decomposition(dec: pl.DataFrame) -> Any:
    """Contribution of each driver (CNY) to each share change."""
    plt = _plt()
    comps = dec["comparison"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(comps), figsize=(11, 4), squeeze=False)
    for ax, c in zip(axes[0], comps, strict=True):
        d = dec.filter(pl.col("comparison") == c)
        v = d["contribution_cny"].to_numpy()
        y = np.arange(d.height)
        ax.barh(y, v, color=["C3" if x > 0 else "C2" for x in v])
        ax.set_yticks(y, d["driver"].to_list())
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        a, b = float(d["share_a_cny"][0]), float(d["share_b_cny"][0])
        ax.set_title(f"{c}\n{a:,.2f} -> {b:,.2f} CNY per member over 3 months", fontsize=9)
        ax.set_xlabel("contribution to the change (CNY per member, 3 months)")
    fig.tight_layout()
    return fig


def fan_charts(periods: pl.DataFrame, summary: dict[str, Any]) -> Any:
    """Projected share fan chart per plan: mean, P5-P95 band, sustainable share and the share after caps."""
    plt = _plt()
    labels = periods["plan"].unique(maintain_order=True).to_list()
    n = len(labels)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.4 * rows), squeeze=False)
    for ax, label in zip(axes.ravel(), labels, strict=False):
        d = periods.filter(pl.col("plan") == label).sort("period")
        x = d["period"].to_numpy()
        ax.fill_between(x, d["share_p5_cny"].to_numpy(), d["share_p95_cny"].to_numpy(), alpha=0.3, color="C0",
                        label="P5-P95")
        ax.plot(x, d["share_mean_cny"].to_numpy(), color="C0", label="mean (after caps)")
        info = summary.get(label, {})
        sus, cap = info.get("sustainable_share_cny"), info.get("share_after_caps_cny")
        if sus is not None:
            ax.axhline(sus, linestyle="--", color="k", lw=1, label=f"sustainable {sus:,.2f}")
        if cap is not None and sus is not None and cap < sus * 0.999:
            ax.axhline(cap, linestyle=":", color="C3", lw=1.5, label=f"today's mix after caps {cap:,.2f}")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("sharing period")
        ax.set_ylabel("CNY per member")
        spiral = " - DEATH SPIRAL" if info.get("death_spiral") else ""
        ax.set_title(f"{label}{spiral}", fontsize=10, color="C3" if spiral else "k")
        ax.legend(fontsize=7, loc="center right", framealpha=0.9)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def leverage(summary: dict[str, Any]) -> Any:
    """Leverage (benefit / annual share) and sustainable annual share per plan."""
    plt = _plt()
    labels = [k for k, v in summary.items() if v.get("leverage") is not None and v.get("sustainable_share_cny") is not None]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.5 * max(len(labels), 3) + 1.5))
    y = np.arange(len(labels))
    lev = [summary[k]["leverage"] for k in labels]
    a1.barh(y, lev, color="C0")
    a1.set_yticks(y, labels)
    a1.invert_yaxis()
    a1.set_xlabel("leverage = benefit / annual share")
    a1.set_title("leverage per plan")
    ann = [summary[k]["sustainable_share_cny"] for k in labels]
    a2.barh(y, ann, color="C1")
    a2.set_yticks(y, [""] * len(labels))
    a2.invert_yaxis()
    a2.set_xlabel("sustainable share (CNY per member per period)")
    a2.set_title("sustainable share per plan")
    fig.tight_layout()
    return fig


def cross_subsidy(xs: pl.DataFrame) -> Any | None:
    """Heat map of the net cross-subsidy payer -> beneficiary group in the pooled plan (None below 2 groups)."""
    if xs.height == 0 or len(set(xs["payer_group"].to_list()) | set(xs["beneficiary_group"].to_list())) < 2:
        return None
    plt = _plt()
    d = xs.filter((pl.col("plan_file") == xs["plan_file"][0]) & (pl.col("plan") == xs["plan"][0]))
    names = sorted(set(d["payer_group"].to_list()) | set(d["beneficiary_group"].to_list()))
    grid = np.zeros((len(names), len(names)))
    for a, b, v in d.select("payer_group", "beneficiary_group", "net_cny_per_member_year").iter_rows():
        grid[names.index(a), names.index(b)] = v or 0.0
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names) + 3), max(3.5, 0.6 * len(names) + 2)))
    lim = float(np.nanmax(np.abs(grid))) or 1.0
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
    tick = [f"G{n}" if str(n).isdigit() else str(n) for n in names]
    ax.set_xticks(range(len(names)), tick, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_yticks(range(len(names)), tick)
    ax.grid(False)
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{grid[i, j]:,.1f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(grid[i, j]) > 0.55 * lim else "black")
    ax.set_xlabel("beneficiary group")
    ax.set_ylabel("payer group")
    ax.set_title(f"net cross-subsidy in pooled plan '{d['plan'][0]}'\n(CNY per payer member-year)", fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def class_cross_subsidy(cls: pl.DataFrame) -> Any | None:
    """Heat map of the cross-subsidy (CNY per member-year) by age band x factor level in the pooled plan."""
    if cls.height == 0:
        return None
    plt = _plt()
    bands = sorted(cls["age_band"].unique().to_list(), key=lambda b: int(b.split("-")[0].rstrip("+")))
    levels = sorted(cls["factor_level"].unique().to_list())
    grid = np.full((len(bands), len(levels)), np.nan)
    for b, lv, v in cls.select("age_band", "factor_level", "cross_subsidy_cny_per_year").iter_rows():
        grid[bands.index(b), levels.index(lv)] = v
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(levels) + 3.5), max(3.5, 0.55 * len(bands) + 1.8)))
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(levels)), levels)
    ax.set_yticks(range(len(bands)), bands)
    ax.grid(False)
    for i in range(len(bands)):
        for j in range(len(levels)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:,.0f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(grid[i, j]) > 0.55 * lim else "black")
    ax.set_xlabel(str(cls["factor"][0]))
    ax.set_ylabel("age band")
    ax.set_title(f"cross-subsidy in pooled plan '{cls['plan'][0]}' (CNY per member-year; + = overpays)", fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
