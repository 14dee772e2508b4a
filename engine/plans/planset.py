"""Plan definitions: a TOML schema, its validation, and a safe eligibility language.

A *plan set* is a TOML file with an optional ``[planset]`` table and one
``[[plans]]`` table per plan (see ``docs/plans.md`` for every key). Errors name
the file and the key, e.g. ``configs/x.toml: plans[1].fee: must be a number in
[0, 1)``. Unknown keys are errors.

Eligibility is written with structured fields (``age = [0, 39]``,
``city_tier = [4, 5]``, ``sex = ["F"]``) and/or a ``when`` expression in a small
language parsed by :mod:`engine.plans.expr` (never ``eval``), e.g.
``age >= 40 and city_tier in {4, 5}`` or ``40 <= age <= 59``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import ConfigError, DataError
from engine.plans.expr import Expression, Token, tokenize  # noqa: F401 (re-exported)
from engine.conventions import FEE, SHARING_DAYS, WAITING_DAYS, periods_per_year
from engine.data._coerce import api_input

RULES = ("equal", "risk_proportional", "conditional_mean")

# --------------------------------------------------------------------------- plan objects


@dataclass(frozen=True)
class Eligibility:
    """Who may join: an inclusive age range, allowed factor values, and an optional expression."""

    age: tuple[int, int] | None = None
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    when: Expression | None = None

    @property
    def columns(self) -> set[str]:
        cols = set(self.values)
        if self.age is not None:
            cols.add("age")
        if self.when is not None:
            cols |= self.when.columns
        return cols

    def to_polars(self) -> pl.Expr:
        """A boolean polars expression (True = eligible); null attributes count as not eligible."""
        parts: list[pl.Expr] = []
        if self.age is not None:
            parts.append(pl.col("age").is_between(self.age[0], self.age[1], closed="both"))
        for name, vals in self.values.items():
            parts.append(pl.col(name).is_in(list(vals)))
        if self.when is not None:
            parts.append(self.when.to_polars())
        if not parts:
            return pl.lit(True)
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out.fill_null(False)


@dataclass(frozen=True)
class BenefitBand:
    """Benefit ``amount`` (CNY) for attained ages ``age_min..age_max`` inclusive."""

    age_min: int
    age_max: int
    amount: float


@dataclass(frozen=True)
class Plan:
    """One plan: eligibility, benefit schedule, fee, waiting period, sharing days, caps and rule."""

    name: str
    eligibility: Eligibility
    benefits: tuple[BenefitBand, ...]
    fee: float = FEE
    waiting_days: int = WAITING_DAYS
    sharing_days: tuple[int, ...] = SHARING_DAYS
    per_claimant_cap: float | None = None
    annual_cap: float | None = None
    rule: str = "equal"
    description: str = ""

    @property
    def periods_per_year(self) -> int:
        """Sharing periods per year: 12 x the number of sharing days per month."""
        return periods_per_year(self.sharing_days)

    def benefit_expr(self) -> pl.Expr:
        """Polars expression giving the benefit (CNY) at column ``age``; null outside every band."""
        expr = pl.lit(None, dtype=pl.Float64)
        for b in reversed(self.benefits):
            expr = pl.when(pl.col("age").is_between(b.age_min, b.age_max, closed="both")).then(pl.lit(b.amount)).otherwise(expr)
        return expr


@dataclass(frozen=True)
class PlanSet:
    """Plans offered together; ``allow_overlap`` says whether a member may be eligible for several."""

    plans: tuple[Plan, ...]
    name: str = ""
    allow_overlap: bool = False
    description: str = ""
    source: str = "<plans>"

    def __iter__(self):
        return iter(self.plans)

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, key: int | str) -> Plan:
        if isinstance(key, str):
            for p in self.plans:
                if p.name == key:
                    return p
            raise KeyError(key)
        return self.plans[key]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plans]


# --------------------------------------------------------------------------- validation

_PLANSET_KEYS = {"name", "allow_overlap", "description"}
_PLAN_KEYS = {"name", "description", "eligibility", "benefit", "fee", "waiting_days", "sharing_days", "caps", "rule"}
_CAP_KEYS = {"per_claimant", "annual"}
_BAND_KEYS = {"age", "amount"}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _age_range(v: Any, err) -> tuple[int, int]:
    if not (isinstance(v, list) and len(v) == 2 and all(_int(x) for x in v) and 0 <= v[0] <= v[1] <= 150):
        raise err("must be [min, max] with integers 0 <= min <= max <= 150 (inclusive attained ages)")
    return int(v[0]), int(v[1])


def _unknown(d: dict, allowed: set[str], err, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise err(f"unknown key (allowed: {', '.join(sorted(allowed))})", f"{prefix}{k}")


def _parse_plan(raw: Any, i: int, where: str) -> Plan:
    def err(msg: str, key: str = "") -> ConfigError:
        return ConfigError(f"{where}: plans[{i}]{'.' + key if key else ''}: {msg}")

    if not isinstance(raw, dict):
        raise err("must be a table ([[plans]])")
    _unknown(raw, _PLAN_KEYS, lambda m, k: err(m, k), "")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise err("must be a non-empty string", "name")
    # eligibility
    el_raw = raw.get("eligibility", {})
    if not isinstance(el_raw, dict):
        raise err("must be a table", "eligibility")
    age = None
    values: dict[str, tuple[Any, ...]] = {}
    when = None
    for k, v in el_raw.items():
        key = f"eligibility.{k}"
        if k == "age":
            age = _age_range(v, lambda m, key=key: err(m, key))
        elif k == "when":
            if not isinstance(v, str) or not v.strip():
                raise err("must be a non-empty expression string", key)
            try:
                when = Expression.parse(v)
            except ValueError as exc:
                raise err(f"invalid expression: {exc}", key) from None
        else:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", k):
                raise err("is not a valid column name", key)
            if not (isinstance(v, list) and v and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v)):
                raise err("must be a non-empty list of allowed values (strings or integers)", key)
            values[k] = tuple(v)
    elig = Eligibility(age=age, values=values, when=when)
    # benefits
    if "benefit" not in raw:
        raise err("is required (a number, or a list of {age = [min, max], amount = ...} bands)", "benefit")
    b = raw["benefit"]
    bands: list[BenefitBand] = []
    if _num(b):
        if b <= 0:
            raise err("must be a positive number of CNY", "benefit")
        lo, hi = age if age is not None else (0, 150)
        bands.append(BenefitBand(lo, hi, float(b)))
    elif isinstance(b, list) and b:
        for j, band in enumerate(b):
            key = f"benefit[{j}]"
            if not isinstance(band, dict):
                raise err("must be a table {age = [min, max], amount = ...}", key)
            _unknown(band, _BAND_KEYS, lambda m, k: err(m, k), f"{key}.")
            if "age" not in band or "amount" not in band:
                raise err("needs both age and amount", key)
            lo, hi = _age_range(band["age"], lambda m, key=key: err(m, f"{key}.age"))
            amt = band["amount"]
            if not _num(amt) or amt <= 0:
                raise err("must be a positive number of CNY", f"{key}.amount")
            bands.append(BenefitBand(lo, hi, float(amt)))
        bands.sort(key=lambda x: x.age_min)
        for a, c in zip(bands, bands[1:]):
            if c.age_min <= a.age_max:
                raise err(f"age bands overlap ({a.age_min}-{a.age_max} and {c.age_min}-{c.age_max})", "benefit")
        if age is not None:
            covered = set()
            for band in bands:
                covered.update(range(band.age_min, band.age_max + 1))
            missing = [x for x in range(age[0], age[1] + 1) if x not in covered]
            if missing:
                raise err(f"no benefit band covers eligible age {missing[0]}", "benefit")
    else:
        raise err("must be a positive number or a non-empty list of bands", "benefit")
    fee = raw.get("fee", FEE)
    if not _num(fee) or not 0 <= fee < 1:
        raise err("must be a number in [0, 1)", "fee")
    wait = raw.get("waiting_days", WAITING_DAYS)
    if not _int(wait) or not 0 <= wait <= 3650:
        raise err("must be an integer number of days in [0, 3650]", "waiting_days")
    days = raw.get("sharing_days", list(SHARING_DAYS))
    if not (isinstance(days, list) and days and all(_int(d) and 1 <= d <= 28 for d in days)):
        raise err("must be a non-empty list of days of the month in 1..28 (e.g. [14, 28] or [28])", "sharing_days")
    if len(set(days)) != len(days) or sorted(days) != days:
        raise err("days must be distinct and increasing", "sharing_days")
    caps = raw.get("caps", {})
    if not isinstance(caps, dict):
        raise err("must be a table {per_claimant = ..., annual = ...}", "caps")
    _unknown(caps, _CAP_KEYS, lambda m, k: err(m, k), "caps.")
    pc, an = caps.get("per_claimant"), caps.get("annual")
    for key, v in (("caps.per_claimant", pc), ("caps.annual", an)):
        if v is not None and (not _num(v) or v <= 0):
            raise err("must be a positive number of CNY", key)
    rule = raw.get("rule", "equal")
    if rule not in RULES:
        raise err(f"must be one of {', '.join(RULES)}", "rule")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise err("must be a string", "description")
    return Plan(
        name=name.strip(), eligibility=elig, benefits=tuple(bands), fee=float(fee), waiting_days=int(wait),
        sharing_days=tuple(days), per_claimant_cap=None if pc is None else float(pc),
        annual_cap=None if an is None else float(an), rule=rule, description=desc,
    )


def plans_from_dict(raw: dict[str, Any], where: str = "<plans>") -> PlanSet:
    """Validate a parsed plan-set mapping (the content of a plan TOML file)."""
    for k in raw:
        if k not in ("planset", "plans"):
            raise ConfigError(f"{where}: {k}: unknown key (allowed: planset, plans)")
    ps = raw.get("planset", {})
    if not isinstance(ps, dict):
        raise ConfigError(f"{where}: planset: must be a table")
    for k in ps:
        if k not in _PLANSET_KEYS:
            raise ConfigError(f"{where}: planset.{k}: unknown key (allowed: {', '.join(sorted(_PLANSET_KEYS))})")
    overlap = ps.get("allow_overlap", False)
    if not isinstance(overlap, bool):
        raise ConfigError(f"{where}: planset.allow_overlap: must be true or false")
    for key in ("name", "description"):
        if not isinstance(ps.get(key, ""), str):
            raise ConfigError(f"{where}: planset.{key}: must be a string")
    plans_raw = raw.get("plans")
    if not isinstance(plans_raw, list) or not plans_raw:
        raise ConfigError(f"{where}: plans: at least one [[plans]] table is required")
    plans = [_parse_plan(p, i, where) for i, p in enumerate(plans_raw)]
    seen: set[str] = set()
    for i, p in enumerate(plans):
        if p.name in seen:
            raise ConfigError(f"{where}: plans[{i}].name: duplicate plan name '{p.name}'")
        seen.add(p.name)
    return PlanSet(tuple(plans), name=ps.get("name", ""), allow_overlap=overlap,
                   description=ps.get("description", ""), source=where)


def load_plans(path: str | Path) -> PlanSet:
    """Read and validate a plan-set TOML file.

    Raises
    ------
    ConfigError
        One line naming the file and the key, e.g.
        ``configs/x.toml: plans[1].fee: must be a number in [0, 1)``.
    """
    from engine.data.io import read_toml

    p = Path(path)
    return plans_from_dict(read_toml(p, "plan"), str(p))


@api_input(frames=("table",))
def assign_plans(table: pl.DataFrame, plans: PlanSet, *, where: str = "risk table") -> pl.DataFrame:
    """Add ``eligible_<i>`` flags, the assigned ``plan`` (first eligible in file order), ``benefit_cny``, ``fee``.

    Rows eligible for no plan get a null ``plan``. When ``plans.allow_overlap`` is
    false, a row eligible for two plans is a :class:`ConfigError` naming both plans.
    """
    needed = set().union(*(p.eligibility.columns for p in plans)) | {"age"}
    missing = sorted(c for c in needed if c not in table.columns)
    if missing:
        raise DataError(f"{where}: column '{missing[0]}' is needed by the eligibility rules of {plans.source}")
    out = table
    for i, p in enumerate(plans):
        try:
            out = out.with_columns(p.eligibility.to_polars().alias(f"eligible_{i}"))
        except pl.exceptions.PolarsError as exc:
            raise ConfigError(
                f"{plans.source}: plans[{i}].eligibility: cannot be evaluated on {where} "
                f"(check the value types; {str(exc).splitlines()[0]})"
            ) from None
    n_el = pl.sum_horizontal([pl.col(f"eligible_{i}").cast(pl.Int32) for i in range(len(plans))])
    if not plans.allow_overlap:
        both = out.filter(n_el > 1)
        if both.height:
            row = both.row(0, named=True)
            which = [plans[i].name for i in range(len(plans)) if row[f"eligible_{i}"]]
            raise ConfigError(
                f"{plans.source}: planset.allow_overlap: plans '{which[0]}' and '{which[1]}' overlap "
                f"(e.g. age {row.get('age')}); set allow_overlap = true or make the eligibility disjoint"
            )
    plan_e = pl.lit(None, dtype=pl.String)
    ben_e = pl.lit(None, dtype=pl.Float64)
    fee_e = pl.lit(None, dtype=pl.Float64)
    for i in reversed(range(len(plans))):
        p = plans[i]
        c = pl.col(f"eligible_{i}")
        plan_e = pl.when(c).then(pl.lit(p.name)).otherwise(plan_e)
        ben_e = pl.when(c).then(p.benefit_expr()).otherwise(ben_e)
        fee_e = pl.when(c).then(pl.lit(p.fee)).otherwise(fee_e)
    out = out.with_columns(plan_e.alias("plan"), ben_e.alias("benefit_cny"), fee_e.alias("fee"))
    bad = out.filter(pl.col("plan").is_not_null() & pl.col("benefit_cny").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise ConfigError(f"{plans.source}: plan '{row['plan']}': benefit: no band covers eligible age {row['age']}")
    return out


def _toml_value(v: Any) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")  # internal: only plan fields reach here


def to_toml(plans: PlanSet) -> str:
    """Write a plan set as TOML that :func:`load_plans` reads back to an equal plan set."""
    lines = ["[planset]", f"name = {_toml_value(plans.name)}", f"description = {_toml_value(plans.description)}",
             f"allow_overlap = {_toml_value(plans.allow_overlap)}", ""]
    for p in plans:
        el = p.eligibility
        parts = []
        if el.age is not None:
            parts.append(f"age = {_toml_value(list(el.age))}")
        parts += [f"{k} = {_toml_value(list(v))}" for k, v in el.values.items()]
        if el.when is not None:
            parts.append(f"when = {_toml_value(el.when.text)}")
        bands = ", ".join(f"{{ age = [{b.age_min}, {b.age_max}], amount = {b.amount!r} }}" for b in p.benefits)
        lines += [
            "[[plans]]",
            f"name = {_toml_value(p.name)}",
            f"description = {_toml_value(p.description)}",
            f"eligibility = {{ {', '.join(parts)} }}",
            f"benefit = [{bands}]",
            f"fee = {p.fee!r}",
            f"waiting_days = {p.waiting_days}",
            f"sharing_days = {_toml_value(list(p.sharing_days))}",
        ]
        caps = [f"{k} = {v!r}" for k, v in (("per_claimant", p.per_claimant_cap), ("annual", p.annual_cap)) if v is not None]
        if caps:
            lines.append(f"caps = {{ {', '.join(caps)} }}")
        lines += [f"rule = {_toml_value(p.rule)}", ""]
    return "\n".join(lines)
