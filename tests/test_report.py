"""Unit tests of the self-contained HTML report builder (engine.report)."""

from __future__ import annotations

import base64

import polars as pl

from engine.report.document import Report, figure_to_data_uri, html_table


def test_table_escapes_and_formats() -> None:
    df = pl.DataFrame({"name": ["<b>x</b>", "y & z"], "n": [1234567, 2], "rate": [0.000123, 12.5]})
    h = html_table(df)
    assert "&lt;b&gt;x&lt;/b&gt;" in h and "y &amp; z" in h and "<b>" not in h
    assert "1,234,567" in h and "0.000123" in h and "12.500" in h
    assert h.count("<tr>") == 3


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
    assert html.startswith("<!DOCTYPE html>") and "T &lt;1&gt;" in html
    assert '<a href="#one">First</a>' in html and '<section id="two">' in html
    assert 'class="v flag"' in html and "a &lt; b" in html
    assert "http://" not in html and "https://" not in html
