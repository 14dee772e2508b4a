"""Pooled versus vertical plans: shares, leverage, volatility and cross-subsidy.

The input is a *risk table* (polars DataFrame), one row per cell or group of
members, with ``age`` (attained age, Int), ``rate`` (expected claims per
exposure-year, from any model or crude claims / exposure), ``members`` (members
in a stationary pool; or ``exposure_years`` divided by ``study_years``) and the
member attributes the eligibility rules use (``sex``, ``city_tier`` ...). An
optional ``group`` column names the risk groups to report (e.g. the segments
of :class:`engine.RiskSegmenter`); by default the groups are the vertical
plans themselves. :func:`build_risk_table` builds the table from cells and,
optionally, a fitted model with ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin, print_frame
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError
from engine.plans.planset import Plan, PlanSet, assign_plans
from engine.conventions import DAYS_PER_YEAR, TARGET_SHARE_CV
from engine.plans.sharing import capped_share, cross_subsidy, leverage
from engine.plans._risk_table import _check_table, _sums_by, build_risk_table  # noqa: F401  (build_risk_table re-exported)


#: largest number of groups per plan for the (groups x groups) cross-subsidy matrix
MAX_MATRIX_GROUPS = 2000


def _meta(plans: PlanSet, ppy: float | None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "plan": [p.name for p in plans],
            "rule": [p.rule for p in plans],
            "periods_per_year": [float(ppy or p.periods_per_year) for p in plans],
            "waiting_days": [p.waiting_days for p in plans],
            "per_claimant_cap": [p.per_claimant_cap for p in plans],
            "annual_cap": [p.annual_cap for p in plans],
        },
        schema_overrides={"per_claimant_cap": pl.Float64, "annual_cap": pl.Float64},
    )


#: the deterministic cap flags of a plan (True: the cap binds at today's mix)
CAP_FLAGS = ("per_claimant_cap_binding", "annual_cap_binding", "cap_binding")


def _caps(share: pl.Expr) -> list[pl.Expr]:
    """The share after each cap at the expected claim count, and the flags of :data:`CAP_FLAGS`.

    Notes
    -----
    With s the share per period at today's mix, m the expected claims a period, c the
    per-claimant cap, A the annual cap and P the periods a year:
    s1 = min(s, c m) (share after the per-claimant cap, ``share_after_per_claimant_cap_cny``),
    s2 = min(s1, A / P) (``share_after_caps_cny``);
    ``per_claimant_cap_binding`` = s > c m, ``annual_cap_binding`` = P s1 > A (the annual cap
    binds on what is left after the per-claimant cap: the event whose probability the projection
    estimates, ``annual_cap_binds_prob``), ``cap_binding`` = either.
    """
    tol = 1 - 1e-12
    s1 = capped_share(share, pl.col("per_claimant_cap").fill_null(float("inf")) * pl.col("_m"))
    s2 = capped_share(s1, pl.col("annual_cap").fill_null(float("inf")) / pl.col("periods_per_year"))
    pc = s1 < share * tol
    an = s2 < s1 * tol
    return [s1.alias("share_after_per_claimant_cap_cny"), s2.alias("share_after_caps_cny"),
            pc.alias("per_claimant_cap_binding"), an.alias("annual_cap_binding"), (pc | an).alias("cap_binding")]


def _evaluate(rows: pl.DataFrame, meta: pl.DataFrame, growth: float, label: str, target_cv: float = TARGET_SHARE_CV,
              lag: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-plan and per-(plan, group) statistics for rows with ``plan``, ``group``, ``benefit_cny``, ``fee``."""
    r = rows.filter(pl.col("plan").is_not_null()).join(meta, on="plan", how="left")
    r = r.with_columns(
        (pl.col("members") * pl.col("rate") / pl.col("periods_per_year")).alias("_m"),
    ).with_columns(
        (pl.col("_m") * pl.col("benefit_cny")).alias("_cost"),
        ((1 + pl.col("fee")) * pl.col("_m") * pl.col("benefit_cny")).alias("_costf"),
        (pl.col("_m") * pl.col("benefit_cny") ** 2).alias("_var"),
        (pl.col("members") * pl.col("benefit_cny")).alias("_nb"),
    )
    first = [pl.col(c).first() for c in ("rule", "periods_per_year", "waiting_days", "per_claimant_cap", "annual_cap")]
    plan = _sums_by(r, ["plan"], {c: pl.col(c) for c in ("members", "_m", "_cost", "_costf", "_var", "_nb")}).join(
        r.group_by("plan", maintain_order=True).agg(*first), on="plan", how="left", nulls_equal=True,
        maintain_order="left")
    wait_periods = pl.col("waiting_days") * pl.col("periods_per_year") / DAYS_PER_YEAR
    plan = plan.with_columns(
        (pl.col("_costf") / pl.col("members")).alias("share_current_mix_cny"),
        (pl.col("_nb") / pl.col("members")).alias("mean_benefit_cny"),
        (1.0 / pl.col("_m").sqrt()).alias("share_cv_approx"),
        (pl.col("_var").sqrt() / pl.col("_cost")).alias("share_cv"),
        ((1.0 + growth) ** (-wait_periods)).alias("at_risk_fraction"),
    ).with_columns(
        (pl.col("share_current_mix_cny") * pl.col("at_risk_fraction")).alias("expected_share_cny"),
        # engine.plans.size closed form with no exits: N* = N sum(m B^2) / ((sum m B)^2 e cv^2), e = (1+g)^(-w-L)
        (pl.col("members") * pl.col("_var") / (pl.col("_cost") ** 2 * pl.col("at_risk_fraction")
                                                * (1.0 + growth) ** (-lag) * target_cv**2)).alias("members_for_target_cv"),
    )
    plan = plan.with_columns(_caps(pl.col("share_current_mix_cny")))
    grp = _sums_by(r, ["plan", "group"], {c: pl.col(c) for c in ("members", "_m", "_costf", "_nb")})
    grp = grp.join(
        plan.select("plan", "rule", "periods_per_year", "share_current_mix_cny", "expected_share_cny", "share_cv",
                    "share_cv_approx", "share_after_per_claimant_cap_cny", "share_after_caps_cny", *CAP_FLAGS,
                    "members_for_target_cv"),
        on="plan", how="left",
    ).with_columns(
        (pl.col("_costf") / pl.col("members")).alias("own_share_cny"),
        (pl.col("_nb") / pl.col("members")).alias("mean_benefit_cny"),
    ).with_columns(
        pl.when(pl.col("rule") == "equal").then(pl.col("share_current_mix_cny")).otherwise(pl.col("own_share_cny")).alias("payment_cny"),
    ).with_columns(cross_subsidy(pl.col("payment_cny"), pl.col("own_share_cny")).alias("cross_subsidy_cny"))
    cols = ["planset", "plan", "level", "group", "rule", "periods_per_year", "members", "expected_claims_per_period",
            "mean_benefit_cny", "expected_share_cny", "share_current_mix_cny", "own_share_cny", "payment_cny",
            "cross_subsidy_cny", "leverage", "leverage_after_caps", "share_cv", "share_cv_approx", "payment_cv",
            "share_after_per_claimant_cap_cny", "share_after_caps_cny", *CAP_FLAGS, "members_for_target_cv"]
    lev = leverage(pl.col("mean_benefit_cny"), pl.col("payment_cny"), pl.col("periods_per_year"))
    # after the caps: the payment scaled by the plan's capped / uncapped share (equal sharing: the capped share)
    lev_capped = leverage(pl.col("mean_benefit_cny"), pl.col("payment_cny") * pl.col("share_after_caps_cny")
                          / pl.col("share_current_mix_cny"), pl.col("periods_per_year"))
    plan_rows = plan.with_columns(
        pl.lit(label).alias("planset"), pl.lit("plan").alias("level"), pl.lit(None, dtype=pl.String).alias("group"),
        pl.col("_m").alias("expected_claims_per_period"), pl.col("share_current_mix_cny").alias("own_share_cny"),
        pl.col("share_current_mix_cny").alias("payment_cny"), pl.lit(0.0).alias("cross_subsidy_cny"),
    ).with_columns(lev.alias("leverage"), lev_capped.alias("leverage_after_caps"),
                   pl.col("share_cv").alias("payment_cv")).select(cols)
    grp = grp.join(_cm_payment_cv(r, plan), on=["plan", "group"], how="left").with_columns(
        pl.when(pl.col("rule") == "conditional_mean").then(pl.col("_cm_cv")).otherwise(pl.col("share_cv")).alias("payment_cv")
    )
    grp_rows = grp.with_columns(
        pl.lit(label).alias("planset"), pl.lit("group").alias("level"), pl.col("_m").alias("expected_claims_per_period"),
        pl.when(pl.col("rule") == "equal").then(pl.col("expected_share_cny"))
        .otherwise(pl.col("own_share_cny") * pl.col("expected_share_cny") / pl.col("share_current_mix_cny"))
        .alias("expected_share_cny"),
    ).with_columns(lev.alias("leverage"), lev_capped.alias("leverage_after_caps")).select(cols)
    flows = _flows(r, plan, label)
    empty = meta.filter(~pl.col("plan").is_in(plan_rows["plan"].implode()))
    if empty.height:  # plans nobody is eligible for are reported with 0 members
        plan_rows = pl.concat([plan_rows, empty.select(
            pl.lit(label).alias("planset"), "plan", pl.lit("plan").alias("level"), "rule", "periods_per_year",
            pl.lit(0.0).alias("members"), pl.lit(0.0).alias("expected_claims_per_period"),
        )], how="diagonal_relaxed").select(cols)
    return pl.concat([plan_rows, grp_rows], how="vertical_relaxed"), flows


def _cm_payment_cv(r: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """CV of a member's payment under conditional-mean sharing (exact law of S), by plan and group.

    Rows with equal rate and benefit form one class of identical risks; a group's
    CV is the member-weighted mean of its classes' CVs. Null when the lattice is too large.
    """
    from engine.errors import ResourceError
    from engine.plans.sharing import conditional_mean_moments

    out = []
    for name, ppy in plan.filter(pl.col("rule") == "conditional_mean").select("plan", "periods_per_year").iter_rows():
        rows = r.filter(pl.col("plan") == name).with_columns((pl.col("rate") / ppy).alias("_p"))
        cls = _sums_by(rows, ["_p", "benefit_cny"], {"members": pl.col("members")}).with_row_index("_k")
        try:
            m1, sd = conditional_mean_moments(cls["members"].to_numpy(), cls["_p"].to_numpy(), cls["benefit_cny"].to_numpy())
            cv = np.where(m1 > 0, sd / np.where(m1 > 0, m1, 1.0), np.nan)
        except ResourceError:
            cv = np.full(cls.height, np.nan)
        cls = cls.with_columns(pl.Series("_cv", cv))
        j = rows.join(cls.select("_p", "benefit_cny", "_cv"), on=["_p", "benefit_cny"], how="left")
        g = _sums_by(j, ["group"], {"_cvm": pl.col("_cv") * pl.col("members"), "_w": pl.col("members")}).select(
            "group", (pl.col("_cvm") / pl.col("_w")).alias("_cm_cv"))
        out.append(g.with_columns(pl.lit(name).alias("plan")).select("plan", "group", "_cm_cv"))
    if not out:
        return pl.DataFrame(schema={"plan": pl.String, "group": pl.String, "_cm_cv": pl.Float64})
    return pl.concat(out).with_columns(pl.col("_cm_cv").fill_nan(None))


def _flows(r: pl.DataFrame, plan: pl.DataFrame, label: str) -> pl.DataFrame:
    """Cross-subsidy matrix: payer group k funds beneficiary group j's claims, gross and net."""
    out = []
    for name, rule, ppy in plan.select("plan", "rule", "periods_per_year").iter_rows():
        g = _sums_by(r.filter(pl.col("plan") == name), ["group"],
                     {"members": pl.col("members"), "_costf": pl.col("_costf")}).sort("group")
        if g.height > MAX_MATRIX_GROUPS:
            from engine.errors import ResourceError

            raise ResourceError(
                f"cross-subsidy matrix of plan '{name}': {g.height:,} groups (> {MAX_MATRIX_GROUPS:,}); "
                "report coarser groups (group=...)"
            )
        n = g["members"].to_numpy()
        cost = g["_costf"].to_numpy()
        total = cost.sum()
        pay = n * (total / n.sum()) if rule == "equal" else cost.copy()
        frac = cost / total if total > 0 else np.zeros_like(cost)
        gross = np.outer(pay, frac)
        net = gross - gross.T
        k = len(g)
        names = g["group"].to_list()
        out.append(pl.DataFrame({
            "planset": [label] * k * k,
            "plan": [name] * k * k,
            "payer_group": [a for a in names for _ in names],
            "beneficiary_group": names * k,
            "payer_members": np.repeat(n, k),
            "gross_cny_per_period": gross.ravel(),
            "net_cny_per_period": net.ravel(),
            "net_cny_per_member_year": (net * ppy / np.where(n > 0, n, np.nan)[:, None]).ravel(),
        }))
    return pl.concat(out) if out else pl.DataFrame()


@dataclass
class ComparisonResult(ResultMixin):
    """Output of :func:`compare_plans`.

    Attributes
    ----------
    plans : per plan (``level == "plan"``) and per plan x group (``level == "group"``)
        for the vertical plan set (``planset == "vertical"``) and the pooled one
        (``planset == "pooled"``).
    cross_subsidy : the cross-subsidy matrix of the pooled plan(s), long format.
    changes : per group, what verticalisation changes (annual payment, leverage, CV, cross-subsidy).
    uncovered : risk-table rows eligible for no vertical plan.
    """

    plans: pl.DataFrame
    cross_subsidy: pl.DataFrame
    changes: pl.DataFrame
    uncovered: pl.DataFrame

    def write(self, out_dir: str | Path) -> Path:
        """Write ``plans.parquet``, ``cross_subsidy.parquet``, ``changes.parquet`` and ``uncovered.parquet`` atomically."""
        from engine.data.io import write_parquet

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_parquet(self.plans, out / "plans.parquet")
        write_parquet(self.cross_subsidy, out / "cross_subsidy.parquet")
        write_parquet(self.changes, out / "changes.parquet")
        write_parquet(self.uncovered, out / "uncovered.parquet")
        return out

    def plot_changes(self, ax: Any = None) -> Any:
        """Bar chart of each group's annual payment before (pooled) and after (vertical); returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        ch = self.changes.sort("group")
        x = np.arange(ch.height)
        ax.bar(x - 0.2, ch["annual_payment_before_cny"].fill_null(0).to_numpy(), 0.4, label="pooled")
        ax.bar(x + 0.2, ch["annual_payment_after_cny"].fill_null(0).to_numpy(), 0.4, label="vertical")
        ax.set_xticks(x, ch["group"].to_list(), rotation=30, ha="right")
        ax.set_ylabel("annual payment per member (CNY)")
        ax.set_title("what verticalisation changes")
        ax.legend()
        return ax

    def plot_cross_subsidy(self, plan: str | None = None, ax: Any = None) -> Any:
        """Heat map of the net cross-subsidy (CNY per member-year) payer -> beneficiary in a pooled plan; returns the ax."""
        from engine._optional import pyplot
        plt = pyplot()

        m = self.cross_subsidy
        plan = plan or m["plan"][0]
        m = m.filter(pl.col("plan") == plan)
        names = sorted(set(m["payer_group"]))
        grid = np.zeros((len(names), len(names)))
        for a, b, v in m.select("payer_group", "beneficiary_group", "net_cny_per_member_year").iter_rows():
            grid[names.index(a), names.index(b)] = v
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        lim = float(np.nanmax(np.abs(grid))) or 1.0
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("beneficiary group")
        ax.set_ylabel("payer group")
        ax.set_title(f"net cross-subsidy in '{plan}' (CNY per payer member-year)")
        ax.figure.colorbar(im, ax=ax)
        return ax

    @property
    def summary(self) -> pl.DataFrame:
        """Per-plan rows of both plan sets."""
        return self.plans.filter(pl.col("level") == "plan")

    def print_summary(self, decimals: int = 4) -> None:
        """Print the per-plan summary and the per-group changes, floats to ``decimals`` significant digits."""
        print_frame(self.summary.drop("level", "group"), "plans", decimals)
        print_frame(self.changes, "what verticalisation changes", decimals)

    def _key_numbers(self) -> dict[str, Any]:
        s = self.summary
        out: dict[str, Any] = {"vertical plans": s.filter(pl.col("planset") == "vertical").height,
                               "pooled plans": s.filter(pl.col("planset") == "pooled").height,
                               "groups": self.changes.height, "uncovered rows": self.uncovered.height}
        if "expected_share_cny" in s.columns:
            for planset, plan, share in s.select("planset", "plan", "expected_share_cny").head(10).iter_rows():
                out[f"{planset} {plan}: expected share (CNY per sharing period)"] = share
        return out


def _group_col(table: pl.DataFrame, group: str | Sequence[str] | None) -> tuple[pl.DataFrame, bool]:
    if group is None:
        if "group" in table.columns:
            return table.with_columns(pl.col("group").cast(pl.String)), True
        return table, False
    cols = [group] if isinstance(group, str) else list(group)
    for c in cols:
        if c not in table.columns:
            raise DataError(f"risk table: group column '{c}' is missing")
    expr = pl.concat_str([pl.lit(f"{c}=") + pl.col(c).cast(pl.String) for c in cols], separator=",") if len(cols) > 1 \
        else pl.col(cols[0]).cast(pl.String)
    return table.with_columns(expr.alias("group")), True


@api_input(frames=("risk_table",))
def compare_plans(
    risk_table: pl.DataFrame,
    plans: PlanSet,
    *,
    pooled: PlanSet | Plan | None = None,
    group: str | Sequence[str] | None = None,
    periods_per_year: float | None = None,
    growth_per_period: float = 0.0,
    study_years: float = 1.0,
    target_share_cv: float = TARGET_SHARE_CV,
    reporting_lag_periods: float = 0.0,
) -> ComparisonResult:
    """Compare a vertical plan set with a pooled plan on the same membership.

    Parameters
    ----------
    risk_table : rows with ``age``, ``rate``, ``members`` (or ``exposure_years``)
        and the attributes the eligibility rules use.
    plans : the vertical plan set (:func:`engine.load_plans`). A member eligible
        for several plans (``allow_overlap = true``) is assigned to the first in
        file order; :func:`engine.plans.migration.migrate` models choice instead.
    pooled : the pooled plan (e.g. ``load_plans("configs/xianghubao.toml")``).
        Default: one equal-sharing pool of every member the vertical plans cover,
        each keeping its vertical plan's benefit and fee.
    group : column(s) naming the risk groups (default ``group`` if present, else
        the vertical plan each member belongs to).
    periods_per_year : override every plan's sharing frequency (default: 12 x
        the number of sharing days of each plan).
    growth_per_period : steady growth g of new members per period; only
        ``(1+g)^(-w)`` of members are past a waiting period of w periods.
    study_years : divides ``exposure_years`` when ``members`` is absent.
    target_share_cv : the share CV per period that ``members_for_target_cv`` is sized for.
    reporting_lag_periods : claims are shared L periods after they occur (plan size only).

    Notes
    -----
    For plan p with rows i (members N_i, annual rate lambda_i, benefit B_i, fee phi_i)
    and period length dt = 1/periods_per_year:

    - expected claims per period m_p = sum_i N_i lambda_i dt;
    - share at the current mix ``share_current_mix_cny`` (every member of the
      risk table past the waiting period, no growth, today's mix)
      S_p = sum_i (1+phi_i) N_i lambda_i dt B_i / N_p. It is not the sustainable
      share: that one (shared/domain.md) also lets the mix reach its equilibrium
      under lapses and claims, and comes from :func:`engine.projection.project`
      (``sustainable_share_cny``), with the period-by-period path;
    - expected share = S_p (1+g)^(-w), w = waiting_days x periods_per_year / 365.25;
    - own (risk-based) share of group k: S_k = sum_{i in k} (1+phi_i) N_i lambda_i dt B_i / N_k;
    - payment per member: S_p under the equal rule, S_k in expectation under the
      risk-proportional and conditional-mean rules;
    - cross-subsidy = payment - own share (positive: the group overpays);
    - leverage L = mean benefit / (periods_per_year x payment) = B / (12 x monthly share), before the
      caps (``leverage``), and after them (``leverage_after_caps``: the payment times
      ``share_after_caps_cny / share_current_mix_cny``, what members pay once the platform has paid the excess);
    - share CV: exact compound Poisson sqrt(sum m_i B_i^2) / sum m_i B_i,
      and the approximation 1/sqrt(m_p) (equal when every benefit is equal);
    - share after caps ``share_after_caps_cny`` = min(S_p, per-claimant cap x m_p,
      annual cap / periods_per_year), a deterministic approximation at the expected claim count;
      the flags ``per_claimant_cap_binding``, ``annual_cap_binding`` and ``cap_binding`` (either) say
      which cap binds (:func:`_caps`);
    - members for the target CV (:func:`engine.plans.size.plan_size`, no exits):
      N* = N_p sum_i m_i B_i^2 / ((sum_i m_i B_i)^2 e cv^2), e = (1+g)^(-w-L) the
      fraction of sharing members whose claims are paid (waiting period and lag).
    """
    if not (isinstance(target_share_cv, (int, float)) and target_share_cv > 0):
        raise ConfigError("target_share_cv: must be a number > 0")
    if not (isinstance(reporting_lag_periods, (int, float)) and reporting_lag_periods >= 0):
        raise ConfigError("reporting_lag_periods: must be a number >= 0")
    if not isinstance(plans, PlanSet):
        raise ConfigError("plans: must be a PlanSet (use engine.load_plans)")
    if not (isinstance(growth_per_period, (int, float)) and growth_per_period > -1):
        raise ConfigError("growth_per_period: must be a number > -1")
    if periods_per_year is not None and not periods_per_year > 0:
        raise ConfigError("periods_per_year: must be > 0")
    table = _check_table(risk_table, study_years)
    table, has_group = _group_col(table, group)
    vert = assign_plans(table, plans)
    if not has_group:
        vert = vert.with_columns(pl.col("plan").fill_null("(none)").alias("group"))
        table = table.with_columns(vert["group"])
    v_plans, v_flows = _evaluate(vert, _meta(plans, periods_per_year), growth_per_period, "vertical",
                                 target_share_cv, reporting_lag_periods)
    if pooled is None:
        pool_rows = vert.with_columns(pl.when(pl.col("plan").is_not_null()).then(pl.lit("pooled")).alias("plan"))
        ppy = periods_per_year or max(p.periods_per_year for p in plans)
        meta = pl.DataFrame({"plan": ["pooled"], "rule": ["equal"], "periods_per_year": [float(ppy)],
                             "waiting_days": [min(p.waiting_days for p in plans)], "per_claimant_cap": [None],
                             "annual_cap": [None]}, schema_overrides={"per_claimant_cap": pl.Float64, "annual_cap": pl.Float64})
    else:
        pset = pooled if isinstance(pooled, PlanSet) else PlanSet((pooled,), name=pooled.name, source="pooled plan")
        pool_rows = assign_plans(table, pset, where="risk table (pooled)")
        meta = _meta(pset, periods_per_year)
    p_plans, p_flows = _evaluate(pool_rows, meta, growth_per_period, "pooled", target_share_cv,
                                 reporting_lag_periods)
    all_plans = pl.concat([p_plans, v_plans], how="vertical_relaxed")
    changes = _changes(all_plans)
    uncovered = vert.filter(pl.col("plan").is_null()).drop([c for c in vert.columns if c.startswith("eligible_")] + ["plan", "benefit_cny", "fee"])
    return ComparisonResult(plans=all_plans, cross_subsidy=p_flows, changes=changes, uncovered=uncovered)


def _changes(all_plans: pl.DataFrame) -> pl.DataFrame:
    g = all_plans.filter(pl.col("level") == "group").with_columns(
        (pl.col("payment_cny") * pl.col("periods_per_year")).alias("_annual"),
        (pl.col("cross_subsidy_cny") * pl.col("periods_per_year")).alias("_xs"),
    )

    def side(label: str, suffix: str) -> pl.DataFrame:
        w = pl.col("members")
        sub = g.filter(pl.col("planset") == label)
        s = _sums_by(sub, ["group"], {"_w": w, "_a": pl.col("_annual") * w, "_x": pl.col("_xs") * w,
                                      "_b": pl.col("mean_benefit_cny") * w, "_c": pl.col("payment_cv") * w})
        names = sub.group_by("group").agg(pl.col("plan").unique().sort().str.join("+").alias(f"plan_{suffix}"))
        return s.join(names, on="group", how="left", nulls_equal=True, maintain_order="left").select(
            "group", pl.col("_w").alias(f"members_{suffix}"), f"plan_{suffix}",
            (pl.col("_a") / pl.col("_w")).alias(f"annual_payment_{suffix}_cny"),
            (pl.col("_x") / pl.col("_w")).alias(f"annual_cross_subsidy_{suffix}_cny"),
            leverage(pl.col("_b"), pl.col("_a"), 1.0).alias(f"leverage_{suffix}"),  # _a is already annual
            (pl.col("_c") / pl.col("_w")).alias(f"share_cv_{suffix}"),
        )

    out = side("pooled", "before").join(side("vertical", "after"), on="group", how="full", coalesce=True)
    return out.with_columns(
        (pl.col("annual_payment_after_cny") - pl.col("annual_payment_before_cny")).alias("annual_payment_change_cny")
    ).sort("group")


