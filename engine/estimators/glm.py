"""Poisson regression of incidence on cells (exposure as offset), with exact Newton fitting.

:class:`PoissonGLM` fits log(rate) = intercept + treatment-coded factors + a B-spline (or
factor) age curve + factor interactions, by maximum likelihood on cells:
claims_c ~ Poisson(exposure_c * rate_c). :class:`PoissonGBM` (in :mod:`engine.estimators.gbm`) is the
gradient-boosting variant with the same ``predict`` API (the estimator contract of
:mod:`engine._estimator`).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine._estimator import Estimator, predict_rates
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.estimators._base import RateModel, _frame, _jsonable, aggregate_cells, data_fingerprint, score_members
from engine.estimators._glm_checks import divergence
from engine.estimators.features import build_spec, design_matrix, spec_columns


def poisson_newton(
    X: np.ndarray, claims: np.ndarray, exposure: np.ndarray, penalty: np.ndarray, tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Newton-Raphson (= IRLS) for a Poisson GLM with log link and offset log(exposure).

    Parameters
    ----------
    X : design with the intercept as first column.
    penalty : per-coefficient ridge weight (0 for the intercept).

    Returns
    -------
    (beta, hessian, n_iter, converged).

    Notes
    -----
    Maximises l(b) = sum_c [D_c eta_c - exp(eta_c)] - 1/2 sum_j p_j b_j^2 with
    eta = X b + log E. Gradient X'(D - mu) - p b, Hessian X' diag(mu) X + diag(p); the
    Newton step is solved by Cholesky and halved while it lowers l. Converged when the
    largest step is below ``tol``. Starts from the intercept log(sum D / sum E). A design
    without full column rank raises :class:`ModelError`; a Hessian that stops being
    numerically positive definite on a full-rank design (fitted means underflowing as a
    coefficient runs away) ends the iterations with ``converged = False``. The step test
    alone cannot see a divergence once the means have underflowed: callers check
    :func:`engine.estimators._glm_checks.divergence` as well.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ModelError("PoissonGLM: the design is singular (collinear columns or a level without exposure)")
    off = np.log(exposure)
    b = np.zeros(X.shape[1])
    b[0] = np.log(claims.sum() / exposure.sum())

    def negll(beta: np.ndarray) -> float:
        eta = X @ beta + off
        return float(np.exp(eta).sum() - claims @ eta + 0.5 * (penalty * beta * beta).sum())

    f = negll(b)
    converged = False
    it = 0
    H = np.eye(X.shape[1])
    for it in range(1, max_iter + 1):
        mu = np.exp(X @ b + off)
        g = X.T @ (claims - mu) - penalty * b
        H = (X.T * mu) @ X + np.diag(penalty)
        try:
            step = cho_solve(cho_factor(H), g)
        except LinAlgError:  # full-rank design, so the fitted means underflowed: a coefficient diverges
            break
        t = 1.0
        for _ in range(40):
            fn = negll(b + t * step)
            if fn <= f + 1e-12 * abs(f):
                break
            t *= 0.5
        b = b + t * step
        f = fn
        if np.max(np.abs(t * step)) < tol:
            converged = True
            break
    mu = np.exp(X @ b + off)
    H = (X.T * mu) @ X + np.diag(penalty)
    return b, H, it, converged


class PoissonGLM(RateModel):
    """Poisson GLM of incidence on cells: log rate = intercept + factors + age curve + interactions.

    Parameters
    ----------
    factors : categorical keys (treatment coding, reference = first sorted level unless
        ``reference`` says otherwise). ``None``: every key column of the training cells
        except ``period``, ``age`` and ``duration``.
    age : ``"auto"`` (default: ``"spline"`` if the cells have more than ``age_df`` distinct
        ages, ``"factor"`` with 2..age_df, none without an ``age`` column), ``"spline"``
        (cubic B-spline, ``age_df`` columns), ``"factor"`` (one level per age),
        ``"linear"`` (log-linear in age) or ``None`` (no age term).
    age_df : degrees of freedom of the age spline (>= 3; ``age_df - 3`` interior knots).
    age_knots : where the interior knots go: ``"claims"`` (default: at quantiles of the
        training claims by age, so every basis function has claims in its support and a
        sparse young tail cannot make a coefficient diverge), ``"exposure"`` (quantiles of
        exposure) or ``"uniform"`` (evenly spaced between the youngest and oldest age).
    interactions : pairs of factors whose non-reference columns are multiplied.
    alpha : ridge penalty, in sklearn's ``PoissonRegressor`` scale (per unit exposure):
        the fit maximises loglik - alpha * sum(E) / 2 * ||coef||^2; the intercept is free.
    level : confidence level of the intervals in :attr:`summary`.
    reference : optional {factor: reference level}.
    exposure_col, claims_col : columns of the cells.
    tol, max_iter : Newton convergence (largest coefficient step) and iteration cap.

    Notes
    -----
    Fitted by Newton-Raphson on the cells summed over the model's keys (sufficient
    statistics: the likelihood is unchanged). Fitted attributes: ``intercept_``, ``coef_``,
    ``feature_names_``, ``cov_`` (inverse Fisher information, intercept first, in the order
    ``["intercept"] + feature_names_``), ``deviance_``, ``null_deviance_``, ``n_iter_``,
    ``converged_``, ``spec_`` (levels, knots), ``data_fingerprint_``, ``fit_date_``.
    ``converged_`` is False, with a ``RuntimeWarning`` naming the terms and the remedy, when
    the MLE does not exist (separation: a level, combination or spline span without
    claims) or a fitted rate is numerically 0, whatever the Newton step says
    (:func:`engine.estimators._glm_checks.divergence`).
    We do not use sklearn's default lbfgs ``PoissonRegressor``: at incidence-scale rates
    (~1e-3) its gradient is tiny and it stops far from the optimum (see docs/incidence.md).
    """

    def __init__(
        self,
        factors: Sequence[str] | None = None,
        age: str | None = "auto",
        age_df: int = 6,
        age_knots: str = "claims",
        interactions: Sequence[Sequence[str]] = (),
        alpha: float = 0.0,
        level: float = 0.95,
        reference: Mapping[str, Any] | None = None,
        exposure_col: str = "exposure_years",
        claims_col: str = "claims",
        tol: float = 1e-10,
        max_iter: int = 100,
    ) -> None:
        self.factors = factors
        self.age = age
        self.age_df = age_df
        self.age_knots = age_knots
        self.interactions = interactions
        self.alpha = alpha
        self.level = level
        self.reference = reference
        self.exposure_col = exposure_col
        self.claims_col = claims_col
        self.tol = tol
        self.max_iter = max_iter

    _fitted_attrs = ("coef_", "spec_")

    def _key_numbers(self) -> dict[str, Any]:
        return {"cells": self.n_cells_, "exposure-years": self.exposure_years_, "claims": self.claims_,
                "terms": 1 + len(self.feature_names_), "deviance": self.deviance_,
                "null deviance": self.null_deviance_, "converged": self.converged_}

    @api_input(frames=("cells",))
    def fit(self, cells: pl.DataFrame | pl.LazyFrame) -> PoissonGLM:
        """Fit on cells (``exposure_years``, ``claims`` and the model's keys); returns self."""
        from engine.estimators.crude import _check_level

        _check_level(self.level)
        if float(self.alpha) < 0:
            raise ConfigError(f"alpha: {self.alpha} must be non-negative")
        df = _frame(cells)
        probe = df.filter(pl.col(self.exposure_col) > 0) if self.exposure_col in df.columns else df
        spec = build_spec(probe, self.factors, self.age, int(self.age_df), self.interactions, self.reference,
                          age_knots=self.age_knots, claims_col=self.claims_col, exposure_col=self.exposure_col)
        keys = spec_columns(spec)
        agg = aggregate_cells(df, keys, self.exposure_col, self.claims_col)
        d = agg.get_column(self.claims_col).to_numpy()
        e = agg.get_column(self.exposure_col).to_numpy()
        if d.sum() <= 0:
            raise DataError("cells: no claims, so no incidence model can be fitted")
        Xf, names = design_matrix(agg, spec)
        X = np.hstack([np.ones((agg.height, 1)), Xf])
        pen = np.full(X.shape[1], float(self.alpha) * e.sum())
        pen[0] = 0.0
        b, H, n_iter, ok = poisson_newton(X, d, e, pen, float(self.tol), int(self.max_iter))
        why = divergence(X, d, e, b, pen == 0.0, ["intercept", *names])
        if why is not None or not ok:
            ok = False
            warnings.warn(f"PoissonGLM: not converged after {n_iter} iterations ("
                          f"{why or 'the step did not fall below tol'}); merge sparse levels, drop the "
                          "interaction, or set alpha > 0 (docs/incidence.md)", RuntimeWarning, stacklevel=2)
        self.spec_ = spec
        self.feature_names_ = names
        self.intercept_ = float(b[0])
        self.coef_ = b[1:].copy()
        try:
            self.cov_ = np.linalg.inv(H)
        except np.linalg.LinAlgError:  # only after a divergence (the design has full rank)
            self.cov_ = np.linalg.pinv(H)
        self.n_iter_ = n_iter
        self.converged_ = ok
        mu = np.exp(X @ b) * e
        self.deviance_ = float(_dev(d, mu))
        self.null_deviance_ = float(_dev(d, e * d.sum() / e.sum()))
        self.loglik_ = float(np.sum(d * np.log(np.where(mu > 0, mu, 1.0)) - mu) - _lgamma_sum(d))
        self.n_cells_ = int(agg.height)
        self.exposure_years_ = float(e.sum())
        self.claims_ = float(d.sum())
        self.data_fingerprint_ = data_fingerprint(df)
        self.fit_date_ = dt.date.today().isoformat()
        return self

    # prediction -------------------------------------------------------------------
    @property
    def columns_(self) -> list[str]:
        """Cell columns the fitted model reads."""
        self._check_fitted()
        return spec_columns(self.spec_)

    @api_input(frames=("cells",))
    def linear_predictor(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """log(rate) per row of ``cells``."""
        self._check_fitted()
        X, _ = design_matrix(_frame(cells), self.spec_)
        return self.intercept_ + X @ self.coef_

    @api_input(frames=("cells",))
    def predict(self, cells: pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Predicted annual incidence rate (claims per exposure-year) per row of ``cells``."""
        return np.exp(self.linear_predictor(cells))

    @api_input(frames=("cells",))
    def predict_interval(
        self, cells: pl.DataFrame | pl.LazyFrame, level: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted rate with a confidence interval for the *expected* rate of each row.

        Returns
        -------
        (rate, lower, upper) numpy arrays.

        Notes
        -----
        eta = x'b with se(eta) = sqrt(x' cov_ x) (x with the leading 1); the interval is
        exp(eta -/+ z_{(1+level)/2} se(eta)) (Wald on the log scale, as statsmodels'
        ``get_prediction``). It covers the model's rate, not next year's claim count.
        """
        from scipy.stats import norm

        from engine.estimators.crude import _check_level

        self._check_fitted()
        lv = _check_level(self.level if level is None else level)
        X, _ = design_matrix(_frame(cells), self.spec_)
        X1 = np.hstack([np.ones((X.shape[0], 1)), X])
        eta = X1 @ np.concatenate([[self.intercept_], self.coef_])
        se = np.sqrt(np.einsum("ij,jk,ik->i", X1, self.cov_, X1))
        q = norm.ppf(0.5 + lv / 2.0)
        return np.exp(eta), np.exp(eta - q * se), np.exp(eta + q * se)

    # summaries --------------------------------------------------------------------
    @property
    def summary(self) -> pl.DataFrame:
        """Coefficient table: term, coef, se, z, p, lower, upper, exp_coef (intercept first).

        Notes
        -----
        se = sqrt(diag(cov_)), z = coef / se, p = 2 (1 - Phi(|z|)), lower/upper =
        coef -/+ z_{(1+level)/2} se (Wald); exp_coef = exp(coef) is the rate ratio
        (the base rate for the intercept).
        """
        from scipy.stats import norm

        self._check_fitted()
        coef = np.concatenate([[self.intercept_], self.coef_])
        var = np.diag(self.cov_)
        se = np.sqrt(np.where(var >= 0, var, np.nan))  # negative only after a divergence (pseudo-inverse)
        z = coef / se
        q = norm.ppf(0.5 + float(self.level) / 2.0)
        return pl.DataFrame({
            "term": ["intercept", *self.feature_names_], "coef": coef, "se": se, "z": z,
            "p": 2.0 * norm.sf(np.abs(z)), "lower": coef - q * se, "upper": coef + q * se, "exp_coef": np.exp(coef),
        })

    def print_summary(self, decimals: int = 4) -> None:
        """Print the fit statistics and :attr:`summary` as a rich table."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        s = self.summary
        t = Table(title=f"PoissonGLM: {self.n_cells_} cells, {self.exposure_years_:,.1f} exposure-years, "
                        f"{self.claims_:,.0f} claims, deviance {self.deviance_:,.2f} "
                        f"(null {self.null_deviance_:,.2f}), {self.n_iter_} iterations")
        for c in s.columns:
            t.add_column(c, justify="left" if c == "term" else "right", no_wrap=c == "term")
        for r in s.iter_rows():
            t.add_row(escape(r[0]), *[f"{v:.{decimals}g}" for v in r[1:]])
        Console(width=120).print(t)

    def age_curve(self, ages: Sequence[int] | None = None, **levels: Any) -> pl.DataFrame:
        """Predicted rate by age for one profile (other factors at ``levels`` or their reference)."""
        self._check_fitted()
        if self.spec_["age"] is None:
            raise ModelError("PoissonGLM: the model has no age term")
        if ages is None:
            ag = self.spec_["age"]
            lo, hi = (ag["knots"][0], ag["knots"][-1]) if ag["kind"] == "spline" else (0, 100)
            if ag["kind"] == "factor":
                ages = [int(v) for v in ag["levels"]]
            else:
                ages = list(range(int(np.ceil(lo)), int(np.floor(hi)) + 1))
        cols: dict[str, Any] = {"age": pl.Series("age", list(ages), dtype=pl.Int32)}
        for f in self.spec_["factors"]:
            cols[f["name"]] = [str(levels.get(f["name"], f["reference"]))] * len(ages)
        grid = pl.DataFrame(cols)
        return grid.with_columns(pl.Series("rate", self.predict(grid)))

    # persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save to ``path`` (e.g. ``models/<name>``): Parquet coefficients and covariance + model.json."""
        from engine.data.persist import save_model

        self._check_fitted()
        names = ["intercept", *self.feature_names_]
        coef = pl.DataFrame({"term": names, "coef": np.concatenate([[self.intercept_], self.coef_])})
        cov = pl.DataFrame({n: self.cov_[:, j] for j, n in enumerate(names)})
        params = _jsonable(self.get_params(deep=False))
        fitted = {"spec": self.spec_, "n_iter": self.n_iter_, "converged": self.converged_,
                  "deviance": self.deviance_, "null_deviance": self.null_deviance_, "loglik": self.loglik_,
                  "n_cells": self.n_cells_, "exposure_years": self.exposure_years_, "claims": self.claims_}
        return save_model(path, "PoissonGLM", params, {"coefficients": coef, "covariance": cov},
                          data_fingerprint=self.data_fingerprint_, fit_date=self.fit_date_, extra={"fitted": fitted})

    @classmethod
    def load(cls, path: str | Path) -> PoissonGLM:
        """Load a model saved by :meth:`save`."""
        from engine.data.persist import load_model

        meta, tables = load_model(path, "PoissonGLM")
        try:
            p = dict(meta["params"])
            p["interactions"] = tuple(tuple(x) for x in p.get("interactions") or ())
            if isinstance(p.get("factors"), list):
                p["factors"] = tuple(p["factors"])
            m = cls(**p)
            fit = meta["fitted"]
            coef = tables["coefficients"]
            names = coef.get_column("term").to_list()
            b = coef.get_column("coef").to_numpy()
            m.spec_ = fit["spec"]
            m.feature_names_ = names[1:]
            m.intercept_ = float(b[0])
            m.coef_ = b[1:].copy()
            m.cov_ = tables["covariance"].select(names).to_numpy()
            for k in ("n_iter", "converged", "deviance", "null_deviance", "loglik", "n_cells", "exposure_years",
                      "claims"):
                setattr(m, f"{k}_", fit[k])
        except (KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            raise ModelError(f"{path}: incomplete PoissonGLM model ({type(exc).__name__}: {exc})") from None
        m.data_fingerprint_ = meta.get("data_fingerprint")
        m.fit_date_ = meta.get("fit_date")
        return m


def _dev(d: np.ndarray, mu: np.ndarray) -> float:
    from engine.estimators.metrics import poisson_deviance

    return float(poisson_deviance(d, mu).sum())


def _lgamma_sum(d: np.ndarray) -> float:
    from scipy.special import gammaln

    return float(gammaln(d + 1.0).sum())


__all__ = ["PoissonGLM", "aggregate_cells", "poisson_newton", "score_members"]
