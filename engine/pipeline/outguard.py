"""Rules that keep an output directory from destroying anything that is not fentan's.

Every command that writes a directory (``fentan run``, ``demo``, ``validate``, ``segment`` ...)
checks its target with :func:`guard_target` before any work starts:

- the target is not the filesystem root, the home directory or a mount point;
- it is not an input, does not contain an input, and does not lie inside an input directory
  (data files, directories and globs, the configuration, plan files, model directories);
- an existing non-empty target is replaced (``--force``) or written into only when fentan
  created it: a marker file :data:`MARKER` is written into every directory fentan creates;
- its parent is writable and its filesystem has at least :data:`MIN_FREE_BYTES` free.

:func:`target_lock` makes a second run to the same target refuse while the first one works.
The lock is an advisory ``flock`` on a small file in the temporary directory (named after the
target), so a killed run leaves nothing beside the outputs and never a stale lock.
"""

from __future__ import annotations

import fcntl
import glob as _glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import OutputError

__all__ = ["MARKER", "MIN_FREE_BYTES", "guard_target", "input_paths", "is_fentan_dir", "write_marker",
           "target_lock", "check_free_space", "hold_lock", "release_locks"]

#: file written into every output directory fentan creates; ``--force`` replaces only such directories
MARKER = ".fentan-output"
MARKER_TEXT = "This directory was created by fentan; `--force` may replace it.\n"
#: free space required on the output's filesystem before any work starts (bytes)
MIN_FREE_BYTES = 64 * 1024 * 1024

_held: dict[str, int] = {}  # locks held by this process until release_locks() (CLI helpers)


def _real(p: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(p))))


def input_paths(items: Iterable[str | os.PathLike[str] | None]) -> list[Path]:
    """Every existing input as a real path: files and directories as given, a glob as its matches.

    A recursive glob (``**``) also yields its directory part, since outputs written below it
    would be read as input next time.
    """
    out: list[Path] = []
    for item in items:
        if item is None or os.fspath(item) == "":
            continue
        s = os.fspath(item)
        if os.path.lexists(s):
            out.append(_real(s))
        elif any(ch in s for ch in "*?["):
            out.extend(_real(f) for f in sorted(_glob.glob(s, recursive=True)))
            if "**" in s:
                root = Path(s.split("**", 1)[0] or ".")
                out.append(_real(root))
    return out


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or lies below it (both real paths)."""
    return a == b or b in a.parents


def is_fentan_dir(d: Path) -> bool:
    """True when ``d`` holds the marker file fentan writes into the directories it creates."""
    return (d / MARKER).is_file()


def write_marker(d: str | os.PathLike[str]) -> None:
    """Mark ``d`` as created by fentan (same bytes every time: outputs stay byte-identical)."""
    (Path(d) / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def guard_target(target: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (), *,
                 force: bool = False, replace: bool = True, what: str = "--out") -> Path:
    """Refuse, with one line naming ``target``, an output location that could destroy user files.

    Parameters
    ----------
    target : the output directory.
    inputs : every path the command reads (files, directories, globs); see :func:`input_paths`.
    force : the user allows replacing an existing output directory.
    replace : the command replaces the whole directory (``fentan run``); when False it writes
        into it, which an existing non-empty directory allows only when fentan created it.
    what : the option naming the target in messages.

    Returns
    -------
    Path
        The target's real path (symlinks resolved).

    Raises
    ------
    OutputError
        Root, home or mount point; is, contains or lies inside an input; an existing
        non-empty directory without ``--force`` or not created by fentan; not writable;
        too little free space.
    """
    t = _real(target)
    if t == Path(t.anchor):
        raise OutputError(f"{what} {target}: refusing to write outputs to the filesystem root")
    home = _real(Path.home())
    if t == home:
        raise OutputError(f"{what} {target}: refusing to write outputs to the home directory; give a new directory")
    if t.exists() and os.path.ismount(t):
        raise OutputError(f"{what} {target}: refusing to write outputs to a mount point; give a directory inside it")
    for inp in input_paths(inputs):
        if inp == t:
            raise OutputError(f"{what} {target}: refusing to write outputs: it is the input {inp}")
        if _inside(inp, t):
            raise OutputError(f"{what} {target}: refusing to write outputs: it contains the input {inp}")
        if inp.is_dir() and _inside(t, inp):
            raise OutputError(f"{what} {target}: refusing to write outputs: it lies inside the input directory {inp}")
    if t.exists() and not t.is_dir():
        raise OutputError(f"{what} {target}: exists and is not a directory")
    if t.is_dir() and any(t.iterdir()):
        if replace and not force:
            raise OutputError(f"{what} {target}: output directory exists; use --force to replace it")
        if not is_fentan_dir(t):
            raise OutputError(f"{what} {target}: the directory exists and was not created by fentan (no {MARKER} "
                              "file); it is never replaced or written into: remove it yourself or choose another")
    parent = t.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{what} {target}: {existing} is not a directory, so it is not writable")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {target}: {existing} is not writable")
    check_free_space(existing, what=f"{what} {target}")
    return t


def check_free_space(directory: Path, *, what: str, need: int | None = None) -> None:
    """Refuse when the filesystem of ``directory`` has less than ``need`` bytes free (default :data:`MIN_FREE_BYTES`)."""
    need = MIN_FREE_BYTES if need is None else need
    try:
        free = shutil.disk_usage(directory).free
    except OSError:  # pragma: no cover - statvfs unsupported: the writes will tell
        return
    if free < need:
        raise OutputError(f"{what}: only {free / 2**20:.0f} MiB free on the output's filesystem "
                          f"({need / 2**20:.0f} MiB needed before starting)")


def _lock_file(t: Path) -> Path:
    d = Path(tempfile.gettempdir()) / f"fentan-locks-{os.getuid() if hasattr(os, 'getuid') else 0}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d / (hashlib.sha256(os.fsencode(str(t))).hexdigest()[:32] + ".lock")


def _acquire(target: str | os.PathLike[str], what: str) -> int:
    t = _real(target)
    fd = os.open(_lock_file(t), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(f"{what} {target}: another fentan run is writing to this directory; "
                          "wait for it to finish or choose another") from None
    return fd


@contextmanager
def target_lock(target: str | os.PathLike[str], what: str = "--out") -> Iterator[None]:
    """Hold the lock of ``target`` for the block; a concurrent holder makes this refuse (OutputError)."""
    fd = _acquire(target, what)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def hold_lock(target: str | os.PathLike[str], what: str = "--out") -> None:
    """Take the lock of ``target`` until :func:`release_locks` (the CLI releases when a command ends)."""
    key = str(_real(target))
    if key not in _held:
        _held[key] = _acquire(target, what)


def release_locks() -> None:
    """Release every lock taken with :func:`hold_lock`."""
    while _held:
        _, fd = _held.popitem()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
