"""Credibility for group incidence rates: Bühlmann-Straub and limited fluctuation.

Both work on *cells* (the output of :func:`engine.exposure`): any polars
DataFrame with a group key, a period key, ``claims`` and ``exposure_years``.
Cells are first summed to one row per (group, period); nothing is looped over
members.

Notes
-----
Bühlmann-Straub (groups i = 1..I, periods j = 1..n_i with positive exposure,
rates X_ij = claims_ij / w_ij, weights w_ij = exposure-years)::

    w_i    = sum_j w_ij,            w = sum_i w_i
    Xbar_i = sum_j w_ij X_ij / w_i  (= claims_i / w_i)
    Xbar_w = sum_i w_i Xbar_i / w   (= total claims / total exposure)
    s2     = sum_i sum_j w_ij (X_ij - Xbar_i)^2 / sum_i (n_i - 1)     within="empirical"
    s2     = Xbar_w                                                    within="poisson"
    a      = max(0, (sum_i w_i (Xbar_i - Xbar_w)^2 - (I - 1) s2) / (w - sum_i w_i^2 / w))
    k      = s2 / a
    Z_i    = w_i / (w_i + k)
    m      = sum_i Z_i Xbar_i / sum_i Z_i      (credibility-weighted collective)
    cred_i = Z_i Xbar_i + (1 - Z_i) * complement_i

The empirical within variance and the unbiased between variance are those of
R actuar ``cm()`` (default ``method = "Buhlmann-Gisler"``, which for one level
is the unbiased Bühlmann-Straub estimator). If ``a`` is floored at 0, every
``Z_i = 0`` and the collective is the exposure-weighted mean ``Xbar_w``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from engine._estimator import Estimator, _warn_renamed, renamed_param
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.estimators._limited import _as_list, _require
from engine.estimators._limited import (  # noqa: F401  (re-exported: limited-fluctuation credibility)
    credibility_blend,
    full_standard,
    limited_fluctuation,
    limited_fluctuation_table,
)

__all__ = [
    "BuhlmannStraub",
    "limited_fluctuation",
    "full_standard",
    "credibility_blend",
    "limited_fluctuation_table",
]

_WITHIN = ("empirical", "poisson")


def _structure(
    w_i: np.ndarray, xbar_i: np.ndarray, w: float, xbar_w: float, n_groups: int, s2: float
) -> tuple[float, float, float, np.ndarray, float]:
    """Between variance (unfloored and floored at 0), k, the groups' Z and the credibility-weighted collective.

    Notes
    -----
    ``a = max(0, (sum_i w_i (Xbar_i - Xbar_w)^2 - (I - 1) s2) / (w - sum_i w_i^2 / w))``,
    ``k = s2 / a``, ``Z_i = w_i / (w_i + k)``, ``m = sum_i Z_i Xbar_i / sum_i Z_i``;
    with ``a = 0``: ``k = inf``, ``Z_i = 0`` and ``m = Xbar_w``.
    """
    denom = w - float((w_i**2).sum()) / w
    a_raw = (float((w_i * (xbar_i - xbar_w) ** 2).sum()) - (n_groups - 1) * s2) / denom
    a = max(0.0, a_raw)
    if a > 0:
        k = s2 / a
        z_pos = w_i / (w_i + k)
        m = float((z_pos * xbar_i).sum() / z_pos.sum())
    else:
        k = math.inf
        z_pos = np.zeros_like(w_i)
        m = xbar_w
    return a_raw, a, k, z_pos, m


class BuhlmannStraub(Estimator):
    """Bühlmann-Straub credibility for group incidence rates (the estimator contract of :mod:`engine._estimator`).

    Parameters
    ----------
    group : str or list of str
        Column(s) defining the groups (risk classes, plans, cities ...).
    period : str
        Within-group key of repeated observations (default ``"period"``).
        Any column works, e.g. a calendar year derived from ``period``.
    claims_col : str
        Claim-count column (default ``"claims"``). Ignored when ``rate`` is given.
        ``claims`` is a deprecated alias.
    exposure_col : str
        Exposure column, the weights ``w_ij`` (default ``"exposure_years"``).
        ``exposure`` is a deprecated alias.
    rate : str or None
        If given, the column holds observed rates ``X`` directly (e.g. claim cost
        per exposure-year); cells are then combined as exposure-weighted means.
    complement : {"collective", "reference"} or float
        What the credibility rate is shrunk towards: the fitted collective ``m``,
        a reference rate per group (``reference`` column of expected claims
        divided by exposure), or a fixed rate.
    reference : str
        Column of expected claims under a reference basis, used when
        ``complement="reference"`` (default ``"expected"``, as produced by
        :func:`engine.incidence`).
    within : {"empirical", "poisson"}
        Within-group variance: ``"empirical"`` (the unbiased estimator above, as
        in actuar) or ``"poisson"`` (``Var(X_ij) = m / w_ij`` with ``m`` taken as
        the exposure-weighted mean rate, so ``s2 = Xbar_w``).

    Attributes
    ----------
    collective_, m_ : float
        Credibility-weighted collective rate ``m``.
    mean_rate_ : float
        Exposure-weighted mean rate ``Xbar_w``.
    s2_, a_, k_ : float
        Within variance, between variance (floored at 0) and ``k = s2 / a``
        (``inf`` when ``a = 0``).
    a_unfloored_ : float
        Between variance before flooring (negative means no detectable heterogeneity).
    groups_ : polars.DataFrame
        One row per group: keys, ``exposure_years``, ``claims``, ``n_periods``,
        ``rate``, ``Z``, ``complement``, ``credibility_rate``.
    Z_ : dict
        Group key (tuple when several group columns, else the value) -> Z.

    Notes
    -----
    See the module docstring for the formulas. Cells with zero exposure are
    dropped; a group whose exposure is 0 in total keeps ``Z = 0`` and its rate is
    the complement. A group with a single period contributes 0 to
    ``sum_i (n_i - 1)``. At least two groups with exposure are needed, and for
    ``within="empirical"`` at least one group with two periods.
    """

    def __init__(
        self,
        group: str | Sequence[str] = "group",
        period: str = "period",
        claims_col: str = "claims",
        exposure_col: str = "exposure_years",
        rate: str | None = None,
        complement: str | float = "collective",
        reference: str = "expected",
        within: str = "empirical",
        **renamed: Any,
    ) -> None:
        self.group = group
        self.period = period
        self.claims_col = claims_col
        self.exposure_col = exposure_col
        self.rate = rate
        self.complement = complement
        self.reference = reference
        self.within = within
        self._take_renamed(renamed)

    _fitted_attrs = ("groups_",)
    _renamed_params = {"claims": "claims_col", "exposure": "exposure_col"}
    claims = renamed_param("claims_col")
    exposure = renamed_param("exposure_col")

    def _key_numbers(self) -> dict[str, Any]:
        return {"groups": self.n_groups_, "collective m": self.collective_, "within s2": self.s2_,
                "between a": self.a_, "k": self.k_}

    # ------------------------------------------------------------------ fit
    def _validate(self, cells: pl.DataFrame) -> list[str]:
        if not isinstance(cells, pl.DataFrame):
            if isinstance(cells, pl.LazyFrame):
                raise DataError("BuhlmannStraub.fit: cells: pass a collected polars DataFrame, not a LazyFrame")
            raise DataError(f"BuhlmannStraub.fit: cells: expected a polars DataFrame, got {type(cells).__name__}")
        if self.within not in _WITHIN:
            raise ConfigError(f"within: must be one of {_WITHIN}, got {self.within!r}")
        c = self.complement
        if not (c in ("collective", "reference") or (isinstance(c, (int, float)) and not isinstance(c, bool))):
            raise ConfigError(f"complement: must be 'collective', 'reference' or a number, got {c!r}")
        if isinstance(c, (int, float)) and not (math.isfinite(c) and c >= 0):
            raise ConfigError(f"complement: a fixed complement rate must be finite and >= 0, got {c!r}")
        keys = _as_list(self.group, "group")
        if self.period in keys:
            raise ConfigError(f"period: {self.period!r} is also a group column")
        need = [*keys, self.period, self.exposure_col, self.rate if self.rate is not None else self.claims_col]
        if c == "reference":
            need.append(self.reference)
        _require(cells, need, "BuhlmannStraub.fit")
        nums = [self.exposure_col, self.rate if self.rate is not None else self.claims_col]
        if c == "reference":
            nums.append(self.reference)
        for col in nums:
            s = cells.get_column(col)
            if not s.dtype.is_numeric():
                raise DataError(f"BuhlmannStraub.fit: column {col!r} must be numeric, got {s.dtype}")
            if s.null_count():
                raise DataError(f"BuhlmannStraub.fit: column {col!r} has {s.null_count()} null value(s)")
            if (s < 0).any():
                raise DataError(f"BuhlmannStraub.fit: column {col!r} has negative values")
        return keys

    @api_input(frames=("cells",))
    def fit(self, cells: pl.DataFrame) -> BuhlmannStraub:
        """Estimate the structural parameters and credibility factors from cells.

        Parameters
        ----------
        cells : polars.DataFrame
            Cells with the group column(s), the period column, exposure and claims
            (or rate). Extra key columns are summed over.

        Returns
        -------
        BuhlmannStraub
            ``self``, fitted.
        """
        keys = self._validate(cells)
        gp, pos = self._period_sums(cells, keys)
        groups, gpos = self._group_sums(gp, pos, keys)
        n_groups = gpos.height
        if n_groups < 2:
            raise ModelError(
                f"BuhlmannStraub.fit: {n_groups} group(s) with positive {self.exposure_col!r}; at least 2 are needed"
            )
        w_i = gpos.get_column("_w").to_numpy()
        xbar_i = gpos.get_column("_num").to_numpy() / w_i
        w = float(w_i.sum())
        xbar_w = float((w_i * xbar_i).sum() / w)
        s2 = self._within_variance(pos, gpos, keys) if self.within == "empirical" else xbar_w
        a_raw, a, k, z_pos, m = _structure(w_i, xbar_i, w, xbar_w, n_groups, s2)
        self.groups_ = self._groups_table(groups, gpos, keys, z_pos, m)
        self.group_keys_ = keys
        self.collective_ = m
        self.m_ = m
        self.mean_rate_ = xbar_w
        self.s2_ = s2
        self.a_ = a
        self.a_unfloored_ = a_raw
        self.k_ = k
        self.n_groups_ = n_groups
        rows = self.groups_.select([*keys, "Z"]).rows()
        self.Z_ = {(r[0] if len(keys) == 1 else tuple(r[:-1])): r[-1] for r in rows}
        return self

    def _period_sums(self, cells: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Claims (or rate x exposure) and exposure per group and period; the rows with exposure, with their rate ``_x``."""
        w_col = self.exposure_col
        if self.rate is not None:
            num = (pl.col(self.rate).cast(pl.Float64) * pl.col(w_col).cast(pl.Float64)).sum().alias("_num")
        else:
            num = pl.col(self.claims_col).cast(pl.Float64).sum().alias("_num")
        aggs = [num, pl.col(w_col).cast(pl.Float64).sum().alias("_w")]
        if self.complement == "reference":
            aggs.append(pl.col(self.reference).cast(pl.Float64).sum().alias("_ref"))
        gp = cells.group_by([*keys, self.period]).agg(aggs).sort([*keys, self.period])
        pos = gp.filter(pl.col("_w") > 0).with_columns((pl.col("_num") / pl.col("_w")).alias("_x"))
        return gp, pos

    def _group_sums(
        self, gp: pl.DataFrame, pos: pl.DataFrame, keys: list[str]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Sums per group with their number of periods with exposure: all groups, and those with exposure."""
        # per group sums (all groups, including those with zero exposure)
        g_aggs = [pl.col("_num").sum(), pl.col("_w").sum()]
        if self.complement == "reference":
            g_aggs.append(pl.col("_ref").sum())
        groups = gp.group_by(keys).agg(g_aggs).sort(keys)
        n_per = pos.group_by(keys).agg(pl.len().alias("n_periods"))
        groups = groups.join(n_per, on=keys, how="left").with_columns(
            pl.col("n_periods").fill_null(0).cast(pl.Int64)
        )
        return groups, groups.filter(pl.col("_w") > 0)

    def _within_variance(self, pos: pl.DataFrame, gpos: pl.DataFrame, keys: list[str]) -> float:
        """Empirical within-group variance ``s2 = sum_i sum_j w_ij (X_ij - Xbar_i)^2 / sum_i (n_i - 1)``."""
        dof = int((gpos.get_column("n_periods").to_numpy() - 1).sum())
        if dof <= 0:
            raise ModelError(
                f"BuhlmannStraub.fit: within='empirical' needs a group with 2+ periods of {self.period!r}; "
                "every group has one period (use within='poisson')"
            )
        dev = pos.join(
            gpos.select([*keys, (pl.col("_num") / pl.col("_w")).alias("_xbar")]), on=keys, how="inner"
        )
        ss = float((dev.get_column("_w") * (dev.get_column("_x") - dev.get_column("_xbar")) ** 2).sum())
        return ss / dof

    def _groups_table(
        self, groups: pl.DataFrame, gpos: pl.DataFrame, keys: list[str], z_pos: np.ndarray, m: float
    ) -> pl.DataFrame:
        """Per group: exposure, claims, periods, rate, Z, complement and ``credibility_rate = Z rate + (1 - Z) complement``."""
        zdf = gpos.select(keys).with_columns(pl.Series("Z", z_pos, dtype=pl.Float64))
        out = groups.join(zdf, on=keys, how="left").with_columns(pl.col("Z").fill_null(0.0))
        out = out.with_columns(
            pl.when(pl.col("_w") > 0).then(pl.col("_num") / pl.col("_w")).otherwise(None).alias("rate")
        )
        if self.complement == "collective":
            comp = pl.lit(m, dtype=pl.Float64)
        elif self.complement == "reference":
            comp = pl.when(pl.col("_w") > 0).then(pl.col("_ref") / pl.col("_w")).otherwise(None)
        else:
            comp = pl.lit(float(self.complement), dtype=pl.Float64)
        out = out.with_columns(comp.alias("complement"))
        out = out.with_columns(
            (pl.col("Z") * pl.col("rate").fill_null(0.0) + (1.0 - pl.col("Z")) * pl.col("complement")).alias(
                "credibility_rate"
            )
        )
        claims_expr = (
            pl.col("_num").alias("claims")
            if self.rate is None
            else (pl.col("_num")).alias("claims_cost")
        )
        return out.select(
            [*keys, pl.col("_w").alias("exposure_years"), claims_expr, "n_periods", "rate", "Z", "complement",
             "credibility_rate"]
        )

    # -------------------------------------------------------------- outputs
    @property
    def summary(self) -> pl.DataFrame:
        """Per-group table: keys, exposure_years, claims, rate, Z, credibility_rate, complement."""
        self._check_fitted()
        cl = "claims" if self.rate is None else "claims_cost"
        return self.groups_.select(
            [*self.group_keys_, "exposure_years", cl, "rate", "Z", "credibility_rate", "complement"]
        )

    @property
    def structure_(self) -> dict[str, Any]:
        """Structural parameters as a plain dict (JSON-friendly)."""
        self._check_fitted()
        return {
            "collective": self.collective_,
            "mean_rate": self.mean_rate_,
            "within_variance": self.s2_,
            "between_variance": self.a_,
            "between_variance_unfloored": self.a_unfloored_,
            "k": self.k_,
            "within": self.within,
            "complement": self.complement,
            "n_groups": self.n_groups_,
        }

    @api_input(frames=("cells",))
    def predict(self, cells: pl.DataFrame) -> np.ndarray:
        """Credibility rate (expected annual rate) of each row of ``cells``, by its group.

        Groups not seen in ``fit`` get the collective rate (or the fixed complement);
        with ``complement="reference"`` they get NaN. :meth:`transform` attaches ``Z``
        and ``credibility_rate`` as columns instead.
        """
        return self.transform(cells).get_column("credibility_rate").cast(pl.Float64).fill_null(np.nan).to_numpy()

    @api_input(frames=("cells",))
    def transform(self, cells: pl.DataFrame) -> pl.DataFrame:
        """Attach ``Z`` and ``credibility_rate`` to rows of ``cells`` by group.

        Groups not seen in ``fit`` get ``Z = 0`` and the collective rate (or the
        fixed complement); with ``complement="reference"`` they get null.
        """
        self._check_fitted()
        _require(cells, self.group_keys_, "BuhlmannStraub.transform")
        tab = self.groups_.select([*self.group_keys_, "Z", "credibility_rate"])
        out = cells.join(tab, on=self.group_keys_, how="left")
        if self.complement == "collective":
            fill: float | None = self.collective_
        elif self.complement == "reference":
            fill = None
        else:
            fill = float(self.complement)
        rate = pl.col("credibility_rate")  # unseen groups: null with complement="reference"
        return out.with_columns(pl.col("Z").fill_null(0.0), rate if fill is None else rate.fill_null(fill))

    def print_summary(self, decimals: int = 6) -> None:
        """Print the structural parameters and the per-group table."""
        from rich.console import Console
        from rich.table import Table

        self._check_fitted()
        con = Console()
        con.print(
            f"Bühlmann-Straub credibility (within={self.within}, complement={self.complement})\n"
            f"  collective m      : {self.collective_:.{decimals}g}\n"
            f"  mean rate Xbar_w  : {self.mean_rate_:.{decimals}g}\n"
            f"  within s2         : {self.s2_:.{decimals}g}\n"
            f"  between a         : {self.a_:.{decimals}g}"
            + (f"  (unfloored {self.a_unfloored_:.{decimals}g}: no heterogeneity, Z = 0)" if self.a_ == 0 else "")
            + f"\n  k = s2 / a        : {self.k_:.{decimals}g}"
        )
        df = self.summary
        t = Table()
        for c in df.columns:
            t.add_column(c, justify="right")
        for row in df.iter_rows():
            t.add_row(*[f"{v:.{decimals}g}" if isinstance(v, float) else str(v) for v in row])
        con.print(t)

    def plot_credibility(self, ax: Any = None) -> Any:
        """Observed vs credibility rate per group (bubble size ~ exposure); returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        self._check_fitted()
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        df = self.summary.with_row_index("_i")
        x = df.get_column("_i").to_numpy()
        ax.scatter(x, df.get_column("rate").to_numpy(), label="observed rate", marker="o")
        ax.scatter(x, df.get_column("credibility_rate").to_numpy(), label="credibility rate", marker="x")
        ax.axhline(self.collective_, color="grey", ls="--", lw=1, label="collective")
        labels = [" / ".join(str(v) for v in r) for r in df.select(self.group_keys_).rows()]
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_ylabel("claims per exposure-year")
        ax.legend()
        return ax
