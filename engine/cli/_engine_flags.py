"""``--engine``, ``--address``, ``--workers`` (and ``--scratch``) of ``fentan run`` and ``fentan exposure``: the executor they open.

The flags win over the ``[run]`` keys ``engine``, ``address``, ``workers`` of a run configuration;
:func:`engine.cells._engines.executor_for` opens the executor (see docs/scale.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from engine.conventions import ENGINES  # not engine.cells: `--help` imports no polars

FLAGS = ("engine", "address", "workers")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--engine``, ``--address`` and ``--workers`` to a command's parser."""
    p.add_argument("--engine", default=None, metavar="NAME",
                   help=f"where the exposure tasks run: {', '.join(ENGINES)} (default local: one process; "
                        "dask needs pip install 'fentan[dask]')")
    p.add_argument("--address", default=None, metavar="URL",
                   help="with --engine dask: the scheduler of an existing Dask cluster, e.g. tcp://HOST:8786 "
                        "(default: a local cluster of --workers processes)")
    p.add_argument("--workers", default=None, metavar="N",
                   help="workers of the threads, processes or local dask engine (default: the machine's cores)")
    p.add_argument("--scratch", default=None, metavar="URI",
                   help="where validation's member-id buckets go, e.g. s3://bucket/prefix or a shared directory, so "
                        "its tasks run on any engine, a remote dask cluster's included (default: [run] scratch, "
                        "else a local temporary directory and, off this machine, validation in this process)")


def _workers(text: Any, key: str) -> int | None:
    from engine.errors import ConfigError

    if text is None or isinstance(text, int):
        return text
    try:
        return int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{key}: '{text}' is not an integer") from None


def check_engine_args(args: argparse.Namespace) -> None:
    """Check the flags before any data is read (one-line :class:`ConfigError` naming the flag)."""
    from engine.cells._engines import check_engine

    check_engine(args.engine, args.address, _workers(args.workers, "--workers"), where="--")


@contextmanager
def engine_executor(args: argparse.Namespace, run_section: Any = None, source: str | None = None
                    ) -> Iterator[Executor | None]:
    """The executor of the flags, else of the ``[run]`` section given (``None`` for the local engine).

    Error messages name the flag, or the configuration file and its key (``run.toml: run.address``).
    """
    from engine.cells._engines import executor_for

    given = {k: getattr(args, k, None) for k in FLAGS}
    if any(v is not None for v in given.values()) or run_section is None:
        values, where = given, "--"
    else:
        values, where = {k: getattr(run_section, k, None) for k in FLAGS}, f"{source}: run."
    workers = _workers(values["workers"], f"{where}workers")
    with executor_for(values["engine"], values["address"], workers, where=where) as ex:
        yield ex


@contextmanager
def run_executor(args: argparse.Namespace) -> Iterator[Executor | None]:
    """``fentan run``: the executor of the flags, else of the configuration's ``[run]`` keys (none for a dry run)."""
    check_engine_args(args)
    if getattr(args, "dry_run", False):  # nothing is computed: no cluster to start
        yield None
    elif all(getattr(args, k, None) is None for k in FLAGS):
        from engine.pipeline.config import load_config

        cfg = load_config(args.config)
        with engine_executor(args, cfg.run, cfg.source) as ex:
            yield ex
    else:
        with engine_executor(args) as ex:
            yield ex
