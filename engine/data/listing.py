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

A remote path (``s3://bucket/members/``, see :mod:`engine.data.remote`) is listed with ``pyarrow.fs``
under the same rules (object stores have no symbolic links); its files are URI texts, not ``Path`` objects.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.remote import filesystem, is_remote, split_uri
from engine.data.remote import storage_options as _options
from engine.errors import InputFileError

__all__ = ["Listing", "list_input", "DATA_SUFFIXES", "is_glob"]

#: file name endings of data files (compared lower-case)
DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


@dataclass
class Listing:
    """The files of one input path.

    Attributes
    ----------
    files : data files to read (as found, sorted by path; each real file once); URI texts for a remote path.
    skipped : ``{path: reason}`` for every other file found below the input.
    root : the Hive root of a remote path (its directory, a glob's leading part, a file's parent); None for a local one.
    storage_options : the polars storage options of a remote path (see :func:`engine.data.remote.storage_options`).
    """

    files: list[Path | str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    root: str | None = None
    storage_options: dict[str, str] = field(default_factory=dict)


_NOT_DATA = "not a data file name (.parquet, .pq, .csv or .csv.gz)"


def is_glob(s: str) -> bool:
    """True when ``s`` holds a wildcard and does not exist as a literal path."""
    return any(ch in s for ch in "*?[") and (is_remote(s) or not os.path.lexists(s))


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


def list_input(path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> Listing:
    """The data files of one input path and the files skipped with their reasons (see the module notes).

    ``storage_options`` (endpoint, credentials) apply to a remote path only; the environment's are used
    too (:func:`engine.data.remote.storage_options`).

    Raises
    ------
    InputFileError
        The path does not exist, a glob matches no file, or a directory holds no data file.
    """
    s = os.fspath(path)
    if is_remote(s):
        return _list_remote(s, storage_options)
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


# --------------------------------------------------------------------------- remote paths
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob below its root as a regex on ``/``-separated paths (``*`` within a name, ``**/`` any depth).

    As Python's glob, a wildcard never matches a name starting with ``.`` (only a literal ``.`` does).
    """
    out, i = ["(?!.*(?:^|/)\\.)"] if not any(seg.startswith(".") for seg in pattern.split("/")) else [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _list_remote(uri: str, given: dict[str, Any] | None) -> Listing:
    """The data files below a remote file, directory or glob, by the same rules as a local path."""
    import pyarrow.fs as pafs

    options = _options(uri, given)
    scheme = split_uri(uri)[0]
    fs, path = filesystem(uri, options)
    pattern = None
    if is_glob(uri):
        segs = path.split("/")
        k = next(i for i, seg in enumerate(segs) if any(ch in seg for ch in "*?["))
        path, pattern = "/".join(segs[:k]), _glob_regex("/".join(segs[k:]))
    try:
        info = fs.get_file_info(path)
    except OSError as exc:
        raise InputFileError(f"{uri}: cannot list ({(str(exc).splitlines() or ['error'])[0]})") from None
    base = f"{scheme}://{path}"
    listing = Listing(root=base, storage_options=options)
    if info.type == pafs.FileType.File and pattern is None:
        if uri.lower().endswith((".csv", ".csv.gz")):
            raise InputFileError(f"{uri}: remote CSV files are not read; convert them to Parquet")
        listing.files.append(uri)
        listing.root = base.rsplit("/", 1)[0]
        return listing
    if info.type != pafs.FileType.Directory:
        raise InputFileError(f"{uri}: no such file or directory" if pattern is None else f"{uri}: the glob matches no file")
    try:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as exc:
        raise InputFileError(f"{uri}: cannot list ({(str(exc).splitlines() or ['error'])[0]})") from None
    for e in sorted(entries, key=lambda e: e.path):
        _remote_entry(e, path, base, pattern, listing)
    if not listing.files:
        raise InputFileError(f"{uri}: the directory holds no .parquet file (nor .pq)" if pattern is None
                             else f"{uri}: the glob matches no data file")
    return listing


def _remote_entry(e: Any, path: str, base: str, pattern: re.Pattern[str] | None, listing: Listing) -> None:
    """Take one entry of a remote listing, or name why it is skipped."""
    import pyarrow.fs as pafs

    rel = e.path[len(path):].lstrip("/")
    parts = rel.split("/")
    is_dir = e.type == pafs.FileType.Directory
    if pattern is not None and (is_dir or not pattern.match(rel)):
        return  # a glob takes the files it matches only (as a local glob)
    for i, part in enumerate(parts):
        why = _hidden(part)
        if why:  # the first hidden name: that entry is skipped, and everything below it with it
            if pattern is not None:  # a glob names each matched file (as a local glob)
                listing.skipped[f"{base}/{rel}"] = why
            else:
                below = i < len(parts) - 1 or is_dir
                listing.skipped[f"{base}/{'/'.join(parts[:i + 1])}" + ("/" if below else "")] = why
            return
    if is_dir:
        return
    uri = f"{base}/{rel}"
    if not _is_data(parts[-1]):
        listing.skipped[uri] = _NOT_DATA
    elif parts[-1].lower().endswith((".csv", ".csv.gz")):
        raise InputFileError(f"{uri}: remote CSV files are not read; convert them to Parquet")
    elif e.size == 0:
        listing.skipped[uri] = "empty file (0 bytes)"
    else:
        listing.files.append(uri)
