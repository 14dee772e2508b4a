"""Driver factors of a window's cost share: the share written as a product of factors.

The share of a window (one or several sharing periods ending on a notice date) is

    S = (1+fee) x dt x dilution x waiting x reporting_lag x ageing x select x mix x incidence

(the factors are defined in :mod:`engine.shares.decomposition`, which attributes a
change between two windows to them). The product telescopes to (1+fee) P / N,
the realised share, exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine._results import ResultMixin
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError
from engine.conventions import DAYS_PER_YEAR, FEE, REPORTING_LAG_DAYS, WAITING_DAYS

#: driver names in the default (documented) sequential order
DRIVERS: tuple[str, ...] = (
    "fee",
    "period_length",
    "dilution",
    "waiting",
    "reporting_lag",
    "ageing",
    "select",
    "mix",
    "incidence",
)

#: default benefit schedule (Xianghubao main plan, docs/reference-data.md): CNY by age from
XIANGHUBAO_BENEFITS = pl.DataFrame({"age_min": [0, 40], "benefit_cny": [300_000.0, 100_000.0]},
                                   schema={"age_min": pl.Int32, "benefit_cny": pl.Float64})


@dataclass(frozen=True)
class ShareDrivers(ResultMixin):
    """The driver factors of one window's share; their product is ``share_cny``.

    Attributes
    ----------
    fee, period_length, dilution, waiting, reporting_lag, ageing, select, mix, incidence : float
        The factors (``fee`` = 1 + fee rate; ``period_length`` = dt in years;
        ``ageing`` in CNY per member-year; the others dimensionless).
    label : a name for tables.
    details : the raw quantities (N, E, P, I, ...), informational.
    """

    fee: float
    period_length: float
    dilution: float
    waiting: float
    reporting_lag: float
    ageing: float
    select: float
    mix: float
    incidence: float
    label: str = ""
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def factors(self) -> dict[str, float]:
        """Driver name -> factor, in :data:`DRIVERS` order."""
        return {d: float(getattr(self, d)) for d in DRIVERS}

    @property
    def share_cny(self) -> float:
        """The product of the factors: (1 + fee) x approved / sharing members."""
        return float(math.prod(self.factors().values()))

    def replace(self, **changes: Any) -> ShareDrivers:
        """A copy with some factors replaced (e.g. a sustainable scenario)."""
        unknown = set(changes) - set(DRIVERS) - {"label", "details"}
        if unknown:
            raise ConfigError(f"drivers: unknown factor(s) {sorted(unknown)}; known: {', '.join(DRIVERS)}")
        return dataclasses.replace(self, **changes)

    def to_frame(self) -> pl.DataFrame:
        """One row per driver: ``driver``, ``factor``."""
        f = self.factors()
        return pl.DataFrame({"driver": list(f), "factor": list(f.values())})

    @property
    def summary(self) -> pl.DataFrame:
        """One row per driver (``driver``, ``factor``); their product is :attr:`share_cny`."""
        return self.to_frame()

    def _key_numbers(self) -> dict[str, Any]:
        return {"label": self.label or "(none)", "share (CNY)": self.share_cny, **self.factors()}


# --------------------------------------------------------------------------- cell attributes
def _collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


# --------------------------------------------------------------------------- drivers from cells
@api_input(frames=("cells", "base_rates"))
def drivers_from_cells(
    cells: pl.DataFrame,
    *,
    sharing_members: float,
    amount_approved_cny: float,
    period_days: int,
    fee: float = FEE,
    base_rates: pl.DataFrame | None = None,
    select_factors: pl.DataFrame | Any | None = None,
    relativities: Mapping[str, pl.DataFrame] | None = None,
    benefits: pl.DataFrame | None = None,
    weight_col: str = "exposure_years",
    amount_col: str = "amount",
    amount_incurred_cny: float | None = None,
    label: str = "",
    sharing_years: float | None = None,
) -> ShareDrivers:
    """Driver factors from cells of eligible exposure (e.g. :func:`engine.cells._exposure` cells).

    Parameters
    ----------
    cells : one row per cell with ``age``, ``sex``, ``duration`` (when
        ``select_factors`` is given), the relativity columns, ``weight_col``
        (eligible member-years) and ``amount_col`` (incurred amount).
    sharing_members : N, members sharing on the window's notice date.
    amount_approved_cny : P, eligible claims approved in the window.
    period_days : window length in days.
    base_rates : ``age``, ``sex``, ``rate`` (default: CI2020 CI4 via
        :func:`engine.data.reference.reference_basis`).
    select_factors : ``engine.select_factors`` output (or a fitted ``SelectFactors``),
        read by :func:`engine.estimators._select_table.select_table`: a cell takes the band with the
        largest ``duration_from <= duration``. None = 1.
    relativities : column -> frame (that column, ``relativity``). None = none.
    benefits : ``age_min``, ``benefit_cny`` (default: 300,000 below 40, 100,000 from 40).
    amount_incurred_cny : I; when given, ``amount_col`` is not needed.
    sharing_years : Y, sharing member-years in the window (waiting days included).
        None: the sum of the cells' ``sharing_years`` column if they have one, else
        Y = E (then ``waiting`` = 1 and ``dilution`` carries the whole E / (N dt)).

    Returns
    -------
    ShareDrivers

    Notes
    -----
    See :mod:`engine.shares.decomposition` for the factor definitions; their product is
    ``(1 + fee) * P / N`` exactly (up to floating rounding).
    """
    where = f"drivers{(' ' + label) if label else ''}"
    if sharing_members <= 0:
        raise DataError(f"{where}: no member shares on the notice date")
    if period_days <= 0:
        raise ConfigError(f"period_days: {period_days} must be > 0")
    need = ("age", "sex", weight_col) + ((amount_col,) if amount_incurred_cny is None else ())
    for col in need:
        if col not in cells.columns:
            raise DataError(f"cells: column '{col}' is required for the share decomposition")
    c = _priced_cells(cells, weight_col, base_rates, benefits)
    c = _with_select(c, select_factors)
    c, rel = _with_relativities(c, relativities)
    from engine.cells.sums import exact_sum  # correctly rounded sums: same bits whatever the row order

    s = _factor_sums(c, rel)
    incurred = exact_sum(c[amount_col]) if amount_incurred_cny is None else float(amount_incurred_cny)
    E, P = s["w"], float(amount_approved_cny)
    if E <= 0:
        raise DataError(f"{where}: no eligible exposure in the window")
    if s["wbsr"] <= 0:
        raise DataError("drivers: the expected cost of the eligible members is 0 (check base_rates / relativities)")
    dt_years = period_days / DAYS_PER_YEAR
    if sharing_years is None:
        sharing_years = exact_sum(c["sharing_years"]) if "sharing_years" in c.columns else E
    Y = float(sharing_years)
    if Y < E * (1.0 - 1e-12):
        raise DataError(f"sharing_years: {Y} is below the eligible member-years {E} (eligible days are sharing days)")
    ageing = s["wb"] / E
    select = s["wbs"] / s["wb"]
    mix = s["wbsr"] / s["wbs"]
    if incurred > 0:
        lag = P / incurred
    elif P == 0:
        lag = 1.0
    else:
        raise DataError(f"{where}: claims were approved but none incurred in the window; use a longer window")
    incidence = (incurred / E) / (ageing * select * mix)
    return ShareDrivers(
        fee=1.0 + fee,
        period_length=dt_years,
        dilution=Y / (sharing_members * dt_years),
        waiting=E / Y,
        reporting_lag=lag,
        ageing=ageing,
        select=select,
        mix=mix,
        incidence=incidence,
        label=label,
        details={"sharing_members": float(sharing_members), "eligible_years": E, "sharing_years": Y,
                 "approved_cny": P,
                 "incurred_cny": incurred, "expected_cny": E * ageing * select * mix, "period_days": int(period_days)},
    )


def _priced_cells(
    cells: pl.DataFrame, weight_col: str, base_rates: pl.DataFrame | None, benefits: pl.DataFrame | None
) -> pl.DataFrame:
    """Cells with their weight ``_w``, reference rate ``_base`` (by age and sex) and benefit ``_ben`` (by age)."""
    from engine.data.reference import reference_basis

    base = reference_basis() if base_rates is None else base_rates
    ben = XIANGHUBAO_BENEFITS if benefits is None else benefits
    c = cells.with_columns(pl.col("age").cast(pl.Int32), pl.col(weight_col).cast(pl.Float64).alias("_w"))
    c = c.join(base.select(pl.col("age").cast(pl.Int32), "sex", pl.col("rate").alias("_base")), on=["age", "sex"], how="left")
    if c["_base"].null_count():
        bad = c.filter(pl.col("_base").is_null()).row(0, named=True)
        raise DataError(f"base_rates: no rate for age {bad['age']} sex {bad['sex']}")
    c = c.sort("age").join_asof(
        ben.select(pl.col("age_min").cast(pl.Int32), pl.col("benefit_cny").cast(pl.Float64).alias("_ben")).sort("age_min"),
        left_on="age", right_on="age_min", strategy="backward",
    )
    if c["_ben"].null_count():
        raise DataError(f"benefits: no benefit for age {c.filter(pl.col('_ben').is_null())['age'][0]} (age_min too high)")
    return c


def _with_select(c: pl.DataFrame, select_factors: pl.DataFrame | Any | None) -> pl.DataFrame:
    """Cells with their select factor ``_sel``: the band with the largest ``duration_from <= duration`` (1 without)."""
    if select_factors is None:
        return c.with_columns(pl.lit(1.0).alias("_sel"))
    if "duration" not in c.columns:
        raise DataError("cells: column 'duration' is required with select_factors")
    from engine.estimators._select_table import select_table

    c = c.with_columns(pl.col("duration").cast(pl.Int32)).sort("duration").join_asof(
        select_table(select_factors).select("duration_from", pl.col("factor").alias("_sel")),
        left_on="duration", right_on="duration_from", strategy="backward",
    )
    if c["_sel"].null_count():
        raise DataError("cells: a negative duration has no select factor")
    return c


def _with_relativities(
    c: pl.DataFrame, relativities: Mapping[str, pl.DataFrame] | None
) -> tuple[pl.DataFrame, pl.Expr]:
    """Cells joined to each relativity table, and the expression of their product ``rel``."""
    rel = pl.lit(1.0)
    for col, tab in (relativities or {}).items():
        if col not in c.columns:
            raise DataError(f"cells: column '{col}' is required by relativities")
        name = f"_rel_{col}"
        c = c.join(tab.select(pl.col(col).cast(c.schema[col]), pl.col("relativity").cast(pl.Float64).alias(name)), on=col, how="left")
        if c[name].null_count():
            raise DataError(f"relativities[{col}]: no relativity for value {c.filter(pl.col(name).is_null())[col][0]!r}")
        rel = rel * pl.col(name)
    return c, rel


def _factor_sums(c: pl.DataFrame, rel: pl.Expr) -> dict[str, float]:
    """Exact sums ``w``, ``wb``, ``wbs`` and ``wbsr`` over the cells.

    Notes
    -----
    ``w = sum w_c``, ``wb = sum w_c base_c B_c``, ``wbs = sum w_c base_c B_c sel_c``,
    ``wbsr = sum w_c base_c B_c sel_c rel_c`` (correctly rounded: the same bits
    whatever the row order).
    """
    from engine.cells.sums import exact_sum

    terms = c.select(
        pl.col("_w").alias("w"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben")).alias("wb"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben") * pl.col("_sel")).alias("wbs"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben") * pl.col("_sel") * rel).alias("wbsr"),
    )
    return {k: exact_sum(terms.get_column(k)) for k in terms.columns}


@api_input(frames=("members", "claims", "base_rates", "benefits"), dates=("period_start", "notice_date"))
def share_drivers(
    members: pl.DataFrame | pl.LazyFrame | Sequence[pl.DataFrame | pl.LazyFrame],
    claims: pl.DataFrame | pl.LazyFrame,
    *,
    period_start: dt.date,
    notice_date: dt.date,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    base_rates: pl.DataFrame | None = None,
    select_factors: pl.DataFrame | Any | None = None,
    relativities: Mapping[str, pl.DataFrame] | None = None,
    benefits: pl.DataFrame | None = None,
    plan: str | None = None,
    plan_col: str = "plan_id",
    terminate_on_claim: bool = True,
    label: str | None = None,
    batch_size: int | None = None,
    executor: Executor | None = None,
) -> ShareDrivers:
    """Driver factors of the window ``[period_start, notice_date]`` from members and claims.

    Cells: each member's eligible days in the window (sharing and past the
    waiting period), grouped by age, sex and duration on the notice date and by
    the relativity columns. Incurred = eligible claims with event in the
    window; approved = eligible claims whose approval date (or event + lag)
    lies in the window. N = members sharing on the notice date. Y = the members'
    sharing days in the window / 365.25 (waiting days included), which separates the
    ``waiting`` driver E / Y from growth ``dilution`` Y / (N dt).

    ``members`` may be a list of partitions (frames or LazyFrames, e.g. one per file); they are
    read in batches and reduced to integer day counts, summed exactly (in this process or one
    task per partition on ``executor``, a ``concurrent.futures.Executor``): the result does not
    depend on the partitioning. ``batch_size``: members per batch (default 1,000,000).

    Notes
    -----
    Attributes are taken on the notice date (a window of a month or two:
    age changes inside it are ignored). Eligible days are sharing days past
    the waiting period; they do not stop at a member's first claim.
    """
    window = (period_start, notice_date, label if label is not None else f"{period_start}..{notice_date}")
    return window_drivers(members, claims, [window], fee=fee, waiting_days=waiting_days,
                          reporting_lag_days=reporting_lag_days, base_rates=base_rates, select_factors=select_factors,
                          relativities=relativities, benefits=benefits, plan=plan, plan_col=plan_col,
                          terminate_on_claim=terminate_on_claim, batch_size=batch_size, executor=executor)[0]


def window_drivers(
    members: pl.DataFrame | pl.LazyFrame | Sequence[pl.DataFrame | pl.LazyFrame],
    claims: pl.DataFrame | pl.LazyFrame,
    windows: Sequence[tuple[dt.date, dt.date, str]],
    *,
    fee: float = FEE,
    waiting_days: int = WAITING_DAYS,
    reporting_lag_days: int = REPORTING_LAG_DAYS,
    plan: str | None = None,
    plan_col: str = "plan_id",
    terminate_on_claim: bool = True,
    batch_size: int | None = None,
    executor: Executor | None = None,
    **drivers_kw: Any,
) -> list[ShareDrivers]:
    """:func:`share_drivers` of several windows ``(period_start, notice_date, label)`` in one pass over the members.

    ``drivers_kw``: base_rates, select_factors, relativities, benefits (as in :func:`share_drivers`).
    """
    from engine.shares._stream import DEFAULT_BATCH, claimant_rows, column_names, parts_of, window_counts
    from engine.shares.history import eligible_claims

    for period_start, notice_date, _ in windows:
        if notice_date < period_start:
            raise ConfigError(f"notice_date: {notice_date} is before period_start {period_start}")
    parts = parts_of(members)
    names = column_names(parts)
    if plan is not None and plan_col not in names:
        raise ConfigError(f"plan_col: members have no column '{plan_col}'")
    c = _collect(claims)
    # claims of these members: look the (few) claimants up instead of hashing every member id
    cm = claimant_rows(parts, c.get_column("member_id").unique(),
                       ["join_date", "exit_date", *([plan_col] if plan is not None else [])], {})
    if plan is not None:
        cm = cm.filter(pl.col(plan_col) == plan)
    c = eligible_claims(cm, c, waiting_days=waiting_days, terminate_on_claim=terminate_on_claim)
    counts = window_counts(parts, [(a, b) for a, b, _ in windows], waiting_days=waiting_days,
                           rel_cols=window_rel_cols(drivers_kw), plan=(plan_col, plan) if plan is not None else None,
                           batch_size=batch_size or DEFAULT_BATCH, executor=executor)
    return drivers_from_counts(counts, cm, c, windows, fee=fee, reporting_lag_days=reporting_lag_days, **drivers_kw)


def window_rel_cols(drivers_kw: Mapping[str, Any]) -> list[str]:
    """The relativity columns the window counts are keyed by (one by age, sex or duration is keyed by it already)."""
    return [k for k in dict.fromkeys(drivers_kw.get("relativities") or {}) if k not in ("age", "sex", "duration")]


def drivers_from_counts(
    counts: Sequence[tuple[pl.DataFrame, int, int]],
    cm: pl.DataFrame,
    c: pl.DataFrame,
    windows: Sequence[tuple[dt.date, dt.date, str]],
    *,
    fee: float,
    reporting_lag_days: int,
    **drivers_kw: Any,
) -> list[ShareDrivers]:
    """:func:`window_drivers` from the windows' member counts.

    Parameters
    ----------
    counts : per window, eligible days by cell (``_days``), N and sharing days
        (:func:`engine.shares._stream.history_counts`, keyed by :func:`window_rel_cols`).
    cm : the claimants' member rows (``member_id``) of the counted members.
    c : claims with ``eligible``; only the eligible claims of ``cm`` count.
    windows, fee, reporting_lag_days, drivers_kw : as in :func:`window_drivers`.

    Returns
    -------
    list of ShareDrivers, one per window.

    Notes
    -----
    Exposure years = eligible days / :data:`engine.conventions.DAYS_PER_YEAR`; the sharing
    years likewise from the sharing days (:func:`drivers_from_cells`).
    """
    c = c.filter(pl.col("eligible").fill_null(False) & pl.col("member_id").is_in(cm.get_column("member_id").implode()))
    out = []
    for (period_start, notice_date, label), (cells, N, share_days) in zip(windows, counts, strict=True):
        cells = cells.with_columns((pl.col("_days") / DAYS_PER_YEAR).alias("exposure_years")).drop("_days")
        approved, incurred = _window_amounts(c, period_start, notice_date, reporting_lag_days)
        out.append(drivers_from_cells(
            cells, sharing_members=N, amount_approved_cny=approved, amount_incurred_cny=incurred,
            period_days=(notice_date - period_start).days + 1, fee=fee, label=label,
            sharing_years=float(share_days) / DAYS_PER_YEAR, **drivers_kw))
    return out


def _window_amounts(
    c: pl.DataFrame, period_start: dt.date, notice_date: dt.date, reporting_lag_days: int
) -> tuple[float, float]:
    """Approved (approval date, or event + lag, in the window) and incurred (event in the window) amounts."""
    ps, nd = pl.lit(period_start), pl.lit(notice_date)
    appr = pl.col("approved_date") if "approved_date" in c.columns else pl.lit(None, dtype=pl.Date)
    c = c.with_columns(pl.coalesce(appr, pl.col("event_date") + pl.duration(days=reporting_lag_days)).alias("_appr"))
    from engine.cells.sums import exact_sum

    approved = exact_sum(c.filter((pl.col("_appr") >= ps) & (pl.col("_appr") <= nd))["amount"])
    incurred = exact_sum(c.filter((pl.col("event_date") >= ps) & (pl.col("event_date") <= nd))["amount"])
    return approved, incurred


def sustainable(drivers: ShareDrivers, *, select_ultimate: float = 1.0, **overrides: Any) -> ShareDrivers:
    """The stationary counterpart of ``drivers``: everyone eligible, no lag, select effect worn off.

    ``dilution = 1``, ``waiting = 1``, ``reporting_lag = 1``, ``select = select_ultimate`` (the
    factor at the longest duration); ``overrides`` replace any other factor
    (e.g. the equilibrium ``ageing`` and ``mix`` from a projection).
    """
    base = {"dilution": 1.0, "waiting": 1.0, "reporting_lag": 1.0, "select": float(select_ultimate), "label": "sustainable"}
    base.update(overrides)
    return drivers.replace(**base)
