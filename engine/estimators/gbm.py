"""Gradient-boosted Poisson incidence model on cells (sklearn HistGradientBoostingRegressor).

Persistence is honest: scikit-learn has no portable format for a fitted booster and we
never pickle, so a saved :class:`PoissonGBM` stores its (aggregated) training cells, its
parameters and seed as Parquet + JSON, and :meth:`PoissonGBM.load` refits. The fit is
deterministic (fixed ``random_state``, no early-stopping split, cells sorted by key), so
the reloaded model predicts the same rates; ``load`` checks the training-data fingerprint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.estimators.features import default_factors
from engine.estimators._base import RateModel, _frame, _jsonable, aggregate_cells, data_fingerprint

_CAT_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Boolean)


class PoissonGBM(RateModel):
    """Poisson gradient boosting on cells: y = claims / exposure, sample_weight = exposure.

    Parameters
    ----------
    features : keys used (default: every key column except ``period`` and ``duration``,
        plus ``age`` when present).
    categorical : features treated as unordered categories (default: string / boolean
        columns; integer keys such as ``age`` or ``city_tier`` are ordered).
    max_iter, learning_rate, max_leaf_nodes, max_depth, min_samples_leaf, l2_regularization :
        passed to ``HistGradientBoostingRegressor`` (``min_samples_leaf`` counts cells).
    random_state : seed (the fit is deterministic for a given seed and data).
    exposure_col, claims_col : columns of the cells.

    Notes
    -----
    Minimising the exposure-weighted Poisson deviance of y = D / E is maximising the
    Poisson likelihood of D with mean E * rate, i.e. exposure as offset. Cells are first
    summed over the features (sufficient statistics) and sorted by them.
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        random_state: int = 0,
        exposure_col: str = "exposure_years",
        claims_col: str = "claims",
    ) -> None:
        self.features = features
        self.categorical = categorical
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state
        self.exposure_col = exposure_col
        self.claims_col = claims_col

    _fitted_attrs = ("model_", "features_")

    def _key_numbers(self) -> dict[str, Any]:
        e = self.train_.get_column(self.exposure_col)
        return {"training cells": self.train_.height, "exposure-years": float(e.sum()),
                "claims": float(self.train_.get_column(self.claims_col).sum()), "features": ", ".join(self.features_),
                "trees": int(self.model_.n_iter_)}

    @property
    def summary(self) -> pl.DataFrame:
        """Per feature: kind (categorical or ordered), number of levels (categorical) and range (ordered)."""
        self._check_fitted()
        rows = []
        for f in self.features_:
            s = self.train_.get_column(f)
            cat = f in self.levels_
            rows.append({"feature": f, "kind": "categorical" if cat else "ordered",
                         "levels": len(self.levels_[f]) if cat else int(s.n_unique()),
                         "min": None if cat else float(s.min()), "max": None if cat else float(s.max())})
        return pl.DataFrame(rows, schema={"feature": pl.String, "kind": pl.String, "levels": pl.Int64,
                                          "min": pl.Float64, "max": pl.Float64})

    def _encode(self, df: pl.DataFrame) -> np.ndarray:
        cols = []
        for f in self.features_:
            if f not in df.columns:
                raise DataError(f"cells: column '{f}' is required by the model")
            s = df.get_column(f)
            if f in self.levels_:  # a null factor is the level "missing" (engine.data.factor_levels)
                from engine.data.factor_levels import as_levels

                s = as_levels(s)
            elif s.null_count():
                raise DataError(f"cells: column '{f}' has {s.null_count()} null values")
            if f in self.levels_:
                lv = self.levels_[f]
                codes = s.cast(pl.String).replace_strict(lv, list(range(len(lv))), default=None,
                                                         return_dtype=pl.Float64)
                if codes.null_count():
                    bad = s.cast(pl.String).filter(codes.is_null()).unique().to_list()
                    raise DataError(f"cells: column '{f}' has levels not seen in training: {bad[:5]}")
                cols.append(codes.to_numpy())
            else:
                cols.append(s.cast(pl.Float64).to_numpy())
        return np.column_stack(cols) if cols else np.zeros((df.height, 0))

    @api_input(frames=("cells",))
    def fit(self, cells: pl.DataFrame | pl.LazyFrame) -> PoissonGBM:
        """Fit on cells; returns self."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        df = _frame(cells)
        if self.features is None:
            feats = default_factors(df) + (["age"] if "age" in df.columns else [])
        else:
            feats = [self.features] if isinstance(self.features, str) else list(self.features)
        if not feats:
            raise ConfigError("features: the cells have no key column to model")
        for f in feats:
            if f not in df.columns:
                raise ConfigError(f"cells: column '{f}' is required (features={feats})")
        cats = ([f for f in feats if isinstance(df.schema[f], _CAT_DTYPES)] if self.categorical is None
                else list(self.categorical))
        for c in cats:
            if c not in feats:
                raise ConfigError(f"categorical: '{c}' is not one of the features {feats}")
        train = aggregate_cells(df, feats, self.exposure_col, self.claims_col)
        self.features_ = feats
        from engine.data.factor_levels import as_levels

        self.levels_ = {c: [str(v) for v in as_levels(train.get_column(c)).unique().sort().to_list()] for c in cats}
        for c, lv in self.levels_.items():
            if len(lv) > 255:
                raise ConfigError(f"categorical: '{c}' has {len(lv)} levels; at most 255 are supported")
        X = self._encode(train)
        e = train.get_column(self.exposure_col).to_numpy()
        d = train.get_column(self.claims_col).to_numpy()
        if d.sum() <= 0:
            raise DataError("cells: no claims, so no incidence model can be fitted")
        model = HistGradientBoostingRegressor(
            loss="poisson", learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False, random_state=self.random_state,
            categorical_features=[f in self.levels_ for f in feats] if feats else None,
        )
        model.fit(X, d / e, sample_weight=e)
        self.model_ = model
        self.train_ = train
        self.data_fingerprint_ = data_fingerprint(df)
        self.train_fingerprint_ = data_fingerprint(train)
        self.fit_date_ = dt.date.today().isoformat()
        return self

    @property
    def columns_(self) -> list[str]:
        """Cell columns the fitted model reads."""
        self._check_fitted()
        return list(self.features_)

    @api_input(frames=("cells",))
    def predict(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Predicted annual incidence rate per row of ``cells``."""
        self._check_fitted()
        return self.model_.predict(self._encode(_frame(cells)))

    def save(self, path: str | Path) -> Path:
        """Save parameters, seed and the aggregated training cells (no pickle); load refits."""
        from engine.data.persist import save_model

        self._check_fitted()
        params = _jsonable(self.get_params(deep=False))
        extra = {"fitted": {"features": self.features_, "levels": self.levels_,
                            "train_fingerprint": self.train_fingerprint_},
                 "persistence": "refit from training.parquet with the stored parameters and seed"}
        return save_model(path, "PoissonGBM", params, {"training": self.train_},
                          data_fingerprint=self.data_fingerprint_, fit_date=self.fit_date_, extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> PoissonGBM:
        """Rebuild a saved model by refitting on its stored training cells (deterministic)."""
        from engine.data.persist import load_model

        meta, tables = load_model(path, "PoissonGBM")
        try:
            p = dict(meta["params"])
            for k in ("features", "categorical"):
                if isinstance(p.get(k), list):
                    p[k] = tuple(p[k])
            fit = meta["fitted"]
            train = tables["training"]
        except KeyError as exc:
            raise ModelError(f"{path}: incomplete PoissonGBM model (missing {exc})") from None
        if data_fingerprint(train) != fit.get("train_fingerprint"):
            raise ModelError(f"{path}: training.parquet does not match the stored fingerprint")
        p["features"] = tuple(fit["features"])
        p["categorical"] = tuple(fit["levels"])
        m = cls(**p).fit(train)
        m.data_fingerprint_ = meta.get("data_fingerprint")
        m.fit_date_ = meta.get("fit_date")
        return m


__all__ = ["PoissonGBM"]
