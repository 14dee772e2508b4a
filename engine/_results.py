"""Display half of the estimator contract (:mod:`engine._estimator`) for result objects.

Result objects (projection, decomposition, plan comparison, migration, optimisation,
validation) mix in :class:`ResultMixin`: ``summary`` is a property returning a polars
DataFrame, ``print_summary(decimals=)`` prints it, ``_repr_html_`` is a compact escaped
HTML card. This module imports neither scikit-learn nor matplotlib.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from engine._display import emit_table, format_value

__all__ = ["ResultMixin", "print_frame", "warn_renamed", "frames_card", "scalars"]


def warn_renamed(owner: str, old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``owner``'s ``old`` name is deprecated in favour of ``new`` (removed in the next release)."""
    warnings.warn(f"{owner}: '{old}' is deprecated and will be removed in the next release; use '{new}'",
                  DeprecationWarning, stacklevel=stacklevel)


def _fmt(v: Any, decimals: int) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return format_value(v, "", decimals)


def print_frame(df: pl.DataFrame, title: str | None = None, decimals: int = 4) -> None:
    """Print a polars DataFrame as a table (rich, CSV or JSON: the CLI's ``--format``), floats to
    ``decimals`` significant digits, large amounts with thousands separators (:mod:`engine._display`)."""
    emit_table(title, df.columns, list(df.iter_rows()), [df.schema[c].is_numeric() for c in df.columns],
               digits=decimals)


def _html_card(name: str, subtitle: str, sections: list[tuple[str, Mapping[str, Any]]]) -> str:
    import html  # here: notebooks only (html.entities is large; the CLI never needs it)

    parts = [f'<div class="fentan-repr"><strong>{html.escape(name)}</strong>']
    if subtitle:
        parts.append(f" <em>{html.escape(subtitle)}</em>")
    for title, items in sections:
        if not items:
            continue
        rows = "".join(f"<tr><th style=\"text-align:left\">{html.escape(str(k))}</th>"
                       f"<td style=\"text-align:left\">{html.escape(_fmt(v, 6) if not isinstance(v, str) else v)}</td></tr>"
                       for k, v in items.items())
        parts.append(f"<table><caption style=\"text-align:left\">{html.escape(title)}</caption>{rows}</table>")
    parts.append("</div>")
    return "".join(parts)


def scalars(d: Mapping[str, Any], limit: int = 12) -> dict[str, Any]:
    """The first ``limit`` scalar entries (numbers, text, dates) of ``d``: key numbers for a card."""
    import datetime as dt

    ok = (int, float, str, bool, np.integer, np.floating, np.bool_, dt.date)
    return dict(list(((str(k), v) for k, v in d.items() if isinstance(v, ok)))[:limit])


def frames_card(obj: Any, numbers: Mapping[str, Any], subtitle: str = "") -> str:
    """Compact escaped HTML card of a result object: class name, key ``numbers``, the shapes of
    its polars frames (dataclass fields)."""
    import dataclasses

    shapes: dict[str, Any] = {}
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, pl.DataFrame):
                shapes[f.name] = f"{v.height:,} rows x {v.width} columns"
            elif isinstance(v, pl.LazyFrame):
                shapes[f.name] = "lazy frame"
    return _html_card(type(obj).__name__, subtitle, [("key numbers", numbers), ("tables", shapes)])


class ResultMixin:
    """``summary`` / ``print_summary`` / ``_repr_html_`` for result objects (dataclasses).

    Subclasses define the :attr:`summary` property and may override :meth:`_key_numbers`.
    """

    @property
    def summary(self) -> pl.DataFrame:  # pragma: no cover - every result overrides it
        """The result as a table."""
        raise NotImplementedError

    def print_summary(self, decimals: int = 4) -> None:
        """Print :attr:`summary` as a table, floats to ``decimals`` significant digits."""
        print_frame(self.summary, title=type(self).__name__, decimals=decimals)

    def _key_numbers(self) -> dict[str, Any]:
        """Headline numbers for the HTML card (override)."""
        return {}

    def _repr_html_(self) -> str:
        """Compact HTML card: class name, table shapes, key numbers."""
        return frames_card(self, self._key_numbers())
