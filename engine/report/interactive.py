"""Interactive rendering of a :class:`~engine.report.chart.Chart`: a plotly figure (hover, zoom).

:func:`render_interactive` returns a ``<figure>`` with an empty ``div.plot`` and the figure as JSON
in a ``<script type="application/json">``; the page's script (:data:`engine.report.document`)
draws every such div with plotly.js, which the report inlines once (:func:`engine._optional.plotly_js`,
the ``report`` extra: the JavaScript shipped inside the plotly package, no CDN). The JSON is built
here from the chart specification, not through plotly's Python objects, so it is small and
byte-identical for the same chart (non-finite numbers become ``null``, dates ISO text).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Sequence
from typing import Any

from engine.report.chart import Chart, Series, bar_labels

#: negative blue, zero white, positive red (matplotlib's RdBu_r, as the static figures)
DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]

#: numbers on hover: four significant digits, thousands separators (d3-format)
HOVER = ",.4~g"

#: longest axis title line before it wraps (a narrow screen shows about this many characters)
WRAP = 46


def _value(v: Any) -> Any:
    """One JSON-ready value: finite floats, ints, text and ISO dates; NaN and infinities are ``null``."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, int):
        return v
    return str(v)


def _values(seq: Sequence[Any] | None) -> list[Any]:
    return [_value(v) for v in (seq if seq is not None else [])]


def wrap(text: str, width: int = WRAP) -> str:
    """Break ``text`` into lines of at most ``width`` characters at spaces (plotly's ``<br>``)."""
    if len(text) <= width or " " not in text:
        return text
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(s: Series, color: str, axis: str, floor: float | None) -> list[dict[str, Any]]:
    """A filled band between ``lower`` and ``upper``; on a log axis (``floor``) a bound <= 0 is drawn at ``floor``."""
    x = _values(s.x)
    lower = _values(s.lower)
    if floor is not None:
        lower = [floor if (v is not None and v <= 0) else v for v in lower]
    base = {"type": "scatter", "x": x, "yaxis": axis, "legendgroup": s.name, "hoverinfo": "x+y"}
    out = [
        {**base, "y": lower, "mode": "lines", "line": {"width": 0, "color": color}, "showlegend": False,
         "name": s.name},
        {**base, "y": _values(s.upper), "mode": "lines", "line": {"width": 0, "color": color}, "fill": "tonexty",
         "fillcolor": _rgba(color, 0.25), "name": s.name},
    ]
    if len(s.y):
        out.append({**base, "y": _values(s.y), "mode": "lines", "line": {"color": color}, "showlegend": False,
                    "name": s.name})
    return out


def _trace(s: Series, color: str, floor: float | None = None) -> list[dict[str, Any]]:
    """The plotly traces of one series."""
    axis = "y2" if s.axis == "y2" else "y"
    dash = "dash" if s.dash else "solid"
    common = {"name": s.name, "yaxis": axis}
    if s.kind in ("line", "step"):
        shape = "hv" if s.kind == "step" else "linear"
        return [{**common, "type": "scatter", "mode": "lines+markers" if s.markers else "lines", "x": _values(s.x),
                 "y": _values(s.y), "line": {"color": color, "dash": dash, "shape": shape},
                 "marker": {"color": color, "size": 7}}]
    if s.kind == "markers":
        return [{**common, "type": "scatter", "mode": "markers", "x": _values(s.x), "y": _values(s.y),
                 "marker": {"color": color, "size": 6}}]
    if s.kind in ("bar", "hbar"):
        horizontal = s.kind == "hbar"
        t = {**common, "type": "bar", "x": _values(s.x), "y": _values(s.y), "marker": {"color": color},
             "opacity": 1.0 if horizontal else 0.55}
        if horizontal:
            t["orientation"] = "h"
        if s.values:
            t.update(text=bar_labels(s.x if horizontal else s.y), textposition="auto")
        return [t]
    if s.kind == "band":
        return _band(s, color, axis, floor)
    if s.kind == "errorbars":
        y = [_value(v) for v in s.y]
        hi = [None if (u is None or c is None) else _value(u) - c for u, c in zip(_values(s.upper), y, strict=True)]
        lo = [None if (w is None or c is None) else c - _value(w) for w, c in zip(_values(s.lower), y, strict=True)]
        return [{**common, "type": "scatter", "mode": "markers", "x": _values(s.x), "y": y,
                 "marker": {"color": color, "size": 7},
                 "error_y": {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": color}}]
    if s.kind == "heatmap":
        t = {"type": "heatmap", "name": s.name, "x": [str(v) for v in s.x], "y": [str(v) for v in s.y],
             "z": [_values(row) for row in (s.z or [])], "colorscale": DIVERGING, "zmid": 0,
             "hovertemplate": "%{y} / %{x}: %{z:,.2f}<extra></extra>", "colorbar": {"thickness": 12}}
        if s.values:
            t["texttemplate"] = "%{z:,.1f}"
        return [t]
    raise ValueError(f"unknown series kind {s.kind!r}")  # pragma: no cover (Literal-typed)


def _log_floor(chart: Chart) -> float | None:
    """The bottom of a log axis: half the smallest positive value plotted (zeros cannot be drawn on it)."""
    vals = [v for s in chart.series for seq in (s.y, s.lower or [], s.upper or []) for v in _values(seq)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0]
    return min(vals) / 2 if vals else None


def figure_json(chart: Chart) -> dict[str, Any]:
    """The plotly figure (``data``, ``layout``) of ``chart``: axis titles with units, legend below."""
    floor = _log_floor(chart) if chart.y_log else None
    data = [tr for i, s in enumerate(chart.series) for tr in _trace(s, chart.color_of(i), floor)]
    heat = all(s.kind == "heatmap" for s in chart.series)
    hbar = any(s.kind == "hbar" for s in chart.series)
    yaxis: dict[str, Any] = {"title": {"text": wrap(chart.y_label)}, "automargin": True, "zeroline": True,
                             "hoverformat": HOVER}
    if chart.y_log:
        yaxis["type"] = "log"
    if chart.y_min is not None:
        yaxis["rangemode"] = "tozero" if chart.y_min == 0 else "normal"
    if hbar or heat:
        yaxis["autorange"] = "reversed"
        yaxis["type"] = "category"
    xaxis: dict[str, Any] = {"title": {"text": wrap(chart.x_label)}, "automargin": True}
    if chart.x_categorical:
        xaxis["type"] = "category"
    elif not any(isinstance(v, (dt.date, dt.datetime)) for s in chart.series for v in list(s.x)[:1]):
        xaxis["hoverformat"] = HOVER
    layout: dict[str, Any] = {
        "xaxis": xaxis, "yaxis": yaxis, "hovermode": "closest",
        # several bar series side by side (none hidden behind another); one bar series over lines and bands
        "barmode": "group" if sum(s.kind in ("bar", "hbar") for s in chart.series) > 1 else "overlay",
        "margin": {"l": 60, "r": 20, "t": 12, "b": 40}, "font": {"size": 12},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "xref": "container", "y": 0, "yanchor": "bottom",
                   "yref": "container"},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
    }
    if any(s.axis == "y2" for s in chart.series):
        layout["yaxis2"] = {"title": {"text": wrap(chart.y2_label or "")}, "overlaying": "y", "side": "right",
                            "hoverformat": HOVER,
                            "showgrid": False, "automargin": True, "rangemode": "tozero"}
    return {"data": data, "layout": layout}


def render_interactive(chart: Chart, ident: str = "fig") -> str:
    """An HTML ``<figure>``: the chart's title, a ``div.plot`` drawn by plotly.js from embedded JSON, the caption.

    Parameters
    ----------
    chart : the chart specification.
    ident : the div's element id, unique in the page (the JSON is in ``<script id="{ident}-data">``).
    """
    payload = json.dumps(figure_json(chart), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")  # never closes the script element
    cap = f"<figcaption>{html.escape(chart.caption)}</figcaption>" if chart.caption else ""
    title = html.escape(chart.title)
    rows = max((len(s.y) for s in chart.series if s.kind in ("hbar", "heatmap")), default=0)
    tall = f' style="height:{28 * rows + 160}px"' if rows > 10 else ""  # one bar or cell row stays readable
    return (f'<figure class="chart"><div class="ct">{title}</div>'
            f'<div class="plot" id="{ident}"{tall} role="img" aria-label="{title}"></div>'
            f'<script type="application/json" id="{ident}-data">{payload}</script>{cap}</figure>')
