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

from engine.cells.dates import attained_age_expr
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
    # cells repeat a few dozen ages: evaluate each distinct age once and copy its row (the same numbers)
    u, inv = np.unique(xc, return_inverse=True)
    B = BSpline.design_matrix(u, t, degree).toarray()
    return B[inv.reshape(-1), 1:]


def spline_knots(lo: float, hi: float, df: int, degree: int = SPLINE_DEGREE) -> list[float]:
    """Full knot vector: ``df - degree`` uniform interior knots on [lo, hi], boundaries repeated."""
    n_int = df - degree
    if n_int < 0:
        raise ConfigError(f"age_df: {df} must be at least {degree} (the spline degree)")
    if not hi > lo:
        raise DataError(f"cells: a spline in age needs at least two distinct ages (got {lo}..{hi})")
    inner = np.linspace(lo, hi, n_int + 2)[1:-1]
    return [float(lo)] * (degree + 1) + [float(v) for v in inner] + [float(hi)] * (degree + 1)


def quantile_knots(ages: np.ndarray, weights: np.ndarray, df: int, degree: int = SPLINE_DEGREE) -> list[float]:
    """Full knot vector with ``df - degree`` interior knots at weighted quantiles of age.

    Parameters
    ----------
    ages : distinct or repeated ages of the training cells.
    weights : non-negative weight per row (claims or exposure).

    Notes
    -----
    Each integer age a carries its weight W_a spread evenly over [a - 1/2, a + 1/2]
    (clipped to [lo, hi], the youngest and oldest age), so the cumulative weight F is
    continuous and piecewise linear. Interior knot j (j = 1..m, m = df - degree) is the
    leftmost x with F(x) = j / (m + 1) x F(hi). Distinct levels give strictly increasing
    knots, and every span between knots holds 1 / (m + 1) of the weight: with claims as
    weights, every basis function has claims in its support. Falls back to uniform knots
    when the weights are all zero.
    """
    a = np.asarray(ages, dtype=float)
    w = np.asarray(weights, dtype=float)
    lo, hi = float(a.min()), float(a.max())
    n_int = df - degree
    ux, inv = np.unique(a, return_inverse=True)
    wa = np.bincount(inv, weights=w, minlength=len(ux))
    if n_int <= 0 or not wa.sum() > 0:
        return spline_knots(lo, hi, df, degree)
    edges = np.clip(np.concatenate([[ux[0] - 0.5], (ux[:-1] + ux[1:]) / 2.0, [ux[-1] + 0.5]]), lo, hi)
    F = np.concatenate([[0.0], np.cumsum(wa)])
    inner = []
    for j in range(1, n_int + 1):
        q = j / (n_int + 1) * F[-1]
        i = int(np.searchsorted(F, q, side="left"))  # first edge with F >= q; segment i-1 has positive mass
        x0, x1, f0, f1 = edges[i - 1], edges[i], F[i - 1], F[i]
        inner.append(float(x0 + (x1 - x0) * (q - f0) / (f1 - f0)))
    return [lo] * (degree + 1) + inner + [hi] * (degree + 1)


def _levels(df: pl.DataFrame, col: str) -> list[str]:
    from engine.data.factor_levels import as_levels

    s = as_levels(df.get_column(col))  # a null is the level "missing"
    return [str(v) for v in s.unique().sort().to_list()]


def build_spec(
    df: pl.DataFrame,
    factors: Sequence[str] | None,
    age: str | None,
    age_df: int,
    interactions: Sequence[Sequence[str]],
    reference: Mapping[str, Any] | None = None,
    *,
    age_knots: str = "uniform",
    claims_col: str = "claims",
    exposure_col: str = "exposure_years",
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
    Spline knots: ``age_knots="uniform"`` (evenly spaced), ``"claims"`` or ``"exposure"``
    (at weighted quantiles of age, :func:`quantile_knots`).
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
        spec["age"] = {"kind": "spline", "knots": _age_knots(df, int(age_df), age_knots, claims_col, exposure_col),
                       "degree": SPLINE_DEGREE, "placement": age_knots}
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
    # drop interaction products never observed in training (the same on the distinct key rows)
    blocks = _blocks(_distinct_rows(df, spec)[0], spec)
    for it in spec["interactions"]:
        mat, cols = blocks[":".join(it["terms"])]
        it["keep"] = [c for j, c in enumerate(cols) if np.any(mat[:, j] != 0)]
    return spec


def _age_knots(df: pl.DataFrame, age_df: int, how: str, claims_col: str, exposure_col: str) -> list[float]:
    a = df.get_column("age").cast(pl.Float64)
    if how == "uniform":
        return spline_knots(float(a.min()), float(a.max()), age_df)
    col = {"claims": claims_col, "exposure": exposure_col}.get(how)
    if col is None:
        raise ConfigError(f"age_knots: '{how}' must be 'claims', 'exposure' or 'uniform'")
    if col not in df.columns:
        raise DataError(f"cells: column '{col}' is required to place the age knots by {how}")
    spline_knots(float(a.min()), float(a.max()), age_df)  # validates age_df and the age range
    return quantile_knots(a.to_numpy(), df.get_column(col).cast(pl.Float64).fill_null(0.0).to_numpy(), age_df)


def _factor_block(df: pl.DataFrame, name: str, levels: list[str], ref: str) -> tuple[np.ndarray, list[str]]:
    from engine.data.factor_levels import as_levels

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


#: frames with at least this many rows build their design on their distinct key rows (then copy rows)
_DISTINCT_MIN_ROWS = 4096


def _distinct_rows(df: pl.DataFrame, spec: dict[str, Any]) -> tuple[pl.DataFrame, np.ndarray | None]:
    """The distinct rows of the spec's columns of a large ``df`` and each row's position among them.

    Cells repeat a few thousand key combinations (periods, durations), and every design entry
    depends on its own row's keys only: a design built on the distinct rows and copied back row by
    row holds the same numbers. Returns ``(df, None)`` when ``df`` is small, lacks a column (the
    row-by-row build raises the usual error) or has few repeats.
    """
    cols = spec_columns(spec)
    if df.height < _DISTINCT_MIN_ROWS or not cols or any(c not in df.columns for c in cols):
        return df, None
    from engine.cells.sums import group_index

    distinct, inv = group_index(df, cols)
    if distinct.height >= df.height // 2:
        return df, None
    return distinct, inv


def _blocks(df: pl.DataFrame, spec: dict[str, Any]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Every term's columns (factor dummies, age, interaction products) of ``df``, by term, row by row."""
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
        cols = [f"{x}:{y}" for x in na for y in nb]
        sel = list(range(len(cols)))
        if it.get("keep") is not None:
            keep = set(it["keep"])
            sel = [j for j, c in enumerate(cols) if c in keep]
        # column (i, j) of the product is ma[:, i] * mb[:, j]; only the kept columns are multiplied
        ia = np.array([j // len(nb) for j in sel], np.int64)
        ib = np.array([j % len(nb) for j in sel], np.int64)
        out[":".join(it["terms"])] = (ma[:, ia] * mb[:, ib], [cols[j] for j in sel])
    return out


def design_matrix(df: pl.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The model columns (without intercept) of ``df`` under ``spec``, and their names.

    Order: factors (in the given order), age, interactions.
    """
    rows, inv = _distinct_rows(df, spec)
    blocks = _blocks(rows, spec)
    mats = [m for m, _ in blocks.values()]
    names = [n for _, ns in blocks.values() for n in ns]
    X = np.hstack(mats) if mats else np.zeros((rows.height, 0))
    return (X if inv is None else X[inv]), names


def spec_columns(spec: dict[str, Any]) -> list[str]:
    """Cell columns a spec reads."""
    return [f["name"] for f in spec["factors"]] + (["age"] if spec["age"] is not None else [])


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
        "member_id", attained_age_expr("birth_date", at).alias("age"), *[pl.col(c) for c in dict.fromkeys(extra)]
    ).collect()


__all__ = [
    "bspline_basis", "build_spec", "default_factors", "design_matrix", "key_columns",
    "member_covariates", "quantile_knots", "spec_columns", "spline_knots",
]
