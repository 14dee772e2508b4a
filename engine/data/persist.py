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
from engine.data.io import write_json, write_parquet
from engine.data._coerce import api_input

FORMAT_VERSION = 1


@api_input(frames=("df",))
def fingerprint(df: pl.DataFrame, *, ignore_row_order: bool = False) -> str:
    """A stable SHA-256 fingerprint of a frame's schema and content.

    Parameters
    ----------
    df : the frame (e.g. a model's training cells).
    ignore_row_order : False (default): row order matters, as for cells, which the contract
        keeps sorted by their keys. True: the rows are first sorted by every column, so any
        permutation of the same rows gives the same fingerprint.

    Notes
    -----
    Hashes a versioned tag, the column names and dtypes, the row count, then per column its
    null mask and its values in a canonical little-endian byte form (dates and times as their
    integer days / units, floats with -0.0 folded into 0.0 and one NaN, strings and binaries
    as lengths plus bytes, categoricals as their text). It depends only on the data, never on
    hash seeds, chunking, threads or the process, so the same data gives the same fingerprint
    across runs, processes and machines. ``DataFrame.hash_rows`` is not used: its values may
    change between polars versions, and its signature changed in polars 2.
    """
    import numpy as np

    if ignore_row_order and df.height > 1:
        keys = [c for c, t in df.schema.items() if not t.is_nested() and t != pl.Object]
        if keys:
            df = df.sort(keys, nulls_last=True, maintain_order=True)
    h = hashlib.sha256(b"fentan-fingerprint-2\0")
    h.update(repr([(n, str(t)) for n, t in df.schema.items()]).encode())
    h.update(int(df.height).to_bytes(8, "little"))
    for name in df.columns:
        s = df.get_column(name)
        h.update(name.encode() + b"\0")
        h.update(np.packbits(s.is_null().to_numpy()).tobytes())
        h.update(_canonical_bytes(s))
    return h.hexdigest()


def _canonical_bytes(s: pl.Series) -> bytes:
    """Values of ``s`` as bytes that depend only on the values (nulls as zero / empty)."""
    import numpy as np

    t = s.dtype
    if t == pl.Categorical:
        s, t = s.cast(pl.String), pl.String
    if t == pl.String:
        v = s.fill_null("")
        lengths = v.str.len_bytes().cast(pl.Int64).to_numpy().astype("<i8")
        text = v.str.join("").item() if v.len() else ""  # the values end to end, without a Python list
        return lengths.tobytes() + text.encode()
    if t == pl.Binary:
        vals = [b or b"" for b in s.to_list()]
        return np.array([len(b) for b in vals], dtype="<i8").tobytes() + b"".join(vals)
    if t == pl.Boolean:
        return s.fill_null(False).to_numpy().astype(np.uint8).tobytes()
    if t.is_temporal() or t.is_integer() or t.is_float():
        v = s.to_physical().fill_null(0).to_numpy()
        if v.dtype.kind == "f":
            v = np.where(np.isnan(v), np.nan, v + 0.0)  # one NaN; -0.0 + 0.0 == +0.0
        return np.ascontiguousarray(v.astype(v.dtype.newbyteorder("<"))).tobytes()
    return repr(s.to_list()).encode()  # nested, decimal, enum, object: their Python values


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
    from engine._version import __version__

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
