"""Unit tests of the self-contained HTML report builder (engine.report)."""

from __future__ import annotations

import base64

import polars as pl

from engine.report.document import Report, html_table
from engine.report.render import figure_to_data_uri


def test_table_escapes_and_formats() -> None:
    df = pl.DataFrame({"name": ["<b>x</b>", "y & z"], "n": [1234567, 2], "rate": [0.000123, 12.5]})
    h = html_table(df)
    assert "&lt;b&gt;x&lt;/b&gt;" in h and "y &amp; z" in h and "<b>" not in h
    assert "1,234,567" in h and "0.000123" in h and "12.500" in h
    assert h.count("<tr>") == 3
    # unrounded values for sorting and the CSV download; column names kept beside the displayed header
    assert 'data-v="0.000123"' in h and 'data-v="1234567"' in h and 'data-col="rate"' in h


def test_table_cut_note() -> None:
    df = pl.DataFrame({"i": list(range(50))})
    h = html_table(df, max_rows=10)
    assert h.count("<tr>") == 11 and "first 10 of 50 rows" in h


def test_figure_is_embedded_png_and_deterministic() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def fig():
        f, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 3, 2])
        return f

    a, b = figure_to_data_uri(fig()), figure_to_data_uri(fig())
    assert a.startswith("data:image/png;base64,")
    assert base64.b64decode(a.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b  # no timestamp in the PNG


def test_render_sections_nav_and_kpis() -> None:
    r = Report("T <1>", "sub")
    s = r.section("one", "First")
    Report.kpis(s, [("share", "1.23", False), ("spiral", "YES", True)])
    Report.text(s, "a < b")
    r.section("two", "Second")
    html = r.render()
    assert "<script>" in html and "Plotly" in html  # the table script; no plot, so plotly.js is not inlined
    assert 'class="plot"' not in html and len(html) < 50_000
    assert html.startswith("<!DOCTYPE html>") and "T &lt;1&gt;" in html
    assert '<a href="#one">First</a>' in html and '<section id="two">' in html
    assert 'class="v flag"' in html and "a &lt; b" in html
    assert "http://" not in html and "https://" not in html


def test_report_table_rows_by_mode() -> None:
    """Interactive: every row embedded (sorted and filtered in the page); static: the first rows and a note."""
    from engine.report.document import STATIC_ROWS

    df = pl.DataFrame({"i": list(range(STATIC_ROWS + 10))})
    pages = {}
    for mode in ("interactive", "static"):
        r = Report("T", mode=mode)
        Report.table(r.section("s", "S"), df)
        pages[mode] = r.render()
    assert pages["interactive"].count("<tr>") == df.height + 1
    assert pages["static"].count("<tr>") == STATIC_ROWS + 1
    assert f"first {STATIC_ROWS} of {df.height} rows" in pages["static"]


def test_interactive_chart_inlines_plotly_once_and_falls_back_without_it(monkeypatch) -> None:
    import json
    import re

    import pytest

    pytest.importorskip("plotly")
    import engine.report.render as render
    from engine._optional import plotly_js
    from engine.report.chart import Chart, Series

    c = Chart("rate", "age (years)", "claims per 1,000 exposure-years",
              (Series("observed", [30, 31], [1.0, float("nan")], kind="markers"),))
    r = Report("T")
    s = r.section("s", "S")
    Report.chart(s, c)
    Report.charts(s, [c, c])
    page = r.render()
    assert page.count(plotly_js()) == 1 and page.count('class="plot"') == 3
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=[\"']?(https?:)?//", page)  # nothing fetched
    data = re.findall(r'<script type="application/json" id="(s-\d)-data">(.*?)</script>', page)
    assert [d[0] for d in data] == ["s-1", "s-2", "s-3"]
    fig = json.loads(data[0][1])  # NaN is null: the page's JSON.parse accepts it
    assert fig["data"][0]["y"] == [1.0, None] and fig["layout"]["xaxis"]["title"]["text"] == "age (years)"
    # without plotly: static PNG figures and one note naming the extra
    monkeypatch.setattr(render, "available", lambda m: m != "plotly")
    monkeypatch.setattr("engine._optional.available", lambda m: m != "plotly")
    page = r.render()
    assert 'class="plot"' not in page and page.count("data:image/png;base64,") == 3
    assert page.count("pip install &#x27;fentan[report]&#x27;") == 1


def test_charts_of_one_facet_are_grouped() -> None:
    from engine.report.chart import Chart, Series
    from engine.report.document import _facets

    def c(facet):
        return Chart("t", "x", "y", (Series("s", [1], [1.0]),), facet=facet)

    a, b, d, e = c("f"), c("f"), c(None), c("g")
    assert _facets(["<p>", a, b, d, e, [c("h"), c("h")]]) == ["<p>", [a, b], d, e, [c("h"), c("h")]]
    assert _facets([[a], b]) == [[a, b]]  # a chart after a group of its facet joins it


def test_booleans_are_shown_translated_and_downloaded_as_written() -> None:
    from engine.report.i18n import use_language

    df = pl.DataFrame({"death_spiral": [True, False]})
    with use_language("zh"):
        h = html_table(df)
    assert '<td class="s" data-v="true">是</td>' in h and '<td class="s" data-v="false">否</td>' in h
    assert 'data-col="death_spiral"' in h
