"""Where the streaming validation's duplicate-id buckets live: a local temporary directory, or a scratch location.

Notes
-----
Without a scratch location, the buckets (:mod:`engine.data._validation_stream`, steps 1 and 2) are
NumPy files in a temporary directory of this machine, so the tasks that write and read them run
here (in this process or in a pool of this machine). With one (``[run] scratch``, ``--scratch``,
the ``scratch=`` argument of :func:`engine.validate`), a unique sub-directory ``fentan-ids-<hex>``
is made below it and the files are written and read through ``pyarrow.fs`` with the storage
options (:func:`engine.data.remote.filesystem`): every worker that reaches the location (an
``s3://bucket/prefix`` of a remote Dask cluster, or a directory shared by the machines) can run the
tasks. A task reads only its buckets: the ``.npy`` header, then the byte range of its buckets. The
sub-directory is removed at the end, also on error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.remote import filesystem, is_remote, storage_options
from engine.errors import ConfigError, EngineError, first_line

#: the prefix of each validation's sub-directory of a scratch location (and of the local temporary one)
PREFIX = "fentan-ids-"


@dataclass(frozen=True)
class BucketDir:
    """A directory of bucket files: a local path, or a URI read with its storage ``options``."""

    path: str
    options: tuple[tuple[str, str], ...] = ()

    def _fs(self) -> tuple[Any, str]:
        return filesystem(self.path, dict(self.options))

    def save(self, name: str, array: np.ndarray) -> None:
        """Write ``array`` as the ``.npy`` file ``name``."""
        if not is_remote(self.path):
            np.save(Path(self.path) / name, array)
            return
        fs, base = self._fs()
        try:
            with fs.open_output_stream(f"{base}/{name}") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
        except OSError as exc:
            raise ConfigError(f"scratch: {self.path}: cannot write {name} ({first_line(exc)})") from None

    def load(self, name: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """The array of the ``.npy`` file ``name``, items ``lo .. hi - 1`` only (all when not given)."""
        if not is_remote(self.path):
            return np.asarray(np.load(Path(self.path) / name, mmap_mode="r")[lo:hi])
        fs, base = self._fs()
        try:
            with fs.open_input_file(f"{base}/{name}") as fh:
                major, _ = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(fh)
                a, b, _ = slice(lo, hi).indices(shape[0])
                start = fh.tell()
                fh.seek(start + a * dtype.itemsize)
                data = fh.read(max(b - a, 0) * dtype.itemsize)
        except OSError as exc:
            raise ConfigError(f"scratch: {self.path}: cannot read {name} ({first_line(exc)})") from None
        return np.frombuffer(data, dtype=dtype)


@contextmanager
def bucket_dir(scratch: str | None = None, options: dict[str, Any] | None = None, *,
               where: str = "scratch") -> Iterator[BucketDir]:
    """A new, empty bucket directory: a local temporary one, or ``fentan-ids-<hex>`` below ``scratch``.

    Parameters
    ----------
    scratch : a URI (``s3://bucket/prefix``) or a directory every worker reaches; None = a local
        temporary directory (the tasks must then run on this machine).
    options : storage options of a remote ``scratch`` (:func:`engine.data.remote.storage_options`;
        the environment's are read too).
    where : the key named in error messages (``scratch``, ``--scratch``, ``run.toml: run.scratch``).

    Raises
    ------
    ConfigError
        The scratch location cannot be written (one line naming ``where``).
    """
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp:
            yield BucketDir(tmp)
        return
    store = _make(scratch, options, where)
    try:
        yield store
    finally:
        _remove(store)


def _make(scratch: str, options: dict[str, Any] | None, where: str) -> BucketDir:
    """Make the unique sub-directory of ``scratch`` (a write: an unreachable location fails here)."""
    name = PREFIX + uuid.uuid4().hex
    if not is_remote(scratch):
        path = os.path.join(os.path.expanduser(scratch), name)
        try:
            os.makedirs(path)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot write to {scratch} ({exc.strerror or exc})") from None
        return BucketDir(path)
    uri = scratch.rstrip("/") + "/" + name
    try:
        opts = storage_options(uri, options)
        fs, path = filesystem(uri, opts)
        with fs.open_output_stream(f"{path}/.probe") as fh:  # an object store needs no directory: write a file
            fh.write(b"")
    except (OSError, EngineError) as exc:
        raise ConfigError(f"{where}: cannot write to {scratch} ({first_line(exc)})") from None
    return BucketDir(uri, tuple(sorted(opts.items())))


def _remove(store: BucketDir) -> None:
    """Remove a scratch sub-directory and everything in it (what cannot be removed is left)."""
    if not is_remote(store.path):
        shutil.rmtree(store.path, ignore_errors=True)
        return
    try:
        fs, path = store._fs()
        fs.delete_dir(path)
    except (OSError, EngineError):
        pass


def check_scratch(scratch: str | None, options: dict[str, Any] | None = None, *, where: str = "scratch") -> None:
    """Refuse, before any data is read, a scratch location that cannot be written (see :func:`bucket_dir`)."""
    if scratch is not None:
        with bucket_dir(scratch, options, where=where):
            pass
