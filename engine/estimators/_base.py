"""What the incidence models on cells share: the :class:`RateModel` base, cell aggregation, scoring.

:class:`engine.estimators.glm.PoissonGLM` and :class:`engine.estimators.gbm.PoissonGBM` both
derive from :class:`RateModel`; this module is the home of a future common estimator contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine._estimator import Estimator, predict_rates
from engine.errors import DataError
from engine.estimators.features import member_covariates
from engine.estimators.metrics import mean_poisson_deviance


def _frame(cells: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    if isinstance(cells, pl.LazyFrame):
        return cells.collect()
    if not isinstance(cells, pl.DataFrame):
        raise DataError(f"cells: expected a polars DataFrame, got {type(cells).__name__}")
    return cells


def aggregate_cells(df: pl.DataFrame, keys: Sequence[str], exposure_col: str, claims_col: str) -> pl.DataFrame:
    """Sum exposure and claims over ``keys`` (sufficient statistics), keep positive exposure, sort by keys."""
    for c in (exposure_col, claims_col, *keys):
        if c not in df.columns:
            raise DataError(f"cells: column '{c}' is required")
    sums = [pl.col(exposure_col).cast(pl.Float64).sum(), pl.col(claims_col).cast(pl.Float64).sum()]
    agg = df.group_by(list(keys)).agg(sums).sort(list(keys)) if keys else df.select(sums)
    agg = agg.filter(pl.col(exposure_col) > 0)
    d = agg.get_column(claims_col)
    if d.null_count() or (d < 0).any() or agg.get_column(exposure_col).is_nan().any():
        raise DataError(f"cells: '{claims_col}' must be non-negative and '{exposure_col}' finite")
    if agg.height == 0:
        raise DataError(f"cells: no cell has positive '{exposure_col}'")
    return agg


class RateModel(Estimator):
    """What every incidence model on cells offers once it has ``predict``.

    Subclasses define ``predict(cells)`` (annual rates) and the attributes
    ``exposure_col`` and ``claims_col``.
    """

    exposure_col: str
    claims_col: str

    def predict(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:  # pragma: no cover - abstract
        """Predicted annual incidence rate (claims per exposure-year) per row of ``cells``."""
        raise NotImplementedError

    def predict_rate(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Deprecated alias of :meth:`predict` (removed in the next release)."""
        from engine._estimator import _warn_renamed

        _warn_renamed(type(self).__name__, "predict_rate", "predict")
        return self.predict(cells)

    @api_input(frames=("cells",))
    def predict_claims(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Predicted claims per row: rate x ``exposure_years``."""
        df = _frame(cells)
        if self.exposure_col not in df.columns:
            raise DataError(f"cells: column '{self.exposure_col}' is required to predict claims")
        return self.predict(df) * df.get_column(self.exposure_col).cast(pl.Float64).to_numpy()

    @api_input(frames=("cells",))
    def score(self, cells: pl.DataFrame | pl.LazyFrame) -> float:
        """Exposure-weighted mean Poisson deviance on ``cells`` (lower is better; see :mod:`engine.estimators.metrics`)."""
        df = _frame(cells)
        return mean_poisson_deviance(df.get_column(self.claims_col).to_numpy(), self.predict_claims(df),
                                     df.get_column(self.exposure_col).to_numpy())

    @api_input(frames=("members",), dates=("at",))
    def predict_members(self, members: pl.DataFrame | pl.LazyFrame, at: dt.date) -> pl.DataFrame:
        """Predicted annual rate of each member sharing on ``at`` (see :func:`score_members`)."""
        return score_members(self, members, at)

    @api_input(frames=("cells",))
    def plot_lorenz(self, cells: pl.DataFrame | pl.LazyFrame, ax: Any = None) -> Any:
        """Lorenz curve of the model's ranking on ``cells``; returns the matplotlib Axes."""
        from engine.estimators.metrics import plot_lorenz

        df = _frame(cells)
        return plot_lorenz(df.get_column(self.claims_col).to_numpy(), self.predict(df),
                           df.get_column(self.exposure_col).to_numpy(), ax=ax, label=type(self).__name__)


def data_fingerprint(df: pl.DataFrame) -> str:
    """SHA-256 fingerprint of the training cells (:func:`engine.data.persist.fingerprint`)."""
    from engine.data.persist import fingerprint

    return fingerprint(df)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


@api_input(frames=("members",), dates=("at",))
def score_members(model: Any, members: pl.DataFrame | pl.LazyFrame, at: dt.date) -> pl.DataFrame:
    """Predicted annual incidence rate of every member sharing on day ``at``.

    Parameters
    ----------
    model : fitted :class:`PoissonGLM` or :class:`PoissonGBM` (anything with ``columns_``
        and ``predict``).
    members : members frame of the data contract (``birth_date``, ``sex``, factors ...).
    at : scoring date.

    Returns
    -------
    DataFrame with ``member_id``, the model's columns (``age`` = attained age on ``at``,
    age last birthday, 29 February birthdays on 1 March in common years) and ``rate``.
    """
    cols = list(model.columns_)
    cov = member_covariates(members, at, cols)
    return cov.with_columns(pl.Series("rate", predict_rates(model, cov)))


__all__ = ["RateModel", "aggregate_cells", "data_fingerprint", "score_members"]
