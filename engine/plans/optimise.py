"""Plan optimiser: K marketable vertical plans that minimise the cross-subsidy.

A candidate plan is a contiguous band of attained ages, optionally split by one
rating factor into groups of levels (e.g. ``40-59 and city_tier in {4, 5}``).
Under equal sharing the cross-subsidy of a plan is the money moved between its
members; the optimiser minimises its total subject to a minimum number of
expected claims per period in every plan (share stability) and a maximum
number of plans. The search is exact: dynamic programming over the contiguous
age bands, enumeration of the level groupings of each factor in each band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from engine.conventions import DAYS_PER_YEAR
from engine._results import ResultMixin, print_frame, warn_renamed
from engine.plans.compare import _check_table
from engine.data._coerce import api_input
from engine.plans._risk_table import _check_table
from engine.errors import ConfigError, DataError
from engine.plans.planset import BenefitBand, Eligibility, Plan, PlanSet

OBJECTIVES = ("absolute", "squared")


def set_partitions(items: Sequence, max_blocks: int, *, contiguous: bool = False) -> list[list[tuple]]:
    """Every partition of ``items`` into 2..max_blocks non-empty blocks (order of blocks canonical).

    With ``contiguous`` only partitions into runs of consecutive items.
    """
    items = list(items)
    out: list[list[tuple]] = []
    if contiguous:
        n = len(items)
        for k in range(2, min(max_blocks, n) + 1):
            for cuts in combinations(range(1, n), k - 1):
                bounds = (0, *cuts, n)
                out.append([tuple(items[a:b]) for a, b in zip(bounds, bounds[1:])])
        return out

    def rec(i: int, blocks: list[list]) -> None:
        if i == len(items):
            if 2 <= len(blocks) <= max_blocks:
                out.append([tuple(b) for b in blocks])
            return
        for b in blocks:
            b.append(items[i])
            rec(i + 1, blocks)
            b.pop()
        if len(blocks) < max_blocks:
            blocks.append([items[i]])
            rec(i + 1, blocks)
            blocks.pop()

    rec(0, [])
    return out


@dataclass(frozen=True)
class PlanSpec:
    """One proposed plan: ages ``age_min..age_max``, optionally ``factor in levels``.

    Bands are contiguous: an age absent from the risk table (e.g. 5-year age
    groups) belongs to the band of the age below it.
    """

    age_min: int
    age_max: int
    factor: str | None = None
    levels: tuple = ()
    members: float = 0.0
    expected_claims_per_period: float = 0.0
    share_cny: float = 0.0
    cross_subsidy_cny: float = 0.0
    members_for_target_cv: float | None = None

    @property
    def name(self) -> str:
        base = f"age{self.age_min}-{self.age_max}"
        if self.factor:
            base += f"_{self.factor}" + "-".join(str(v) for v in self.levels)
        return base


@dataclass
class OptimiseResult(ResultMixin):
    """Output of :func:`optimise_plans`.

    Attributes
    ----------
    tradeoff : one row per K = 1..max_plans: feasibility, total cross-subsidy
        with exactly K plans (CNY per period), its share of the total cost, the
        smallest plan's expected claims per period and its share CV (1/sqrt), the
        smallest operating members / members needed for the target CV (with
        ``target_share_cv``; >= 1 by construction), and
        the best total with at most K plans (splitting a plan can raise the
        absolute objective, because a plan's share is a mean, not a median).
    solutions : K -> list of :class:`PlanSpec` (feasible K only).
    """

    tradeoff: pl.DataFrame
    solutions: dict[int, list[PlanSpec]]
    template: Plan
    objective: str
    extra: dict = field(default_factory=dict)

    def plans(self, k: int) -> pl.DataFrame:
        """The K-plan solution as a table."""
        if k not in self.solutions:
            raise ConfigError(f"k: no feasible solution with {k} plans")
        rows = [{**s.__dict__, "levels": [str(v) for v in s.levels], "name": s.name} for s in self.solutions[k]]
        return pl.DataFrame(rows, schema_overrides={"factor": pl.String, "levels": pl.List(pl.String),
                                                  "members_for_target_cv": pl.Float64})

    def planset(self, k: int) -> PlanSet:
        """The K-plan solution as a :class:`PlanSet` (template's fee, waiting, sharing, caps, rule)."""
        if k not in self.solutions:
            raise ConfigError(f"k: no feasible solution with {k} plans")
        t = self.template
        plans = []
        for s in self.solutions[k]:
            bands = tuple(
                BenefitBand(max(b.age_min, s.age_min), min(b.age_max, s.age_max), b.amount)
                for b in t.benefits if b.age_max >= s.age_min and b.age_min <= s.age_max
            )
            values = {s.factor: tuple(s.levels)} if s.factor else {}
            plans.append(Plan(name=s.name, eligibility=Eligibility(age=(s.age_min, s.age_max), values=values),
                              benefits=bands, fee=t.fee, waiting_days=t.waiting_days, sharing_days=t.sharing_days,
                              per_claimant_cap=t.per_claimant_cap, annual_cap=t.annual_cap, rule=t.rule))
        return PlanSet(tuple(plans), name=f"optimised_k{k}", source=f"optimiser (K={k})",
                       description=f"{k} plans proposed by engine.plans.optimise ({self.objective} cross-subsidy)")

    def to_toml(self, k: int) -> str:
        """The K-plan solution as a plan-set TOML file (readable by :func:`engine.load_plans`)."""
        from engine.plans.planset import to_toml

        return to_toml(self.planset(k))

    def plot_tradeoff(self, ax: Any = None) -> Any:
        """Cross-subsidy and share CV of the smallest plan against K (the granularity trade-off); returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        t = self.tradeoff.filter(pl.col("feasible"))
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(t["k"].to_numpy(), t["cross_subsidy_cny_per_period"].to_numpy(), "o-", label="cross-subsidy")
        ax.set_xlabel("number of plans K")
        ax.set_ylabel("cross-subsidy (CNY per period)")
        ax2 = ax.twinx()
        ax2.plot(t["k"].to_numpy(), t["max_share_cv_approx"].to_numpy(), "s--", color="tab:red", label="max share CV")
        ax2.set_ylabel("share CV of the smallest plan")
        ax.set_title("granularity trade-off")
        return ax

    @property
    def summary(self) -> pl.DataFrame:
        """The granularity trade-off table."""
        return self.tradeoff

    def print_summary(self, decimals: int = 4) -> None:
        """Print the granularity trade-off, floats to ``decimals`` significant digits."""
        print_frame(self.tradeoff.with_columns(pl.col("feasible").cast(pl.String)),
                    f"granularity trade-off ({self.objective} cross-subsidy)", decimals)

    def _key_numbers(self) -> dict[str, Any]:
        return {"objective": self.objective, "feasible K": ", ".join(str(k) for k in sorted(self.solutions))}


def _cost(n: np.ndarray, c: np.ndarray, block: np.ndarray, nb: int, objective: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Cross-subsidy of rows split into ``nb`` plans by ``block``; also members and shares per plan."""
    members = np.bincount(block, weights=n, minlength=nb)
    tot = np.bincount(block, weights=n * c, minlength=nb)
    share = np.divide(tot, members, out=np.zeros(nb), where=members > 0)
    dev = share[block] - c
    if objective == "absolute":
        return 0.5 * float(np.sum(n * np.abs(dev))), members, share
    return float(np.sum(n * dev * dev)), members, share


@api_input(frames=("risk_table",))
def optimise_plans(
    risk_table: pl.DataFrame,
    template: Plan,
    *,
    max_plans: int = 6,
    min_claims_per_period: float = 30.0,
    max_share_cv: float | None = None,
    factors: Sequence[str] = (),
    max_factor_groups: int = 2,
    contiguous_levels: bool = True,
    objective: str = "absolute",
    periods_per_year: float | None = None,
    study_years: float = 1.0,
    target_share_cv: float | None = None,
    members_scale: float = 1.0,
    growth_per_period: float = 0.0,
    reporting_lag_periods: float = 0.0,
) -> OptimiseResult:
    """Propose K = 1..max_plans vertical plans that minimise the cross-subsidy.

    Parameters
    ----------
    risk_table : rows with ``age``, ``rate``, ``members`` and the ``factors`` columns.
    template : the plan whose benefit schedule, fee, sharing days, caps and rule
        every proposed plan keeps (e.g. the pooled plan).
    max_plans : the largest number of plans K.
    min_claims_per_period : every plan needs at least this many expected claims per
        period (share CV about 1/sqrt of it).
    max_share_cv : deprecated name of ``target_share_cv`` (DeprecationWarning).
    factors : columns that may split an age band (each with few levels).
    max_factor_groups : a band is split by one factor into at most this many plans.
    contiguous_levels : numeric factors are split only into runs of consecutive levels
        (``city_tier in {4, 5}``), which a platform can market.
    objective : ``"absolute"`` (money moved, CNY per period) or ``"squared"``.
    target_share_cv : float, optional
        Also require every plan's operating membership (``members_scale`` x its members
        in the table) to reach the members needed for this share CV per period
        (:func:`engine.plans.size.plan_size`), with the template's waiting period,
        ``growth_per_period`` and ``reporting_lag_periods``. The table's members may be
        the study's, far fewer than the plan will operate with ("two different sizes").
    members_scale : float
        Operating members per member of the table.

    Notes
    -----
    With c_i = (1 + phi) lambda_i dt B_i the own cost of a member of row i and
    S_p = sum_{i in p} N_i c_i / N_p, the cross-subsidy of plan p is
    T_p = 1/2 sum_{i in p} N_i |S_p - c_i| (what overpayers pay for underpayers;
    "squared": sum N_i (S_p - c_i)^2). T is additive over plans, so with ages
    a_0 < ... < a_{A-1}, best[j][k] = min over i < j and band options o of
    best[i][k - blocks(o)] + T(a_i..a_{j-1}, o), subject to every plan's
    expected claims >= min_claims_per_period, is exact.

    The member constraint (``target_share_cv``): with m_i = N_i lambda_i dt,
    e = (1+g)^(-w-L) and w the template's waiting period in periods,
    N*_p = N_p sum m_i B_i^2 / ((sum m_i B_i)^2 e cv^2) (scale-free: it depends on
    the plan's mix only), and the plan is admissible when members_scale N_p >= N*_p.
    """
    if max_share_cv is not None:
        warn_renamed("optimise_plans", "max_share_cv", "target_share_cv")
        target_share_cv = max_share_cv
    _check_optimise_args(target_share_cv, members_scale, objective, max_plans, min_claims_per_period, max_factor_groups)
    table = _check_table(risk_table, study_years)
    for f in factors:
        if f not in table.columns:
            raise DataError(f"risk table: factor column '{f}' is missing")
        if table[f].n_unique() > 8:
            raise ConfigError(f"factors: '{f}' has {table[f].n_unique()} levels; at most 8 can be enumerated")
    ppy = float(periods_per_year or template.periods_per_year)
    table = table.with_columns(template.benefit_expr().alias("_b")).sort("age")
    if table["_b"].null_count():
        bad = table.filter(pl.col("_b").is_null())["age"].min()
        raise DataError(f"risk table: age {bad} is outside the template plan's benefit schedule")
    if target_share_cv is not None:
        from engine.plans.size import eligible_fraction

        e_frac = eligible_fraction(growth_per_period, template.waiting_days * ppy / DAYS_PER_YEAR, reporting_lag_periods)
        need_k = 1.0 / (e_frac * target_share_cv**2)
    else:
        need_k = 0.0
    rows = _rows(table, template.fee, ppy)
    options, codes = _band_options(table, factors, max_factor_groups, contiguous_levels)
    best, back = _best_partitions(
        rows, options, codes, max_plans=max_plans, min_claims_per_period=min_claims_per_period,
        target_share_cv=target_share_cv, need_k=need_k, members_scale=members_scale, objective=objective,
    )
    tradeoff, solutions = _tradeoff(
        best, back, total_cost=float(np.sum(rows.n * rows.c)), max_plans=max_plans, objective=objective,
        target_share_cv=target_share_cv, members_scale=members_scale,
    )
    return OptimiseResult(tradeoff=tradeoff, solutions=solutions, template=template, objective=objective)


def _check_optimise_args(
    target_share_cv: float | None,
    members_scale: float,
    objective: str,
    max_plans: int,
    min_claims_per_period: float,
    max_factor_groups: int,
) -> None:
    """Raise ConfigError on a bad option."""
    if target_share_cv is not None and not target_share_cv > 0:
        raise ConfigError("target_share_cv: must be > 0")
    if not members_scale > 0:
        raise ConfigError("members_scale: must be > 0")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective: must be one of {', '.join(OBJECTIVES)}")
    if not (isinstance(max_plans, int) and max_plans >= 1):
        raise ConfigError("max_plans: must be an integer >= 1")
    if min_claims_per_period < 0:
        raise ConfigError("min_claims_per_period: must be >= 0")
    if not (isinstance(max_factor_groups, int) and max_factor_groups >= 2):
        raise ConfigError("max_factor_groups: must be an integer >= 2")


@dataclass(frozen=True)
class _Rows:
    """Risk-table rows sorted by age, as arrays: members, own cost, expected claims and their benefit moments."""

    ages: np.ndarray
    starts: np.ndarray
    n: np.ndarray
    c: np.ndarray
    m: np.ndarray
    mb: np.ndarray
    mb2: np.ndarray


def _rows(table: pl.DataFrame, fee: float, ppy: float) -> _Rows:
    """Arrays of the sorted risk table.

    Notes
    -----
    ``m_i = N_i lambda_i / ppy`` (expected claims per period),
    ``c_i = (1 + fee) lambda_i / ppy B_i`` (own cost per member and period).
    """
    ages = np.array(sorted(table["age"].unique().to_list()))
    age_idx = np.searchsorted(ages, table["age"].to_numpy())
    n = table["members"].to_numpy()
    m = n * table["rate"].to_numpy() / ppy
    c = (1 + fee) * table["rate"].to_numpy() / ppy * table["_b"].to_numpy()
    bcol = table["_b"].to_numpy().astype(np.float64)
    mb, mb2 = m * bcol, m * bcol * bcol
    starts = np.searchsorted(age_idx, np.arange(len(ages) + 1))
    return _Rows(ages=ages, starts=starts, n=n, c=c, m=m, mb=mb, mb2=mb2)


_Option = tuple[str | None, list[tuple], np.ndarray | None]


def _band_options(
    table: pl.DataFrame, factors: Sequence[str], max_factor_groups: int, contiguous_levels: bool
) -> tuple[list[_Option], dict[str, np.ndarray]]:
    """Ways to split an age band: no split, or one factor's levels partitioned into blocks; with the level codes."""
    options: list[_Option] = [(None, [()], None)]
    codes: dict[str, np.ndarray] = {}
    for f in factors:
        levels = sorted(table[f].drop_nulls().unique().to_list())
        lookup = {v: i for i, v in enumerate(levels)}
        codes[f] = table[f].replace_strict(lookup, default=-1, return_dtype=pl.Int64).to_numpy()
        numeric = table[f].dtype.is_numeric()
        for part in set_partitions(levels, max_factor_groups, contiguous=contiguous_levels and numeric):
            lut = np.empty(len(levels), dtype=np.int64)
            for bi, blk in enumerate(part):
                for v in blk:
                    lut[lookup[v]] = bi
            options.append((f, part, lut))
    return options, codes


def _best_partitions(
    rows: _Rows,
    options: list[_Option],
    codes: dict[str, np.ndarray],
    *,
    max_plans: int,
    min_claims_per_period: float,
    target_share_cv: float | None,
    need_k: float,
    members_scale: float,
    objective: str,
) -> tuple[np.ndarray, dict[tuple[int, int], tuple[int, int, list[PlanSpec]]]]:
    """Dynamic programme over age cut points: least cross-subsidy with k plans for ages before j, and back-pointers.

    Notes
    -----
    ``best[j][k] = min_{i<j, o} best[i][k - blocks(o)] + T(a_i..a_{j-1}, o)``
    over admissible band options o (claims and members constraints).
    """
    ages, starts, n, c, m = rows.ages, rows.starts, rows.n, rows.c, rows.m
    A = len(ages)
    best = np.full((A + 1, max_plans + 1), float("inf"))
    best[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, list[PlanSpec]]] = {}
    for j in range(1, A + 1):
        for i in range(j):
            sl = slice(starts[i], starts[j])
            rn, rc, rm = n[sl], c[sl], m[sl]
            for f, part, lut in options:
                split = _band_blocks(f, part, lut, codes, sl, len(rn))
                if split is None:
                    continue
                block, nb = split
                if nb > max_plans:
                    continue
                claims = np.bincount(block, weights=rm, minlength=nb)
                if (claims < min_claims_per_period).any() or (np.bincount(block, weights=rn, minlength=nb) <= 0).any():
                    continue
                need = None
                if target_share_cv is not None:
                    need = _members_needed(rows, sl, block, nb, need_k)
                    if (members_scale * np.bincount(block, weights=rn, minlength=nb) < need).any():
                        continue
                cost, members, share = _cost(rn, rc, block, nb, objective)
                for k in range(nb, max_plans + 1):
                    if not np.isfinite(best[i, k - nb]):
                        continue
                    cand = best[i, k - nb] + cost
                    if cand < best[j, k] - 1e-12 * max(1.0, abs(cand)):
                        best[j, k] = cand
                        hi = int(ages[j]) - 1 if j < A else int(ages[j - 1])  # ages between rows belong to the band
                        specs = [
                            PlanSpec(int(ages[i]), hi, f, part[bi] if f else (),
                                     float(members[bi]), float(claims[bi]), float(share[bi]),
                                     0.5 * float(np.sum(rn[block == bi] * np.abs(share[bi] - rc[block == bi]))),
                                     float(need[bi]) if need is not None else None)
                            for bi in range(nb)
                        ]
                        back[(j, k)] = (i, k - nb, specs)
    return best, back


def _band_blocks(
    f: str | None, part: list[tuple], lut: np.ndarray | None, codes: dict[str, np.ndarray], sl: slice, size: int
) -> tuple[np.ndarray, int] | None:
    """Plan index of each row of the band under one option, and the number of plans; None if a level is null."""
    if f is None:
        return np.zeros(size, dtype=np.int64), 1
    code = codes[f][sl]
    if (code < 0).any():
        return None  # a null level cannot be assigned to a marketed plan
    assert lut is not None
    return lut[code], len(part)


def _members_needed(rows: _Rows, sl: slice, block: np.ndarray, nb: int, need_k: float) -> np.ndarray:
    """Operating members each plan needs for the target share CV.

    Notes
    -----
    ``N*_p = N_p sum m_i B_i^2 / (sum m_i B_i)^2 * need_k`` with
    ``need_k = 1 / (e cv^2)``; infinite when the plan expects no claims.
    """
    s1 = np.bincount(block, weights=rows.mb[sl], minlength=nb)
    s2 = np.bincount(block, weights=rows.mb2[sl], minlength=nb)
    nn = np.bincount(block, weights=rows.n[sl], minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s1 > 0, nn * s2 / np.where(s1 > 0, s1, 1.0) ** 2 * need_k, np.inf)


_TRADEOFF_SCHEMA = {
    "k": pl.Int64, "feasible": pl.Boolean, "cross_subsidy_cny_per_period": pl.Float64,
    "cross_subsidy_share": pl.Float64, "min_expected_claims_per_period": pl.Float64,
    "max_share_cv_approx": pl.Float64, "plans": pl.String, "min_members_ratio": pl.Float64,
    "best_at_most_k_cny_per_period": pl.Float64,
}


def _tradeoff(
    best: np.ndarray,
    back: dict[tuple[int, int], tuple[int, int, list[PlanSpec]]],
    *,
    total_cost: float,
    max_plans: int,
    objective: str,
    target_share_cv: float | None,
    members_scale: float,
) -> tuple[pl.DataFrame, dict[int, list[PlanSpec]]]:
    """The granularity trade-off table (one row per K) and the plans of each feasible K, read from the back-pointers."""
    A = best.shape[0] - 1
    rows_out = []
    solutions: dict[int, list[PlanSpec]] = {}
    for k in range(1, max_plans + 1):
        if not np.isfinite(best[A, k]):
            rows_out.append({"k": k, "feasible": False, "cross_subsidy_cny_per_period": None,
                             "cross_subsidy_share": None, "min_expected_claims_per_period": None,
                             "max_share_cv_approx": None, "plans": "", "min_members_ratio": None})
            continue
        specs: list[PlanSpec] = []
        j, kk = A, k
        while j > 0:
            i, kk, sp = back[(j, kk)]
            specs = sp + specs
            j = i
        solutions[k] = specs
        mn = min(s.expected_claims_per_period for s in specs)
        rows_out.append({"k": k, "feasible": True, "cross_subsidy_cny_per_period": float(best[A, k]),
                         "cross_subsidy_share": float(best[A, k]) / total_cost if total_cost > 0 and objective == "absolute" else None,
                         "min_expected_claims_per_period": mn,
                         "max_share_cv_approx": float(1 / np.sqrt(mn)) if mn > 0 else None,
                         "plans": "; ".join(s.name for s in specs),
                         "min_members_ratio": min(members_scale * s.members / s.members_for_target_cv for s in specs)
                         if target_share_cv is not None else None})
    running = float("inf")
    for r in rows_out:  # the absolute objective is not monotone in K: also report the best with at most K plans
        if r["cross_subsidy_cny_per_period"] is not None:
            running = min(running, r["cross_subsidy_cny_per_period"])
        r["best_at_most_k_cny_per_period"] = running if np.isfinite(running) else None
    return pl.DataFrame(rows_out, schema=_TRADEOFF_SCHEMA), solutions
