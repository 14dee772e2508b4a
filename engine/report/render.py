"""Render a :class:`~engine.report.chart.Chart` into the report's HTML.

``render_chart(chart, mode)`` returns an HTML fragment. The static renderer (``mode="static"``,
``--static``: for print and PDF) draws the chart with matplotlib (the ``plot`` extra) and embeds a
PNG; without matplotlib it returns a note naming the extra. The interactive renderer
(:func:`engine.report.interactive.render_interactive`, the ``report`` extra) is used when plotly is
installed; without it the static PNG is drawn. Rendering is deterministic (fixed DPI, no PNG metadata).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import html
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine._optional import available
from engine.report.chart import Chart, Series, bar_labels
from engine.report.i18n import t

#: said in place of each figure when matplotlib (the ``plot`` extra) is not installed
NO_PLOTS = "Figures need matplotlib: pip install 'fentan[plot]'"

#: fonts with Chinese glyphs tried in order as the static figures' fallback after matplotlib's default
#: (Debian/Ubuntu ``fonts-noto-cjk`` gives the first; macOS and Windows the last ones)
CJK_FONTS: tuple[str, ...] = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
                              "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", "SimHei")


#: lower-case parts of the file names of the fonts in :data:`CJK_FONTS`
_CJK_FILES: tuple[str, ...] = ("cjk", "sourcehansans", "notosanssc", "wqy", "pingfang", "msyh", "simhei")


@functools.cache
def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib's font manager knows, or None (looked up once, silently)."""
    from matplotlib import font_manager

    def first() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((n for n in CJK_FONTS if n in names), None)

    found = first()
    if found is None:
        # matplotlib's font list is cached from its first run: a font installed since then is not in it.
        # Add the system's CJK font files (by their usual file names) to this process's list and look again.
        for path in font_manager.findSystemFonts():
            if any(k in Path(path).name.lower() for k in _CJK_FILES):
                with contextlib.suppress(Exception):  # an unreadable font file is skipped, as matplotlib does
                    font_manager.fontManager.addfont(path)
        found = first()
    return found


@contextlib.contextmanager
def _fonts() -> Iterator[None]:
    """The report's figures' fonts: text falls back to :func:`cjk_font` for glyphs the default
    font lacks (Chinese labels, and plan or factor names written in Chinese in any language).

    No font is named that is not installed, so matplotlib never warns about a missing family; without a CJK
    font the Chinese report says so once (:func:`engine.report.document.Report.render`).
    """
    from engine._optional import pyplot

    plt = pyplot()
    cjk = cjk_font()
    # font fallback (matplotlib >= 3.6): glyph by glyph, the default family first
    rc = {} if cjk is None else {"font.family": [*plt.rcParamsDefault["font.family"], cjk]}
    with plt.rc_context(rc):
        yield


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it."""
    from engine._optional import pyplot
    plt = pyplot()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _heatmap(ax: Any, s: Series) -> None:
    z = np.asarray([[np.nan if v is None else v for v in row] for row in (s.z or [])], dtype=float)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    lim = lim or 1.0
    im = ax.imshow(z, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(s.x)), [str(v) for v in s.x], rotation=30 if len(s.x) > 4 else 0)
    ax.set_yticks(range(len(s.y)), [str(v) for v in s.y])
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax)
    if s.values and z.size <= 400:
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, f"{v:,.1f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(v) > 0.55 * lim else "black")


def _draw_series(ax: Any, s: Series, color: str, slot: tuple[int, int] = (0, 1)) -> None:
    """Draw one series; ``slot`` = (i, n): the i-th of n horizontal bar series, drawn side by side."""
    ls = "--" if s.dash else "-"
    x = list(s.x)
    if s.kind == "line":
        ax.plot(x, s.y, ls, color=color, label=s.name, marker="o" if s.markers else None, ms=4)
    elif s.kind == "step":
        ax.step(x, s.y, ls, where="post", color=color, label=s.name)
    elif s.kind == "markers":
        ax.plot(x, s.y, "o", ms=3, color=color, label=s.name)
    elif s.kind == "bar":
        bars = ax.bar(x, s.y, alpha=0.45, color=color, label=s.name)
        if s.values:
            ax.bar_label(bars, labels=bar_labels(s.y), fontsize=7)
    elif s.kind == "hbar":
        i, n = slot
        if n > 1:  # grouped: each category's bars side by side, none hidden behind another
            pos = np.arange(len(s.y)) - 0.4 + (i + 0.5) * 0.8 / n
            bars = ax.barh(pos, list(s.x), height=0.8 / n, color=color, label=s.name)
            ax.set_yticks(np.arange(len(s.y)), [str(v) for v in s.y])
        else:
            bars = ax.barh(list(s.y), list(s.x), color=color, label=s.name)
        if s.values:
            ax.bar_label(bars, labels=bar_labels(s.x), fontsize=7, padding=2)
    elif s.kind == "band":
        ax.fill_between(x, list(s.lower or []), list(s.upper or []), alpha=0.25, color=color, label=s.name)
        if len(s.y):
            ax.plot(x, s.y, color=color)
    elif s.kind == "errorbars":
        y = np.asarray(s.y, dtype=float)
        err = np.vstack([y - np.asarray(s.lower, dtype=float), np.asarray(s.upper, dtype=float) - y])
        ax.errorbar(x, y, yerr=err, fmt="o", ms=3, color=color, label=s.name)
    elif s.kind == "heatmap":
        _heatmap(ax, s)


def _size(chart: Chart) -> tuple[float, float]:
    """Figure size in inches: taller for many categories (horizontal bars, heatmap rows)."""
    rows = max((len(s.y) for s in chart.series if s.kind in ("hbar", "heatmap")), default=0)
    return 9.0, max(4.2, 0.42 * rows + 1.8)


def chart_figure(chart: Chart) -> Any:
    """Draw ``chart`` as a matplotlib figure (needs the ``plot`` extra)."""
    from engine._optional import pyplot, require

    require("matplotlib", "the report's figures").use("Agg")
    plt = pyplot()
    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    fig, ax = plt.subplots(figsize=_size(chart))
    ax2 = ax.twinx() if any(s.axis == "y2" for s in chart.series) else None
    hbars = [i for i, s in enumerate(chart.series) if s.kind == "hbar"]
    for i, s in enumerate(chart.series):
        slot = (hbars.index(i), len(hbars)) if i in hbars else (0, 1)
        _draw_series(ax2 if (s.axis == "y2" and ax2 is not None) else ax, s, chart.color_of(i), slot)
    if any(s.kind == "hbar" for s in chart.series):
        ax.invert_yaxis()
    if chart.y_log:
        ax.set_yscale("symlog", linthresh=0.05)
    if chart.y_min is not None:
        ax.set_ylim(bottom=chart.y_min)
    if any(isinstance(v, (dt.date, dt.datetime)) for s in chart.series for v in list(s.x)[:1]):
        fig.autofmt_xdate()
    ax.set_xlabel(chart.x_label)
    ax.set_ylabel(chart.y_label)
    if ax2 is not None:
        ax2.set_ylabel(chart.y2_label or "")
        ax2.grid(False)
    ax.set_title(chart.title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if ax2 is not None:
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles and not all(s.kind == "heatmap" for s in chart.series):
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()
    return fig


def render_static(chart: Chart) -> str:
    """An HTML ``<figure>`` with the chart as an embedded PNG and its caption."""
    cap = f"<figcaption>{html.escape(chart.caption)}</figcaption>" if chart.caption else ""
    if not available("matplotlib"):
        return f'<p class="note">[{html.escape(t("figure omitted"))}: {html.escape(chart.title)}. {NO_PLOTS}]</p>'
    with _fonts():  # ticks and labels are laid out when the figure is drawn: the fonts hold until then
        uri = figure_to_data_uri(chart_figure(chart))
    return f'<figure><img alt="{html.escape(chart.title)}" src="{uri}">{cap}</figure>'


def render_chart(chart: Chart, mode: str = "static", ident: str = "fig") -> str:
    """The HTML fragment of one chart: ``mode="interactive"`` (plotly, falling back to the static PNG
    when plotly is not installed) or ``"static"`` (matplotlib PNG). ``ident``: the element id of an
    interactive chart, unique in the page."""
    if mode == "interactive" and available("plotly"):
        from engine.report.interactive import render_interactive

        return render_interactive(chart, ident)
    return render_static(chart)
