"""Library-neutral chart specifications for the report.

A section builds a :class:`Chart` (data, labels with units, series); a renderer turns it
into an interactive figure (the report's plotting library, inlined) or a static PNG
(matplotlib, ``--static``). Tests check a chart's content (labels, units, series, data)
without rendering it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

#: default series colours (matplotlib's tab10), shared by the static and the interactive renderer
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                            "#bcbd22", "#17becf")

SeriesKind = Literal["line", "markers", "bar", "hbar", "band", "errorbars", "step", "heatmap"]


@dataclass(frozen=True)
class Series:
    """One plotted series.

    Parameters
    ----------
    name : str
        Legend entry (translated by the caller).
    x, y : sequence
        Coordinates; for ``kind="band"`` ``y`` is the centre (may be empty) and
        ``lower``/``upper`` the band.
    kind : {"line", "markers", "bar", "hbar", "band", "errorbars", "step", "heatmap"}
        ``"hbar"``: horizontal bars (``x`` the values, ``y`` the category labels).
        ``"heatmap"``: ``x`` column labels, ``y`` row labels, ``z`` the grid (rows x columns).
    lower, upper : sequence, optional
        Interval bounds (bands and error bars).
    axis : {"y", "y2"}
        ``"y2"``: plotted against the secondary y axis (e.g. exposure bars).
    dash : bool
        Dashed line (references, caps).
    z : sequence of sequences, optional
        The grid of a heatmap.
    color : str, optional
        A ``#rrggbb`` colour; default: the series' place in :data:`PALETTE`.
    values : bool
        Write the values on the bars or heatmap cells.
    markers : bool
        Mark the points of a line (a short series, e.g. one point per K).
    """

    name: str
    x: Sequence[object]
    y: Sequence[object]
    kind: SeriesKind = "line"
    lower: Sequence[float] | None = None
    upper: Sequence[float] | None = None
    axis: Literal["y", "y2"] = "y"
    dash: bool = False
    z: Sequence[Sequence[float]] | None = None
    color: str | None = None
    values: bool = False
    markers: bool = False


@dataclass(frozen=True)
class Chart:
    """One chart (one panel): title, axis labels with units, series and a caption.

    ``x_label``/``y_label`` carry the unit, e.g. ``"claims per 1,000 exposure-years"``.
    ``y_log`` asks for a logarithmic y axis; ``y_min`` fixes the bottom of the y axis (e.g. 0). ``facet`` groups panels that belong together
    (rendered side by side when wide, stacked when narrow).
    """

    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    y2_label: str | None = None
    caption: str = ""
    y_log: bool = False
    y_min: float | None = None
    x_categorical: bool = False
    facet: str | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def series_named(self, name: str) -> Series:
        """The series with this legend name (``KeyError`` if absent)."""
        for s in self.series:
            if s.name == name:
                return s
        raise KeyError(name)

    def color_of(self, i: int) -> str:
        """The colour of the ``i``-th series (its own, else the palette's)."""
        return self.series[i].color or PALETTE[i % len(PALETTE)]


def bar_labels(values: Sequence[object]) -> list[str]:
    """The values written on bars (``Series.values``): two decimals with thousands separators; none on an
    empty or zero bar."""
    return [f"{v:,.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v != 0 else ""
            for v in values]
