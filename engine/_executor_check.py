"""The check every ``executor=`` argument passes (exposure, validation): an Executor that does not fork."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from engine.errors import ConfigError


def check_executor(executor: Any) -> None:
    """None or a ``concurrent.futures.Executor``; a process pool must not fork its workers."""
    if executor is None:
        return
    if not isinstance(executor, Executor):
        raise ConfigError(f"executor: expected a concurrent.futures.Executor or None, got {type(executor).__name__}")
    if isinstance(executor, ProcessPoolExecutor):
        ctx = getattr(executor, "_mp_context", None)
        method = ctx.get_start_method() if ctx is not None else multiprocessing.get_start_method()
        if method == "fork":
            raise ConfigError(
                "executor: this ProcessPoolExecutor forks its workers, and polars deadlocks in forked "
                "children; use engine.cells.process_pool(n_workers) or "
                "ProcessPoolExecutor(mp_context=multiprocessing.get_context('spawn'))"
            )
