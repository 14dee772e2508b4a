"""Assumptions and the groups table of the share projection (``engine.projection._project``).

Everything the projection needs beyond the fitted incidences is here, with its
default. None of the behavioural defaults (lapse rates, elasticities, the
"user education" speed) is a published figure: they are configurable
assumptions, documented in ``docs/projection.md``. The Xianghubao figures (fee
8%, 90-day waiting period, 0.1 CNY per-claimant cap, 188 CNY annual cap) come
from ``docs/reference-data.md``.

Bad input raises :class:`engine.errors.ConfigError` naming the key or column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import ConfigError
from engine.conventions import FEE, REPORTING_LAG_DAYS, WAITING_DAYS, days_to_periods

__all__ = [
    "Joiners",
    "Lapse",
    "Expectations",
    "Elasticity",
    "SpiralRule",
    "ProjectionAssumptions",
    "groups_from_table",
    "prepare_groups",
    "load_projection_config",
    "read_groups",
    "select_factors_from_table",
    "GROUP_COLUMNS",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Joiners(_Model):
    """The operating tempo: new members per period and what happens after the schedule.

    ``per_period`` is platform-wide (split over all groups by the ``joiner_mix``
    column) when it is a number, a sequence or a callable ``f(period) -> float``;
    a mapping ``{plan: number | sequence}`` gives each plan its own schedule
    (split over the plan's groups by ``joiner_mix``). Joiners in period t are
    ``per_period[t] * (1 + growth) ** t``. When a sequence is shorter than the
    horizon, or ``per_period`` is None, ``then`` applies: ``"stop"`` (no more
    joiners, a closed pool) or ``"replace"`` (each plan recruits as many members
    as left it in the previous period: the no-growth, stationary regime).
    """

    per_period: float | list[float] | dict[str, float | list[float]] | Callable[[int], float] | None = None
    growth: float = Field(0.0, gt=-1.0)
    then: Literal["stop", "replace"] = "stop"


class Lapse(_Model):
    """Voluntary exits.

    Per-period hazard of a member of group g at tenure tau in scenario s:
    ``h = min(base_g * tenure_factors[tau] * (share / max(expected, floor)) ** eps_g, max_hazard)``
    with ``base_g = 1 - (1 - base_annual[channel_g]) ** (1 / periods_per_year)``.
    ``base_annual`` is an annual probability, one number or one per channel
    (``"*"`` = any other channel). The defaults are illustrative assumptions.
    """

    base_annual: float | dict[str, float] = 0.10
    tenure_factors: list[float] = Field(default_factory=lambda: [1.0])
    max_hazard: float = Field(0.5, gt=0.0, le=1.0)


class Expectations(_Model):
    """Members' expected share and how it adapts ("user education").

    ``expected[t+1] = expected[t] + speed * (share[t] - expected[t])``; the
    expectation starts at ``initial_share_cny`` or, if None, at the first
    period's share. ``floor_cny`` keeps the ratio share / expected finite.
    """

    initial_share_cny: float | None = Field(None, ge=0.0)
    speed: float = Field(0.1, ge=0.0, le=1.0)
    floor_cny: float = Field(0.01, gt=0.0)


class Elasticity(_Model):
    """Price elasticity of lapses, with adverse selection.

    ``eps_g = base * risk_g ** (-adverse_selection)`` unless the groups table
    has an ``elasticity`` column. ``risk_g`` is the group's relative risk (the
    ``risk`` column, or its rate over the plan's member-weighted mean rate), so
    with ``adverse_selection > 0`` low-risk members are more price-elastic.
    """

    base: float = Field(0.0, ge=0.0)
    adverse_selection: float = Field(0.0, ge=0.0)
    risk_flag_scores: dict[str, float] = Field(default_factory=lambda: {"low": 0.5, "high": 2.0})


class SpiralRule(_Model):
    """Death-spiral rule on each plan's membership and share paths (:func:`engine.projection._spiral.spiral_period`).

    Detected at the first period t where, over the current uninterrupted fall of
    membership (at most ``window`` periods back, at least ``min_periods`` long):
    membership fell by more than ``members_drop``; the share rose by more than
    ``share_rise``; exits are not slowing (the recent per-period fall keeps at least
    ``persistence`` of the earlier pace); and the share is not converging (above the
    sustainable share by more than ``overshoot``, or its rise not slowing by the same test).
    """

    window: int | None = Field(None, ge=2)
    members_drop: float = Field(0.05, ge=0.0, lt=1.0)
    share_rise: float = Field(0.05, ge=0.0)
    overshoot: float = Field(0.10, ge=0.0)
    persistence: float = Field(0.9, gt=0.0, le=1.0)
    min_periods: int = Field(3, ge=2)


class ProjectionAssumptions(_Model):
    """All assumptions of :func:`engine.projection._project.project` (see its docstring)."""

    horizon: int = Field(120, ge=1, le=1200)
    n_scenarios: int = Field(1000, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    periods_per_year: int = Field(12, ge=1, le=366)
    fee: float = Field(FEE, ge=0.0)
    waiting_days: int = Field(WAITING_DAYS, ge=0, le=3650)
    reporting_lag_days: int = Field(REPORTING_LAG_DAYS, ge=0, le=3650)
    #: whole periods; None = ``days_to_periods(waiting_days, periods_per_year)``
    waiting_periods: int | None = Field(None, ge=0, le=600)
    #: whole periods; None = ``days_to_periods(reporting_lag_days, periods_per_year)``
    reporting_lag_periods: int | None = Field(None, ge=0, le=600)
    per_claimant_cap: float | None = Field(None, gt=0.0)
    annual_cap: float | None = Field(None, gt=0.0)
    select_factors: list[float] | dict[str, list[float]] | None = None
    incidence_trend: list[float] | dict[str, list[float]] | None = None
    claimants_exit: bool = True
    joiners: Joiners = Joiners()
    lapse: Lapse = Lapse()
    expectations: Expectations = Expectations()
    elasticity: Elasticity = Elasticity()
    spiral: SpiralRule = SpiralRule()
    chunk_size: int = Field(2048, ge=1)

    @model_validator(mode="after")
    def _periods_from_days(self) -> "ProjectionAssumptions":
        # the waiting period and the reporting lag are rules in days; the projection counts whole
        # sharing periods: one conversion (engine.conventions.days_to_periods), no second default
        if self.waiting_periods is None:
            object.__setattr__(self, "waiting_periods", days_to_periods(self.waiting_days, self.periods_per_year))
        if self.reporting_lag_periods is None:
            object.__setattr__(self, "reporting_lag_periods",
                               days_to_periods(self.reporting_lag_days, self.periods_per_year))
        return self


def _fmt(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-"))
    msg = "unknown key" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
    return f"{loc}: {msg}" if loc else msg


def _coerce(model: type[BaseModel], value: Any, key: str) -> Any:
    """Accept a model instance, a mapping of its fields, or (for some) a bare number."""
    if value is None or isinstance(value, model):
        return value if value is not None else model()
    if model is Joiners:
        if not isinstance(value, Mapping):
            value = {"per_period": value}
        elif not set(value) <= set(Joiners.model_fields):
            value = {"per_period": dict(value)}
    elif model is Elasticity and isinstance(value, int | float):
        value = {"base": value}
    elif model is Lapse and (isinstance(value, int | float) or (
            isinstance(value, Mapping) and not set(value) & set(Lapse.model_fields))):
        value = {"base_annual": value}  # a number, or annual lapse rates by channel
    elif model is Expectations and isinstance(value, int | float):
        value = {"speed": value}
    if isinstance(value, Mapping) and isinstance(value.get("per_period"), np.ndarray):
        value = {**value, "per_period": value["per_period"].tolist()}
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(f"{key}.{_fmt(exc.errors()[0])}") from None


def make_assumptions(**kw: Any) -> ProjectionAssumptions:
    """Build :class:`ProjectionAssumptions` from keyword arguments (sub-sections may be dicts)."""
    for key, model in (("joiners", Joiners), ("lapse", Lapse), ("expectations", Expectations),
                       ("elasticity", Elasticity), ("spiral", SpiralRule)):
        if key in kw:
            kw[key] = _coerce(model, kw[key], key)
    try:
        return ProjectionAssumptions.model_validate(kw)
    except ValidationError as exc:
        raise ConfigError(_fmt(exc.errors()[0])) from None


#: canonical groups columns: name -> (polars dtype, required)
GROUP_COLUMNS: dict[str, tuple[Any, bool]] = {
    "plan": (pl.String, False),
    "group": (pl.String, True),
    "members": (pl.Float64, True),
    "waiting_members": (pl.Float64, False),
    "rate": (pl.Float64, True),
    "benefit_cny": (pl.Float64, True),
    "risk": (pl.Float64, False),
    "channel": (pl.String, False),
    "joiner_mix": (pl.Float64, False),
    "elasticity": (pl.Float64, False),
    "ageing_annual": (pl.Float64, False),
}
_ALIASES = {"benefit": "benefit_cny", "incidence": "rate", "plan_id": "plan", "risk_score": "risk"}


def prepare_groups(groups: pl.DataFrame | pl.LazyFrame, where: str = "groups",
                   risk_flag_scores: Mapping[str, float] | None = None) -> pl.DataFrame:
    """Validate and normalise the groups table (one row per plan and group).

    Required: ``group``, ``members`` (>= 0), ``rate`` (annual incidence per
    exposure-year, >= 0), ``benefit_cny`` (> 0; ``benefit`` accepted). Optional
    (default): ``plan`` ("all"), ``waiting_members`` (0; members still in the
    waiting period, spread evenly over its periods), ``risk`` (relative risk > 0,
    or the flags ``low``/``high``; default rate / plan mean rate), ``channel``
    ("all"), ``joiner_mix`` (members, or 1 if the plan is empty), ``elasticity``
    (from :class:`Elasticity`), ``ageing_annual`` (0: incidence drifts by
    ``(1 + ageing_annual) ** years``).
    """
    if isinstance(groups, pl.LazyFrame):
        groups = groups.collect()
    if not isinstance(groups, pl.DataFrame):
        raise ConfigError(f"{where}: expected a polars DataFrame, got {type(groups).__name__}")
    df = groups.rename({a: c for a, c in _ALIASES.items() if a in groups.columns and c not in groups.columns})
    if df.height == 0:
        raise ConfigError(f"{where}: no group row")
    scores = dict(risk_flag_scores or {"low": 0.5, "high": 2.0})
    out: dict[str, pl.Series] = {}
    for col, (dtype, required) in GROUP_COLUMNS.items():
        if col not in df.columns:
            if required:
                raise ConfigError(f"{where}: column '{col}' is required")
            continue
        s = df[col]
        if col == "risk" and s.dtype == pl.String:
            bad = s.filter(~s.is_in(list(scores)) & s.is_not_null())
            if bad.len():
                raise ConfigError(f"{where}: column 'risk': flag '{bad[0]}' is not one of {sorted(scores)}")
            s = s.replace_strict(scores, return_dtype=pl.Float64, default=None)
        elif col == "risk" and s.dtype == pl.Boolean:  # True = high risk
            s = s.cast(pl.Int8).replace_strict({0: scores["low"], 1: scores["high"]}, return_dtype=pl.Float64)
        try:
            s = s.cast(dtype, strict=True)
        except Exception:
            raise ConfigError(f"{where}: column '{col}' must be {dtype}, got {df[col].dtype}") from None
        if s.null_count():
            raise ConfigError(f"{where}: column '{col}' has {s.null_count()} null value(s)")
        if dtype == pl.Float64 and not bool(s.is_finite().all()):
            raise ConfigError(f"{where}: column '{col}' has a non-finite value")
        out[col] = s
    checks = {"members": lambda s: s >= 0, "waiting_members": lambda s: s >= 0, "rate": lambda s: s >= 0,
              "benefit_cny": lambda s: s > 0, "risk": lambda s: s > 0, "joiner_mix": lambda s: s >= 0,
              "elasticity": lambda s: s >= 0, "ageing_annual": lambda s: s > -1}
    for col, ok in checks.items():
        if col in out and not bool(ok(out[col]).all()):
            raise ConfigError(f"{where}: column '{col}' has a value out of range (rule: {col} {_RULES[col]})")
    res = pl.DataFrame(out)
    if "plan" not in res.columns:
        res = res.with_columns(plan=pl.lit("all"))
    if "waiting_members" in res.columns and bool((res["waiting_members"] > res["members"]).any()):
        raise ConfigError(f"{where}: column 'waiting_members' exceeds 'members'")
    dup = res.select("plan", "group").is_duplicated()
    if bool(dup.any()):
        row = res.filter(dup).row(0, named=True)
        raise ConfigError(f"{where}: (plan, group) = ({row['plan']}, {row['group']}) appears twice")
    defaults = {"waiting_members": 0.0, "channel": "all", "ageing_annual": 0.0}
    res = res.with_columns(**{c: pl.lit(v) for c, v in defaults.items() if c not in res.columns})
    if "risk" not in res.columns:
        tot = pl.col("members").sum().over("plan")
        mean = pl.when(tot > 0).then((pl.col("rate") * pl.col("members")).sum().over("plan") / tot) \
            .otherwise(pl.col("rate").mean().over("plan"))
        res = res.with_columns(risk=pl.when(mean > 0).then(pl.col("rate") / mean).otherwise(1.0))
        res = res.with_columns(risk=pl.when(pl.col("risk") > 0).then("risk").otherwise(1e-6))
    if "joiner_mix" not in res.columns:
        res = res.with_columns(joiner_mix=pl.when(pl.col("members").sum().over("plan") > 0)
                               .then(pl.col("members")).otherwise(1.0))
    cols = ["plan", "group", "members", "waiting_members", "rate", "benefit_cny", "risk", "channel",
            "joiner_mix", "ageing_annual"] + (["elasticity"] if "elasticity" in res.columns else [])
    return res.select(cols).sort("plan", "group", maintain_order=True)


_RULES = {"members": ">= 0", "waiting_members": ">= 0", "rate": ">= 0", "benefit_cny": "> 0", "risk": "> 0",
          "joiner_mix": ">= 0", "elasticity": ">= 0", "ageing_annual": "> -1"}


def groups_from_table(table: pl.DataFrame | pl.LazyFrame | Mapping[str, Sequence[Any]], *, plan: str = "plan",
                      group: str = "group", members: str = "members", rate: str = "rate",
                      benefit: str = "benefit", risk: str | None = "risk", **extra: str) -> pl.DataFrame:
    """Build the projection's groups table from a simple table.

    Parameters
    ----------
    table : DataFrame, LazyFrame or mapping of columns
        One row per (plan, group). ``plan`` may be absent (one plan "all").
    plan, group, members, rate, benefit, risk : str
        Names of the source columns (``risk`` may be absent or None).
    **extra : str
        Other canonical columns and their source names, e.g. ``channel="sales_channel"``.

    Returns
    -------
    polars.DataFrame
        The validated groups table accepted by :func:`engine.projection._project.project`.

    Examples
    --------
    >>> g = groups_from_table({"group": ["low", "high"], "members": [8000, 2000],
    ...                        "rate": [0.0005, 0.002], "benefit": [300_000, 300_000]})
    """
    df = table if isinstance(table, pl.DataFrame | pl.LazyFrame) else pl.DataFrame(dict(table))
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    names = {plan: "plan", group: "group", members: "members", rate: "rate", benefit: "benefit_cny"}
    if risk is not None:
        names[risk] = "risk"
    names.update({src: canon for canon, src in extra.items()})
    for canon in GROUP_COLUMNS:  # other canonical columns present under their own name are kept
        if canon in df.columns and canon not in names.values() and canon not in names:
            names[canon] = canon
    for src, canon in names.items():
        if canon in ("group", "members", "rate", "benefit_cny") and src not in df.columns:
            raise ConfigError(f"groups table: column '{src}' (for {canon}) not found")
        if canon not in GROUP_COLUMNS:
            raise ConfigError(f"groups table: '{canon}' is not a groups column (one of {sorted(GROUP_COLUMNS)})")
    keep = {src: canon for src, canon in names.items() if src in df.columns}
    return prepare_groups(df.select([pl.col(s).alias(c) for s, c in keep.items()]), "groups table")


def load_projection_config(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read a projection TOML: ``[projection]`` assumptions and ``[[groups]]`` rows (or ``groups = "x.parquet"``).

    Returns the validated groups table and the keyword arguments of ``project``.
    """
    from engine.data.io import read_toml

    p = Path(path)
    raw = read_toml(p, "configuration")
    unknown = set(raw) - {"projection", "groups"}
    if unknown:
        raise ConfigError(f"{p}: {sorted(unknown)[0]}: unknown key (expected [projection] and [[groups]])")
    g = raw.get("groups")
    if g is None:
        raise ConfigError(f"{p}: groups: missing ([[groups]] tables or groups = \"file.parquet\")")
    if isinstance(g, str):
        gp = Path(g) if Path(g).is_absolute() else p.resolve().parent / g
        groups = read_groups_parquet(gp)
    elif isinstance(g, list) and all(isinstance(r, dict) for r in g):
        try:
            groups = pl.DataFrame(g)
        except Exception as exc:
            raise ConfigError(f"{p}: groups: rows do not form a table ({exc})") from None
    else:
        raise ConfigError(f"{p}: groups: must be [[groups]] tables or a Parquet path")
    kw = dict(raw.get("projection", {}))
    if "scenarios" in kw:
        kw["n_scenarios"] = kw.pop("scenarios")
    try:
        make_assumptions(**kw)
    except ConfigError as exc:
        raise ConfigError(f"{p}: projection.{exc}") from None
    return prepare_groups(groups, f"{p}: groups"), kw


def read_groups_parquet(path: str | Path) -> pl.DataFrame:
    """Read a groups table from Parquet (file, glob or directory); errors name the path."""
    from engine.errors import InputFileError
    from engine.data.io import resolve_paths

    files = resolve_paths(path)
    try:
        return pl.read_parquet(files)
    except Exception as exc:  # polars raises several types for unreadable files
        raise InputFileError(f"{path}: not a readable Parquet groups table ({type(exc).__name__})") from None


def read_groups(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Groups and ``project`` keyword arguments from a ``.toml`` projection config or a Parquet groups table."""
    if str(path).lower().endswith(".toml"):
        return load_projection_config(path)
    return prepare_groups(read_groups_parquet(path), str(path)), {}


def select_factors_from_table(table: Any, periods_per_year: int = 12, *, factor: str = "factor",
                              route: str | None = None) -> list[float]:
    """Per-period select factors from a duration-band table (e.g. ``engine.select_factors(...)``).

    The table is read by :func:`engine.estimators._select_table.select_table` (``select_factors``
    output or a fitted ``SelectFactors`` unchanged: ``duration_from`` months inclusive,
    ``factor``, optional ``route``; bands before the first one get factor 0). Period tau (completed
    periods since joining) starts at month ``tau * 12 / periods_per_year`` and takes the
    factor of the band containing that month; the open band's factor is the last entry
    (it applies thereafter). Null factors (bands inside the waiting period, no exposure)
    become 0: the model gives no incidence in the waiting period anyway.
    """
    from engine.estimators._select_table import select_table

    t = select_table(table, route=route, factor=factor)
    lo = t["duration_from"].cast(pl.Float64).to_numpy()
    f = t["factor"].to_numpy()
    n_periods = int(np.ceil(lo[-1] * periods_per_year / 12.0)) + 1
    months = np.arange(n_periods) * 12.0 / periods_per_year
    idx = np.searchsorted(lo, months, side="right") - 1
    return [float(x) for x in f[idx]]


def trend_from_table(table: pl.DataFrame) -> list[float] | dict[str, list[float]]:
    """Incidence multipliers by projection year from a table ``year`` (0, 1, ...), ``factor``, optional ``group``.

    An age-shift of the membership can be expressed this way: factor_y = the
    exposure-weighted incidence of the group's projected age mix in year y over
    its incidence now. Years missing between listed ones are an error; the last
    year's factor applies thereafter.
    """
    for col in ("year", "factor"):
        if col not in table.columns:
            raise ConfigError(f"incidence_trend: table column '{col}' is required")

    def one(t: pl.DataFrame, what: str) -> list[float]:
        t = t.sort("year")
        years = t["year"].cast(pl.Int64).to_list()
        if years != list(range(len(years))):
            raise ConfigError(f"incidence_trend: {what}years must be 0, 1, 2, ... without gaps")
        return [float(x) for x in t["factor"].cast(pl.Float64).to_list()]

    if "group" not in table.columns:
        return one(table, "")
    return {str(g): one(table.filter(pl.col("group") == g), f"group '{g}': ")
            for g in table["group"].unique(maintain_order=True).to_list()}
