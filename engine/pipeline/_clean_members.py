"""The clean members as the stages of ``fentan run`` read them: contract columns first, null factors filled.

:func:`clean_parts` (streaming: each file's clean rows, lazy) and :func:`clean_frame` (in memory) give
the same rows; :func:`member_partitions` cuts the in-memory frame into one slice per file.
"""

from __future__ import annotations

import polars as pl


def contract_first(columns: list[str], first: list[str], last: tuple[str, ...] = ()) -> list[str]:
    """Column order independent of the files' layout: ``first``, the others by name, then ``last``."""
    return ([c for c in first if c in columns] + sorted(c for c in columns if c not in first and c not in last)
            + [c for c in last if c in columns])


def _contract_order(lf: pl.LazyFrame) -> pl.LazyFrame:
    """``lf`` with the data contract's member columns first, the others by name."""
    from engine.data.schema import MEMBER_OPTIONAL, MEMBER_REQUIRED

    return lf.select(contract_first(lf.collect_schema().names(), [*MEMBER_REQUIRED, *MEMBER_OPTIONAL]))


def clean_frame(members: pl.LazyFrame, factors: list[str]) -> pl.DataFrame:
    """The in-memory path (``[run] stream = false``): every clean member collected, null factors filled."""
    from engine.data.factor_levels import fill_missing

    return fill_missing(_contract_order(members).collect(), factors)  # a null factor is the level "missing"


def clean_parts(parts: list[pl.LazyFrame], factors: list[str]) -> tuple[list[pl.LazyFrame], pl.DataFrame, list[str]]:
    """The streaming path: each file's clean members (lazy) with null factors filled, and the earliest join.

    One aggregate pass per file (the files in parallel) gives the earliest join date and the nulls of
    each factor; a factor with a null in any file becomes text levels in every file, as
    :func:`engine.data.factor_levels.fill_missing` does on all members at once. Returns the partitions,
    a one-row frame ``join_date`` (the earliest join of a clean member, for the study window) and the
    factors filled (their rows differ from the validated rows).
    """
    from engine.data.factor_levels import as_levels_expr

    parts = [_contract_order(p) for p in parts]
    names = parts[0].collect_schema().names()
    present = [f for f in factors if f in names]
    aggs = [pl.col("join_date").min(), *[pl.col(f).null_count().cast(pl.Int64).alias(f) for f in present]]
    stats = pl.concat(pl.collect_all([p.select(aggs) for p in parts]), how="vertical_relaxed")
    nulls = [f for f in present if int(stats.get_column(f).sum())]
    if nulls:
        parts = [p.with_columns([as_levels_expr(f) for f in nulls]) for p in parts]
    return parts, stats.select(pl.col("join_date").min()), nulls


def member_partitions(members: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    """The clean members as ``n`` contiguous slices (zero-copy; one per input file): one task each on an executor.

    The in-memory path (``[run] stream = false``) only. Every member pass reduces each slice to
    integer counts summed across slices, so the outputs do not depend on ``n``.
    """
    n = max(1, min(int(n), members.height))
    cuts = [members.height * i // n for i in range(n + 1)]
    return [members.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
