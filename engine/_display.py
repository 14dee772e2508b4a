"""Console display shared by the core modules and the CLI (rich tables)."""

from __future__ import annotations

import shutil
from typing import Any


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


__all__ = ["print_table"]
