"""A small fallback incidence model for segmentation when ``engine.estimators.glm`` is not available.

:class:`CellPoissonModel` is a ridge-penalised Poisson GLM on cells with one-hot
main effects, 5-year age bands plus a linear age term, and all pairwise
interactions of the categorical features. It offers the ``fit(cells)`` /
``predict(cells)`` protocol that :class:`engine.segmentation.RiskSegmenter`
needs from any incidence model.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import polars as pl

from engine._estimator import Estimator, _warn_renamed
from engine.errors import DataError, ModelError
from engine.cells.sums import group_sums

SUMS = {"exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount"}


def key_columns(cells: pl.DataFrame) -> list[str]:
    """The key columns of cells: every column that is neither a sum nor ``period``."""
    return [c for c in cells.columns if c not in SUMS and c != "period" and not c.startswith("_")]


class CellPoissonModel(Estimator):
    """Poisson GLM on cells: log rate = one-hot main effects + pairwise categorical interactions.

    Parameters
    ----------
    features : keys used (default: all key columns of the cells at fit).
    ordered : integer keys modelled as 5-year bands plus a linear term.
    alpha : L2 penalty of ``sklearn.linear_model.PoissonRegressor`` (per unit weight).

    Notes
    -----
    Fitted on the cells summed over ``period``: y = claims / exposure_years,
    sample_weight = exposure_years, which maximises the Poisson likelihood of the
    counts with log(exposure) offset.
    """

    def __init__(self, features: Sequence[str] | None = None, ordered: Sequence[str] = ("age", "duration"), alpha: float = 1e-6) -> None:
        self.features = features
        self.ordered = ordered
        self.alpha = alpha

    _fitted_attrs = ("glm_",)

    def _key_numbers(self) -> dict[str, object]:
        return {"features": ", ".join(self.features_), "coefficients": int(self.glm_.coef_.size)}

    @property
    def summary(self) -> pl.DataFrame:
        """Per feature: kind (ordered or categorical) and number of levels (5-year bands for ordered keys)."""
        self._check_fitted()
        return pl.DataFrame({"feature": list(self.features_),
                             "kind": ["ordered" if f in self.ordered else "categorical" for f in self.features_],
                             "levels": [len(self.levels_[f]) for f in self.features_]},
                            schema={"feature": pl.String, "kind": pl.String, "levels": pl.Int64})

    def _design(self, cells: pl.DataFrame) -> np.ndarray:
        cols = [np.ones(cells.height)]
        cats = []
        for f in self.features_:
            v = cells.get_column(f).to_numpy()
            if f in self.ordered:
                a = v.astype(float)
                cols.append((a - self.center_[f]) / self.scale_[f])
                band = np.floor(a / 5.0)
                for lv in self.levels_[f][1:]:
                    cols.append((band == lv).astype(float))
            else:
                cats.append(f)
                for lv in self.levels_[f][1:]:
                    cols.append((v == lv).astype(float))
        for f1, f2 in combinations(cats, 2):
            v1, v2 = cells.get_column(f1).to_numpy(), cells.get_column(f2).to_numpy()
            for l1 in self.levels_[f1][1:]:
                for l2 in self.levels_[f2][1:]:
                    cols.append(((v1 == l1) & (v2 == l2)).astype(float))
        return np.column_stack(cols)

    def fit(self, cells: pl.DataFrame) -> CellPoissonModel:
        """Fit on cells (``exposure_years``, ``claims`` and the keys); returns self."""
        from sklearn.linear_model import PoissonRegressor

        feats = list(self.features) if self.features is not None else key_columns(cells)
        missing = [f for f in feats if f not in cells.columns]
        if missing:
            raise DataError(f"cells: column '{missing[0]}' needed by the incidence model is missing")
        self.features_ = feats
        if feats:
            agg = group_sums(cells, feats, ["exposure_years", "claims"])
        else:
            agg = pl.DataFrame({"exposure_years": [float(np.sum(cells["exposure_years"].to_numpy()))],
                                "claims": [float(np.sum(cells["claims"].to_numpy()))]})
        agg = agg.filter(pl.col("exposure_years") > 0)
        self.levels_, self.center_, self.scale_ = {}, {}, {}
        for f in feats:
            v = agg.get_column(f).to_numpy()
            if f in self.ordered:
                a = v.astype(float)
                self.center_[f] = float(a.mean())
                self.scale_[f] = float(a.std()) or 1.0
                self.levels_[f] = sorted(set(np.floor(a / 5.0).tolist()))
            else:
                self.levels_[f] = sorted(set(v.tolist()), key=lambda x: (str(type(x)), x))
        X = self._design(agg)
        e = agg.get_column("exposure_years").to_numpy().astype(float)
        y = agg.get_column("claims").to_numpy().astype(float) / e
        self.glm_ = PoissonRegressor(alpha=self.alpha, fit_intercept=False, solver="newton-cholesky", max_iter=200, tol=1e-10)
        self.glm_.fit(X, y, sample_weight=e / e.mean())
        return self

    def predict(self, cells: pl.DataFrame) -> np.ndarray:
        """Predicted annual incidence rate per row of ``cells``."""
        self._check_fitted()
        return self.glm_.predict(self._design(cells))

    def predict_rate(self, cells: pl.DataFrame) -> np.ndarray:
        """Deprecated alias of :meth:`predict` (removed in the next release)."""
        _warn_renamed("CellPoissonModel", "predict_rate", "predict")
        return self.predict(cells)
