"""Reading Parquet and CSV inputs (file, glob or directory, hive partitions) and atomic writes.

Notes
-----
Each file's footer is read first (cheap), so a missing, empty, non-Parquet or
truncated file, and a column whose type differs between partitions, is reported
with the file and column named before any data is scanned. Every file is then
normalised to the data contract on its own and the files are concatenated, so
an id stored as int in one partition and as string in another is still one id.

CSV files (``.csv``, ``.csv.gz``) are read under the same contract by :mod:`engine.data._csv`
(strict ISO dates, every file checked in full when read). One input is all Parquet or all
CSV: a mix is refused with one line naming a file of each kind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from engine.data._csv import is_csv, scan_csv_file
from engine.data.remote import is_remote
from engine.data.remote import storage_options as remote_options
from engine.errors import ConfigError, InputFileError, OutputError
from engine.data.schema import (CLAIM_OPTIONAL, CLAIM_REQUIRED, MEMBER_OPTIONAL, MEMBER_REQUIRED, Partition,
                                members_raw_sex, normalise_claims, normalise_members)

PathLike = str | os.PathLike[str]
#: the value Hive and Spark write for a null partition value
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def resolve_paths(path: PathLike | Sequence[PathLike], storage_options: dict[str, Any] | None = None) -> list[Path | str]:
    """Expand a file, a glob, a directory or a list of them into the data files to read.

    Directories and globs follow the Hive and Spark conventions of :mod:`engine.data.listing`
    (hidden and ``_`` entries skipped, ``.parquet`` in any case, ``.pq``, ``.csv`` and ``.csv.gz``, each
    real file once). A remote path (``s3://...``, :mod:`engine.data.remote`) gives URI texts.
    Raises :class:`InputFileError` when nothing matches.
    """
    return [f for f, _ in _listed(path, storage_options)[0]]


def _listed(path: PathLike | Sequence[PathLike], storage_options: dict[str, Any] | None = None
            ) -> tuple[list[tuple[Path | str, Path | str]], dict[str, str]]:
    """``[(file, hive root)]`` of every input and ``{skipped file: reason}`` (each real file once)."""
    from engine.data.listing import list_input

    items = list(path) if isinstance(path, (list, tuple)) else [path]
    files: list[tuple[Path | str, Path | str]] = []
    skipped: dict[str, str] = {}
    seen: dict[str, Path | str] = {}
    for item in items:
        listing = list_input(item, storage_options)
        skipped.update(listing.skipped)
        root = listing.root if listing.root is not None else _hive_root(item)
        for f in listing.files:
            real = f if isinstance(f, str) else os.path.realpath(f)
            if real in seen:
                skipped[str(f)] = f"duplicate: the same file as {seen[real]}"
                continue
            seen[real] = f
            files.append((f, root))
    return files, skipped


def _hive_root(path: PathLike) -> Path:
    """The directory below which ``key=value`` segments are partitions.

    A directory is its own root; a glob's root is its leading part without
    wildcards; a file's root is its own directory (no partition columns). So a
    ``=`` in a parent directory of the data (``/data/run=3/``) never becomes a column.
    """
    from engine.data.listing import glob_root, is_glob

    s = os.fspath(path)
    p = Path(s)
    if is_glob(s):
        return glob_root(s)
    return p if p.is_dir() else p.parent


def _hive_values(file: Path | str, root: Path | str) -> dict[str, str | None]:
    """Return ``key=value`` directory segments between ``root`` and ``file``.

    Keys and values are URL-decoded (``city=S%C3%A3o%20Paulo``); ``__HIVE_DEFAULT_PARTITION__``
    is null.
    """
    from urllib.parse import unquote

    if isinstance(file, str):  # a remote URI below its remote root
        parts: tuple[str, ...] = tuple(file[len(str(root)):].strip("/").split("/")[:-1])
    else:
        parts = _local_parts(file, Path(root))
    out = {}
    for seg in parts:
        if "=" in seg:
            k, v = seg.split("=", 1)
            out[unquote(k)] = None if v == HIVE_NULL else unquote(v)
    return out


def _local_parts(file: Path, root: Path) -> tuple[str, ...]:
    """The directory names between ``root`` and ``file`` (none when ``file`` is not below it)."""
    try:
        parts = file.parent.relative_to(root).parts
    except ValueError:
        try:
            parts = file.parent.resolve().relative_to(root.resolve()).parts
        except ValueError:
            parts = ()
    return parts


def file_schema(file: Path | str, storage_options: dict[str, Any] | None = None) -> pl.Schema:
    """Read a Parquet footer and return its polars schema, or raise a one-line error.

    A remote URI (``s3://...``) is read with its storage options (:mod:`engine.data.remote`).
    """
    try:
        if isinstance(file, str) and is_remote(file):
            return scan_parquet_file(file, storage_options).collect_schema()
        file = Path(file)
        if file.stat().st_size == 0:
            raise InputFileError(f"{file}: the file is empty (0 bytes)")
        return pl.scan_parquet(file, glob=False, hive_partitioning=False).collect_schema()
    except InputFileError:
        raise
    except Exception as exc:  # pyarrow raises several types for bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{file}: not a readable Parquet file ({msg})") from None


def scan_parquet_file(file: Path | str, storage_options: dict[str, Any] | None = None) -> pl.LazyFrame:
    """One Parquet file, literally (never a pattern, no hive columns); a remote URI with its storage options."""
    if isinstance(file, str) and is_remote(file):
        return pl.scan_parquet(file, hive_partitioning=False, glob=False,
                               storage_options=remote_options(file, storage_options))
    return pl.scan_parquet(file, hive_partitioning=False, glob=False)


def scan_normalised(
    path: PathLike | Sequence[PathLike],
    normaliser: Callable[[pl.LazyFrame, pl.Schema, str], pl.LazyFrame],
    storage_options: dict[str, Any] | None = None,
) -> pl.LazyFrame:
    """Scan every file under ``path``, normalise each to the contract, and concatenate.

    ``storage_options`` (endpoint, credentials) apply to remote paths (:mod:`engine.data.remote`).
    The frame's ``_fentan_parts`` lists one :class:`engine.data.schema.Partition` per file (the streaming
    validation's tasks), with members the file without the ``sex`` clean-up.
    """
    files, skipped = _listed(path, storage_options)
    if not files:
        raise InputFileError("no input path given")
    frames = []
    parts: list[Partition] = []
    hive_keys: dict[str, list[str | None]] = {}
    per_file = []
    _one_format(files)
    for f, root in files:
        hv = _hive_values(f, root)
        for k, v in hv.items():
            hive_keys.setdefault(k, []).append(v)
        per_file.append((f, pl.Schema() if is_csv(f) else file_schema(f, storage_options), hv))
    hive_int = {k: all(_int_text(v) for v in vs if v is not None) for k, vs in hive_keys.items()}
    for f, schema, hv in per_file:
        if is_csv(f):
            lf = scan_csv_file(f, _CONTRACTS.get(normaliser, {}))
            schema = lf.collect_schema()
        else:
            lf = scan_parquet_file(f, storage_options)  # a literal path, never a pattern
        extra = [
            pl.lit(int(v) if hive_int[k] and v is not None else v, dtype=pl.Int64 if hive_int[k] else pl.String).alias(k)
            for k, v in hv.items()
            if k not in schema
        ]
        if extra:
            lf = lf.with_columns(extra)
            schema = lf.collect_schema()
        frames.append(normaliser(lf, schema, str(f)))
        raw = members_raw_sex(lf, schema, str(f)) if normaliser is normalise_members else None
        parts.append(Partition(frames[-1], (str(f),), raw))
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
    out._fentan_skipped = skipped  # type: ignore[attr-defined]  # named in the row account
    out._fentan_parts = parts  # type: ignore[attr-defined]  # one Partition per file (streaming validation)
    return out


def _one_format(files: list[tuple[Path | str, Path | str]]) -> None:
    """Refuse an input mixing CSV and Parquet files (one line naming one file of each)."""
    csv = next((f for f, _ in files if is_csv(f)), None)
    other = next((f for f, _ in files if not is_csv(f)), None)
    if csv is not None and other is not None:
        raise InputFileError(f"{csv} and {other}: one input mixes CSV and Parquet files; "
                             "convert them to one format (or give only one kind)")


def _int_text(v: str) -> bool:
    """An integer written without leading zeros (``7``, ``-3``, ``0``; not ``007``): Int64 partition values."""
    body = v[1:] if v.startswith("-") else v
    return body.isdigit() and body.isascii() and (body == "0" or not body.startswith("0"))


def _type_clash(frames: list[pl.LazyFrame], files: list[tuple[Path | str, Path | str]], exc: Exception) -> str:
    """Name the first column whose type differs between two files (for the error message)."""
    seen: dict[str, tuple[pl.DataType, Path]] = {}
    for lf, (f, _) in zip(frames, files, strict=True):
        for name, dtype in lf.collect_schema().items():
            if name in seen and seen[name][0] != dtype:
                return f"column '{name}' is {seen[name][0]} in {seen[name][1]} but {dtype} in {f}"
            seen.setdefault(name, (dtype, f))
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def read_toml(path: PathLike, what: str = "configuration") -> dict[str, Any]:
    """A TOML file as a dict; a one-line :class:`ConfigError` naming the file when it is missing, a
    directory, not UTF-8 text or not valid TOML (``what`` names the kind of file in the message)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a {what} file (give the TOML file)")
    if not p.is_file():
        raise ConfigError(f"{p}: no such {what} file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    import tomllib  # here: the commands that read no TOML file do not load the parser

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None


def read_members(path: PathLike | Sequence[PathLike], storage_options: dict[str, Any] | None = None) -> pl.LazyFrame:
    """Scan members Parquet or CSV (file, glob, directory with hive partitions) into the contract.

    Returns a LazyFrame with ``member_id`` String, dates as Date, ``sex`` upper-case
    String; rating factors untouched. See :mod:`engine.data.schema`. A remote path
    (``s3://bucket/members/``) is read with ``storage_options`` and the environment's
    (:mod:`engine.data.remote`).
    """
    return scan_normalised(path, normalise_members, storage_options)


def read_claims(path: PathLike | Sequence[PathLike], storage_options: dict[str, Any] | None = None) -> pl.LazyFrame:
    """Scan claims Parquet or CSV (file, glob, directory with hive partitions) into the contract."""
    return scan_normalised(path, normalise_claims, storage_options)


#: the contract columns a CSV file's text is typed to, per normaliser
_CONTRACTS: dict[Callable[..., Any], dict[str, pl.DataType]] = {
    normalise_members: {**MEMBER_REQUIRED, **MEMBER_OPTIONAL},
    normalise_claims: {**CLAIM_REQUIRED, **CLAIM_OPTIONAL},
}


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
