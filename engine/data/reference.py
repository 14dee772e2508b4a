"""Shipped reference bases (CI2020 critical-illness incidence) as tidy rate tables.

The files live in ``models/reference/`` of the repository and are packaged into
the wheel as ``engine/_models/reference`` so an installed user has them too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import ConfigError

_TABLES = ("CI1", "CI2", "CI3", "CI4")


def reference_dir() -> Path:
    """Directory holding the shipped reference files (installed wheel or source tree)."""
    here = Path(__file__).resolve().parents[1]  # the engine package
    for cand in (here / "_models" / "reference", here.parent / "models" / "reference"):
        if (cand / "ci2020.csv").exists():
            return cand
    raise ConfigError("reference basis files not found (expected models/reference/ci2020.csv)")  # pragma: no cover


@lru_cache(maxsize=8)
def _load(name: str) -> pl.DataFrame:
    return pl.read_csv(reference_dir() / f"{name}.csv")


def reference_provenance(name: str = "ci2020") -> dict[str, Any]:
    """The provenance record (source, units, tables) of a shipped basis."""
    return json.loads((reference_dir() / f"{name}.json").read_text(encoding="utf-8"))


def reference_basis(name: str = "ci2020", table: str = "CI4") -> pl.DataFrame:
    """Annual incidence rates by age and sex from a shipped basis.

    Parameters
    ----------
    name : basis name; only ``"ci2020"`` ships.
    table : ``"CI1"`` .. ``"CI4"``.

    Returns
    -------
    DataFrame with ``age`` (Int32), ``sex`` ('M'/'F') and ``rate`` (Float64,
    claims per exposure-year), 212 rows for ages 0..105.

    Notes
    -----
    rate = per-mille value / 1000. The table's probabilities are used as central
    rates (the difference is below 0.1% at these levels).
    """
    if name != "ci2020":
        raise ConfigError(f"reference basis '{name}' is unknown; available: ci2020")
    table = table.upper()
    if table not in _TABLES:
        raise ConfigError(f"reference table '{table}' is unknown; available: {', '.join(_TABLES)}")
    raw = _load(name)
    parts = [
        raw.select(
            pl.col("age").cast(pl.Int32),
            pl.lit(code).alias("sex"),
            (pl.col(f"{table}_{word}_permille") / 1000.0).alias("rate"),
        )
        for code, word in (("M", "male"), ("F", "female"))
    ]
    return pl.concat(parts).sort("age", "sex")
