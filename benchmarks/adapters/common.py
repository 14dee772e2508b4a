"""Shared helpers of the adapters: configuration, cache paths, clean inputs, member rows."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.toml"


def warm(fn: Any) -> None:
    """Call ``fn`` once untimed (imports, first-call set-up); a failure of the warm-up is ignored.

    Every adapter warms up on a small slice of the same inputs before timing, so the
    timings compare the work and not module imports.
    """
    try:
        fn()
    except Exception:  # noqa: BLE001 - a warm-up on a slice may legitimately fail (e.g. too few claims)
        pass


def load_config(path: str | Path = CONFIG) -> dict[str, Any]:
    """The suite configuration (benchmarks/config.toml)."""
    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


def study(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`engine.exposure` for the benchmark workload."""
    s = cfg["study"]
    return dict(start=s["start"], end=s["end"], period=s["period"], waiting_days=int(s["waiting_days"]),
                by=tuple(s["by"]), duration_bands=tuple(s["duration_bands"]))


def as_of(cfg: dict[str, Any]) -> dt.date:
    """Validation date: the day after the study window."""
    return cfg["study"]["end"] + dt.timedelta(days=1)


def clean(data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validated members and claims from the cache (written by the ``prep`` step)."""
    return pl.read_parquet(data / "members_clean.parquet"), pl.read_parquet(data / "claims_clean.parquet")


def clipped(members: pl.DataFrame | pl.LazyFrame, claims: pl.DataFrame | pl.LazyFrame,
            cfg: dict[str, Any]) -> pl.LazyFrame:
    """Per member at-risk interval ``lo..hi`` (inclusive days) inside the study window.

    Notes
    -----
    ``lo = max(join + w, start)``, ``hi = min(exit - 1, first eligible claim, end)``; an
    eligible claim has ``join + w <= event < exit``. This is what a user of a
    generic library must write by hand; members with ``lo > hi`` are dropped.
    """
    s = cfg["study"]
    w = int(s["waiting_days"])
    m, c = members.lazy(), claims.lazy()
    first = (
        c.join(m.select("member_id", "join_date", "exit_date"), on="member_id")
        .filter((pl.col("event_date") >= pl.col("join_date") + pl.duration(days=w))
                & (pl.col("exit_date").is_null() | (pl.col("event_date") < pl.col("exit_date"))))
        .group_by("member_id").agg(pl.col("event_date").min().alias("first_claim"))
    )
    return (
        m.join(first, on="member_id", how="left")
        .with_columns(
            lo=pl.max_horizontal(pl.col("join_date") + pl.duration(days=w), pl.lit(s["start"])),
            hi=pl.min_horizontal(pl.col("exit_date") - pl.duration(days=1), pl.col("first_claim"), pl.lit(s["end"])),
        )
        .filter(pl.col("lo") <= pl.col("hi"))
    )


def age_at(day: str, birth: str = "birth_date") -> pl.Expr:
    """Age last birthday on ``day`` (ignores 29 February subtleties: good enough for a baseline)."""
    d, b = pl.col(day), pl.col(birth)
    return (d.dt.year() - b.dt.year()
            - ((d.dt.month() * 32 + d.dt.day()) < (b.dt.month() * 32 + b.dt.day())).cast(pl.Int32)).cast(pl.Int32)


def member_rows(members: pl.DataFrame, claims: pl.DataFrame, cfg: dict[str, Any]) -> pl.DataFrame:
    """One row per member at risk: what statsmodels / lifelines users fit on.

    Columns: ``sex``, ``city_tier``, ``channel``, ``age`` (at ``lo``), ``entry_months`` and
    ``exit_months`` (duration since joining at the start and end of the interval, months
    of 365.25/12 days), ``exposure_years``, ``event`` (1 if the interval ends with an
    eligible claim).
    """
    mth = 365.25 / 12
    return (
        clipped(members, claims, cfg)
        .select(
            "sex", "city_tier", "channel", age=age_at("lo"),
            entry_months=(pl.col("lo") - pl.col("join_date")).dt.total_days() / mth,
            exit_months=((pl.col("hi") - pl.col("join_date")).dt.total_days() + 1) / mth,
            exposure_years=((pl.col("hi") - pl.col("lo")).dt.total_days() + 1) / 365.25,
            event=(pl.col("first_claim") == pl.col("hi")).fill_null(False).cast(pl.Int64),
        )
        .collect()
    )
