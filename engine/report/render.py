"""Render a :class:`~engine.report.chart.Chart` into the report's HTML.

``render_chart(chart)`` returns an HTML fragment. The static renderer draws the chart
with matplotlib (the ``plot`` extra) and embeds a PNG; without matplotlib it returns a
note naming the extra. Rendering is deterministic (fixed DPI, no PNG metadata).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from engine._optional import available
from engine.report.chart import Chart, Series

#: said in place of each figure when matplotlib (the ``plot`` extra) is not installed
NO_PLOTS = "Figures need matplotlib: pip install 'fentan[plot]'"


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it."""
    from engine._optional import pyplot
    plt = pyplot()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _draw_series(ax: Any, s: Series, i: int) -> None:
    color = f"C{i % 10}"
    ls = "--" if s.dash else "-"
    x = list(s.x)
    if s.kind == "line":
        ax.plot(x, s.y, ls, color=color, label=s.name)
    elif s.kind == "step":
        ax.step(x, s.y, ls, where="post", color=color, label=s.name)
    elif s.kind == "markers":
        ax.plot(x, s.y, "o", ms=3, color=color, label=s.name)
    elif s.kind == "bar":
        ax.bar(x, s.y, alpha=0.45, color=color, label=s.name)
    elif s.kind == "hbar":
        ax.barh(list(s.y), list(s.x), color=color, label=s.name)
        ax.invert_yaxis()
    elif s.kind == "band":
        ax.fill_between(x, list(s.lower or []), list(s.upper or []), alpha=0.25, color=color, label=s.name)
        if len(s.y):
            ax.plot(x, s.y, color=color)
    elif s.kind == "errorbars":
        y = np.asarray(s.y, dtype=float)
        err = np.vstack([y - np.asarray(s.lower, dtype=float), np.asarray(s.upper, dtype=float) - y])
        ax.errorbar(x, y, yerr=err, fmt="o", ms=3, color=color, label=s.name)
    elif s.kind == "heatmap":
        z = np.asarray(s.z, dtype=float)
        lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        im = ax.imshow(z, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(len(x)), [str(v) for v in x])
        ax.set_yticks(range(len(s.y)), [str(v) for v in s.y])
        ax.grid(False)
        ax.figure.colorbar(im, ax=ax)


def chart_figure(chart: Chart) -> Any:
    """Draw ``chart`` as a matplotlib figure (needs the ``plot`` extra)."""
    from engine.report.figures import _plt

    plt = _plt()  # the report's style, whatever was drawn before: same bytes in any order
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax2 = ax.twinx() if any(s.axis == "y2" for s in chart.series) else None
    for i, s in enumerate(chart.series):
        _draw_series(ax2 if (s.axis == "y2" and ax2 is not None) else ax, s, i)
    if chart.y_log:
        ax.set_yscale("symlog", linthresh=0.05)
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
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def render_static(chart: Chart) -> str:
    """An HTML ``<figure>`` with the chart as an embedded PNG and its caption."""
    cap = f"<figcaption>{html.escape(chart.caption)}</figcaption>" if chart.caption else ""
    if not available("matplotlib"):
        return f'<p class="note">[figure omitted: {html.escape(chart.title)}. {NO_PLOTS}]</p>'
    uri = figure_to_data_uri(chart_figure(chart))
    return f'<figure><img alt="{html.escape(chart.title)}" src="{uri}">{cap}</figure>'


def render_chart(chart: Chart) -> str:
    """The HTML fragment of one chart (static PNG for now)."""
    return render_static(chart)
