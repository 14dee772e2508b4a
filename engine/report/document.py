"""A self-contained HTML report: sections of text, tables and embedded PNG figures.

Figures are matplotlib figures rendered to PNG and embedded as base64 data URIs,
so the file opens offline with no external resource. Rendering is deterministic
(fixed DPI, no timestamps in PNG metadata).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine.report.render import NO_PLOTS, figure_to_data_uri, render_chart

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans CJK SC',sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#16324f;color:#fff;padding:22px 36px}
header h1{margin:0;font-size:26px} header p{margin:6px 0 0;opacity:.85}
nav{background:#fff;border-bottom:1px solid #dde2e8;padding:8px 36px;position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;row-gap:4px}
nav a{margin-right:14px;color:#16324f;text-decoration:none;font-size:14px;white-space:nowrap}
main{max-width:1180px;margin:0 auto;padding:12px 36px 48px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;margin:18px 0;padding:14px 22px}
h2{font-size:20px;margin:6px 0 10px;color:#16324f}
p.note{color:#4a5868;font-size:14px;line-height:1.5}
table{border-collapse:collapse;font-size:13px;margin:8px 0 14px;display:block;overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 10px;text-align:right;white-space:nowrap}
th{background:#eef2f6;position:sticky;top:0} td.s,th.s{text-align:left}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{flex:1 1 200px;border:1px solid #dde2e8;border-radius:8px;padding:10px 14px;background:#fbfcfd}
.kpi .v{font-size:22px;font-weight:600;color:#16324f} .kpi .l{font-size:13px;color:#4a5868}
.flag{color:#b3261e;font-weight:600}
footer{color:#6b7785;font-size:12px;text-align:center;padding:20px}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return "NaN"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1e6:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:,.1f}"
        if a >= 0.01:
            return f"{v:.3f}"
        return f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def html_table(df: pl.DataFrame, max_rows: int = 40) -> str:
    """Render a polars frame as an HTML table (first ``max_rows`` rows, a note if cut)."""
    cols = df.columns
    num = {c for c, t in df.schema.items() if t.is_numeric()}
    head = "".join(f'<th class="{"" if c in num else "s"}">{html.escape(c)}</th>' for c in cols)
    rows = []
    for r in df.head(max_rows).iter_rows():
        cells = "".join(
            f'<td class="{"" if c in num else "s"}">{html.escape(_fmt(v))}</td>' for c, v in zip(cols, r, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    more = f'<p class="note">first {max_rows} of {df.height:,} rows</p>' if df.height > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


@dataclass
class Section:
    """One report section: an anchor id, a title and HTML parts in order."""

    id: str
    title: str
    parts: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Accumulates sections and renders one self-contained HTML page."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, id: str, title: str) -> Section:
        """Start a new section and return it."""
        s = Section(id, title)
        self.sections.append(s)
        return s

    @staticmethod
    def text(sec: Section, text: str) -> None:
        """Add a paragraph of (escaped) explanatory text."""
        sec.parts.append(f'<p class="note">{html.escape(text)}</p>')

    @staticmethod
    def table(sec: Section, df: pl.DataFrame, max_rows: int = 40) -> None:
        """Add a table."""
        sec.parts.append(html_table(df, max_rows))

    @staticmethod
    def figure(sec: Section, fig: Any, alt: str) -> None:
        """Add a matplotlib figure as an embedded PNG (``None``: the plot extra is missing, say so)."""
        if fig is None:
            sec.parts.append(f'<p class="note">[figure omitted: {html.escape(alt)}. {NO_PLOTS}]</p>')
            return
        sec.parts.append(f'<img alt="{html.escape(alt)}" src="{figure_to_data_uri(fig)}">')

    @staticmethod
    def chart(sec: Section, chart: Any) -> None:
        """Add a :class:`~engine.report.chart.Chart`, rendered by :func:`engine.report.render.render_chart`."""
        sec.parts.append(render_chart(chart))

    @staticmethod
    def kpis(sec: Section, items: list[tuple[str, str, bool]]) -> None:
        """Add headline numbers: (label, value, flagged)."""
        cards = "".join(
            f'<div class="kpi"><div class="v{" flag" if flag else ""}">{html.escape(v)}</div>'
            f'<div class="l">{html.escape(label)}</div></div>'
            for label, v, flag in items
        )
        sec.parts.append(f'<div class="kpis">{cards}</div>')

    def render(self) -> str:
        """The complete HTML document."""
        nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "".join(
            f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{"".join(s.parts)}</section>' for s in self.sections
        )
        return (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main>"
            "<footer>fentan: actuarial pricing for ex-post cost-sharing pools</footer></body></html>\n"
        )
