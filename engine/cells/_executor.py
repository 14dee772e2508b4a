"""The executor seam of :func:`engine.exposure`: one task per member partition, summed in the driver.

A task reads one partition (a file, a frame; an in-memory frame larger than a batch is cut
into batch-sized slices) in batches and adds the day counts of its
members (sharing days, at-risk days ignoring claims) to its own dense
:class:`engine.cells._sink.CellSink`; the driver adds the tasks' sinks to its own
(:meth:`CellSink.absorb`). Every number summed across tasks is an integer day count,
so the sum is exact in any order and the cells are bit-identical to the run without
an executor. The claimants pass (claims, amounts, at-risk days lost after a first
claim) stays in the driver.

Process pools must spawn their workers: polars deadlocks in forked children.
:func:`process_pool` builds one (spawn context, the polars thread count set per worker).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Protocol

import polars as pl

from engine.cells.calendar import Calendar
from engine.cells._batch import View, batch_cells, indexed_batches, prepare_batch
from engine.cells._sink import CellSink
from engine._executor_check import check_executor
from engine.errors import ConfigError

class Collector(Protocol):
    """Where :func:`member_cells` puts each batch's ``(partition index, reduction)``: a list, or an
    accumulator that adds them up as they come (:class:`engine.shares._stream.FoldedCounts`)."""

    def append(self, item: tuple[int, Any], /) -> None: ...


#: a reduction of each batch of members and where its results go (:func:`member_cells`)
Extra = tuple[Callable[[pl.DataFrame, dict[tuple[str, ...], Any]], Any], Collector]

_ENV = "POLARS_MAX_THREADS"


_ENV_LOCK = threading.Lock()


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker started with ``POLARS_MAX_THREADS`` in its environment.

    polars sizes its thread pool when it is imported, and a spawned child may import it before any
    initializer runs (the parent's ``__main__`` is re-imported first), so the variable is put in
    the environment the child inherits, for the moment of its start only.
    """

    def __init__(self, *args: Any, polars_threads: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._polars_threads = polars_threads

    def start(self) -> None:
        with _ENV_LOCK:
            old = os.environ.get(_ENV)
            os.environ[_ENV] = str(self._polars_threads)
            try:
                super().start()
            finally:
                if old is None:
                    os.environ.pop(_ENV, None)
                else:
                    os.environ[_ENV] = old


class _SpawnContext(multiprocessing.context.SpawnContext):
    """The spawn context whose processes start with the polars thread count of the pool."""

    def __init__(self, threads: int) -> None:
        self.Process = functools.partial(_SpawnProcess, polars_threads=threads)  # type: ignore[misc]


def _init_worker(threads: int) -> None:
    """Pool initializer: the polars thread count in the worker's environment (for what it starts)."""
    os.environ[_ENV] = str(threads)


def process_pool(n_workers: int, threads_per_worker: int | None = None) -> ProcessPoolExecutor:
    """A process pool for ``engine.exposure(..., executor=)``: spawned workers, polars threads set per worker.

    Parameters
    ----------
    n_workers : number of worker processes (a positive integer).
    threads_per_worker : polars threads in each worker (default: the machine's cores / ``n_workers``, at least 1).

    Returns
    -------
    ProcessPoolExecutor
        Use it as a context manager (``with process_pool(2) as ex: ...``) or call ``shutdown()``.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"n_workers: must be a positive integer, got {n_workers!r}")
    threads = max((os.cpu_count() or 1) // n_workers, 1) if threads_per_worker is None else threads_per_worker
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads_per_worker: must be a positive integer, got {threads_per_worker!r}")
    return ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=_SpawnContext(threads),
        initializer=_init_worker,
        initargs=(threads,),
    )


def part_cells(part: Any, cal: Calendar, views: Sequence[View], w: int, cols: list[str], batch_size: int,
               ids: pl.Series | None = None) -> tuple[list[dict[str, Any]], int, pl.DataFrame | None]:
    """One task: the member day counts of one partition for each view (picklable sink states), its number
    of batches, and its claimants' member rows (with ``ids``; None when it has no rows)."""
    sinks = [CellSink(cal, v.spec, v.static) for v in views]
    prep = functools.partial(prepare_batch, cal=cal, views=views, w=w, ids=ids)
    n, found = 0, []
    for _, b in indexed_batches([part], cols, batch_size, prep):
        batch_cells(b, sinks)
        if b.rows is not None:
            found.append(b.rows)
        n += 1
    rows = pl.concat(found, how="vertical_relaxed") if found else None
    return [sink.export() for sink in sinks], n, rows


def _indexed_tasks(parts: Sequence[Any], batch_size: int) -> list[tuple[int, Any]]:
    """(partition index, unit of one task): a partition, or a slice of ``batch_size`` rows of an in-memory
    frame (a LazyFrame stays whole: counting its rows could cost a pass over it)."""
    out: list[tuple[int, Any]] = []
    for i, p in enumerate(parts):
        if isinstance(p, pl.DataFrame) and p.height > batch_size:
            out.extend((i, p.slice(off, batch_size)) for off in range(0, p.height, batch_size))
        else:
            out.append((i, p))
    return out


def _tasks(parts: Sequence[Any], batch_size: int) -> list[Any]:
    """The units of one task each (:func:`_indexed_tasks` without the partition index)."""
    return [t for _, t in _indexed_tasks(parts, batch_size)]


def member_cells(parts: Sequence[Any], cal: Calendar, views: Sequence[View], w: int, cols: list[str],
                 batch_size: int, sinks: Sequence[CellSink], executor: Executor | None,
                 ids: pl.Series | None = None, extra: Extra | None = None) -> tuple[int, list[tuple[int, pl.DataFrame]]]:
    """Day counts of every member added to each view's sink, in this process or one task per partition.

    Returns the number of batches read and, with ``ids``, the claimants' member rows found as
    ``(partition index, rows)`` in partition order (one read of the members serves both). ``extra``
    (without an executor only): ``(fn, out)``, ``(partition index, fn(batch frame))`` of every batch is
    appended to ``out`` (another reduction of the same read; ``fn(frame, encodings)``, see :func:`prepare_batch`).
    """
    found: list[tuple[int, pl.DataFrame]] = []
    n = 0
    if executor is None:
        prep = functools.partial(prepare_batch, cal=cal, views=views, w=w, ids=ids,
                                 extra=None if extra is None else extra[0])
        for i, b in indexed_batches(parts, cols, batch_size, prep):
            batch_cells(b, sinks)
            if b.rows is not None:
                found.append((i, b.rows))
            if extra is not None:
                extra[1].append((i, b.extra))
            n += 1
        return n, found
    if extra is not None:
        raise ConfigError("internal: a per-batch reduction runs without an executor only")
    tasks = _indexed_tasks(parts, batch_size)
    futures = [executor.submit(part_cells, p, cal, views, w, cols, batch_size, ids) for _, p in tasks]
    try:
        for (i, _), fut in zip(tasks, futures):  # submission order; the integer sums do not depend on it
            states, k, rows = fut.result()
            for sink, state in zip(sinks, states, strict=True):
                sink.absorb(state)
            if rows is not None:
                found.append((i, rows))
            n += k
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise
    return n, found
