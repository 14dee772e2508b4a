"""Reading Parquet inputs (file, glob or directory, hive partitions) and atomic writes.

Notes
-----
Each file's footer is read first (cheap), so a missing, empty, non-Parquet or
truncated file, and a column whose type differs between partitions, is reported
with the file and column named before any data is scanned. Every file is then
normalised to the data contract on its own and the files are concatenated, so
an id stored as int in one partition and as string in another is still one id.
"""

from __future__ import annotations

import glob as _glob
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from engine.errors import InputFileError, OutputError
from engine.schema import normalise_claims, normalise_members

PathLike = str | os.PathLike[str]


def resolve_paths(path: PathLike | Sequence[PathLike]) -> list[Path]:
    """Expand a file, a glob, a directory (recursively, ``*.parquet``) or a list of them.

    Raises :class:`InputFileError` when nothing matches.
    """
    if isinstance(path, (list, tuple)):
        out: list[Path] = []
        for p in path:
            out.extend(resolve_paths(p))
        return out
    s = os.fspath(path)
    p = Path(s)
    if any(ch in s for ch in "*?["):
        files = sorted(Path(f) for f in _glob.glob(s, recursive=True) if Path(f).is_file())
        if not files:
            raise InputFileError(f"{s}: the glob matches no file")
        return files
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file() and not f.name.startswith((".", "_")))
        if not files:
            raise InputFileError(f"{s}: the directory holds no .parquet file")
        return files
    if not p.exists():
        raise InputFileError(f"{s}: no such file or directory")
    return [p]


def _hive_root(path: PathLike) -> Path:
    """The directory below which ``key=value`` segments are partitions.

    A directory is its own root; a glob's root is its leading part without
    wildcards; a file's root is its own directory (no partition columns). So a
    ``=`` in a parent directory of the data (``/data/run=3/``) never becomes a column.
    """
    s = os.fspath(path)
    p = Path(s)
    if any(ch in s for ch in "*?["):
        parts: list[str] = []
        for part in p.parts:
            if any(ch in part for ch in "*?["):
                break
            parts.append(part)
        return Path(*parts) if parts else Path(".")
    return p if p.is_dir() else p.parent


def _hive_values(file: Path, root: Path) -> dict[str, str]:
    """Return ``key=value`` directory segments between ``root`` and ``file``."""
    try:
        parts = file.parent.relative_to(root).parts
    except ValueError:
        try:
            parts = file.parent.resolve().relative_to(root.resolve()).parts
        except ValueError:
            parts = ()
    out = {}
    for seg in parts:
        if "=" in seg:
            k, v = seg.split("=", 1)
            out[k] = v
    return out


def file_schema(file: Path) -> pl.Schema:
    """Read a Parquet footer and return its polars schema, or raise a one-line error."""
    try:
        if file.stat().st_size == 0:
            raise InputFileError(f"{file}: the file is empty (0 bytes)")
        pq.read_schema(file)
        return pl.read_parquet_schema(file)
    except InputFileError:
        raise
    except Exception as exc:  # pyarrow raises several types for bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{file}: not a readable Parquet file ({msg})") from None


def scan_normalised(
    path: PathLike | Sequence[PathLike],
    normaliser: Callable[[pl.LazyFrame, pl.Schema, str], pl.LazyFrame],
) -> pl.LazyFrame:
    """Scan every file under ``path``, normalise each to the contract, and concatenate."""
    items = list(path) if isinstance(path, (list, tuple)) else [path]
    files = [(f, _hive_root(item)) for item in items for f in resolve_paths(item)]
    if not files:
        raise InputFileError("no input path given")
    frames = []
    hive_keys: dict[str, list[str]] = {}
    per_file = []
    for f, root in files:
        hv = _hive_values(f, root)
        for k, v in hv.items():
            hive_keys.setdefault(k, []).append(v)
        per_file.append((f, file_schema(f), hv))
    hive_int = {k: all(v.lstrip("-").isdigit() for v in vs) for k, vs in hive_keys.items()}
    for f, schema, hv in per_file:
        lf = pl.scan_parquet(f, hive_partitioning=False)
        extra = [
            pl.lit(int(v) if hive_int[k] else v, dtype=pl.Int64 if hive_int[k] else pl.String).alias(k)
            for k, v in hv.items()
            if k not in schema
        ]
        if extra:
            lf = lf.with_columns(extra)
            schema = lf.collect_schema()
        frames.append(normaliser(lf, schema, str(f)))
    if len(frames) == 1:
        out = frames[0]
    else:
        try:
            out = pl.concat(frames, how="diagonal_relaxed")
            out.collect_schema()
        except Exception as exc:
            raise InputFileError(f"{path}: partitions cannot be combined: {_type_clash(frames, files, exc)}") from None
    # the files behind the frame: a decoding error found later (engine.validate) names the file
    out._fentan_sources = [str(f) for f, _ in files]  # type: ignore[attr-defined]
    return out


def _type_clash(frames: list[pl.LazyFrame], files: list[tuple[Path, Path]], exc: Exception) -> str:
    """Name the first column whose type differs between two files (for the error message)."""
    seen: dict[str, tuple[pl.DataType, Path]] = {}
    for lf, (f, _) in zip(frames, files, strict=True):
        for name, dtype in lf.collect_schema().items():
            if name in seen and seen[name][0] != dtype:
                return f"column '{name}' is {seen[name][0]} in {seen[name][1]} but {dtype} in {f}"
            seen.setdefault(name, (dtype, f))
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def read_members(path: PathLike | Sequence[PathLike]) -> pl.LazyFrame:
    """Scan members Parquet (file, glob, directory with hive partitions) into the contract.

    Returns a LazyFrame with ``member_id`` String, dates as Date, ``sex`` upper-case
    String; rating factors untouched. See :mod:`engine.schema`.
    """
    return scan_normalised(path, normalise_members)


def read_claims(path: PathLike | Sequence[PathLike]) -> pl.LazyFrame:
    """Scan claims Parquet (file, glob, directory with hive partitions) into the contract."""
    return scan_normalised(path, normalise_claims)


# --------------------------------------------------------------------------- atomic writes
def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    A crash (or exception) leaves no file under the final name: the temporary
    file is hidden (leading dot) and removed on error.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
    except OSError as exc:
        raise OutputError(f"{final.parent}: cannot write here ({exc.strerror})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, final)
    except OSError as exc:  # disk full, read-only, quota: one line naming the file
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"{final}: cannot write ({exc.strerror or exc})") from None
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        text = str(exc)
        for why in ("No space left on device", "Read-only file system", "Disk quota exceeded"):
            if why in text:  # a writer library's error wrapping the OS error
                raise OutputError(f"{final}: cannot write ({why})") from None
        raise


def write_parquet(df: pl.DataFrame, path: PathLike) -> Path:
    """Write ``df`` atomically as Parquet (zstd, no statistics timestamps: same data, same bytes)."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)


def write_json(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` atomically as indented, key-sorted JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return Path(path)


def write_text(text: str, path: PathLike) -> Path:
    """Write ``text`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
