"""Console display shared by the core modules and the CLI: tables as rich tables, CSV or JSON.

One number format for every printed table (:func:`format_number`): integers and large
amounts (CNY, members, exposure) with thousands separators and never in scientific
notation (``56,810,000``), smaller values (rates, shares) to significant digits
(``0.001234``, ``8.79``), below ``1e-6`` in scientific notation.

The output format is chosen once per process (:func:`set_output_format`, the CLI's
``--format``):

- ``table`` (default): rich tables. On a terminal they fit its width (long cells wrap, never
  cut); when stdout is not a terminal (piped or redirected) each table is printed at its full
  natural width, so nothing is truncated or wrapped.
- ``csv``: each table as CSV (raw values: full precision, no separators) after a
  ``# title`` line, tables separated by a blank line.
- ``json``: one JSON object per line and table: ``{"table": title, "rows": [{column: value}]}``.

With ``csv`` or ``json`` the CLI sends every other message to stderr, so stdout holds only
the tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import shutil
import sys
from collections.abc import Sequence
from typing import IO, Any

FORMATS = ("table", "csv", "json")

_state: dict[str, Any] = {"format": "table", "stream": None}

__all__ = ["FORMATS", "emit_table", "format_number", "format_value", "output_format", "print_table",
           "set_output_format"]


def set_output_format(fmt: str, stream: IO[str] | None = None) -> None:
    """Print every later table as ``fmt`` (table, csv or json) on ``stream`` (default: the current stdout)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _state["format"] = fmt
    _state["stream"] = stream


def output_format() -> str:
    """The current table format: table, csv or json."""
    return str(_state["format"])


def _no_separator(column: str) -> bool:
    """Calendar years and identifiers print without thousands separators (2021, not 2,021)."""
    c = column.lower()
    return c in ("year", "seed", "k") or c.endswith("_year") and not c.endswith("per_year")


def format_number(v: float, digits: int = 4) -> str:
    """``v`` for reading: thousands separators, no scientific notation, ``digits`` significant digits.

    Values of ``10**digits`` or more print whole (``56,810,000``); smaller ones keep
    ``digits`` significant digits without trailing zeros (``8.79``, ``0.0001234``); values below
    ``1e-6`` in magnitude keep scientific notation (``3.136e-16``).
    """
    x = float(v)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    a = abs(x)
    if a < 1e-6:  # tiny values (a fitted parameter at its bound): positional notation would be unreadable
        return f"{x:.{digits}g}"
    n = math.floor(math.log10(a)) + 1  # digits before the decimal point (<= 0 below 1)
    if n >= digits:
        return f"{x:,.0f}"
    decimals = digits - n
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_value(v: Any, column: str = "", digits: int = 4) -> str:
    """One cell of a printed table (see :func:`format_number`)."""
    if v is None:
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return str(bool(v))
    if isinstance(v, int) or type(v).__name__.startswith(("int", "uint")):
        return str(int(v)) if _no_separator(column) else f"{int(v):,}"
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        return format_number(float(v), digits)
    return str(v)


def _plain(v: Any) -> Any:
    """A JSON/CSV-ready value: numbers as numbers, dates as ISO strings."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalar
        return _plain(v.item())
    return str(v)


def emit_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
               numeric: Sequence[bool] | None = None, *, digits: int = 4) -> None:
    """Print one table in the current format (the single printer behind every CLI table)."""
    fmt = output_format()
    out: IO[str] = _state["stream"] or sys.stdout
    cols = [str(c) for c in columns]
    if fmt == "json":
        recs = [{c: _plain(v) for c, v in zip(cols, r)} for r in rows]
        out.write(json.dumps({"table": title or "", "rows": recs}, ensure_ascii=False) + "\n")
        out.flush()
        return
    if fmt == "csv":
        if title:
            out.write(f"# {title}\n")
        w = csv.writer(out, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if _plain(v) is None else _plain(v) for v in r])
        out.write("\n")
        out.flush()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if numeric is None:
        first = rows[0] if rows else [None] * len(cols)
        numeric = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in first]
    t = Table(title=escape(title) if title else None)
    for c, is_num in zip(cols, numeric):
        t.add_column(escape(c), justify="right" if is_num else "left", overflow="fold")
    for r in rows:
        t.add_row(*[escape(format_value(v, c, digits)) for c, v in zip(cols, r)])
    if out.isatty():
        console = Console(file=out, width=max(100, shutil.get_terminal_size((100, 20)).columns))
    else:  # piped or redirected: the full table, never cut to a guessed width, no colour codes
        console = Console(file=out, width=100_000, no_color=True, color_system=None)
        width = console.measure(t).maximum
        console = Console(file=out, width=max(40, width), no_color=True, color_system=None)
    console.print(t)


def print_table(title: str, rows: list[dict[str, Any]], *, quiet: bool = False) -> None:
    """Print ``rows`` (list of dicts with equal keys) as a table in the current format."""
    if quiet or not rows:
        return
    cols = list(rows[0])
    emit_table(title, cols, [[r.get(c) for c in cols] for r in rows])
