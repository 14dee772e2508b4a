"""Members cut into Parquet partitions for the streaming and executor tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl


def write_parts(directory: Path, frame: pl.DataFrame, cuts: list[int]) -> list[Path]:
    """Write ``frame`` cut at ``cuts`` (rows ``cuts[i]:cuts[i+1]``, empty parts included) as
    ``part-00.parquet``, ``part-01.parquet``, ... in ``directory``; return the paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        path = directory / f"part-{i:02d}.parquet"
        frame.slice(a, b - a).write_parquet(path)
        paths.append(path)
    return paths


def scan_parts(directory: Path, frame: pl.DataFrame, cuts: list[int]) -> list[pl.LazyFrame]:
    """:func:`write_parts`, each part scanned lazily."""
    return [pl.scan_parquet(p) for p in write_parts(directory, frame, cuts)]
