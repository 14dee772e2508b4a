"""The caps' cost: what the platform pays above the per-claimant and annual caps, per plan and year.

Two sources, one formula: the projection's mean path (``projection.parquet``) and the realised
history (``history.parquet``). The cost of a period is the benefits paid plus the fee; members
pay the capped share, the platform the rest (:func:`engine.projection.dynamics.simulate`,
:func:`engine.shares.history.share_history`).
"""

from __future__ import annotations

import polars as pl

from engine.cells.sums import group_sums

#: columns of a caps' cost table, after its keys (CNY and percent of the cost)
CAPS_COST_COLUMNS = ("cost_cny", "members_paid_cny", "platform_paid_cny", "platform_paid_pct_of_cost")


def _finish(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return (df.with_columns(pl.when(pl.col("cost_cny") > 0)
                            .then(100.0 * pl.col("platform_paid_cny") / pl.col("cost_cny"))
                            .alias("platform_paid_pct_of_cost"))
            .sort(keys).select(*keys, *CAPS_COST_COLUMNS))


def caps_cost_projected(periods: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The platform's subsidy per plan and projection year, from a projection's periods table.

    Parameters
    ----------
    periods : DataFrame or LazyFrame
        :attr:`engine.projection.ProjectionResult.periods` (``plan``, ``year``,
        ``cost_mean_cny``, ``members_paid_mean_cny``, ``platform_paid_mean_cny``).

    Returns
    -------
    DataFrame
        ``plan``, ``year`` (projection year 0, 1, ...), :data:`CAPS_COST_COLUMNS` and, when the
        periods carry ``annual_cap_reached_prob``, ``annual_cap_binds_prob``: P(the annual cap binds
        in the year), the probability that a member present since the start of the projection year
        reaches the annual cap within it (the largest of the year's ``annual_cap_reached_prob``,
        which only grows within a year; the year's last period for a whole year).

    Notes
    -----
    Per plan p and projection year y (the periods t with t // periods_per_year = y), means
    over the scenarios: cost C = sum_t (1 + fee) B paid_t (benefits plus fee),
    members' payments M = sum_t N_t s_t (s_t the share after both caps), platform
    P = C - M (the excess over the per-claimant cap, N_t times the excess over the annual
    cap, and the whole cost of a period nobody shares);
    ``platform_paid_pct_of_cost`` = 100 P / C (null when C = 0).
    """
    df = periods.collect() if isinstance(periods, pl.LazyFrame) else periods
    vals = df.select("plan", "year", pl.col("cost_mean_cny").alias("cost_cny"),
                     pl.col("members_paid_mean_cny").alias("members_paid_cny"),
                     pl.col("platform_paid_mean_cny").alias("platform_paid_cny"))
    out = _finish(group_sums(vals, ["plan", "year"], ["cost_cny", "members_paid_cny", "platform_paid_cny"]),
                  ["plan", "year"])
    if "annual_cap_reached_prob" in df.columns:
        p = df.group_by("plan", "year").agg(pl.col("annual_cap_reached_prob").max().alias("annual_cap_binds_prob"))
        out = out.join(p, on=["plan", "year"], how="left", maintain_order="left")
    return out


def caps_cost_realised(history: pl.DataFrame | pl.LazyFrame, pool: str | None = None) -> pl.DataFrame:
    """The platform's subsidy per pool and calendar year, from a realised share history.

    Parameters
    ----------
    history : DataFrame or LazyFrame
        :func:`engine.shares.history.share_history` output (``notice_date``,
        ``cost_with_fee_cny``, ``members_paid_cny``, ``platform_paid_per_claimant_cap_cny``,
        ``platform_paid_annual_cap_cny``).
    pool : str, optional
        The pool column (e.g. ``plan_id``); None = one pool, labelled ``"all"``.

    Returns
    -------
    DataFrame
        ``plan``, ``year`` (calendar year of the notice date) and :data:`CAPS_COST_COLUMNS`,
        plus ``platform_paid_per_claimant_cap_cny`` and ``platform_paid_annual_cap_cny``.

    Notes
    -----
    C = sum cost_with_fee_cny, M = sum members_paid_cny, P = sum of the two platform
    payments; the history's identity C = M + P holds period by period;
    ``platform_paid_pct_of_cost`` = 100 P / C.
    """
    df = history.collect() if isinstance(history, pl.LazyFrame) else history
    plan = pl.col(pool).cast(pl.String) if pool else pl.lit("all")

    def val(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.Float64).fill_nan(0.0).fill_null(0.0)

    cols = {"cost_cny": "cost_with_fee_cny", "members_paid_cny": "members_paid_cny",
            "platform_paid_per_claimant_cap_cny": "platform_paid_per_claimant_cap_cny",
            "platform_paid_annual_cap_cny": "platform_paid_annual_cap_cny"}
    vals = df.select(plan.alias("plan"), pl.col("notice_date").dt.year().alias("year"),
                     *(val(c).alias(n) for n, c in cols.items()))
    out = group_sums(vals, ["plan", "year"], list(cols)).with_columns(
        (pl.col("platform_paid_per_claimant_cap_cny") + pl.col("platform_paid_annual_cap_cny")).alias("platform_paid_cny"))
    return _finish(out, ["plan", "year"]).join(
        out.select("plan", "year", "platform_paid_per_claimant_cap_cny", "platform_paid_annual_cap_cny"),
        on=["plan", "year"], how="left", maintain_order="left")
