"""Crash-safe output directories for whole runs.

A run writes every file into a hidden staging directory beside the target
(``.<name>.partial-<pid>``); only when every output is complete is the staging
directory swapped in with two renames. Killing the process at any point leaves
either the previous outputs intact under the final name, or the new ones: never
a half-written file under a final name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import OutputError


def check_target(target: str | Path, *, force: bool) -> Path:
    """Refuse an existing non-empty ``target`` unless ``force``; check the parent is writable."""
    t = Path(target)
    if t.exists() and not t.is_dir():
        raise OutputError(f"{t}: exists and is not a directory")
    if t.exists() and any(t.iterdir()) and not force:
        raise OutputError(f"{t}: output directory exists; use --force to replace it")
    parent = t.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the output's parent directory ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: directory is not writable")
    return t


@contextmanager
def staged_output(target: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a staging directory; on success replace ``target`` with it atomically.

    Notes
    -----
    Swap: ``target -> .<name>.old-<pid>``, ``staging -> target``, then delete the
    old copy. Stale staging directories of dead runs are removed on the next run.
    """
    t = check_target(target, force=force).resolve()
    parent = t.parent
    for stale in parent.glob(f".{t.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    staging = parent / f".{t.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"{parent}: cannot write here ({exc.strerror})") from None
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = parent / f".{t.name}.old-{os.getpid()}"
    if t.exists():
        os.replace(t, old)
    os.replace(staging, t)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True
