"""Crash-safe output directories for whole runs.

A run writes every file into a hidden staging directory beside the target
(``.<name>.partial-<pid>``). Only when every output is complete is it swapped in.

Guarantee
---------
Whenever the process is killed (SIGKILL, power loss after the renames reach the disk),
the final name holds either the complete previous outputs or the complete new ones:
never a mix, never a half-written file, and never nothing when there was something before.

- On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` system call: the target and
  the staging directory trade places atomically; the old outputs (now under the staging
  name) are then deleted.
- Where the exchange is unsupported, the swap is two renames (``target -> .<name>.old-<pid>``,
  ``staging -> target``); a kill between them leaves the previous outputs under
  ``.<name>.old-<pid>``, which the next run (or :func:`recover`) renames back before
  doing anything else.

Hidden ``.<name>.partial-<pid>`` / ``.<name>.old-<pid>`` directories of dead processes are
temporary by name; the next run on the same target removes them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from engine.errors import OutputError
from engine.pipeline.outguard import MARKER, guard_target, target_lock, write_marker

__all__ = ["check_target", "staged_output", "recover", "exchange", "MARKER"]

_AT_FDCWD = -100
#: errors of writing the outputs (reported in one line naming the path; nothing is left behind)
_WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EACCES)
_RENAME_EXCHANGE = 2


def check_target(target: str | Path, *, force: bool, inputs: Sequence[str | Path | None] = ()) -> Path:
    """Check ``target`` before any work (see :func:`engine.pipeline.outguard.guard_target`); create its parent.

    Refuses an existing non-empty directory unless ``force`` and fentan created it (marker file),
    the root, the home directory, a mount point, a target that is, contains or lies inside one
    of ``inputs``, an unwritable parent and a nearly full filesystem.
    """
    t = Path(target)
    recover(t)
    guard_target(t, inputs, force=force)
    parent = t.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the output's parent directory ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{parent}: directory is not writable")
    return t


def recover(target: str | Path) -> None:
    """Finish or undo what a killed run left beside ``target``.

    Notes
    -----
    ``.<name>.old-<pid>`` of a dead process: the previous outputs; renamed back to the
    target when the target is missing (a kill between the two renames of the fallback
    swap), otherwise deleted. ``.<name>.partial-<pid>`` of a dead process: deleted.
    Directories of live processes (a concurrent run) are left alone.
    """
    t = Path(target).absolute()
    parent = t.parent
    if not parent.is_dir():
        return
    for old in sorted(parent.glob(f".{t.name}.old-*")):
        if not _dead(old):
            continue
        if not t.exists():
            try:
                os.rename(old, t)
                _sync_dir(parent)
                continue
            except OSError:
                pass
        shutil.rmtree(old, ignore_errors=True)
    for stale in parent.glob(f".{t.name}.partial-*"):
        if _dead(stale):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def staged_output(target: str | Path, *, force: bool = False,
                  inputs: Sequence[str | Path | None] = ()) -> Iterator[Path]:
    """Yield a staging directory; on success swap it in place of ``target`` (see the module notes).

    The target is locked for the whole block (a concurrent run to it refuses) and checked by
    :func:`check_target` against ``inputs`` first. The staging directory gets the fentan marker
    file. An exception inside the block removes the staging directory and leaves ``target``
    untouched; an ``OSError`` there (disk full, read-only) becomes a one-line :class:`OutputError`.
    """
    with target_lock(target):
        with _staged(target, force=force, inputs=inputs) as stage:
            yield stage


@contextmanager
def _staged(target: str | Path, *, force: bool, inputs: Sequence[str | Path | None]) -> Iterator[Path]:
    t = check_target(target, force=force, inputs=inputs).resolve()
    parent = t.parent
    staging = parent / f".{t.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        write_marker(staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{parent}: cannot write here ({exc.strerror})") from None
    try:
        yield staging
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno not in _WRITE_ERRNOS:
            raise
        where = exc.filename or t
        raise OutputError(f"{where}: cannot write the outputs ({exc.strerror or exc}); nothing was changed "
                          f"in {t}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_tree(staging)
    if not t.exists():
        os.rename(staging, t)  # nothing to keep: one atomic rename
        _sync_dir(parent)
        return
    if exchange(staging, t):
        _sync_dir(parent)
        shutil.rmtree(staging, ignore_errors=True)  # now holds the previous outputs
        return
    old = parent / f".{t.name}.old-{os.getpid()}"
    os.rename(t, old)
    os.rename(staging, t)
    _sync_dir(parent)
    shutil.rmtree(old, ignore_errors=True)


def exchange(a: str | Path, b: str | Path) -> bool:
    """Atomically swap two paths with ``renameat2(RENAME_EXCHANGE)``; False when unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    res = fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OutputError(f"{b}: cannot swap in the new outputs ({os.strerror(err)})")


def _renameat2():  # pragma: no cover - platform dependent
    if os.environ.get("FENTAN_NO_RENAME_EXCHANGE"):  # exercise the two-rename fallback (tests)
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _sync_dir(d: Path) -> None:
    """fsync a directory so the renames inside it survive a power loss (best effort)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _sync_tree(root: Path) -> None:
    """fsync every directory of the staging tree (files are fsynced by engine.data.io when written)."""
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _sync_dir(d)


def _dead(path: Path) -> bool:
    """True when the pid in ``.<name>.<kind>-<pid>`` is not a running process."""
    pid = path.name.rsplit("-", 1)[-1]
    return pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True
