"""A self-contained HTML report: sections of text, sortable tables and charts.

One file that opens offline: CSS and a small script inline; charts are either interactive
(plotly.js from the plotly package, inlined once; the ``report`` extra) or PNG data URIs
(matplotlib, ``mode="static"`` for print and PDF). Every table can be sorted (click a header),
filtered (the box above it) and downloaded as CSV (its Parquet column names, unrounded values);
headers show the translated name (:func:`engine.report.i18n.t`) with the column name as tooltip.
Rendering is deterministic: same content, same bytes.
"""

from __future__ import annotations

import html
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine.report.chart import Chart
from engine.report.i18n import current_language, english_of, t
from engine.report.render import render_chart

#: said once in a Chinese report whose PNG figures have no CJK font to draw their Chinese text with
NO_CJK_FONT = ("No font with Chinese characters was found for the static figures: their Chinese text shows as empty "
               "boxes. Install one (Debian: apt-get install fonts-noto-cjk) and run again.")


def _no_cjk_font() -> bool:
    """Whether matplotlib is installed and knows no font of :data:`engine.report.render.CJK_FONTS`."""
    from engine._optional import available
    from engine.report.render import cjk_font

    return available("matplotlib") and cjk_font() is None

#: report modes: interactive plots (plotly) or static PNG figures
MODES: tuple[str, ...] = ("interactive", "static")
#: rows of a table embedded in the page (all of them up to this; the static mode shows STATIC_ROWS)
EMBEDDED_ROWS = 5_000
STATIC_ROWS = 40

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans CJK SC','Noto Sans SC','PingFang SC','Microsoft YaHei',sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#16324f;color:#fff;padding:22px 36px}
header h1{margin:0;font-size:26px} header p{margin:6px 0 0;opacity:.85}
nav{background:#fff;border-bottom:1px solid #dde2e8;padding:8px 36px;position:sticky;top:0;z-index:5;display:flex;flex-wrap:wrap;row-gap:4px}
nav a{margin-right:14px;color:#16324f;text-decoration:none;font-size:14px;white-space:nowrap;max-width:100%;overflow:hidden;text-overflow:ellipsis;display:inline-block;vertical-align:top}
main{max-width:1240px;margin:0 auto;padding:12px 36px 48px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;margin:18px 0;padding:14px 22px;min-width:0}
h2{font-size:20px;margin:6px 0 10px;color:#16324f}
p.note{color:#4a5868;font-size:14px;line-height:1.5}
.tbl{margin:8px 0 14px}
.tools{display:flex;flex-wrap:wrap;gap:8px;align-items:center;font-size:13px;margin-bottom:4px}
.tools input{flex:0 1 220px;padding:3px 6px;border:1px solid #c5ced8;border-radius:4px;font-size:13px;min-width:0}
.tools button{padding:3px 10px;border:1px solid #c5ced8;border-radius:4px;background:#fff;cursor:pointer;font-size:13px}
.tools .count{color:#6b7785}
.box{max-height:520px;overflow:auto;border:1px solid #e6e9ee;border-radius:4px;max-width:100%;width:fit-content}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#eef2f6;position:sticky;top:0;cursor:pointer;user-select:none;white-space:normal;vertical-align:bottom;min-width:3em}
td.w{white-space:normal;min-width:16em;max-width:28em} td.s,th.s{text-align:left}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:10px} th[aria-sort=descending]::after{content:" \\25BC";font-size:10px}
figure{margin:10px 0 16px;min-width:0} figcaption{color:#4a5868;font-size:13px;margin-top:4px}
.ct{font-weight:600;font-size:14px;color:#16324f;margin-bottom:2px}
.plot{width:100%;height:440px}
.facet{display:flex;flex-wrap:wrap;gap:0 24px} .facet>figure{flex:1 1 460px}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{flex:1 1 200px;border:1px solid #dde2e8;border-radius:8px;padding:10px 14px;background:#fbfcfd}
.kpi .v{font-size:22px;font-weight:600;color:#16324f} .kpi .l{font-size:13px;color:#4a5868}
.flag{color:#b3261e;font-weight:600}
footer{color:#6b7785;font-size:12px;text-align:center;padding:20px}
@media (max-width:480px){header{padding:14px 12px} header h1{font-size:20px} nav{padding:6px 12px} nav a{white-space:normal;overflow-wrap:anywhere}
main{padding:6px 6px 32px} section{padding:10px 10px;margin:10px 0} .plot{height:400px} .facet>figure{flex-basis:100%}
.kpi{flex-basis:140px} .kpi .v{font-size:18px} .box{max-height:420px}}
@media print{nav,.tools{display:none} .box{max-height:none;overflow:visible} section{break-inside:avoid-page}}
"""

#: sorting, filtering and CSV download of tables; drawing of the interactive charts (no dependency but plotly.js)
_JS = r"""
(function(){
function val(td){return td.hasAttribute('data-v')?td.getAttribute('data-v'):td.textContent}
function q(v){v=String(v);return /[",\r\n]/.test(v)?'"'+v.replace(/"/g,'""')+'"':v}
document.querySelectorAll('div.tbl').forEach(function(box){
 var table=box.querySelector('table'),tb=table.tBodies[0],rows=[].slice.call(tb.rows),count=box.querySelector('.count');
 var ths=[].slice.call(table.tHead.rows[0].cells);
 box.querySelector('input').addEventListener('input',function(e){
  var s=e.target.value.toLowerCase(),n=0;
  rows.forEach(function(r){var ok=!s||r.textContent.toLowerCase().indexOf(s)>=0;r.style.display=ok?'':'none';if(ok)n++});
  count.textContent=n+' / '+rows.length;
 });
 ths.forEach(function(th,j){th.addEventListener('click',function(){
  var asc=th.getAttribute('aria-sort')!=='ascending',num=!th.classList.contains('s');
  ths.forEach(function(h){h.removeAttribute('aria-sort')});
  th.setAttribute('aria-sort',asc?'ascending':'descending');
  rows.sort(function(a,b){var x=val(a.cells[j]),y=val(b.cells[j]),c;
   if(num){x=parseFloat(x);y=parseFloat(y);x=isNaN(x)?-Infinity:x;y=isNaN(y)?-Infinity:y;c=x<y?-1:(x>y?1:0)}
   else{c=x.localeCompare(y)}
   return asc?c:-c});
  rows.forEach(function(r){tb.appendChild(r)});
 })});
 box.querySelector('button').addEventListener('click',function(){
  var lines=[ths.map(function(h){return q(h.getAttribute('data-col'))}).join(',')];
  rows.forEach(function(r){lines.push([].map.call(r.cells,function(td){return q(val(td))}).join(','))});
  var a=document.createElement('a');
  a.href=URL.createObjectURL(new Blob(['\ufeff'+lines.join('\r\n')+'\r\n'],{type:'text/csv;charset=utf-8'}));
  a.download=box.getAttribute('data-name')+'.csv';document.body.appendChild(a);a.click();a.remove();
 });
});
if(typeof Plotly==='undefined')return;
var narrow=window.innerWidth<=480;
document.querySelectorAll('div.plot').forEach(function(div){
 var fig=JSON.parse(document.getElementById(div.id+'-data').textContent),lay=fig.layout;
 if(narrow){lay.font={size:10};lay.margin={l:44,r:8,t:8,b:40};lay.legend.font={size:10}}
 Plotly.newPlot(div,fig.data,lay,{responsive:true,displaylogo:false,modeBarButtonsToRemove:['lasso2d','select2d']});
});
})();
"""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return t("True") if v else t("False")
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


def _th(col: str, numeric: bool, keep: Collection[str]) -> str:
    cls = "" if numeric else "s"
    en = english_of(col)  # a header built with t(): its English name is the column's id in every language
    shown = col if col in keep else t(en)
    text = html.escape(shown).replace("_", "_<wbr>")  # long column names break after an underscore
    return f'<th class="{cls}" data-col="{html.escape(en)}" title="{html.escape(en)}">{text}</th>'


def _td(v: Any, numeric: bool) -> str:
    if isinstance(v, bool):  # shown translated, downloaded as written
        return f'<td class="s" data-v="{str(v).lower()}">{html.escape(_fmt(v))}</td>'
    if not numeric:
        text = _fmt(v)
        cls = "s w" if len(text) > 30 else "s"  # a long text (rule, note) wraps in its own column
        return f'<td class="{cls}">{html.escape(text)}</td>'
    raw = "" if v is None or (isinstance(v, float) and v != v) else repr(v) if isinstance(v, float) else str(v)
    return f'<td data-v="{raw}">{html.escape(_fmt(v))}</td>'


def html_table(df: pl.DataFrame, max_rows: int = STATIC_ROWS, name: str = "table", keep: Collection[str] = ()) -> str:
    """A polars frame as a sortable, filterable table with a CSV download (first ``max_rows`` rows, a note if cut).

    The displayed headers are translated (:func:`~engine.report.i18n.t`); ``data-col`` keeps the column
    name, which the CSV download uses with the unrounded values (``data-v``). ``name``: the CSV file's name;
    ``keep``: columns named by the user (factors), shown as written.
    """
    cols = df.columns
    num = [t_.is_numeric() for t_ in df.schema.values()]
    head = "".join(_th(c, n, keep) for c, n in zip(cols, num, strict=True))
    rows = "".join("<tr>" + "".join(_td(v, n) for v, n in zip(r, num, strict=True)) + "</tr>"
                   for r in df.head(max_rows).iter_rows())
    shown = min(df.height, max_rows)
    more = (f'<p class="note">{html.escape(t("first {n} of {total} rows", n=max_rows, total=f"{df.height:,}"))}</p>'
            if df.height > max_rows else "")
    tools = (f'<div class="tools"><input type="search" placeholder="{html.escape(t("filter rows"))}" '
             f'aria-label="{html.escape(t("filter rows"))}"><button type="button">{html.escape(t("download CSV"))}'
             f'</button><span class="count">{shown} / {shown}</span></div>')
    return (f'<div class="tbl" data-name="{html.escape(name)}">{tools}<div class="box"><table><thead><tr>{head}</tr>'
            f"</thead><tbody>{rows}</tbody></table></div>{more}</div>")


@dataclass
class _Table:
    df: pl.DataFrame
    max_rows: int | None
    keep: tuple[str, ...] = ()


def _facets(parts: list[Any]) -> list[Any]:
    """Consecutive charts of one ``facet`` (added one by one with :meth:`Report.chart`) as one group of panels."""
    out: list[Any] = []
    for p in parts:
        facet = getattr(p, "facet", None)
        prev = out[-1] if out else None
        if facet is not None and isinstance(prev, list) and prev and getattr(prev[-1], "facet", None) == facet:
            prev.append(p)
        elif facet is not None and isinstance(prev, Chart) and prev.facet == facet:
            out[-1] = [prev, p]
        else:
            out.append(list(p) if isinstance(p, list) else p)
    return out


@dataclass
class Section:
    """One report section: an anchor id, a title and its parts in order (HTML, tables, charts)."""

    id: str
    title: str
    parts: list[Any] = field(default_factory=list)


@dataclass
class Report:
    """Accumulates sections and renders one self-contained HTML page.

    ``mode``: ``"interactive"`` (plotly charts, when the ``report`` extra is installed; else static
    PNG figures and a note saying so) or ``"static"`` (PNG figures, for print and PDF). The page's
    language is the one in force when :meth:`render` runs (:func:`engine.report.i18n.use_language`).
    """

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    mode: str = "interactive"

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
    def table(sec: Section, df: pl.DataFrame, max_rows: int | None = None, keep: Collection[str] = ()) -> None:
        """Add a table (every row up to :data:`EMBEDDED_ROWS`; :data:`STATIC_ROWS` in the static mode).

        Headers are translated, except the columns in ``keep`` (names the user wrote, e.g. factors).
        """
        sec.parts.append(_Table(df, max_rows, tuple(keep)))

    @staticmethod
    def chart(sec: Section, chart: Chart) -> None:
        """Add a :class:`~engine.report.chart.Chart`, drawn in the report's mode (:func:`engine.report.render.render_chart`).

        Consecutive charts with the same ``facet`` are shown side by side (stacked when narrow).
        """
        sec.parts.append(chart)

    @staticmethod
    def charts(sec: Section, charts: list[Chart]) -> None:
        """Add panels that belong together (side by side when wide, stacked when narrow)."""
        sec.parts.append(list(charts))

    @staticmethod
    def kpis(sec: Section, items: list[tuple[str, str, bool]]) -> None:
        """Add headline numbers: (label, value, flagged)."""
        cards = "".join(
            f'<div class="kpi"><div class="v{" flag" if flag else ""}">{html.escape(v)}</div>'
            f'<div class="l">{html.escape(label)}</div></div>'
            for label, v, flag in items
        )
        sec.parts.append(f'<div class="kpis">{cards}</div>')

    def _part(self, sec: Section, part: Any, counter: list[int]) -> str:
        if isinstance(part, str):
            return part
        if isinstance(part, list):
            return '<div class="facet">' + "".join(self._part(sec, c, counter) for c in part) + "</div>"
        counter[0] += 1
        ident = f"{sec.id}-{counter[0]}"
        if isinstance(part, _Table):
            limit = part.max_rows or (STATIC_ROWS if self.mode == "static" else EMBEDDED_ROWS)
            return html_table(part.df, limit, name=ident, keep=part.keep)
        return render_chart(part, self.mode, ident)

    def render(self) -> str:
        """The complete HTML document."""
        from engine._optional import available

        if self.mode not in MODES:
            raise ValueError(f"report mode {self.mode!r} is not one of {', '.join(MODES)}")
        bodies = []
        for s in self.sections:
            counter = [0]
            parts = "".join(self._part(s, p, counter) for p in _facets(s.parts))
            bodies.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{parts}</section>')
        body = "".join(bodies)
        interactive = 'class="plot"' in body
        script = ""
        if interactive:
            from engine._optional import plotly_js

            script = f"<script>{plotly_js()}</script>"
        elif self.mode == "interactive" and not available("plotly") and "<figure>" in body:
            note = t("Interactive plots need plotly (pip install 'fentan[report]'); the figures are static images.")
            body = f'<p class="note">{html.escape(note)}</p>' + body
        if current_language() == "zh" and "<figure>" in body and _no_cjk_font():
            body = f'<p class="note">{html.escape(t(NO_CJK_FONT))}</p>' + body
        nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in self.sections)
        lang = "zh-CN" if current_language() == "zh" else "en"
        return (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>{script}</head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main>"
            f"<footer>{html.escape(t('fentan: actuarial pricing for ex-post cost-sharing pools'))}</footer>"
            f"<script>{_JS}</script></body></html>\n"
        )
