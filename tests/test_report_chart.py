"""Chart specifications and their static rendering: labels, units and series survive rendering."""

import pytest

from engine.report.chart import Chart, Series
from engine.report.render import chart_figure, render_chart

pytest.importorskip("matplotlib")


def _chart() -> Chart:
    return Chart(
        "rate by age", "attained age (years)", "claims per 1,000 exposure-years",
        (Series("observed", [30, 31, 32], [1.0, 2.0, 1.5], kind="markers"),
         Series("95% interval", [30, 31, 32], [], kind="band", lower=[0.5, 1.0, 1.0], upper=[2.0, 3.0, 2.0]),
         Series("exposure", [30, 31, 32], [10.0, 20.0, 30.0], kind="bar", axis="y2")),
        y2_label="exposure-years", caption="crude rates",
    )


def test_static_figure_keeps_labels_units_and_data():
    fig = chart_figure(_chart())
    ax, ax2 = fig.axes
    assert ax.get_xlabel() == "attained age (years)"
    assert ax.get_ylabel() == "claims per 1,000 exposure-years"
    assert ax2.get_ylabel() == "exposure-years"
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [1.0, 2.0, 1.5]
    assert [p.get_height() for p in ax2.patches] == [10.0, 20.0, 30.0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["95% interval", "exposure", "observed"]


def test_render_is_a_captioned_png_and_deterministic():
    a, b = render_chart(_chart()), render_chart(_chart())
    assert a == b
    assert a.startswith('<figure><img alt="rate by age" src="data:image/png;base64,')
    assert a.endswith("<figcaption>crude rates</figcaption></figure>")


def test_series_named():
    c = _chart()
    assert c.series_named("exposure").axis == "y2"
    with pytest.raises(KeyError):
        c.series_named("absent")


def test_static_heatmap_and_bar_values():
    """Both renderers draw every figure: the static one writes heat-map cells and bar values too."""
    heat = Chart("cross-subsidy", "city_tier", "age band",
                 (Series("CNY per member-year", ["1", "2"], ["0-17", "18-29"], kind="heatmap",
                         z=[[1.5, -2.0], [float("nan"), 0.25]], values=True),))
    fig = chart_figure(heat)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1.5", "-2.0", "0.2"]  # NaN cell left empty
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0-17", "18-29"]
    bars = Chart("leverage", "leverage", "plan", (Series("l", [3.0, 0.0], ["a", "b"], kind="hbar", values=True),))
    ax = chart_figure(bars).axes[0]
    assert [p.get_width() for p in ax.patches] == [3.0, 0.0]
    assert [t.get_text() for t in ax.texts] == ["3.00", ""]
