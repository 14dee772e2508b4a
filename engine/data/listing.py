"""Which files an input path means, by the Hive and Spark conventions, and why the others are skipped.

An input path is a file, a directory or a glob (a path containing ``*``, ``?`` or ``[`` that
does not exist as such: an existing path is always read literally).

- Below a directory (or below the wildcard-free part of a glob), a file or directory whose name
  starts with ``.`` (hidden: ``.old/``, ``.part.crc``) or ``_`` (Spark and Hive metadata:
  ``_temporary/``, ``_SUCCESS``, ``_committed_*``) is skipped, at any depth.
- Data files end in ``.parquet`` (any case: ``.PARQUET``), ``.pq``, ``.csv`` or ``.csv.gz``
  (:mod:`engine.data._csv`); other names are skipped.
- Symbolic links are resolved and every real file is read once: a link to a file or partition
  that is read anyway (``latest.parquet -> part=9/data.parquet``) is skipped as a duplicate.
  Directory links are followed once (a loop is never entered twice).
- An empty (0-byte) data file in a directory is skipped (it holds no row); given alone, it is an error.

Every skipped file is named with its reason in :attr:`Listing.skipped`, and so in the row account.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputFileError

__all__ = ["Listing", "list_input", "DATA_SUFFIXES", "is_glob"]

#: file name endings of data files (compared lower-case)
DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


@dataclass
class Listing:
    """The files of one input path.

    Attributes
    ----------
    files : data files to read (as found, sorted by path; each real file once).
    skipped : ``{path: reason}`` for every other file found below the input.
    """

    files: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


_NOT_DATA = "not a data file name (.parquet, .pq, .csv or .csv.gz)"


def is_glob(s: str) -> bool:
    """True when ``s`` holds a wildcard and does not exist as a literal path."""
    return any(ch in s for ch in "*?[") and not os.path.lexists(s)


def _hidden(name: str) -> str | None:
    if name.startswith("."):
        return "hidden (name starts with '.')"
    if name.startswith("_"):
        return "metadata (name starts with '_', Spark/Hive convention)"
    return None


def _is_data(name: str) -> bool:
    return name.lower().endswith(DATA_SUFFIXES)


def _take(f: Path, listing: Listing, seen: dict[str, Path]) -> None:
    """Add ``f`` (a data file name) unless its real file is already read or it is empty."""
    real = os.path.realpath(f)
    if real in seen:
        listing.skipped[str(f)] = f"duplicate: the same file as {seen[real]} (symbolic link)"
        return
    try:
        size = os.stat(f).st_size
    except OSError:
        listing.skipped[str(f)] = "broken symbolic link"
        return
    if size == 0:
        listing.skipped[str(f)] = "empty file (0 bytes)"
        return
    seen[real] = f
    listing.files.append(f)


def _walk(root: Path, listing: Listing, seen: dict[str, Path]) -> None:
    """Every file below ``root`` by the conventions above.

    Real directories and files come first; those reached through a symbolic link are taken
    after them, so a file read both ways is read at its real place (with its partition values).
    """
    dirs_seen: set[str] = set()
    todo: list[tuple[Path, bool]] = [(root, False)]  # (directory, reached through a link)
    found: list[tuple[bool, Path]] = []
    while todo:
        todo.sort(key=lambda t: (t[1], str(t[0])), reverse=True)  # pop() takes real directories first
        d, via = todo.pop()
        real = os.path.realpath(d)
        if real in dirs_seen:
            listing.skipped[str(d) + "/"] = "duplicate: a directory already read (symbolic link)"
            continue
        dirs_seen.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise InputFileError(f"{d}: cannot list the directory ({exc.strerror})") from None
        for e in entries:
            p = Path(e.path)
            link = via or e.is_symlink()
            why = _hidden(e.name)
            is_dir = e.is_dir(follow_symlinks=True)
            if why:
                listing.skipped[str(p) + ("/" if is_dir else "")] = why
            elif is_dir:
                todo.append((p, link))
            elif _is_data(e.name):
                found.append((link, p))
            elif e.is_file(follow_symlinks=True) or not os.path.exists(p):
                listing.skipped[str(p)] = _NOT_DATA
    for _, f in sorted(found, key=lambda t: (t[0], str(t[1]))):
        _take(f, listing, seen)
    listing.files.sort()


def list_input(path: str | os.PathLike[str]) -> Listing:
    """The data files of one input path and the files skipped with their reasons (see the module notes).

    Raises
    ------
    InputFileError
        The path does not exist, a glob matches no file, or a directory holds no data file.
    """
    s = os.fspath(path)
    listing = Listing()
    seen: dict[str, Path] = {}
    if is_glob(s):
        root = glob_root(s)
        matches = sorted(Path(f) for f in _glob.glob(s, recursive=True))
        if not [m for m in matches if m.is_file()]:
            raise InputFileError(f"{s}: the glob matches no file")
        for m in matches:
            if not m.is_file():
                continue
            try:
                parts = m.relative_to(root).parts
            except ValueError:
                parts = (m.name,)
            why = next((w for w in map(_hidden, parts) if w), None)
            if why:
                listing.skipped[str(m)] = why
            elif not _is_data(m.name):
                listing.skipped[str(m)] = _NOT_DATA
            else:
                _take(m, listing, seen)
        if not listing.files:
            raise InputFileError(f"{s}: the glob matches no data file ({len(listing.skipped)} skipped, "
                                 f"e.g. {next(iter(listing.skipped.items()))[0]}: {next(iter(listing.skipped.values()))})")
        return listing
    p = Path(s)
    if p.is_dir():
        _walk(p, listing, seen)
        if not listing.files:
            raise InputFileError(f"{s}: the directory holds no .parquet file (nor .pq, .csv, .csv.gz)")
        return listing
    if not p.exists():
        raise InputFileError(f"{s}: no such file or directory")
    listing.files.append(p)
    return listing


def glob_root(s: str) -> Path:
    """The leading part of a glob without wildcards (the root of its hive partitions)."""
    parts: list[str] = []
    for part in Path(s).parts:
        if any(ch in part for ch in "*?["):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")
