"""The one estimator contract of fentan: estimators and result objects behave alike.

Estimators (:class:`~engine.glm.PoissonGLM`, :class:`~engine.gbm.PoissonGBM`,
:class:`~engine.segmentation.RiskSegmenter`, :class:`~engine.credibility.BuhlmannStraub`,
:class:`~engine.select.SelectFactors`, :class:`~engine.segment_model.CellPoissonModel`)
derive from :class:`Estimator`, i.e. from scikit-learn's ``BaseEstimator``:

- ``__init__`` stores its parameters unchanged; they are validated in ``fit``;
  ``get_params``, ``set_params``, ``sklearn.base.clone`` and ``repr`` come from scikit-learn;
- ``fit`` returns ``self``; fitted attributes end in ``_``; use before ``fit`` raises
  :class:`NotFittedError` (both an :class:`~engine.errors.ModelError` and scikit-learn's
  ``NotFittedError``), via ``sklearn.utils.validation.check_is_fitted``;
- ``summary`` is a property returning a polars DataFrame, ``print_summary(decimals=)``
  prints it, every ``plot_*(..., ax=None)`` returns the matplotlib Axes it drew on;
- ``_repr_html_`` gives a compact, escaped HTML card (class name, parameters that differ
  from the defaults, key fitted numbers) for notebooks.

Names shared by every class: ``random_state`` (seed), ``exposure_col`` and ``claims_col``
(cell columns), ``predict(cells)`` (expected annual rate per row, a numpy array).
:meth:`RiskSegmenter.assign <engine.segmentation.RiskSegmenter.assign>` is a different
thing (group labels) and keeps its name. Old names (``exposure``, ``claims``,
``predict_rate``) are deprecated aliases for one release and warn with
:class:`DeprecationWarning`.

Result objects (:class:`~engine.projection.ProjectionResult`,
:class:`~engine.decompose.ShareDrivers`, :class:`~engine.compare.ComparisonResult`,
:class:`~engine.migration.MigrationResult`, :class:`~engine.optimise.OptimiseResult`,
:class:`~engine.validate.ValidationResult`) mix in :class:`ResultMixin` for the same
``summary`` / ``print_summary`` / ``_repr_html_`` behaviour; that half lives in
:mod:`engine._results`, which does not import scikit-learn (result objects are built by
commands that must start fast).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from engine._results import ResultMixin, _html_card, print_frame
from engine._results import warn_renamed as _warn_renamed
from engine.errors import ModelError

__all__ = ["Estimator", "NotFittedError", "ResultMixin", "predict_rates", "print_frame"]


class NotFittedError(ModelError, _SklearnNotFittedError):
    """An estimator is used before ``fit`` (or ``load``).

    It is a :class:`~engine.errors.ModelError` (so the CLI reports it in one line) and
    scikit-learn's ``NotFittedError`` (so sklearn tooling recognises it).
    """


class _RenamedParam:
    """Class attribute: the old name of a parameter reads and writes the new one, with a warning."""

    def __init__(self, new: str) -> None:
        self.new = new

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        _warn_renamed(type(obj).__name__, self.old, self.new)
        return getattr(obj, self.new)

    def __set__(self, obj: Any, value: Any) -> None:
        _warn_renamed(type(obj).__name__, self.old, self.new)
        setattr(obj, self.new, value)


def renamed_param(new: str) -> Any:
    """Declare a deprecated attribute alias, e.g. ``exposure = renamed_param("exposure_col")``."""
    return _RenamedParam(new)


def _short(v: Any, limit: int = 60) -> str:
    s = repr(v) if not isinstance(v, BaseEstimator) else f"{type(v).__name__}(...)"
    return s if len(s) <= limit else s[: limit - 3] + "..."


class Estimator(BaseEstimator):
    """Base class of fentan's estimators (see the module docstring for the contract).

    Subclasses set ``_fitted_attrs`` (the attributes ``fit`` always sets, checked by
    :func:`sklearn.utils.validation.check_is_fitted`), optionally ``_renamed_params``
    (old name -> new name, accepted by ``__init__`` via :meth:`_take_renamed` and by
    :meth:`set_params` with a :class:`DeprecationWarning`), and override
    :meth:`_key_numbers` for the HTML card.
    """

    _fitted_attrs: ClassVar[tuple[str, ...]] = ()
    _renamed_params: ClassVar[dict[str, str]] = {}

    # ---------------------------------------------------------------- renamed parameters
    def _take_renamed(self, renamed: Mapping[str, Any]) -> None:
        """Apply deprecated ``__init__`` keywords (old names) to the new parameters, with a warning."""
        sig = inspect.signature(type(self).__init__).parameters
        for old, value in renamed.items():
            new = self._renamed_params.get(old)
            if new is None:
                raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument '{old}'")
            if getattr(self, new) != sig[new].default:
                raise TypeError(f"{type(self).__name__}.__init__() got both '{new}' and its deprecated alias '{old}'")
            _warn_renamed(type(self).__name__, old, new, stacklevel=4)
            setattr(self, new, value)

    def set_params(self, **params: Any) -> Any:
        """Set parameters (scikit-learn protocol; deprecated old names are accepted with a warning)."""
        new_params = {}
        for k, v in params.items():
            if k in self._renamed_params:
                _warn_renamed(type(self).__name__, k, self._renamed_params[k])
                k = self._renamed_params[k]
            new_params[k] = v
        return super().set_params(**new_params)

    # ---------------------------------------------------------------- fitted state
    def _check_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless ``fit`` (or ``load``) has run."""
        try:
            check_is_fitted(self, list(self._fitted_attrs) or None)
        except _SklearnNotFittedError:
            raise NotFittedError(f"{type(self).__name__}: not fitted; call fit(cells) first") from None

    def _is_fitted(self) -> bool:
        try:
            self._check_fitted()
        except NotFittedError:
            return False
        return True

    # ---------------------------------------------------------------- display
    def _changed_params(self) -> dict[str, str]:
        sig = inspect.signature(type(self).__init__).parameters
        out = {}
        for k, v in self.get_params(deep=False).items():
            default = sig[k].default if k in sig else inspect.Parameter.empty
            try:
                same = bool(v == default) if not isinstance(v, BaseEstimator) else False
            except (ValueError, TypeError):
                same = False
            if not same:
                out[k] = _short(v)
        return out

    def _key_numbers(self) -> dict[str, Any]:
        """Headline fitted numbers for the HTML card (override)."""
        return {}

    def _repr_html_(self) -> str:
        """Compact HTML card: class name, fitted or not, non-default parameters, key numbers."""
        fitted = self._is_fitted()
        params = self._changed_params() or {"(all parameters)": "default"}
        numbers = self._key_numbers() if fitted else {}
        return _html_card(type(self).__name__, "fitted" if fitted else "not fitted",
                          [("parameters", params), ("fit", numbers)])

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        """Jupyter display: plain repr and the compact HTML card (instead of sklearn's diagram)."""
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def print_summary(self, decimals: int = 4) -> None:
        """Print :attr:`summary` as a table, floats to ``decimals`` significant digits."""
        print_frame(self.summary, title=type(self).__name__, decimals=decimals)

    @property
    def summary(self) -> pl.DataFrame:  # pragma: no cover - every estimator overrides it
        """The fitted model as a table."""
        raise NotImplementedError


def predict_rates(model: Any, frame: pl.DataFrame) -> np.ndarray:
    """Expected annual rate per row of ``frame`` from an incidence model.

    The model protocol is ``predict(frame)`` (fentan's estimators). A model offering only
    the old ``predict_rate(frame)`` still works for one release, with a DeprecationWarning.
    """
    if hasattr(model, "predict"):
        return np.asarray(model.predict(frame), dtype=float)
    if hasattr(model, "predict_rate"):
        warnings.warn(f"{type(model).__name__}: an incidence model with only 'predict_rate' is deprecated; "
                      "define 'predict(cells)' returning annual rates", DeprecationWarning, stacklevel=2)
        return np.asarray(model.predict_rate(frame), dtype=float)
    raise ModelError(f"model: {type(model).__name__} has no predict(cells) method")
