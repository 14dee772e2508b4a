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


def _zh_chart() -> Chart:
    return Chart("按年龄的发生率", "到达年龄（岁）", "每千风险暴露年理赔数",
                 (Series("观察值", [30, 31, 32], [1.0, 2.0, 1.5], kind="markers"),
                  Series("计划", ["统一计划", "青年计划"], [1.0, 2.0], kind="bar")), caption="粗发生率")


def _glyph_warnings(monkeypatch, font) -> list[str]:
    import warnings

    import engine.report.render as render

    monkeypatch.setattr(render, "cjk_font", lambda: font)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render_chart(_zh_chart(), "static")
    assert html.startswith('<figure><img alt="按年龄的发生率" src="data:image/png;base64,')
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_a_chinese_static_chart_has_every_glyph_when_a_cjk_font_is_installed(monkeypatch):
    """With a CJK font (Debian fonts-noto-cjk, installed by .ci/run) the static renderer falls back to it: no
    "Glyph ... missing from font(s)" warning. Without the fallback, the same chart warns (the check can fail)."""
    from engine.report.render import cjk_font

    font = cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")
    assert _glyph_warnings(monkeypatch, None)  # the default font alone lacks the glyphs
    assert _glyph_warnings(monkeypatch, font) == []


def test_without_a_cjk_font_no_font_warning_and_the_chinese_report_says_so_once(monkeypatch):
    """No CJK font: matplotlib is never asked for a missing family (no findfont warning), and a static Chinese
    report carries one note saying the figures' Chinese text needs a CJK font."""
    import warnings

    import engine.report.document as document
    import engine.report.render as render
    from engine.report.document import Report
    from engine.report.i18n import t, use_language

    installed = render.cjk_font()
    monkeypatch.setattr(render, "cjk_font", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render_chart(_chart(), "static")
    assert not [w for w in caught if "findfont" in str(w.message)]
    with use_language("zh"):
        rep = Report("t", "s", mode="static")
        sec = rep.section("a", "A")
        Report.chart(sec, _zh_chart())
        Report.chart(sec, _zh_chart())
        page = rep.render()
        note = t(document.NO_CJK_FONT)
    assert page.count(note) == 1
    if installed is None:
        return
    monkeypatch.setattr(render, "cjk_font", lambda: installed)
    with use_language("zh"):
        rep = Report("t", "s", mode="static")
        Report.chart(rep.section("a", "A"), _chart())
        assert note not in rep.render()


def test_two_bar_series_are_drawn_side_by_side_not_hidden():
    """Leverage before and after the caps: neither bar hides the other, and the value axis is numeric."""
    from engine.report._economics import leverage_chart
    from engine.report.interactive import render_interactive

    c = leverage_chart({"a": {"leverage_before_caps": 100.0, "leverage_after_caps": 150.0},
                        "b": {"leverage_before_caps": 80.0, "leverage_after_caps": 80.0}})
    ax = chart_figure(c).axes[0]
    spans = sorted((p.get_y(), p.get_y() + p.get_height(), p.get_width()) for p in ax.patches)
    assert len(spans) == 4
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:]))  # no two bars overlap
    assert sorted(w for *_, w in spans) == [80.0, 80.0, 100.0, 150.0]
    pytest.importorskip("plotly")
    html = render_interactive(c)
    assert '"barmode":"group"' in html and '"xaxis":{"title":{"text":"leverage = benefit / annual share"},"automargin":true,"type":"category"' not in html
