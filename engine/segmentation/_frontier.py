"""Granularity frontier plot, bootstrap stability and persistence of a RiskSegmenter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.errors import ModelError
from engine.segmentation.metrics import benefit_per_cell, relativity_to_portfolio, weighted_ari
from engine.cells.sums import group_sums
from engine.segmentation._tree import rule_from_json, rule_to_json

KIND = "RiskSegmenter"


def plot_cv(frontier: pl.DataFrame, ax: Any = None) -> Any:
    """The K criterion: held-out Poisson deviance by K with one-standard-error bars; the chosen K marked.

    The error bar of K is the standard error of its difference to the lowest K
    (``cv_se_diff``, see :func:`engine.segmentation._cv.one_se_choice`); the dotted line is
    the lowest deviance plus its one-standard-error allowance.
    """
    if ax is None:
        from engine._optional import pyplot
        plt = pyplot()

        _, ax = plt.subplots(figsize=(6, 4))
    fr = frontier.filter(pl.col("cv_deviance").is_not_null())
    k, y, se = fr["k"].to_numpy(), fr["cv_deviance"].to_numpy(), fr["cv_se_diff"].to_numpy()
    ax.errorbar(k, y, yerr=se, marker="o", color="C0", capsize=3, label="held-out deviance +- 1 se")
    ax.axhline(float(y.min()), color="grey", ls=":", lw=1)
    rec = fr.filter(pl.col("recommended"))
    if rec.height:
        ax.scatter(rec["k"], rec["cv_deviance"], s=160, facecolors="none", edgecolors="C3",
                   label=f"chosen K={rec['k'][0]} (one-se rule)", zorder=3)
    ax.set_xticks(k)
    ax.set_xlabel("number of risk groups K")
    ax.set_ylabel("held-out Poisson deviance (sum over folds)")
    ax.set_title("choice of K (cross-validation)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_frontier(frontier: pl.DataFrame, ax: Any = None) -> Any:
    """Cross-subsidy removed (y) against the exposure-weighted share CV (x), one point per K.

    The recommended K is circled. With a cross-validated choice (``cv_deviance`` in the
    frontier) and no ``ax`` given, a second panel shows the criterion (:func:`plot_cv`);
    the returned ax is the frontier's. Needs the optional ``plot`` extra (matplotlib).
    """
    if ax is None:
        from engine._optional import pyplot
        plt = pyplot()

        if "cv_deviance" in frontier.columns and frontier["cv_deviance"].null_count() < frontier.height:
            _, (ax, axc) = plt.subplots(1, 2, figsize=(11, 4))
            plot_cv(frontier, ax=axc)
        else:
            _, ax = plt.subplots(figsize=(6, 4))
    x = frontier["share_cv_weighted"].to_numpy()
    y = frontier["cross_subsidy_removed"].to_numpy()
    ks = frontier["k"].to_numpy()
    ax.plot(x, y, marker="o", color="C0")
    for xi, yi, k in zip(x, y, ks):
        ax.annotate(f"K={k}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=8)
    rec = frontier.filter(pl.col("recommended"))
    if rec.height:
        ax.scatter(rec["share_cv_weighted"], rec["cross_subsidy_removed"], s=160, facecolors="none",
                   edgecolors="C3", label=f"recommended K={rec['k'][0]}")
        ax.legend(loc="lower right")
    ax.set_xlabel("share CV per period (exposure-weighted)")
    ax.set_ylabel("share of removable cross-subsidy removed")
    ax.set_title("granularity frontier")
    return ax


def bootstrap_ari(seg: Any, cells: pl.DataFrame, *, n_boot: int = 20, random_state: int = 0,
                  seed: int | None = None) -> dict[str, Any]:
    """Stability of a fitted segmentation: adjusted Rand index between it and refits on resampled claims.

    Notes
    -----
    Parametric bootstrap: claims*_c ~ Poisson(E_c r_c) with r_c the fitted model's
    rate (``numpy.random.default_rng(random_state)``; ``seed`` is a deprecated alias); the segmenter is refitted with the
    same parameters and K fixed at the fitted ``n_groups_``; the benefit per cell is
    frozen at its value on the original data. Agreement between the original and
    refitted groups of the distinct feature combinations is the exposure-weighted
    ARI (:func:`engine.segmentation.metrics.weighted_ari`). A ``rules`` plan does not
    depend on the claims and scores 1.
    """
    if seg.method == "rules":
        return {"ari_mean": 1.0, "ari_min": 1.0, "ari_sd": 0.0, "n_boot": n_boot, "ari": [1.0] * n_boot}
    if seed is not None:
        from engine._estimator import _warn_renamed

        _warn_renamed("bootstrap_ari", "seed", "random_state")
        random_state = seed
    from engine._estimator import predict_rates

    rng = np.random.default_rng(random_state)
    E = cells["exposure_years"].to_numpy().astype(float)
    mu = E * predict_rates(seg.model_, cells)
    b = benefit_per_cell(cells, seg.benefit)
    base_cells = cells.with_columns(pl.Series("_benefit", b))
    params = seg.get_params(deep=False)
    params.update(n_groups=seg.n_groups_, benefit="_benefit", features=seg.features_)
    units = seg.unit_groups_
    feats = seg.features_
    w = units.join(group_sums(cells, feats, ["exposure_years"]),
                   on=feats, how="left", maintain_order="left")["exposure_years"].fill_null(0.0).to_numpy()
    vals = []
    for _ in range(n_boot):
        cb = base_cells.with_columns(pl.Series("claims", rng.poisson(mu).astype(np.int64)))
        refit = type(seg)(**params)
        refit._skip_cv = True  # K is fixed: no cross-validation in the refits
        refit.fit(cb)
        lab = refit.assign(units.select(feats), unknown="null").fill_null(0).to_numpy()
        vals.append(weighted_ari(units["group"].to_numpy(), lab, w))
    v = np.asarray(vals)
    return {"ari_mean": float(v.mean()), "ari_min": float(v.min()), "ari_sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n_boot": n_boot, "ari": [float(x) for x in v]}


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return None if v is None else repr(v)


def save_segmenter(seg: Any, path: str | Path) -> Path:
    """Write ``groups``, ``units``, ``frontier`` (and ``base``) Parquet tables and model.json (rules as JSON)."""
    from engine.data.persist import save_model

    params = {k: _jsonable(list(v) if isinstance(v, tuple) else v) for k, v in seg.get_params(deep=False).items() if k != "model"}
    tables = {"groups": seg.groups_, "units": seg.unit_groups_, "frontier": seg.frontier_}
    if seg.base_ is not None:
        tables["base"] = seg.base_
    extra = {
        "fitted": {
            "features": seg.features_,
            "n_groups": seg.n_groups_,
            "recommended_k": seg.recommended_k_,
            "window_years": seg.window_years_,
            "floor_claims": seg.floor_claims_,
            "selection": getattr(seg, "selection_", None),
            "metrics": {k: float(v) for k, v in seg.metrics_.items()},
            "rules": None if seg.rules_ is None else [None if rs is None else [rule_to_json(r) for r in rs] for rs in seg.rules_],
            "model": type(seg.model_).__name__ if hasattr(seg, "model_") else None,
        }
    }
    return save_model(path, KIND, params, tables, data_fingerprint=getattr(seg, "data_fingerprint_", None), extra=extra)


def _current_groups(groups: pl.DataFrame) -> pl.DataFrame:
    """A groups table saved before ``relativity_to_portfolio``: its ``relativity`` was relative to the base rate
    (the rate when nothing was adjusted for); it becomes ``relativity_to_base`` and the relativity to the
    portfolio's crude rate is added (and kept under the deprecated name ``relativity``)."""
    if "relativity_to_base" in groups.columns or "relativity" not in groups.columns:
        return groups
    rel = relativity_to_portfolio(pl.col("claims"), pl.col("exposure_years"))
    return groups.rename({"relativity": "relativity_to_base"}).with_columns(
        rel.alias("relativity_to_portfolio"), rel.alias("relativity"))


def load_segmenter(cls: Any, path: str | Path) -> Any:
    """Rebuild a fitted segmenter from :func:`save_segmenter` output (no pickles)."""
    from engine.data.persist import load_model

    meta, tables = load_model(path, kind=KIND)
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict) or "groups" not in tables:
        raise ModelError(f"{path}: RiskSegmenter model lacks its fitted section or groups table")
    params = {k: v for k, v in meta["params"].items() if k in cls._get_param_names()}
    seg = cls(**params)
    seg.features_ = list(fitted["features"])
    seg.n_groups_ = int(fitted["n_groups"])
    seg.recommended_k_ = int(fitted["recommended_k"])
    seg.window_years_ = float(fitted["window_years"])
    seg.floor_claims_ = float(fitted["floor_claims"])
    seg.selection_ = fitted.get("selection") or ""
    seg.metrics_ = dict(fitted["metrics"])
    seg.rules_ = None if fitted["rules"] is None else [None if rs is None else [rule_from_json(r) for r in rs] for rs in fitted["rules"]]
    seg.groups_ = _current_groups(tables["groups"])
    seg.unit_groups_ = tables["units"]
    seg.frontier_ = tables["frontier"]
    seg.base_ = tables.get("base")
    seg.data_fingerprint_ = meta.get("data_fingerprint")
    return seg
