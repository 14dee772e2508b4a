"""Plan size for a stable share: members needed for a target share CV per sharing period.

Closed form (compound Poisson, equal sharing) with the waiting period, the reporting
lag, steady growth and exits turned into an *effective eligible fraction*. It is checked
against the Monte Carlo projection (:func:`engine.project`) in ``tests/test_plan_size.py``.
See ``docs/tempo.md`` (section "Plan size").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from engine.conventions import TARGET_SHARE_CV
from engine.errors import ConfigError

__all__ = ["plan_size", "PlanSizeResult", "claims_for_share_cv", "eligible_fraction", "members_for_cv", "share_cv"]


def eligible_fraction(growth_per_period: float = 0.0, waiting_periods: float = 0.0,
                      reporting_lag_periods: float = 0.0, exit_per_period: float | np.ndarray = 0.0,
                      exit_waiting: float | np.ndarray | None = None) -> Any:
    """Effective fraction of the sharing members whose claims are paid in a period, in steady state.

    Parameters
    ----------
    growth_per_period : float
        Steady growth g of the joiners (and so of the membership) per period (> -1).
    waiting_periods : float
        Waiting period w in sharing periods.
    reporting_lag_periods : float
        Claims incurred in t are shared in t + L.
    exit_per_period : float or array
        Probability o that an eligible member leaves in a period (lapse, or claim with cover ending).
    exit_waiting : float or array, optional
        Probability o_w that a member still waiting leaves (lapse only); default ``o``.

    Returns
    -------
    float or array
        ``e = ((1 - o) / (1 + g)) ** w * (1 + g) ** (-L)`` when ``o_w = o`` (general case in Notes).

    Notes
    -----
    Joiners J_t = J_0 (1+g)^t, each surviving a period with probability s = 1 - o.
    Members at tenure tau in t: J_{t-tau} s^tau, so with r = s / (1+g) < 1 the share
    of members past the waiting period is sum_{tau>=w} r^tau / sum_{tau>=0} r^tau = r^w.
    Claims paid in t were incurred in t - L by the eligible members then, whose
    number is N_{t-L} r^w = N_t (1+g)^(-L) r^w. With o = 0 and L = 0 this is the
    ``(1+g)^(-w)`` of shared/domain.md; with g = 0 it is the stationary renewal
    pool, ``(1-o)^w`` of whose members are past the waiting period. When waiting
    members leave with o_w (no claims yet), with r_w = (1 - o_w)/(1+g):
    e = B / (A + B) (1+g)^(-L), A = sum_{tau<w} r_w^tau = (1 - r_w^w)/(1 - r_w),
    B = r_w^w / (1 - r), which is r^w when r_w = r.
    """
    g = float(growth_per_period)
    if not g > -1.0:
        raise ConfigError(f"growth_per_period: must be > -1, got {g}")
    if waiting_periods < 0 or reporting_lag_periods < 0:
        raise ConfigError("waiting_periods and reporting_lag_periods: must be >= 0")
    o = np.asarray(exit_per_period, dtype=np.float64)
    if np.any((o < 0) | (o >= 1)):
        raise ConfigError("exit_per_period: must be in [0, 1)")
    ow = o if exit_waiting is None else np.asarray(exit_waiting, dtype=np.float64)
    if np.any((ow < 0) | (ow >= 1)):
        raise ConfigError("exit_waiting: must be in [0, 1)")
    r = (1.0 - o) / (1.0 + g)
    rw = (1.0 - ow) / (1.0 + g)
    w = float(waiting_periods)
    lagf = (1.0 + g) ** (-float(reporting_lag_periods))
    if w == 0:
        e = np.ones_like(r) * lagf
    elif np.all(r == 1.0):  # no growth, no exits: a closed pool, everyone past the waiting period
        e = np.ones_like(r) * lagf
    elif np.any(r >= 1.0):
        raise ConfigError("growth_per_period: the membership must grow faster than it shrinks by exits "
                          "(need (1 - exit) / (1 + growth) < 1) for a steady state; use growth > -exit")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            A = np.where(np.abs(1.0 - rw) > 1e-12, (1.0 - rw**w) / (1.0 - rw), w)
        B = rw**w / (1.0 - r)
        e = B / (A + B) * lagf
    return float(e) if e.ndim == 0 else e


def share_cv(members: float | np.ndarray, weight: Sequence[float], rate_per_period: Sequence[float],
             benefit: Sequence[float], eligible: float | Sequence[float] = 1.0) -> Any:
    """Coefficient of variation of one period's share for a plan of ``members`` members.

    Notes
    -----
    Group g: share f_g of the members, claim probability mu_g per period, benefit B_g,
    effective eligible fraction e_g. Claims paid K_g ~ Poisson(N f_g e_g mu_g), share
    S = (1 + phi) sum_g K_g B_g / N, so::

        CV(N) = sqrt(sum_g f_g e_g mu_g B_g^2) / (sum_g f_g e_g mu_g B_g) / sqrt(N)
              = sqrt(kappa / m),   m = N sum_g f_g e_g mu_g (expected claims paid),
              kappa = E_c[B^2] / E_c[B]^2 >= 1 (claim-weighted benefit dispersion).

    With one benefit kappa = 1 and CV = 1 / sqrt(m). The fee cancels.
    """
    a2, a1 = _moments(weight, rate_per_period, benefit, eligible)
    n = np.asarray(members, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = np.where(n > 0, math.sqrt(a2) / a1 / np.sqrt(np.where(n > 0, n, 1.0)), np.inf)
    return float(out) if out.ndim == 0 else out


def claims_for_share_cv(target_cv: float) -> float:
    """Expected claims per period giving a share CV of ``target_cv`` with one benefit: ``1 / cv^2``.

    Notes
    -----
    :func:`members_for_cv` with one group and one benefit (kappa = 1): m* = 1 / cv^2.
    """
    if not target_cv or not target_cv > 0:
        raise ConfigError(f"target_share_cv: must be > 0, got {target_cv!r}")
    return 1.0 / (target_cv * target_cv)


def members_for_cv(target_cv: float, weight: Sequence[float], rate_per_period: Sequence[float],
                   benefit: Sequence[float], eligible: float | Sequence[float] = 1.0) -> float:
    """Members N* giving a share CV of ``target_cv``: ``N* = a2 / (a1^2 cv^2)`` (see :func:`share_cv`)."""
    if not target_cv > 0:
        raise ConfigError(f"target_cv: must be > 0, got {target_cv}")
    a2, a1 = _moments(weight, rate_per_period, benefit, eligible)
    return a2 / (a1 * a1 * target_cv * target_cv)


def _moments(weight: Sequence[float], mu: Sequence[float], benefit: Sequence[float],
             eligible: float | Sequence[float]) -> tuple[float, float]:
    f = np.asarray(weight, dtype=np.float64)
    m = np.asarray(mu, dtype=np.float64)
    b = np.asarray(benefit, dtype=np.float64)
    e = np.broadcast_to(np.asarray(eligible, dtype=np.float64), f.shape)
    if f.sum() <= 0:
        raise ConfigError("plan size: the plan has no members (weights sum to 0)")
    f = f / f.sum()
    a1 = float(np.sum(f * e * m * b))
    a2 = float(np.sum(f * e * m * b * b))
    if not a1 > 0:
        raise ConfigError("plan size: the plan has no expected claims (rate, benefit or eligible fraction is 0)")
    return a2, a1


@dataclass
class PlanSizeResult:
    """Output of :func:`plan_size`: one row per plan in ``table``.

    Columns: ``plan``, ``members`` (given), ``eligible_fraction`` (member-weighted),
    ``claim_rate_per_member_period`` (sum f e mu), ``benefit_dispersion`` (kappa),
    ``share_cv`` (at the given members), ``share_cv_approx`` (1/sqrt(m)),
    ``expected_claims_needed`` (kappa / cv^2), ``members_for_target_cv``,
    ``members_ratio`` (given / needed; >= 1 means stable enough), ``target_cv``.
    """

    table: pl.DataFrame
    target_cv: float

    @property
    def summary(self) -> pl.DataFrame:
        """The per-plan table."""
        return self.table

    def _repr_html_(self) -> str:
        """Compact HTML card: the target CV and, per plan, the members needed for it."""
        from engine._results import frames_card

        numbers: dict[str, object] = {"target share CV": self.target_cv}
        if {"plan", "members_for_target_cv"} <= set(self.table.columns):
            for plan, need in self.table.select("plan", "members_for_target_cv").head(10).iter_rows():
                numbers[f"{plan}: members for the target CV"] = need
        return frames_card(self, numbers)

    def print_summary(self) -> None:
        """Print the per-plan table."""
        from engine._display import print_table

        print_table(f"members needed for a share CV of {self.target_cv:.0%} per period", self.table.to_dicts())

    def plot_cv(self, plan: str | None = None, ax: Any = None) -> Any:
        """Share CV against members (log-log) with the target; returns the ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        rows = self.table if plan is None else self.table.filter(pl.col("plan") == plan)
        for r in rows.iter_rows(named=True):
            need = r["members_for_target_cv"]
            n = np.geomspace(need / 30, need * 30, 60)
            ax.loglog(n, self.target_cv * np.sqrt(need / n), label=str(r["plan"]))
            if r["members"]:
                ax.plot([r["members"]], [r["share_cv"]], "o", color=ax.lines[-1].get_color())
        ax.axhline(self.target_cv, linestyle="--", color="k", label=f"target {self.target_cv:.0%}")
        ax.set_xlabel("members sharing")
        ax.set_ylabel("share CV per period")
        ax.set_title("plan size for a stable share")
        ax.legend()
        return ax


def plan_size(
    groups: pl.DataFrame | Mapping[str, Sequence[Any]],
    *,
    target_cv: float = TARGET_SHARE_CV,
    periods_per_year: float = 12,
    growth_per_period: float = 0.0,
    waiting_periods: float = 0.0,
    reporting_lag_periods: float = 0.0,
    lapse_annual: float = 0.0,
    claimants_exit: bool = False,
) -> PlanSizeResult:
    """Members each plan needs for a target share CV per sharing period, in closed form.

    Parameters
    ----------
    groups : DataFrame or mapping of columns
        One row per (plan, group): ``members`` (the mix; any scale), ``rate`` (annual
        incidence) and ``benefit_cny`` (or ``benefit``); ``plan`` optional ("all").
        A projection groups table (:func:`engine.groups_from_table`) works unchanged.
    target_cv : float
        Target coefficient of variation of one period's share (0.10 = 10%).
    periods_per_year : float
        Sharing periods a year; mu = rate / periods_per_year.
    growth_per_period, waiting_periods, reporting_lag_periods :
        Steady growth g, waiting period w and reporting lag L, in periods.
    lapse_annual : float
        Annual lapse probability h_a; per period ``h = 1 - (1 - h_a)^(1/ppy)``.
    claimants_exit : bool
        A claimant's cover ends (adds mu_g to the per-period exit probability).

    Returns
    -------
    PlanSizeResult

    Notes
    -----
    Per group, exit probability ``o_g = 1 - (1 - h)(1 - q_g)`` (``q_g = mu_g`` if
    claimants exit, else 0; ``h`` alone while waiting) and effective eligible fraction
    ``e_g ~ ((1 - o_g)/(1 + g))^w (1 + g)^(-L)`` (exactly: :func:`eligible_fraction`). With
    member shares f_g::

        CV(N) = sqrt(sum f e mu B^2) / (sum f e mu B) / sqrt(N)
        N*    = sum f e mu B^2 / ((sum f e mu B)^2 cv^2)

    i.e. kappa / cv^2 expected claims paid per period (kappa = 1 for one benefit:
    100 claims for 10%). Caps are ignored (a binding per-claimant cap makes every
    claim cost the same, so CV = 1/sqrt(m)); select effects are taken as worn off.

    Examples
    --------
    >>> r = plan_size({"members": [1.0], "rate": [0.0012], "benefit": [300_000]}, target_cv=0.1)
    >>> round(r.table["members_for_target_cv"][0])
    1000000
    """
    if not target_cv > 0:
        raise ConfigError(f"target_cv: must be > 0, got {target_cv}")
    if not periods_per_year > 0:
        raise ConfigError("periods_per_year: must be > 0")
    if not 0 <= lapse_annual < 1:
        raise ConfigError("lapse_annual: must be in [0, 1)")
    df = groups if isinstance(groups, pl.DataFrame) else pl.DataFrame(dict(groups))
    if "benefit_cny" not in df.columns and "benefit" in df.columns:
        df = df.rename({"benefit": "benefit_cny"})
    for c in ("members", "rate", "benefit_cny"):
        if c not in df.columns:
            raise ConfigError(f"groups: column '{c}' is required")
        s = df[c].cast(pl.Float64, strict=False)
        if s.null_count() or not bool(s.is_finite().all()) or bool((s < 0).any()):
            raise ConfigError(f"groups: column '{c}' must be finite and >= 0 without nulls")
    if "plan" not in df.columns:
        df = df.with_columns(plan=pl.lit("all"))
    h = 1.0 - (1.0 - lapse_annual) ** (1.0 / periods_per_year)
    rows = []
    for plan in df["plan"].unique(maintain_order=True).to_list():
        d = df.filter(pl.col("plan") == plan)
        n = d["members"].cast(pl.Float64).to_numpy()
        mu = d["rate"].cast(pl.Float64).to_numpy() / periods_per_year
        b = d["benefit_cny"].cast(pl.Float64).to_numpy()
        o = 1.0 - (1.0 - h) * (1.0 - (mu if claimants_exit else 0.0))  # no claim while waiting: o_w = h
        e = np.asarray(eligible_fraction(growth_per_period, waiting_periods, reporting_lag_periods, o, h)) \
            * np.ones_like(n)
        total = float(n.sum())
        f = n / total if total > 0 else np.ones_like(n) / n.size
        a2, a1 = _moments(f, mu, b, e)
        rate_pm = float(np.sum(f * e * mu))
        need = a2 / (a1 * a1 * target_cv * target_cv)
        cv = math.sqrt(a2) / a1 / math.sqrt(total) if total > 0 else None
        rows.append({
            "plan": str(plan), "members": total, "eligible_fraction": float(np.sum(f * e)),
            "claim_rate_per_member_period": rate_pm, "benefit_dispersion": a2 * rate_pm / (a1 * a1),
            "share_cv": cv, "share_cv_approx": 1.0 / math.sqrt(total * rate_pm) if total > 0 else None,
            "expected_claims_needed": need * rate_pm, "members_for_target_cv": need,
            "members_ratio": total / need, "target_cv": float(target_cv)})
    return PlanSizeResult(pl.DataFrame(rows, schema_overrides={"share_cv": pl.Float64,
                                                               "share_cv_approx": pl.Float64}), float(target_cv))
