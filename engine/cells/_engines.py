"""Engine selection: the executor behind ``--engine`` / ``[run] engine`` (local, threads, processes, dask).

:func:`executor_for` opens the ``concurrent.futures.Executor`` that the executor seam of
:func:`engine.exposure` (:mod:`engine.cells._executor`) runs its tasks on, and closes it after:

- ``local``: none (``None``), one process; the default;
- ``threads``: a ``ThreadPoolExecutor`` of ``workers`` threads;
- ``processes``: :func:`engine.cells.process_pool` (spawned workers, polars threads set per worker);
- ``dask``: ``distributed.Client(...).get_executor()``, attached to the scheduler at ``address``
  (``tcp://HOST:8786``) or to a local cluster of ``workers`` processes with one thread each. Dask
  comes from the ``dask`` extra (``pip install 'fentan[dask]'``) and every worker must import the
  same fentan version as the driver (checked on attach).

The cells are bit-identical whichever engine runs them (integer day counts summed exactly).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from engine.conventions import ENGINES
from engine.errors import ConfigError

__all__ = ["ENGINES", "executor_for", "check_engine"]

#: seconds to wait for a Dask scheduler to answer, then for its first worker, before giving up
CONNECT_TIMEOUT_S = 10
WORKER_TIMEOUT_S = 60
_POLARS_THREADS = "POLARS_MAX_THREADS"
#: the distribution every worker must have installed, at the driver's version
_DIST = "fentan"


def check_engine(engine: str | None, address: str | None, workers: int | None, where: str = "--") -> str:
    """The engine name (default ``local``) after the rules; one-line :class:`ConfigError` naming the key.

    ``where`` prefixes the key names: ``"--"`` for the flags (``--engine``), ``"run."`` for the
    configuration keys (``run.engine``).
    """
    name = "local" if engine is None else str(engine).strip().lower()
    if name not in ENGINES:
        raise ConfigError(f"{where}engine: must be one of {', '.join(ENGINES)}, got '{engine}'")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"{where}workers: must be a positive integer, got {workers!r}")
    if address is not None:
        if name != "dask":
            raise ConfigError(f"{where}address: only with engine 'dask' (the address of a Dask scheduler), "
                              f"got engine '{name}'")
        if workers is not None:
            raise ConfigError(f"{where}workers: not with {where}address (the cluster at the address has its own "
                              "workers); give one or the other")
        if "://" not in address and ":" not in address:
            raise ConfigError(f"{where}address: expected a scheduler address such as tcp://HOST:8786, got '{address}'")
    if name == "local" and workers not in (None, 1):
        raise ConfigError(f"{where}workers: engine 'local' runs in one process; choose --engine threads, "
                          "processes or dask for several workers")
    return name


@contextmanager
def executor_for(engine: str | None = "local", address: str | None = None, workers: int | None = None,
                 *, where: str = "--") -> Iterator[Executor | None]:
    """The executor of an engine, as a context manager (shut down, cluster closed, on exit).

    Parameters
    ----------
    engine : ``local`` (default; yields ``None``), ``threads``, ``processes`` or ``dask``.
    address : a Dask scheduler address (``tcp://HOST:8786``); only with ``dask``.
    workers : workers of the pool or of the local Dask cluster (default: the machine's cores).
    where : prefix of the key names in error messages (``"--"`` flags, ``"run."`` configuration).

    Yields
    ------
    concurrent.futures.Executor or None
        Pass it as ``executor=`` to :func:`engine.exposure`.

    Notes
    -----
    A local Dask cluster has ``workers`` worker processes (spawned by their nannies) of one thread
    each, each started with ``POLARS_MAX_THREADS`` = cores / workers (at least 1).
    """
    name = check_engine(engine, address, workers, where)
    n = workers or os.cpu_count() or 1
    if name == "local":
        yield None
    elif name == "threads":
        with ThreadPoolExecutor(max_workers=n) as ex:
            yield ex
    elif name == "processes":
        from engine.cells._executor import process_pool

        with process_pool(n) as ex:
            yield ex
    else:
        with _dask_client(address, n, where) as client:
            yield client.get_executor()


@contextmanager
def _dask_client(address: str | None, n: int, where: str) -> Iterator[Any]:
    """A ``distributed.Client`` on the scheduler at ``address`` or on a new local cluster of ``n`` processes."""
    from engine._optional import require

    distributed = require("distributed", "--engine dask")
    cluster = None
    try:
        if address is None:
            threads = max((os.cpu_count() or 1) // n, 1)
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None, host="127.0.0.1",
                                               # no dashboard; its HTTP endpoints on a free port, not 8787
                                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                               env={_POLARS_THREADS: str(threads)},
                                               silence_logs=logging.ERROR)  # no warnings on the user's stderr
            client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT_S)
        else:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, RuntimeError) as exc:  # RuntimeError: a worker of a local cluster did not start
        if cluster is not None:
            cluster.close()
        if address:
            raise ConfigError(f"{where}address: no Dask scheduler answers at {address} within {CONNECT_TIMEOUT_S} s "
                              "(is `dask scheduler` running there, and reachable from this machine?)") from None
        raise ConfigError(f"{where}engine: the local Dask cluster did not start ({_first_line(exc)})") from None
    try:
        _check_workers(client, address, where)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client: Any, address: str | None, where: str) -> None:
    """At least one worker, and fentan of the driver's version importable on every worker."""
    import importlib.metadata

    from engine._version import __version__

    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
    except (OSError, TimeoutError):
        raise ConfigError(f"{where}address: the Dask scheduler at {address} has no worker "
                          f"(none joined within {WORKER_TIMEOUT_S} s)") from None
    versions = client.run(importlib.metadata.version, _DIST, on_error="return")  # an exception where it is missing
    bad = {w: (v if isinstance(v, str) else None) for w, v in versions.items() if v != __version__}
    if bad:
        w, v = next(iter(bad.items()))
        found = f"does not have {_DIST} installed" if v is None else f"has {_DIST} {v}"
        raise ConfigError(f"{where}engine: the Dask worker {w} {found}; every worker needs fentan {__version__} "
                          "installed (pip install 'fentan[dask]' in the workers' environment)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
