"""Helpers shared by the CLI commands: output directories, tables, dates."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, DataError, OutputError

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


def prepare_out_dir(path: str | Path, *, force: bool = False, must_be_new: bool = False) -> Path:
    """Create ``path``; refuse an existing non-empty directory when ``must_be_new`` and not ``force``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a directory")
    if must_be_new and p.exists() and any(p.iterdir()) and not force:
        raise OutputError(f"{p}: output directory exists; use --force to replace its contents")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / ".fentan-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{p}: output directory is not writable ({exc.strerror})") from None
    return p


def check_writable(path: str | Path, what: str) -> Path:
    """Refuse early an output file whose directory cannot be created or written (one line naming ``what``)."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{what}: {p} is a directory; give a file name")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{p.name}.fentan-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{what}: {parent}: cannot write here ({exc.strerror})") from None
    return p


def print_table(title: str, rows: list[dict[str, Any]], *, quiet: bool = False) -> None:
    """Print ``rows`` (list of dicts with equal keys) as a rich table."""
    if quiet or not rows:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key in rows[0]:
        table.add_column(str(key), justify="right" if isinstance(rows[0][key], (int, float)) else "left")
    for r in rows:
        table.add_row(*[f"{v:,.4g}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v)) for v in r.values()])
    Console(width=max(100, shutil.get_terminal_size((100, 20)).columns)).print(table)


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
    return rows


def read_cells(path: str) -> pl.DataFrame:
    """Cells Parquet (file, glob or directory; files with different columns are aligned).

    Raises :class:`engine.errors.InputFileError` naming ``path`` when a file cannot be read.
    """
    import polars as pl

    from engine.errors import InputFileError
    from engine.io import resolve_paths

    files = resolve_paths(path)
    try:
        return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    except Exception as exc:  # unreadable / not Parquet
        raise InputFileError(f"{path}: cannot read cells Parquet ({type(exc).__name__})") from None
