"""RiskSegmenter: split a pool into homogeneous risk groups with a credibility floor and a granularity frontier.

Methods: ``tree`` (Poisson regression tree with readable rules), ``cluster``
(optimal 1-D partition of the model's predicted risk by dynamic programming) and
``rules`` (a user's existing plan, so the same metrics apply). See
``docs/segmentation.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine._estimator import Estimator, _warn_renamed, predict_rates, print_frame
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.segmentation.metrics import (
    frontier_table,
    segmentation_metrics,
    window_years,
)
from engine.segmentation._model import CellPoissonModel, key_columns
from engine.cells.sums import group_sums
from engine.segmentation._rules import describe_units, parse_rules, rules_for_labels
from engine.segmentation._tree import Rule, make_units, rule_from_json, rule_text, rule_to_json
from engine.conventions import FEE, FULL_CREDIBILITY_CLAIMS
from engine.segmentation._search import cluster_partitions, rules_partitions, tree_partitions
from engine.segmentation._assign import assign_groups
from engine.segmentation._select import claims_floor, floor_source

METHODS = ("tree", "cluster", "rules")


def default_model(cells: pl.DataFrame | None = None, features: Sequence[str] | None = None) -> Any:
    """The default incidence model: ``engine.estimators.glm.PoissonGLM`` with the segmentation's interactions.

    Factors are the categorical key columns of ``cells``, age a spline when ``age`` is a
    key, and every pair of categorical segmentation features interacts (the cluster
    method partitions the model's risk, so it must be able to express the interactions
    that define the groups). Falls back to :class:`CellPoissonModel` when ``engine.estimators.glm``
    is not installed.
    """
    try:
        from engine.estimators.glm import PoissonGLM
    except ImportError:
        return CellPoissonModel()
    if cells is None:
        return PoissonGLM()
    factors = [k for k in key_columns(cells) if k not in ("age", "duration")]
    cats = [f for f in (features if features is not None else factors) if f in factors]
    return PoissonGLM(factors=factors, age="spline" if "age" in cells.columns else None,
                      interactions=list(combinations(cats, 2)), alpha=1e-6)


class RiskSegmenter(Estimator):
    """Segment cells into risk groups (the estimator contract of :mod:`engine._estimator`).

    :meth:`predict` gives each row's expected annual rate (base rate x the group's `relativity_to_base`);
    :meth:`assign` gives its group label (1..K), a different thing.

    Parameters
    ----------
    method : "tree", "cluster" or "rules".
    max_groups : largest number of groups K considered (the frontier runs K = 1..max_groups).
    n_groups : use exactly this K (the largest feasible K <= n_groups); default: the K chosen by
        cross-validation (``n_folds``), skipped when n_groups is given.
    min_claims : credibility floor: every group holds at least this many observed claims over the
        fitting data (default 50: the 95% Garwood interval of its rate is about +-28%).
    max_rel_width : optional credibility floor as the largest relative width (upper - lower) / rate
        of a group's 95% Garwood interval (0.5 -> 66 claims); the stricter of the floors applies.
    min_expected_claims : deprecated (DeprecationWarning): the old floor on expected claims per
        sharing period, which mixed credibility with share stability. Share stability belongs to
        plan design (``engine.plans.stability.plan_stability``, ``optimise_plans(target_share_cv=...)``).
        When given, it replaces ``min_claims`` by min_expected_claims x 12 T / period_months.
    min_credibility : optional floor on limited-fluctuation credibility Z = min(1, sqrt(D_g / 1082.2)).
    period_months : sharing period length in months (1 = monthly shares), for the per-period metrics.
    monotone_age : group rates must not fall with age (within each combination of the other features).
    contiguous_age : each group's ages form one band within each combination of the other features.
    features : segmentation keys (default: every key column of the cells except ``period``).
    adjust_for : keys whose effect is divided out first (e.g. ("age", "sex")); groups are then
        relative-risk groups on top of a base rate by these keys.
    ordered_features : integer keys split by thresholds (bands); the others are categorical.
    model : incidence model with ``fit(cells)`` / ``predict(cells)`` (default engine.estimators.glm.PoissonGLM).
    rules : config for ``method="rules"`` (see :func:`engine.segmentation._rules.parse_rules`).
    other : for ``rules``: "error" (unmatched cells raise) or "group" (they form a group "other").
    min_gain : minimum Poisson deviance reduction of a tree split (10.83 = chi2(1) at 0.1%).
    max_leaves : leaves grown by the tree before its leaves are merged back into conjunctions (default
        3 * max_groups; 2 * max_groups with merge_leaves; max_groups with contiguous or monotone age).
    max_clauses : at most this many features in a group's rule (a tree leaf is one conjunction of
        an age band and sets of levels); default 3.
    search_depth : the first ``search_depth`` trees of the best-first sequence (1 = the root, 2 = the
        root and its two children) are restarted with the best split of every feature at every leaf,
        and each start is grown best-first: candidates for every K besides the greedy tree, so a
        wrong first split does not fix the rules for good (default 2; 0 = the greedy tree only).
        Used with the default conjunction groups (not with merge_leaves, contiguous or monotone age).
    lookahead : tree splits are scored by their gain plus their children's best gains, so an
        interaction whose first split gains little alone is found (default False).
    merge_leaves : merge tree leaves into K groups by the optimal DP (groups become ORs of
        conjunctions, not marketable as one rule); default False: every group is one leaf.
    leaf_floor_fraction : a tree leaf grown before the merges needs this fraction of the claims floor
        (default conjunction groups and merge_leaves; the groups themselves need the whole floor).
    n_folds : folds of the cross-validation choosing K (each cell kept whole in one fold, dealt
        by ``random_state``; see :mod:`engine.segmentation._cv`).
    min_marginal_gain : deprecated: the old greedy K rule (each extra group removes at least this
        share of the removable cross-subsidy); when given it replaces cross-validation.
    cluster_loss : "deviance" or "sse" (of the log-rate) for the DP partition.
    max_rule_terms : a cluster group is written as rules (an OR of at most this many
        conjunctions reproducing it exactly) when possible, else as its factor profile.
    benefit : benefit per claim for cross-subsidy (see :func:`engine.segmentation.metrics.benefit_per_cell`).
    fee : management fee loading of the shares (default :data:`engine.conventions.FEE`, like every share).
    window_years : length of the data window (default: from ``period``).
    random_state : seed of the cross-validation folds and of the bootstrap in :meth:`stability`.

    Notes
    -----
    K is chosen on the whole frontier K = 1..max_groups: the smallest K whose held-out
    Poisson deviance is within one standard error of the lowest
    (:func:`engine.segmentation._cv.one_se_choice`); ``selection_`` says why, with the numbers.
    """

    def __init__(
        self,
        method: str = "tree",
        max_groups: int = 8,
        n_groups: int | None = None,
        min_claims: float = 50.0,
        max_rel_width: float | None = None,
        min_expected_claims: float | None = None,
        min_credibility: float | None = None,
        period_months: float = 1,
        monotone_age: bool = False,
        contiguous_age: bool = False,
        features: Sequence[str] | None = None,
        adjust_for: Sequence[str] = (),
        ordered_features: Sequence[str] = ("age", "duration"),
        model: Any = None,
        rules: Any = None,
        other: str = "error",
        min_gain: float = 10.83,
        max_leaves: int | None = None,
        max_clauses: int | None = 3,
        search_depth: int = 2,
        lookahead: bool = False,
        merge_leaves: bool = False,
        leaf_floor_fraction: float = 0.25,
        n_folds: int = 5,
        min_marginal_gain: float | None = None,
        cluster_loss: str = "deviance",
        max_rule_terms: int = 6,
        benefit: Any = None,
        fee: float = FEE,
        window_years: float | None = None,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.max_groups = max_groups
        self.n_groups = n_groups
        self.min_claims = min_claims
        self.max_rel_width = max_rel_width
        self.min_expected_claims = min_expected_claims
        self.min_credibility = min_credibility
        self.period_months = period_months
        self.monotone_age = monotone_age
        self.contiguous_age = contiguous_age
        self.features = features
        self.adjust_for = adjust_for
        self.ordered_features = ordered_features
        self.model = model
        self.rules = rules
        self.other = other
        self.min_gain = min_gain
        self.max_leaves = max_leaves
        self.max_clauses = max_clauses
        self.search_depth = search_depth
        self.lookahead = lookahead
        self.merge_leaves = merge_leaves
        self.n_folds = n_folds
        self.leaf_floor_fraction = leaf_floor_fraction
        self.min_marginal_gain = min_marginal_gain
        self.cluster_loss = cluster_loss
        self.max_rule_terms = max_rule_terms
        self.benefit = benefit
        self.fee = fee
        self.window_years = window_years
        self.random_state = random_state

    _fitted_attrs = ("groups_",)

    def _key_numbers(self) -> dict[str, Any]:
        m = self.metrics_
        return {"groups K": self.n_groups_, "recommended K": self.recommended_k_, "features": ", ".join(self.features_),
                "claims floor": self.floor_claims_,
                **{k: float(v) for k, v in list(m.items())[:4]}}

    # ------------------------------------------------------------------ validation
    def _check(self, cells: pl.DataFrame) -> list[str]:
        if self.method not in METHODS:
            raise ConfigError(f"method: '{self.method}' is not one of {', '.join(METHODS)}")
        if not isinstance(self.max_groups, int) or self.max_groups < 1:
            raise ConfigError(f"max_groups: must be a positive integer, got {self.max_groups!r}")
        if self.n_groups is not None and (not isinstance(self.n_groups, int) or self.n_groups < 1):
            raise ConfigError(f"n_groups: must be a positive integer or None, got {self.n_groups!r}")
        if self.min_claims is None or self.min_claims < 0:
            raise ConfigError(f"min_claims: must be >= 0, got {self.min_claims!r}")
        if self.max_rel_width is not None and not self.max_rel_width > 0:
            raise ConfigError(f"max_rel_width: must be > 0, got {self.max_rel_width!r}")
        if self.min_expected_claims is not None and self.min_expected_claims < 0:
            raise ConfigError("min_expected_claims: must be >= 0")
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ConfigError(f"n_folds: must be an integer >= 2, got {self.n_folds!r}")
        if self.max_clauses is not None and (not isinstance(self.max_clauses, int) or self.max_clauses < 1):
            raise ConfigError(f"max_clauses: must be a positive integer or None, got {self.max_clauses!r}")
        if not isinstance(self.search_depth, int) or self.search_depth < 0:
            raise ConfigError(f"search_depth: must be an integer >= 0, got {self.search_depth!r}")
        if self.min_credibility is not None and not 0 <= self.min_credibility <= 1:
            raise ConfigError("min_credibility: must lie in [0, 1]")
        if not self.period_months or self.period_months <= 0:
            raise ConfigError("period_months: must be > 0")
        if self.other not in ("error", "group"):
            raise ConfigError(f"other: '{self.other}' is not one of 'error', 'group'")
        if not isinstance(cells, pl.DataFrame):
            raise DataError("cells: expected a polars DataFrame (output of engine.exposure)")
        for c in ("exposure_years", "claims"):
            if c not in cells.columns:
                raise DataError(f"cells: required column '{c}' is missing")
        feats = list(self.features) if self.features is not None else [c for c in key_columns(cells) if c not in self.adjust_for]
        if self.method == "rules" and self.features is None:
            feats = sorted({f for _, r in parse_rules(self.rules, tuple(self.ordered_features)) for f in r})
        if not feats:
            raise ConfigError("features: at least one segmentation feature is needed (cells have no key left)")
        for f in [*feats, *self.adjust_for]:
            if f not in cells.columns:
                raise DataError(f"cells: feature column '{f}' is missing")
            if cells.get_column(f).null_count():
                raise DataError(f"cells: feature column '{f}' has nulls")
        for f in feats:
            if f in self.ordered_features and not cells.schema[f].is_integer():
                raise DataError(f"cells: ordered feature '{f}' must be an integer column")
        if cells.height == 0 or float(cells.get_column("exposure_years").sum()) <= 0:
            raise DataError("cells: no exposure")
        if (cells.get_column("exposure_years") < 0).any() or (cells.get_column("claims") < 0).any():
            raise DataError("cells: exposure_years and claims must be >= 0")
        return feats

    # ------------------------------------------------------------------ fit
    def _base_rate(self, cells: pl.DataFrame) -> np.ndarray:
        """Base rate per cell by ``adjust_for`` keys: (D_k + 1) / (E_k + 1 / rbar), smoothed towards rbar."""
        if not self.adjust_for:
            self.base_ = None
            return np.ones(cells.height)
        keys = list(self.adjust_for)
        rbar = float(cells["claims"].sum()) / float(cells["exposure_years"].sum())
        if rbar <= 0:
            raise DataError("cells: adjust_for needs at least one claim")
        self.base_ = (
            group_sums(cells, keys, ["claims", "exposure_years"])
            .with_columns(((pl.col("claims") + 1.0) / (pl.col("exposure_years") + 1.0 / rbar)).alias("base_rate"))
            .select(*keys, "base_rate").sort(keys)
        )
        return self._lookup_base(cells)

    def _lookup_base(self, cells: pl.DataFrame) -> np.ndarray:
        if self.base_ is None:
            return np.ones(cells.height)
        keys = [c for c in self.base_.columns if c != "base_rate"]
        j = cells.select(keys).with_row_index("_i").join(self.base_, on=keys, how="left").sort("_i")
        b = j.get_column("base_rate")
        if b.null_count():
            raise DataError(f"cells: {b.null_count()} rows have {', '.join(keys)} values without a base rate")
        return b.to_numpy()

    @api_input(frames=("cells",))
    def fit(self, cells: pl.DataFrame) -> RiskSegmenter:
        """Fit the segmentation on ``cells`` (DataFrame or LazyFrame); returns self."""
        if isinstance(cells, pl.LazyFrame):
            cells = cells.collect()
        feats = self._check(cells)
        self.features_ = feats
        from engine.data.persist import fingerprint

        self.data_fingerprint_ = fingerprint(cells, ignore_row_order=True)
        self.window_years_ = float(self.window_years) if self.window_years else window_years(cells)
        base = self._base_rate(cells)
        model = copy.deepcopy(self.model) if self.model is not None else default_model(cells, feats)
        self.model_ = model.fit(cells) or model
        pred = predict_rates(self.model_, cells)
        if pred.shape != (cells.height,) or not np.all(np.isfinite(pred)) or np.any(pred < 0):
            raise ModelError("model: predict(cells) must return one finite non-negative rate per cell")
        E = cells["exposure_years"].to_numpy().astype(float)
        work = cells.select(feats).with_columns(
            pl.Series("E", E), pl.Series("D", cells["claims"].to_numpy().astype(float)),
            pl.Series("M", E * base), pl.Series("mu", E * pred),
        )
        ufr = group_sums(work, feats, ["E", "D", "M", "mu"])
        units = make_units(ufr, feats, list(self.ordered_features))
        self.units_ = units
        floor = claims_floor(self)
        self.floor_claims_ = float(floor)
        age = "age" if "age" in feats else None
        rules_by_k: dict[int, list[Rule]] = {}
        if self.method == "tree":
            parts, rules_by_k = tree_partitions(self, units, floor, age)
        elif self.method == "cluster":
            parts = cluster_partitions(self, units, floor, age)
        else:
            parts, rules_by_k, self.group_names_ = rules_partitions(self, units)
        if self.method != "rules":  # every group of every K meets the floor (the tree's root may not)
            parts = {k: lab for k, lab in parts.items()
                     if np.bincount(lab, weights=units.D, minlength=k).min() >= floor - 1e-9}
        if not parts:
            raise DataError(f"cells: no segmentation meets the floor of {floor:.1f} claims per group "
                            f"({floor_source(self)}); the pool is too small")
        self._select(units, parts, floor, age, work)
        self._finish(cells, units, parts, rules_by_k, pred, base)
        return self

    def _select(self, units: Any, parts: dict, floor: float, age: str | None, work: pl.DataFrame) -> None:
        """Cross-validated choice of K (``cv_``, ``cv_k_``, ``selection_``); see :mod:`engine.segmentation._select`."""
        from engine.segmentation._select import select_k

        cu = self._cell_units(work, units)
        select_k(self, units, parts, floor, age, cu, *(work[c].to_numpy() for c in ("D", "M", "mu")))

    def _finish(self, cells: pl.DataFrame, units: Any, parts: dict, rules_by_k: dict, pred: np.ndarray, base: np.ndarray) -> None:
        feats = self.features_
        cell_unit = self._cell_units(cells, units)
        mkw = {"benefit": self.benefit, "period_months": float(self.period_months), "window": self.window_years_,
               "base_rate": base if self.base_ is not None else None, "fee": self.fee}
        cell_parts = {k: lab[cell_unit] + 1 for k, lab in parts.items()}
        mm = 0.05 if self.min_marginal_gain is None else self.min_marginal_gain
        self.frontier_, k_rec = frontier_table(cells, cell_parts, cell_unit, pred, min_marginal=mm, metric_kw=mkw)
        if self.min_marginal_gain is None and self.method != "rules":
            k_rec = self.cv_k_ if self.cv_k_ is not None else (self.n_groups or min(parts))
            k_rec = max([kk for kk in parts if kk <= k_rec], default=min(parts))
            fr = self.frontier_.with_columns((pl.col("k") == k_rec).alias("recommended"))
            if self.cv_ is not None:
                fr = fr.join(self.cv_.drop("chosen"), on="k", how="left")
            self.frontier_ = fr
        elif self.min_marginal_gain is not None:
            self.selection_ += f": K={k_rec}"
        self.recommended_k_ = k_rec
        if self.method == "rules":
            k = next(iter(parts))
        elif self.n_groups is not None:
            k = max([kk for kk in parts if kk <= self.n_groups], default=min(parts))
        else:
            k = k_rec
        self.n_groups_ = int(k)
        self.partitions_ = parts
        self.unit_groups_ = units.frame.select(feats).with_columns(pl.Series("group", parts[k] + 1, dtype=pl.Int32)) if feats else pl.DataFrame({"group": [1]}, schema={"group": pl.Int32})
        table, self.metrics_ = segmentation_metrics(cells, cell_parts[k], pred, **mkw)
        self.rules_ = rules_by_k.get(k)
        if self.rules_ is None and k > 1:  # cluster: exact rules where a few conjunctions suffice
            self.rules_ = rules_for_labels(units, parts[k], max_terms=self.max_rule_terms)
        elif self.rules_ is None:
            self.rules_ = [[{}]]
        texts, names = [], []
        for g in range(k):
            if self.rules_ is not None and self.rules_[g] is not None:
                texts.append(" | ".join(rule_text(r, feats) for r in self.rules_[g]))
            elif self.rules_ is not None:
                texts.append("no other group matches")
            else:
                texts.append(describe_units(units, parts[k] == g))
            names.append(self.group_names_[g] if self.method == "rules" else f"G{g + 1}")
        self.groups_ = table.with_columns(pl.col("group").cast(pl.Int32), pl.Series("name", names),
                                          pl.Series("rule", texts),
                                          (pl.col("exposure_years") / self.window_years_).alias("members"),
                                          (pl.col("claims") >= self.floor_claims_ - 1e-9).alias("meets_floor"),
                                          ).select("group", "name", "rule", pl.exclude("group", "name", "rule"))
        from engine.segmentation._select import group_notes

        self.groups_ = self.groups_.with_columns(pl.Series("note", group_notes(self, units, self.groups_), pl.String))

    def _cell_units(self, cells: pl.DataFrame, units: Any) -> np.ndarray:
        feats = self.features_
        if not feats:
            return np.zeros(cells.height, np.int64)
        u = units.frame.select(feats).with_row_index("_u")
        j = cells.select(feats).with_row_index("_i").join(u, on=feats, how="left").sort("_i")
        return j.get_column("_u").to_numpy().astype(np.int64)

    # ------------------------------------------------------------------ use
    def _fitted(self) -> None:
        self._check_fitted()

    @api_input(frames=("frame",), dates=("at",))
    def assign(self, frame: pl.DataFrame, at: Any = None, unknown: str = "error") -> pl.Series:
        """Group id (Int32, 1..K) of every row of ``frame`` (cells or members).

        Members need ``birth_date`` and a date ``at`` when ``age`` is a feature:
        attained age (age last birthday) on ``at`` is used; likewise ``duration``
        (completed months since ``join_date``) on ``at``. Rows whose feature values
        match no group (an unseen category, or a rules plan without "other") raise
        :class:`DataError` when ``unknown="error"`` or get null when ``unknown="null"``.
        """
        self._fitted()
        return assign_groups(frame, self.features_, self.rules_, getattr(self, "unit_groups_", None), at, unknown)

    @api_input(frames=("cells",))
    def predict(self, cells: pl.DataFrame) -> np.ndarray:
        """Annual rate per row implied by the segmentation: base rate x the group's ``relativity_to_base``
        (claims / expected claims at the base rate; the group's rate when nothing is adjusted for)."""
        g = self.assign(cells).to_numpy()
        rel = self.groups_.sort("group")["relativity_to_base"].fill_nan(0.0).to_numpy()
        return self._lookup_base(cells) * rel[g - 1]

    def predict_rate(self, cells: pl.DataFrame) -> np.ndarray:
        """Deprecated alias of :meth:`predict` (removed in the next release)."""
        _warn_renamed("RiskSegmenter", "predict_rate", "predict")
        return self.predict(cells)

    @property
    def summary(self) -> pl.DataFrame:
        """Per-group table: group, name, rule, members, exposure, claims, rate with Garwood interval, volume, CV, cross-subsidy.

        ``members`` is the mean number of members at risk over the data window
        (exposure-years / T); why this K was chosen is in ``selection_``.
        """
        self._fitted()
        cols = [c for c in ("members",) if c in self.groups_.columns]
        return self.groups_.select("group", "name", "rule", *cols, "exposure_years", "claims", "rate", "rate_lower",
                                   "rate_upper", "relativity_to_portfolio", "expected_claims_per_period", "share_cv", "credibility",
                                   *[c for c in ("note",) if c in self.groups_.columns],
                                   "cross_subsidy", "cross_subsidy_pct")

    def print_summary(self, decimals: int = 4) -> None:
        """Print the groups and the headline metrics with rich, floats to ``decimals`` significant digits."""
        self._fitted()
        print_frame(self.summary, f"risk groups ({self.method}, K={self.n_groups_}, recommended K={self.recommended_k_})",
                    decimals)
        print(f"K: {getattr(self, 'selection_', '')}")
        print_frame(pl.DataFrame({"metric": list(self.metrics_), "value": [float(v) for v in self.metrics_.values()]}),
                    "metrics", decimals)

    def plot_frontier(self, ax: Any = None) -> Any:
        """Plot cross-subsidy removed against share volatility over K; returns the matplotlib ax."""
        from engine.segmentation._frontier import plot_frontier

        self._fitted()
        return plot_frontier(self.frontier_, ax=ax)

    @api_input(frames=("cells",))
    def stability(self, cells: pl.DataFrame, n_boot: int = 20) -> dict[str, float]:
        """Bootstrap adjusted Rand index of the fitted segmentation (see engine.segmentation._frontier.bootstrap_ari)."""
        from engine.segmentation._frontier import bootstrap_ari

        self._fitted()
        if not hasattr(self, "model_"):
            raise ModelError("stability: needs the incidence model of a fit (a loaded segmentation has none); refit")
        self.stability_ = bootstrap_ari(self, cells, n_boot=n_boot, random_state=self.random_state)
        return self.stability_

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save to a model directory (Parquet tables + model.json; the incidence model is not included)."""
        from engine.segmentation._frontier import save_segmenter

        self._fitted()
        return save_segmenter(self, path)

    @classmethod
    def load(cls, path: str | Path) -> RiskSegmenter:
        """Load a segmentation saved by :meth:`save`; it can assign, predict and summarise."""
        from engine.segmentation._frontier import load_segmenter

        return load_segmenter(cls, path)


__all__ = ["RiskSegmenter", "default_model", "rule_from_json", "rule_to_json"]
