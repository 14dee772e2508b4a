"""Helpers shared by the CLI commands: output directories, tables, dates."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine._display import print_table  # noqa: F401  (re-exported for the commands)
from engine.errors import ConfigError, OutputError, DataError

if TYPE_CHECKING:
    import polars as pl


def parse_date(text: str, what: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` or raise a one-line :class:`ConfigError` naming ``what``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what}: '{text}' is not a date (YYYY-MM-DD)") from None


def require_columns(df: pl.DataFrame, columns: list[str], path: str, option: str) -> None:
    """Raise a one-line :class:`DataError` naming the file, the option and the first missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: {option}: column '{missing[0]}' is not in the cells (columns: {', '.join(df.columns)})")


#: argparse destinations that name inputs (files, directories, globs, model directories)
INPUT_ARGS = ("config", "members", "claims", "cells", "model", "pooled", "groups", "rules", "load",
              "plans_template", "basis")


def input_args(args: Any) -> list[str]:
    """The input paths among a command's parsed arguments (those that exist, or globs)."""
    return [v for k in INPUT_ARGS if isinstance(v := getattr(args, k, None), str)]


def prepare_out_dir(path: str | Path, *, force: bool = False, must_be_new: bool = False,
                    inputs: Sequence[str | Path | None] = ()) -> Path:
    """Check and create the output directory ``path`` of a command, before any work.

    Refuses (one-line :class:`OutputError`) what :func:`engine.pipeline.outguard.guard_target` refuses:
    the root, the home directory, a mount point, a directory that is, contains or lies inside one
    of ``inputs``, an existing non-empty directory that fentan did not create (and, when
    ``must_be_new``, any existing non-empty one without ``force``), too little free space.
    Takes the target's lock until the command ends and marks a new directory as fentan's.
    """
    from engine.pipeline.outguard import guard_target, hold_lock, write_marker

    p = Path(path)
    hold_lock(p)
    guard_target(p, inputs, force=force, replace=must_be_new)
    try:
        fresh = not p.exists() or not any(p.iterdir())
        p.mkdir(parents=True, exist_ok=True)
        if fresh:
            write_marker(p)
        probe = p / ".fentan-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{p}: output directory is not writable ({exc.strerror})") from None
    return p


def check_writable(path: str | Path, what: str, inputs: Sequence[str | Path | None] = ()) -> Path:
    """Refuse early an output file whose directory cannot be created or written (one line naming ``what``).

    Also refuses an output file that is one of ``inputs`` or lies inside an input directory
    (it would replace an input, or be read as one next time).
    """
    from engine.pipeline.outguard import input_paths

    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{what}: {p} is a directory; give a file name")
    real = Path(os.path.realpath(os.path.abspath(p)))
    for inp in input_paths(inputs):
        if inp == real:
            raise OutputError(f"{what}: {p}: refusing to write: it is the input {inp}")
        if inp.is_dir() and inp in real.parents:
            raise OutputError(f"{what}: {p}: refusing to write: it lies inside the input directory {inp}")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{p.name}.fentan-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what}: {parent}: cannot write here ({exc.strerror})") from None
    return p


def account_rows(account: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a row account into table rows: table, reason, rows."""
    rows: list[dict[str, Any]] = []
    for what, acc in account.items():
        if not isinstance(acc, dict) or "read" not in acc:
            continue
        rows.append({"table": what, "status": "read", "rows": int(acc["read"])})
        rows.append({"table": what, "status": "used", "rows": int(acc["used"])})
        for reason, n in sorted(acc.get("set_aside", {}).items()):
            rows.append({"table": what, "status": f"set aside: {reason}", "rows": int(n)})
        files = acc.get("files")
        if files and files.get("skipped"):  # files found but not read (named in account.json)
            kinds: dict[str, int] = {}
            for why in files["skipped"].values():
                kinds[why.split(":")[0]] = kinds.get(why.split(":")[0], 0) + 1
            for why, n in sorted(kinds.items()):
                rows.append({"table": what, "status": f"files skipped: {why}", "rows": n})
    return rows


def read_cells(path: str) -> pl.DataFrame:
    """Cells Parquet (file, glob or directory; files with different columns are aligned).

    Raises :class:`engine.errors.InputFileError` naming ``path`` when a file cannot be read.
    """
    import polars as pl

    from engine.errors import InputFileError
    from engine.data.io import resolve_paths

    files = resolve_paths(path)
    try:
        return pl.concat([pl.read_parquet(f, glob=False) for f in files], how="diagonal_relaxed")
    except Exception as exc:  # unreadable / not Parquet
        raise InputFileError(f"{path}: cannot read cells Parquet ({type(exc).__name__})") from None
