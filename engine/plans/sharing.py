"""Sharing rules within one plan: equal, risk-proportional and conditional-mean.

Members are grouped into classes of identical risks: class k has ``N_k``
members, each with claim probability / rate ``p_k`` per sharing period and a
fixed benefit ``B_k``. The total claims of the period are ``S = sum_i X_i``
with ``X_i = B_i M_i``.

- **equal** (the platforms' rule): member i pays ``(1 + fee) S / N``;
- **risk-proportional**: member i pays ``(1 + fee) S p_i B_i / sum_j p_j B_j``;
- **conditional mean** (Denuit and Dhaene 2012): member i pays
  ``(1 + fee) E[X_i | S]``, computed exactly.

Notes
-----
The conditional mean is exact on the lattice of the benefits' greatest common divisor
(:mod:`engine.plans._conditional_mean`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ResourceError
from engine.conventions import FEE
from engine.plans._conditional_mean import (  # noqa: F401  (re-exported: the conditional-mean rule)
    MODELS,
    ConditionalMean,
    benefit_lattice,
    conditional_mean,
    conditional_mean_moments,
)

RULES = ("equal", "risk_proportional", "conditional_mean")


# ----------------------------------------------------------------------------- share formulas
# One implementation of each formula of a member's share (shared/domain.md section 3); the history,
# the projection, the plan comparison and the segmentation call these. They work on numpy arrays
# and, except capped_share on arrays, on polars expressions and Series alike.
def member_share(amount: Any, members: Any, fee: float = FEE, empty: float = np.nan) -> np.ndarray:
    """Share per member of an amount shared equally with the fee: (1 + fee) amount / N.

    Parameters
    ----------
    amount : claims amount (CNY), scalar or array.
    members : members sharing N, broadcast against ``amount``.
    fee : management fee phi.
    empty : value where N <= 0 (nobody shares).

    Notes
    -----
    s = (1 + phi) A / N (equal sharing; shared/domain.md "expected share").
    """
    total = (1.0 + fee) * np.asarray(amount, dtype=np.float64)
    n = np.asarray(members, dtype=np.float64)
    return np.divide(total, n, out=np.full(np.broadcast(total, n).shape, float(empty)), where=n > 0)


def capped_share(share: Any, cap: float | Any | None) -> Any:
    """A share after a cap: min(share, cap); ``cap=None`` = no cap.

    Notes
    -----
    s_capped = min(s, c). The per-claimant cap applies to a member's share of one claim,
    s = (1 + phi) B / N; the excess, N (s - c), is paid by the platform.
    Works on numpy arrays and on polars expressions.
    """
    if cap is None:
        return share
    if isinstance(share, pl.Expr) or isinstance(cap, pl.Expr):
        return pl.min_horizontal(share, cap)
    return np.minimum(share, cap)


def pooled_share(weights: Any, own: Any) -> Any:
    """Equal-sharing share of a pool: the weighted mean of its members' own shares.

    Notes
    -----
    s = sum_i w_i s_i / sum_i w_i (w = members or exposure). Numpy arrays or polars Series.
    """
    return (weights * own).sum() / weights.sum()


def cross_subsidy(pooled: Any, own: Any) -> Any:
    """Cross-subsidy of a group in a pooled plan: pooled share minus its own risk-based share.

    Notes
    -----
    x_k = s - s_k (shared/domain.md); positive: k overpays. Scalars, arrays or polars expressions.
    """
    return pooled - own


def leverage(benefit: Any, share: Any, periods_per_year: Any) -> Any:
    """Leverage of a member: benefit / annual share.

    Notes
    -----
    L = B / (periods_per_year x share) = B / (12 x monthly share) (shared/domain.md).
    Scalars, arrays or polars expressions.
    """
    return benefit / (periods_per_year * share)


@api_input(frames=("groups",))
def share_rule(
    rule: str,
    groups: pl.DataFrame,
    *,
    fee: float = FEE,
    periods_per_year: float = 12.0,
    model: str = "poisson",
    unit: float | None = None,
    max_lattice: int = 2_000_000,
) -> pl.DataFrame:
    """Expected payment, its volatility and fairness of each class under one sharing rule.

    Parameters
    ----------
    rule : ``"equal"``, ``"risk_proportional"`` or ``"conditional_mean"``.
    groups : one row per class of identical risks with ``members``, ``rate``
        (claims per member-year) and ``benefit_cny``; optional ``group`` label.
    fee : management fee phi, charged on the claims (default :data:`engine.conventions.FEE`).
    periods_per_year : the per-period probability is p = rate / periods_per_year.
    model : ``"poisson"`` or ``"bernoulli"`` claim counts.

    Returns
    -------
    One row per class: ``expected_benefit_cny`` (p B, per member and period),
    ``expected_payment_cny``, ``payment_sd_cny``, ``payment_cv``, ``fairness``
    (expected payment / ((1 + fee) expected benefit); 1 = actuarially fair) and
    ``cross_subsidy_cny`` (expected payment - (1 + fee) expected benefit).

    Notes
    -----
    With T = S (1 + fee): equal pays T / N (mean (1+phi) E[S]/N, variance
    (1+phi)^2 Var S / N^2); risk-proportional pays T w_k, w_k = p_k B_k / sum_j N_j p_j B_j
    (mean (1+phi) p_k B_k, variance (1+phi)^2 w_k^2 Var S); conditional mean pays
    (1+phi) E[X_i | S] (mean (1+phi) p_k B_k, variance from the exact law of S).
    Var S = sum N_k p_k B_k^2 (Poisson) or sum N_k p_k (1 - p_k) B_k^2 (Bernoulli).
    """
    if rule not in RULES:
        raise ConfigError(f"rule: must be one of {', '.join(RULES)}")
    if not (0 <= fee < 1):
        raise ConfigError("fee: must be a number in [0, 1)")
    if not periods_per_year > 0:
        raise ConfigError("periods_per_year: must be > 0")
    for c in ("members", "rate", "benefit_cny"):
        if c not in groups.columns:
            raise DataError(f"groups: column '{c}' is required")
    n = groups["members"].cast(pl.Float64).to_numpy()
    p = groups["rate"].cast(pl.Float64).to_numpy() / periods_per_year
    B = groups["benefit_cny"].cast(pl.Float64).to_numpy()
    if np.any(~np.isfinite(n)) or np.any(n < 0) or np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(~(B > 0)):
        raise DataError("groups: members and rate must be finite and >= 0, benefit_cny > 0")
    var_one = p * B * B * ((1 - p) if model == "bernoulli" else 1.0)
    var_s = float(np.sum(n * var_one))
    mean_s = float(np.sum(n * p * B))
    N = float(n.sum())
    k1 = 1.0 + fee
    if rule == "equal":
        mean = np.full(len(n), k1 * mean_s / N)
        sd = np.full(len(n), k1 * math.sqrt(var_s) / N)
    elif rule == "risk_proportional":
        w = p * B / mean_s if mean_s > 0 else np.zeros(len(n))
        mean = k1 * p * B
        sd = k1 * w * math.sqrt(var_s)
    else:
        m1, sd1 = conditional_mean_moments(n, p, B, model=model, unit=unit, max_lattice=max_lattice)
        mean = k1 * m1
        sd = k1 * sd1
    label = groups["group"].cast(pl.String) if "group" in groups.columns else pl.Series("group", [str(i) for i in range(len(n))])
    fair = k1 * p * B
    return pl.DataFrame({
        "rule": [rule] * len(n),
        "group": label,
        "members": n,
        "benefit_cny": B,
        "expected_benefit_cny": p * B,
        "expected_payment_cny": mean,
        "payment_sd_cny": sd,
        "payment_cv": np.where(mean > 0, sd / np.where(mean > 0, mean, 1.0), np.nan),
        "fairness": np.where(fair > 0, mean / np.where(fair > 0, fair, 1.0), np.nan),
        "cross_subsidy_cny": cross_subsidy(mean, fair),
    })


@api_input(frames=("groups",))
def compare_rules(groups: pl.DataFrame, **kwargs) -> pl.DataFrame:
    """:func:`share_rule` for the three rules stacked (same keyword arguments)."""
    return pl.concat([share_rule(r, groups, **kwargs) for r in RULES])


def rules_for_plan(
    risk_table: pl.DataFrame,
    plan,
    *,
    group: str | None = None,
    model: str = "poisson",
    unit: float | None = None,
    max_lattice: int = 2_000_000,
) -> pl.DataFrame:
    """The three sharing rules inside one plan, by risk group, from a risk table.

    Parameters
    ----------
    risk_table : rows with ``age``, ``rate``, ``members`` and the plan's eligibility attributes.
    plan : a :class:`engine.plans.planset.Plan` (its benefit schedule, fee and sharing days are used).
    group : column naming the groups to report (default ``group`` if present, else ``age``).

    Returns
    -------
    One row per rule and group: ``members``, ``expected_benefit_cny`` and
    ``expected_payment_cny`` (per member and period, member-weighted means),
    ``fairness`` (payment / ((1 + fee) benefit)), ``cross_subsidy_cny`` and
    ``payment_cv`` (member-weighted mean of the classes' CVs).

    Notes
    -----
    Rows of the plan with equal rate and benefit form one class of identical
    risks; :func:`share_rule` gives each class's moments, exact for all three rules.
    """
    from engine.plans.planset import PlanSet, assign_plans

    if "members" not in risk_table.columns or "rate" not in risk_table.columns:
        raise DataError("risk table: columns 'members' and 'rate' are required")
    gcol = group or ("group" if "group" in risk_table.columns else "age")
    if gcol not in risk_table.columns:
        raise DataError(f"risk table: group column '{gcol}' is missing")
    rows = assign_plans(risk_table, PlanSet((plan,), source=f"plan '{plan.name}'")).filter(pl.col("plan").is_not_null())
    if rows.height == 0:
        raise DataError(f"risk table: no row is eligible for plan '{plan.name}'")
    rows = rows.with_columns(pl.col(gcol).cast(pl.String).alias("_g"), pl.col("rate").cast(pl.Float64))
    classes = rows.group_by(["rate", "benefit_cny"], maintain_order=True).agg(pl.col("members").sum())
    out = []
    for rule in RULES:
        res = share_rule(rule, classes, fee=plan.fee, periods_per_year=plan.periods_per_year, model=model,
                         unit=unit, max_lattice=max_lattice)
        cls = classes.select("rate", "benefit_cny").with_columns(
            res["expected_benefit_cny"], res["expected_payment_cny"], res["payment_cv"]
        )
        w = pl.col("members")
        g = rows.join(cls, on=["rate", "benefit_cny"], how="left").group_by("_g").agg(
            w.sum().alias("members"),
            ((pl.col("expected_benefit_cny") * w).sum() / w.sum()).alias("expected_benefit_cny"),
            ((pl.col("expected_payment_cny") * w).sum() / w.sum()).alias("expected_payment_cny"),
            ((pl.col("payment_cv") * w).sum() / w.sum()).alias("payment_cv"),
        )
        out.append(g.with_columns(pl.lit(rule).alias("rule")))
    k1 = 1.0 + plan.fee
    return (
        pl.concat(out)
        .rename({"_g": "group"})
        .with_columns(
            (pl.col("expected_payment_cny") / (k1 * pl.col("expected_benefit_cny"))).alias("fairness"),
            (pl.col("expected_payment_cny") - k1 * pl.col("expected_benefit_cny")).alias("cross_subsidy_cny"),
        )
        .select("rule", "group", "members", "expected_benefit_cny", "expected_payment_cny", "fairness",
                "cross_subsidy_cny", "payment_cv")
        .sort("rule", "group")
    )
