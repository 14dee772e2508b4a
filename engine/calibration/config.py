"""Replay configuration: a TOML file with the rules, groups and assumptions, and a CSV of dated public figures.

The data file has ``date``, ``metric``, ``value`` (and ``unit``, ``source``, ``note``, kept
for the report). Metrics: ``launch`` (members 0 on that date), ``members`` (a point of the
membership curve) and the aggregates ``claimants in period``, ``share in period``,
``cumulative claimants``, ``claimants in year``, ``annual share per member``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import ConfigError, DataError, InputFileError

METRICS = {"claimants in period": "claimants_period", "share in period": "share_period",
           "cumulative claimants": "claimants_cumulative", "claimants in year": "claimants_year",
           "annual share per member": "annual_share"}
#: half a unit of the last published digit: shares are published in cents
ROUNDING = {"share_period": 0.005, "annual_share": 0.005}
KEYS = {"start", "end", "sharing_days", "fee", "waiting_days", "reporting_lag_days", "per_claimant_cap",
        "annual_cap", "base_lapse_annual", "interpolation", "basis", "fit", "level", "s0", "tau_months",
        "model_error", "level_ci", "n_boot", "seed"}


def resolve(path: str | Path) -> Path:
    """A config path, or the name of a shipped one (``xianghubao_public``)."""
    p = Path(path)
    if p.exists():
        return p
    here = Path(__file__).resolve().parents[1]  # the engine package
    for cand in (here / "_models" / "replay" / f"{p.stem}.toml", here.parent / "configs" / f"{p.stem}.toml"):
        if cand.exists():
            return cand
    raise InputFileError(f"{path}: no such replay config (nor a shipped one named '{p.stem}')")


def read_public_figures(path: str | Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Membership points, aggregates and the raw rows (with their sources) from a public-figures CSV."""
    try:
        raw = pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    except Exception as exc:  # polars raises several types for unreadable files
        raise InputFileError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    for c in ("date", "metric", "value"):
        if c not in raw.columns:
            raise DataError(f"{path}: column '{c}' is required (date, metric, value[, unit, source, note])")
    raw = raw.with_columns(pl.col("date").cast(pl.Date))
    unknown = set(raw["metric"].to_list()) - set(METRICS) - {"launch", "members"}
    if unknown:
        raise DataError(f"{path}: unknown metric(s) {sorted(unknown)}")
    pts = raw.filter(pl.col("metric").is_in(["launch", "members"])).select(
        "date", pl.col("value").cast(pl.Float64).fill_null(0.0).alias("members"))
    ag = raw.filter(pl.col("metric").is_in(list(METRICS))).select(
        pl.col("metric").replace_strict(METRICS).alias("kind"), "date", pl.col("value").cast(pl.Float64))
    ag = ag.with_columns(pl.col("kind").replace_strict(ROUNDING, default=0.0).alias("rounding"),
                         (pl.col("kind") + " " + pl.col("date").cast(pl.String)).alias("label"))
    return pts, ag, raw


def load_replay_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``replay`` keyword arguments and metadata (name, predict_years, data path, raw rows) from a TOML file."""
    p = resolve(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"{p}: not a readable TOML file ({exc})") from None
    sec = doc.get("replay")
    if not isinstance(sec, dict):
        raise ConfigError(f"{p}: a [replay] table is required")
    sec = dict(sec)
    meta = {"name": sec.pop("name", p.stem), "predict_years": [int(y) for y in sec.pop("predict_years", [])]}
    data = sec.pop("data", None)
    groups = sec.pop("groups", None)
    if data is None or not groups:
        raise ConfigError(f"{p}: replay.data (a CSV of public figures) and [[replay.groups]] are required")
    unknown = set(sec) - KEYS
    if unknown:
        raise ConfigError(f"{p}: unknown replay key(s) {sorted(unknown)}; known: {', '.join(sorted(KEYS))}")
    for k in ("start", "end"):
        if not isinstance(sec.get(k), dt.date):
            raise ConfigError(f"{p}: replay.{k} must be a date (e.g. 2018-10-16)")
    data_path = (p.parent / data) if not Path(data).is_absolute() else Path(data)
    points, aggregates, raw = read_public_figures(data_path)
    kw = dict(sec, points=points, aggregates=aggregates, groups=pl.DataFrame(groups))
    if "fit" in kw:
        kw["fit"] = tuple(kw["fit"])
    meta.update({"config": str(p), "data": str(data_path), "raw": raw})
    return kw, meta


def replay_from_config(path: str | Path, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """Run :func:`engine.replay` from a config file; returns (result, metadata)."""
    from engine.calibration._replay import replay

    kw, meta = load_replay_config(path)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    points, aggregates = kw.pop("points"), kw.pop("aggregates")
    return replay(points, aggregates, **kw), meta


__all__ = ["load_replay_config", "read_public_figures", "replay_from_config", "resolve"]
