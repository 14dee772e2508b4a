"""The risk table: one row per cell or group of members with ``age``, ``rate`` and ``members``.

:func:`build_risk_table` aggregates the exposure core's cells (optionally scored by a
model and labelled by a segmenter); :func:`_check_table` validates a table for the
plan comparison, the migration and the optimiser; :func:`_sums_by` sums by keys
bit-for-bit reproducibly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from engine.errors import ConfigError, DataError
from engine.data._coerce import api_input


def _sums_by(df: pl.DataFrame, keys: list[str], exprs: dict[str, pl.Expr]) -> pl.DataFrame:
    """Sums of ``exprs`` by ``keys``, keys in first-occurrence order; bit-for-bit reproducible.

    polars' group sums add floats in an order that depends on the thread count; here each
    group is summed in a canonical order (:func:`engine.cells.sums.group_sums`), so plan tables
    are the same bytes on any machine. Integer columns keep their integer type.
    """
    from engine.cells.sums import group_sums

    vals = df.select(*keys, *[e.alias(n) for n, e in exprs.items()])
    out = group_sums(vals, keys, list(exprs))
    ints = {n: t for n, t in vals.schema.items() if n in exprs and t.is_integer()}
    if ints:
        out = out.with_columns([pl.col(n).round(0).cast(t) for n, t in ints.items()])
    order = vals.select(keys).unique(maintain_order=True).with_row_index("_o")
    return out.join(order, on=keys, how="left", nulls_equal=True).sort("_o").drop("_o")


_SUMS = ("exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount")


def _period_years(periods: pl.Series) -> float:
    """Years covered by the distinct ``period`` start dates (month, quarter or year periods)."""
    d = periods.unique().sort()
    if d.len() == 0:
        return 0.0
    if d.len() == 1:
        return 1.0 / 12.0
    months = [(b.year - a.year) * 12 + (b.month - a.month) for a, b in zip(d.to_list(), d.to_list()[1:])]
    step = min(m for m in months if m > 0)
    return d.len() * step / 12.0


@api_input(frames=("cells",))
def build_risk_table(
    cells: pl.DataFrame | pl.LazyFrame,
    model: Any = None,
    *,
    by: Sequence[str] | None = None,
    study_years: float | None = None,
    segmenter: Any = None,
) -> pl.DataFrame:
    """Aggregate cells to a risk table with ``members`` and an annual ``rate``.

    Parameters
    ----------
    cells : the exposure core's cells (``exposure_years``, ``claims`` and keys).
    model : optional fitted model with ``predict(frame) -> array`` of annual rates (e.g.
        :class:`engine.PoissonGLM`); without it the rate is crude claims / exposure.
    by : keys to keep (default: every key column except ``period``,
        ``duration`` and ``duration_band``, i.e. a stationary pool past select effects).
    study_years : years the cells span (default: inferred from ``period``).
    segmenter : optional fitted object with ``assign(frame) -> Series`` (e.g.
        :class:`engine.RiskSegmenter`); its groups become the ``group`` column
        (as text) so comparisons report them.

    Returns
    -------
    DataFrame with the ``by`` keys, ``exposure_years``, ``claims``, ``members``
    (= exposure_years / study_years) and ``rate`` (claims per exposure-year).

    Notes
    -----
    ``members`` is the average number of members at risk during the study, so
    ``sum(members * rate)`` is the expected number of claims a year.
    """
    df = cells.collect() if isinstance(cells, pl.LazyFrame) else cells
    for c in ("exposure_years",):
        if c not in df.columns:
            raise DataError(f"cells: column '{c}' is required")
    if by is None:
        by = [c for c in df.columns if c not in _SUMS and c not in ("period", "duration", "duration_band")]
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise DataError(f"cells: column '{missing[0]}' (from by) is missing")
    if study_years is None:
        study_years = _period_years(df["period"]) if "period" in df.columns else 1.0
    if not study_years > 0:
        raise ConfigError(f"study_years: must be > 0, got {study_years}")
    aggs = [pl.col("exposure_years").sum()]
    sums = {"exposure_years": pl.col("exposure_years")}
    if "claims" in df.columns:
        aggs.append(pl.col("claims").sum())
        sums["claims"] = pl.col("claims")
    out = _sums_by(df, list(by), sums).sort(list(by)) if by else df.select(aggs)
    out = out.with_columns((pl.col("exposure_years") / study_years).alias("members"))
    if model is not None:
        try:
            from engine._estimator import predict_rates

            rate = predict_rates(model, out)
        except Exception as exc:  # model errors are re-raised with context
            from engine.errors import EngineError

            if isinstance(exc, EngineError):
                raise
            raise DataError(f"cells: the model cannot score the risk table ({type(exc).__name__}: {exc})") from None
        out = out.with_columns(pl.Series("rate", rate, dtype=pl.Float64))
    else:
        if "claims" not in df.columns:
            raise DataError("cells: column 'claims' is required for crude rates (or pass a model)")
        out = out.with_columns(
            pl.when(pl.col("exposure_years") > 0).then(pl.col("claims") / pl.col("exposure_years")).otherwise(0.0).alias("rate")
        )
    if segmenter is not None:
        grp = segmenter.assign(out)
        out = out.with_columns(pl.Series("group", grp).cast(pl.String))
    return out


def _check_table(table: pl.DataFrame | pl.LazyFrame, study_years: float) -> pl.DataFrame:
    """The risk table collected and checked; ``members`` from ``exposure_years / study_years`` when absent."""
    if isinstance(table, pl.LazyFrame):
        table = table.collect()
    if not isinstance(table, pl.DataFrame):
        raise DataError("risk table: must be a polars DataFrame")
    if "rate" not in table.columns:
        raise DataError("risk table: column 'rate' (claims per exposure-year) is required")
    if "members" not in table.columns:
        if "exposure_years" not in table.columns:
            raise DataError("risk table: column 'members' (or 'exposure_years') is required")
        table = table.with_columns((pl.col("exposure_years") / study_years).alias("members"))
    if "age" not in table.columns:
        raise DataError("risk table: column 'age' is required (benefits are scheduled by age)")
    for c in ("rate", "members"):
        s = table[c].cast(pl.Float64)
        if s.null_count() or not s.is_finite().all() or (s < 0).any():
            raise DataError(f"risk table: column '{c}' must be finite and >= 0 without nulls")
    return table.with_columns(pl.col("rate").cast(pl.Float64), pl.col("members").cast(pl.Float64))
