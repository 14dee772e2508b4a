"""Portable model artefacts: a directory of Parquet tables plus ``model.json`` metadata.

Never pickles. A model directory ``models/<name>/`` holds ``model.json`` (kind,
parameters, engine version, fit date, data fingerprint, table list) and one
Parquet file per table. Writes are atomic per file and the metadata is written
last, so a directory without ``model.json`` is never read as a model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import ModelError
from engine.io import write_json, write_parquet

FORMAT_VERSION = 1


def fingerprint(df: pl.DataFrame) -> str:
    """A stable SHA-256 fingerprint of a frame's schema and content (row order matters).

    Notes
    -----
    Hashes the column names and dtypes, then ``DataFrame.hash_rows`` with fixed
    seeds; the same data gives the same fingerprint across runs and machines.
    """
    h = hashlib.sha256()
    h.update(repr([(n, str(t)) for n, t in df.schema.items()]).encode())
    if df.height:
        rows = df.hash_rows(seed=0, seed_1=1, seed_2=2, seed_3=3)
        h.update(rows.to_numpy().tobytes())
    return h.hexdigest()


def save_model(
    path: str | Path,
    kind: str,
    params: dict[str, Any],
    tables: dict[str, pl.DataFrame],
    *,
    data_fingerprint: str | None = None,
    fit_date: dt.date | str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a model as portable files in directory ``path``.

    Parameters
    ----------
    kind : model class name, checked on load.
    params : JSON-serialisable constructor parameters and fitted scalars.
    tables : named frames (coefficients, cut points, rules, ...) written as Parquet.
    data_fingerprint : fingerprint of the training cells (see :func:`fingerprint`).
    fit_date : date of the fit (default today); stored as ISO text.
    """
    from engine import __version__

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        write_parquet(df, p / f"{name}.parquet")
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "engine_version": __version__,
        "fit_date": str(fit_date or dt.date.today()),
        "data_fingerprint": data_fingerprint,
        "params": params,
        "tables": sorted(tables),
        **(extra or {}),
    }
    write_json(meta, p / "model.json")
    return p


def load_model(path: str | Path, kind: str | None = None) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Load ``(metadata, tables)`` saved by :func:`save_model`; check ``kind`` when given."""
    p = Path(path)
    meta_file = p / "model.json"
    if not meta_file.exists():
        raise ModelError(f"{p}: not a fentan model directory (no model.json)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_file}: invalid JSON ({exc.msg})") from None
    if kind is not None and meta.get("kind") != kind:
        raise ModelError(f"{p}: holds a '{meta.get('kind')}' model, expected '{kind}'")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{p}: model format {meta.get('format_version')} is newer than this engine supports")
    tables = {}
    for name in meta.get("tables", []):
        f = p / f"{name}.parquet"
        if not f.exists():
            raise ModelError(f"{p}: table '{name}' listed in model.json is missing")
        tables[name] = pl.read_parquet(f)
    return meta, tables
