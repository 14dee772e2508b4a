"""Design matrices for incidence models on cells: treatment-coded factors, B-spline age, interactions.

A *design spec* is a plain JSON-serialisable dict built once from the training cells
(levels, reference levels, spline knots, kept interaction columns). The same spec
rebuilds exactly the same columns on new cells and after save / load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from engine.errors import ConfigError, DataError

SUM_COLUMNS = frozenset({"exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount",
                         "expected"})
#: key columns never used as factors by default (time and the continuous select keys)
NOT_FACTORS = frozenset({"period", "age", "duration"})
SPLINE_DEGREE = 3


def key_columns(df: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """Key columns of cells: every column that is not a sum and does not start with '_'."""
    cols = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    return [c for c in cols if c not in SUM_COLUMNS and not c.startswith("_")]


def default_factors(df: pl.DataFrame) -> list[str]:
    """Factors used when none are given: key columns except ``period``, ``age``, ``duration``."""
    return [c for c in key_columns(df) if c not in NOT_FACTORS]


def bspline_basis(x: np.ndarray, knots: Sequence[float], degree: int = SPLINE_DEGREE) -> np.ndarray:
    """B-spline basis at ``x`` for the full knot vector ``knots``, first column dropped.

    Notes
    -----
    ``x`` is clamped to [knots[degree], knots[-degree-1]] (constant extrapolation beyond the
    training ages). The full basis sums to 1, so the first column is dropped to keep the
    design identifiable next to the intercept; the basis has len(knots) - degree - 2 columns.
    """
    from scipy.interpolate import BSpline

    t = np.asarray(knots, dtype=float)
    lo, hi = t[degree], t[-degree - 1]
    xc = np.clip(np.asarray(x, dtype=float), lo, hi)
    B = BSpline.design_matrix(xc, t, degree).toarray()
    return B[:, 1:]


def spline_knots(lo: float, hi: float, df: int, degree: int = SPLINE_DEGREE) -> list[float]:
    """Full knot vector: ``df - degree`` uniform interior knots on [lo, hi], boundaries repeated."""
    n_int = df - degree
    if n_int < 0:
        raise ConfigError(f"age_df: {df} must be at least {degree} (the spline degree)")
    if not hi > lo:
        raise DataError(f"cells: a spline in age needs at least two distinct ages (got {lo}..{hi})")
    inner = np.linspace(lo, hi, n_int + 2)[1:-1]
    return [float(lo)] * (degree + 1) + [float(v) for v in inner] + [float(hi)] * (degree + 1)


def _levels(df: pl.DataFrame, col: str) -> list[str]:
    from engine.factor_levels import as_levels

    s = as_levels(df.get_column(col))  # a null is the level "missing"
    return [str(v) for v in s.unique().sort().to_list()]


def build_spec(
    df: pl.DataFrame,
    factors: Sequence[str] | None,
    age: str | None,
    age_df: int,
    interactions: Sequence[Sequence[str]],
    reference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the design spec from training cells (already restricted to positive exposure).

    Notes
    -----
    ``age="auto"`` resolves to "spline" when the cells have more than ``age_df`` distinct
    ages, "factor" with 2..age_df, and no age term otherwise (no ``age`` column, one age).
    Treatment coding: each factor's reference level is the first level in sorted order
    (e.g. sex 'F', city_tier 1, channel 'employer') unless ``reference`` names another; its
    effect is absorbed in the intercept and each other level gets a column ``f[level]``.
    An interaction ``(f, g)`` adds the products ``f[a]:g[b]`` of non-reference columns; a
    product that is zero on every training cell (combination never observed) is dropped.
    """
    facs = default_factors(df) if factors is None else [factors] if isinstance(factors, str) else list(factors)
    reference = dict(reference or {})
    if age not in (None, "auto", "spline", "factor", "linear"):
        raise ConfigError(f"age: '{age}' must be 'auto', 'spline', 'factor', 'linear' or None")
    if age == "auto":  # spline with enough ages, a factor with a few, nothing without an age column
        n_ages = df.get_column("age").n_unique() if "age" in df.columns else 0
        age = "spline" if n_ages > int(age_df) else "factor" if n_ages >= 2 else None
    for c in facs + (["age"] if age else []):
        if c not in df.columns:
            raise ConfigError(f"cells: column '{c}' is required by the model (factors={facs}, age={age!r})")
    if "age" in facs and age is not None:
        raise ConfigError("factors: 'age' is listed as a factor and also modelled by age=...; use age='factor'")
    spec: dict[str, Any] = {"factors": [], "age": None, "interactions": []}
    for f in facs:
        levels = _levels(df, f)
        ref = str(reference.get(f, levels[0]))
        if ref not in levels:
            raise ConfigError(f"reference: level '{ref}' of '{f}' is not in the data (levels: {levels[:10]})")
        spec["factors"].append({"name": f, "levels": levels, "reference": ref})
    if age == "spline":
        a = df.get_column("age").cast(pl.Float64)
        spec["age"] = {"kind": "spline", "knots": spline_knots(float(a.min()), float(a.max()), int(age_df)),
                       "degree": SPLINE_DEGREE}
    elif age == "factor":
        levels = _levels(df, "age")
        spec["age"] = {"kind": "factor", "levels": levels, "reference": str(reference.get("age", levels[0]))}
    elif age == "linear":
        spec["age"] = {"kind": "linear", "center": float(df.get_column("age").cast(pl.Float64).mean())}
    names = {f["name"] for f in spec["factors"]}
    for pair in interactions:
        pair = list(pair)
        if len(pair) != 2 or any(p not in names for p in pair):
            raise ConfigError(f"interactions: {pair} must name two of the factors {sorted(names)}")
        spec["interactions"].append({"terms": pair, "keep": None})
    # drop interaction products never observed in training
    blocks = _blocks(df, spec)
    for it in spec["interactions"]:
        mat, cols = blocks[":".join(it["terms"])]
        it["keep"] = [c for j, c in enumerate(cols) if np.any(mat[:, j] != 0)]
    return spec


def _factor_block(df: pl.DataFrame, name: str, levels: list[str], ref: str) -> tuple[np.ndarray, list[str]]:
    from engine.factor_levels import as_levels

    s = as_levels(df.get_column(name))  # a null is the level "missing"
    codes = s.cast(pl.String).replace_strict(levels, list(range(len(levels))), default=None, return_dtype=pl.Int64)
    if codes.null_count():
        bad = s.cast(pl.String).filter(codes.is_null()).unique().sort().to_list()
        raise DataError(f"cells: column '{name}' has levels not seen in training: {bad[:5]}")
    idx = codes.to_numpy()
    others = [lv for lv in levels if lv != ref]
    pos = {lv: j for j, lv in enumerate(others)}
    mat = np.zeros((df.height, len(others)))
    col_of_level = np.array([pos.get(lv, -1) for lv in levels])
    cj = col_of_level[idx]
    rows = np.nonzero(cj >= 0)[0]
    mat[rows, cj[rows]] = 1.0
    return mat, [f"{name}[{lv}]" for lv in others]


def _blocks(df: pl.DataFrame, spec: dict[str, Any]) -> dict[str, tuple[np.ndarray, list[str]]]:
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for f in spec["factors"]:
        out[f["name"]] = _factor_block(df, f["name"], f["levels"], f["reference"])
    ag = spec["age"]
    if ag is not None:
        if "age" not in df.columns:
            raise DataError("cells: column 'age' is required by the model")
        if ag["kind"] == "spline":
            B = bspline_basis(df.get_column("age").cast(pl.Float64).to_numpy(), ag["knots"], ag["degree"])
            out["age"] = (B, [f"age_bs{j + 1}" for j in range(B.shape[1])])
        elif ag["kind"] == "factor":
            out["age"] = _factor_block(df, "age", ag["levels"], ag["reference"])
        else:
            out["age"] = ((df.get_column("age").cast(pl.Float64).to_numpy() - ag["center"])[:, None], ["age"])
    for it in spec["interactions"]:
        a, b = it["terms"]
        ma, na = out[a]
        mb, nb = out[b]
        mat = (ma[:, :, None] * mb[:, None, :]).reshape(df.height, -1)
        cols = [f"{x}:{y}" for x in na for y in nb]
        if it.get("keep") is not None:
            keep = set(it["keep"])
            sel = [j for j, c in enumerate(cols) if c in keep]
            mat, cols = mat[:, sel], [cols[j] for j in sel]
        out[":".join(it["terms"])] = (mat, cols)
    return out


def design_matrix(df: pl.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The model columns (without intercept) of ``df`` under ``spec``, and their names.

    Order: factors (in the given order), age, interactions.
    """
    blocks = _blocks(df, spec)
    mats = [m for m, _ in blocks.values()]
    names = [n for _, ns in blocks.values() for n in ns]
    X = np.hstack(mats) if mats else np.zeros((df.height, 0))
    return X, names


def spec_columns(spec: dict[str, Any]) -> list[str]:
    """Cell columns a spec reads."""
    return [f["name"] for f in spec["factors"]] + (["age"] if spec["age"] is not None else [])


def attained_age_expr(birth: str | pl.Expr, at: dt.date | pl.Expr) -> pl.Expr:
    """Attained age (age last birthday) on day ``at`` as an Int32 expression.

    Notes
    -----
    age = year(at) - year(birth) - [ (month, day)(at) < (month, day)(birth) ].
    For a birth on 29 February the comparison with (2, 29) puts the birthday on 1 March
    in common years, as the domain convention requires (no day lies between 28 Feb and
    1 Mar in a common year).
    """
    b = pl.col(birth) if isinstance(birth, str) else birth
    d = pl.lit(at) if isinstance(at, dt.date) else at
    md_d = d.dt.month().cast(pl.Int32) * 100 + d.dt.day().cast(pl.Int32)
    md_b = b.dt.month().cast(pl.Int32) * 100 + b.dt.day().cast(pl.Int32)
    return (d.dt.year().cast(pl.Int32) - b.dt.year().cast(pl.Int32) - (md_d < md_b).cast(pl.Int32)).alias("age")


def member_covariates(members: pl.DataFrame | pl.LazyFrame, at: dt.date, columns: Sequence[str] = ()) -> pl.DataFrame:
    """Covariates of members on day ``at``: ``member_id``, attained ``age``, ``sex`` and ``columns``.

    Members not sharing on ``at`` (join_date > at, or exit_date <= at) are dropped.
    """
    lf = members.lazy() if isinstance(members, pl.DataFrame) else members
    names = lf.collect_schema().names()
    need = ["member_id", "birth_date", "join_date"] + [c for c in columns if c not in ("age",)]
    for c in need:
        if c not in names:
            raise DataError(f"members: column '{c}' is required to score members")
    extra = [c for c in columns if c not in ("age", "member_id")]
    active = pl.col("join_date") <= pl.lit(at)
    if "exit_date" in names:
        active = active & (pl.col("exit_date").is_null() | (pl.col("exit_date") > pl.lit(at)))
    return lf.filter(active).select(
        "member_id", attained_age_expr("birth_date", at), *[pl.col(c) for c in dict.fromkeys(extra)]
    ).collect()


__all__ = [
    "attained_age_expr", "bspline_basis", "build_spec", "default_factors", "design_matrix", "key_columns",
    "member_covariates", "spec_columns", "spline_knots",
]
