"""Decomposition of a change in the cost share into drivers, exactly additive.

The share of a window (one or several sharing periods ending on a notice date)
is written as a product of driver factors

    S = (1+fee) x dt x dilution x waiting x reporting_lag x ageing x select x mix x incidence

with (E = eligible member-years in the window, Y = sharing member-years in the
window (waiting days included), N = sharing members on the
notice date, P = approved amount in the window, I = incurred amount: eligible
claims whose event lies in the window, w_c the eligible exposure of cell c,
base = reference rate by age and sex, B = benefit by age, sel = select factor
by duration, rel = product of factor relativities):

* ``period_years`` dt = window days / 365.25,
* ``dilution`` = Y / (N dt): growth dilution, the mean membership over the
  window against the sharing base counted on the notice date (1 for a constant
  membership, below 1 when the pool grows inside the window),
* ``waiting`` = E / Y: the fraction of sharing member-time past the waiting
  period (1 without a waiting period; about (1 + g)^-w under steady growth g per
  period and a wait of w periods),
* ``reporting_lag`` = P / I: approved versus incurred,
* ``ageing`` = sum_c w_c base_c B_c / sum_c w_c: expected cost per eligible
  member-year from age, sex and benefit (CNY / year),
* ``select`` = sum_c w_c base_c B_c sel_c / sum_c w_c base_c B_c,
* ``mix`` = sum_c w_c base_c B_c sel_c rel_c / sum_c w_c base_c B_c sel_c,
* ``incidence`` = (I / E) / (ageing x select x mix): the residual actual /
  expected.

The product telescopes to (1+fee) P / N, the realised share, exactly.
A change between two windows a and b is attributed by sequential substitution
(a fixed order), by Shapley values (average over all orders, closed form over
subsets) or by LMDI (log-mean Divisia). Each method sums to S_b - S_a
by construction; there is no residual term.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin
from engine.data._coerce import api_input
from engine.errors import ConfigError, DataError, ModelError
from engine.conventions import DAYS_PER_YEAR, FEE, REPORTING_LAG_DAYS, WAITING_DAYS
from engine.cells.dates import attained_age_expr, completed_months_expr

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
    See the module docstring for the factor definitions; their product is
    ``(1 + fee) * P / N`` exactly (up to floating rounding).
    """
    if sharing_members <= 0:
        raise DataError(f"drivers{(' ' + label) if label else ''}: no member shares on the notice date")
    if period_days <= 0:
        raise ConfigError(f"period_days: {period_days} must be > 0")
    need = ("age", "sex", weight_col) + ((amount_col,) if amount_incurred_cny is None else ())
    for col in need:
        if col not in cells.columns:
            raise DataError(f"cells: column '{col}' is required for the share decomposition")
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
    if select_factors is not None:
        if "duration" not in c.columns:
            raise DataError("cells: column 'duration' is required with select_factors")
        from engine.estimators._select_table import select_table

        c = c.with_columns(pl.col("duration").cast(pl.Int32)).sort("duration").join_asof(
            select_table(select_factors).select("duration_from", pl.col("factor").alias("_sel")),
            left_on="duration", right_on="duration_from", strategy="backward",
        )
        if c["_sel"].null_count():
            raise DataError("cells: a negative duration has no select factor")
    else:
        c = c.with_columns(pl.lit(1.0).alias("_sel"))
    rel = pl.lit(1.0)
    for col, tab in (relativities or {}).items():
        if col not in c.columns:
            raise DataError(f"cells: column '{col}' is required by relativities")
        name = f"_rel_{col}"
        c = c.join(tab.select(pl.col(col).cast(c.schema[col]), pl.col("relativity").cast(pl.Float64).alias(name)), on=col, how="left")
        if c[name].null_count():
            raise DataError(f"relativities[{col}]: no relativity for value {c.filter(pl.col(name).is_null())[col][0]!r}")
        rel = rel * pl.col(name)
    from engine.cells.sums import exact_sum  # correctly rounded sums: same bits whatever the row order

    terms = c.select(
        pl.col("_w").alias("w"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben")).alias("wb"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben") * pl.col("_sel")).alias("wbs"),
        (pl.col("_w") * pl.col("_base") * pl.col("_ben") * pl.col("_sel") * rel).alias("wbsr"),
    )
    s = {k: exact_sum(terms.get_column(k)) for k in terms.columns}
    incurred = exact_sum(c[amount_col]) if amount_incurred_cny is None else float(amount_incurred_cny)
    E, P = s["w"], float(amount_approved_cny)
    if E <= 0:
        raise DataError(f"drivers{(' ' + label) if label else ''}: no eligible exposure in the window")
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
        raise DataError(
            f"drivers{(' ' + label) if label else ''}: claims were approved but none incurred in the window; use a longer window"
        )
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


def share_drivers(
    members: pl.DataFrame | pl.LazyFrame,
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
) -> ShareDrivers:
    """Driver factors of the window ``[period_start, notice_date]`` from members and claims.

    Cells: each member's eligible days in the window (sharing and past the
    waiting period), grouped by age, sex and duration on the notice date and by
    the relativity columns. Incurred = eligible claims with event in the
    window; approved = eligible claims whose approval date (or event + lag)
    lies in the window. N = members sharing on the notice date. Y = the members'
    sharing days in the window / 365.25 (waiting days included), which separates the
    ``waiting`` driver E / Y from growth ``dilution`` Y / (N dt).

    Notes
    -----
    Attributes are taken on the notice date (a window of a month or two:
    age changes inside it are ignored). Eligible days are sharing days past
    the waiting period; they do not stop at a member's first claim.
    """
    from engine.shares.history import eligible_claims

    if notice_date < period_start:
        raise ConfigError(f"notice_date: {notice_date} is before period_start {period_start}")
    m = members.lazy()
    names = m.collect_schema().names()
    if plan is not None:
        if plan_col not in names:
            raise ConfigError(f"plan_col: members have no column '{plan_col}'")
        m = m.filter(pl.col(plan_col) == plan)
    c = _collect(claims)
    c = eligible_claims(m, c, waiting_days=waiting_days, terminate_on_claim=terminate_on_claim)
    # claims of these members: look the (few) claimants up instead of hashing every member id
    ids = c.get_column("member_id").unique()
    present = m.select("member_id").filter(pl.col("member_id").is_in(ids.implode())).collect().get_column("member_id")
    c = c.filter(pl.col("member_id").is_in(present.implode()))
    d = pl.lit(notice_date)
    ps, nd = pl.lit(period_start), pl.lit(notice_date)
    first = pl.max_horizontal(pl.col("join_date") + pl.duration(days=waiting_days), ps)
    last_excl = pl.min_horizontal(pl.col("exit_date").fill_null(notice_date + dt.timedelta(days=1)), nd + pl.duration(days=1))
    rel_cols = list((relativities or {}).keys())
    keys = ["age", "sex", "duration", *rel_cols]
    # only the columns the cells need; cells sorted by their keys (same sums on every run)
    mm = m.select("birth_date", "join_date", "exit_date", "sex", *[x for x in rel_cols if x not in ("sex",)])
    N = int(mm.filter((pl.col("join_date") <= nd) & (pl.col("exit_date").is_null() | (nd < pl.col("exit_date"))))
            .select(pl.len()).collect().item())
    share_days = (last_excl - pl.max_horizontal(pl.col("join_date"), ps)).dt.total_days().clip(lower_bound=0)
    Y = float(mm.select(share_days.sum()).collect().item() or 0) / DAYS_PER_YEAR
    cells = (
        mm.with_columns(((last_excl - first).dt.total_days().clip(lower_bound=0)).alias("_days"))
        .filter(pl.col("_days") > 0)
        .with_columns(attained_age_expr(pl.col("birth_date"), d).alias("age"),
                      completed_months_expr(pl.col("join_date"), d).alias("duration"))
        .group_by(*keys)
        .agg((pl.col("_days").sum() / DAYS_PER_YEAR).alias("exposure_years"))
        .sort(keys, nulls_last=True)
        .collect()
    )
    appr = pl.col("approved_date") if "approved_date" in c.columns else pl.lit(None, dtype=pl.Date)
    c = c.with_columns(pl.coalesce(appr, pl.col("event_date") + pl.duration(days=reporting_lag_days)).alias("_appr"))
    from engine.cells.sums import exact_sum

    approved = exact_sum(c.filter((pl.col("_appr") >= ps) & (pl.col("_appr") <= nd))["amount"])
    incurred = exact_sum(c.filter((pl.col("event_date") >= ps) & (pl.col("event_date") <= nd))["amount"])
    return drivers_from_cells(
        cells,
        sharing_members=N,
        amount_approved_cny=approved,
        amount_incurred_cny=incurred,
        period_days=(notice_date - period_start).days + 1,
        fee=fee,
        base_rates=base_rates,
        select_factors=select_factors,
        relativities=relativities,
        benefits=benefits,
        label=label if label is not None else f"{period_start}..{notice_date}",
        sharing_years=Y,
    )


def sustainable(drivers: ShareDrivers, *, select_ultimate: float = 1.0, **overrides: Any) -> ShareDrivers:
    """The stationary counterpart of ``drivers``: everyone eligible, no lag, select effect worn off.

    ``dilution = 1``, ``waiting = 1``, ``reporting_lag = 1``, ``select = select_ultimate`` (the
    factor at the longest duration); ``overrides`` replace any other factor
    (e.g. the equilibrium ``ageing`` and ``mix`` from a projection).
    """
    base = {"dilution": 1.0, "waiting": 1.0, "reporting_lag": 1.0, "select": float(select_ultimate), "label": "sustainable"}
    base.update(overrides)
    return drivers.replace(**base)


# --------------------------------------------------------------------------- attribution
def _values(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """v[mask] = prod_j (b_j if bit j of mask else a_j), for all 2^n masks."""
    n = len(a)
    masks = np.arange(1 << n)
    bits = (masks[:, None] >> np.arange(n)[None, :]) & 1
    return np.prod(np.where(bits == 1, np.asarray(b)[None, :], np.asarray(a)[None, :]), axis=1)


def shapley(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Shapley attribution of ``prod(b) - prod(a)`` to each factor (closed form over subsets).

    Notes
    -----
    phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! x [v(S + i) - v(S)],
    v(S) = prod_{j in S} b_j prod_{j not in S} a_j. Efficiency: sum_i phi_i =
    v(all) - v(none) = prod(b) - prod(a).
    """
    n = len(a)
    v = _values(a, b)
    masks = np.arange(1 << n)
    size = np.array([bin(x).count("1") for x in masks])
    weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) if k < n else 0.0 for k in size])
    out = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        out[i] = np.sum(weight[without] * (v[without | (1 << i)] - v[without]))
    return out


def shapley_by_permutations(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Shapley attribution by averaging sequential substitution over all n! orders (slow oracle)."""
    n = len(a)
    out = np.zeros(n)
    count = 0
    for order in permutations(range(n)):
        out += sequential(a, b, order)
        count += 1
    return out / count


def sequential(a: Sequence[float], b: Sequence[float], order: Sequence[int] | None = None) -> np.ndarray:
    """Sequential substitution: replace factors a -> b one at a time in ``order``.

    Notes
    -----
    contribution_{order[k]} = prod(state after k+1 swaps) - prod(state after k swaps);
    the sum telescopes to prod(b) - prod(a).
    """
    n = len(a)
    order = list(range(n)) if order is None else list(order)
    state = list(map(float, a))
    prev = math.prod(state)
    out = np.zeros(n)
    for i in order:
        state[i] = float(b[i])
        cur = math.prod(state)
        out[i] = cur - prev
        prev = cur
    return out


def lmdi(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Log-mean Divisia (LMDI-I) attribution: L(S_a, S_b) x ln(b_i / a_i); needs positive factors.

    Notes
    -----
    L(x, y) = (y - x) / (ln y - ln x), L(x, x) = x. Sum = L x ln(S_b / S_a) = S_b - S_a.
    """
    a_ = np.asarray(a, dtype=float)
    b_ = np.asarray(b, dtype=float)
    if np.any(a_ <= 0) or np.any(b_ <= 0):
        raise ModelError("decompose: method 'lmdi' needs every factor > 0 (use 'shapley' or 'sequential')")
    sa, sb = float(np.prod(a_)), float(np.prod(b_))
    L = sa if math.isclose(sa, sb, rel_tol=1e-15) else (sb - sa) / (math.log(sb) - math.log(sa))
    return L * np.log(b_ / a_)


_METHODS = ("shapley", "sequential", "lmdi")


def decompose(
    a: ShareDrivers,
    b: ShareDrivers,
    *,
    method: str | Sequence[str] = "shapley",
    order: Sequence[str] = DRIVERS,
) -> pl.DataFrame:
    """Attribute ``b.share_cny - a.share_cny`` to the drivers, exactly.

    Parameters
    ----------
    a, b : driver factors of the two windows (see :func:`share_drivers`,
        :func:`drivers_from_cells`; :func:`sustainable` for the gap to the
        sustainable share).
    method : ``"shapley"`` (average over all orders), ``"sequential"`` (fixed
        ``order``), ``"lmdi"`` (log-mean Divisia), or a list of them.
    order : driver order for ``"sequential"`` (default :data:`DRIVERS`).

    Returns
    -------
    DataFrame: ``method``, ``driver``, ``factor_a``, ``factor_b``,
    ``contribution_cny``, ``contribution_pct`` (percent of the total change;
    null when the share does not change), one row per driver and method.

    Notes
    -----
    For every method ``sum(contribution_cny) = b.share_cny - a.share_cny``:
    sequential substitution telescopes; Shapley values are efficient; LMDI sums
    to L(S_a, S_b) ln(S_b / S_a). No residual term exists.
    """
    methods = [method] if isinstance(method, str) else list(method)
    bad = [m for m in methods if m not in _METHODS]
    if bad:
        raise ConfigError(f"method: {bad[0]!r} is unknown; use one of {', '.join(_METHODS)}")
    if sorted(order) != sorted(DRIVERS):
        raise ConfigError(f"order: must be a permutation of {', '.join(DRIVERS)}")
    fa, fb = a.factors(), b.factors()
    va = [fa[d] for d in DRIVERS]
    vb = [fb[d] for d in DRIVERS]
    total = b.share_cny - a.share_cny
    frames = []
    for m in methods:
        if m == "shapley":
            contrib = shapley(va, vb)
        elif m == "sequential":
            contrib = sequential(va, vb, [DRIVERS.index(d) for d in order])
        else:
            contrib = lmdi(va, vb)
        rows = list(order) if m == "sequential" else list(DRIVERS)
        idx = [DRIVERS.index(d) for d in rows]
        frames.append(
            pl.DataFrame(
                {
                    "method": [m] * len(rows),
                    "driver": rows,
                    "factor_a": [va[i] for i in idx],
                    "factor_b": [vb[i] for i in idx],
                    "contribution_cny": [float(contrib[i]) + 0.0 for i in idx],
                }
            )
        )
    out = pl.concat(frames)
    pct = (
        pl.lit(None, dtype=pl.Float64)
        if total == 0
        else pl.when(pl.col("contribution_cny") == 0).then(0.0).otherwise(pl.col("contribution_cny") / total * 100.0)
    )
    return out.with_columns(pct.alias("contribution_pct"))
