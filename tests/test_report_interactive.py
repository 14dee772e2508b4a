"""The interactive report (plotly) and its static mode: figure JSON against the chart, size, --static.

The plotly figure is built from the chart specification by engine.report.interactive; these tests
recompute each trace's arrays from the specification (errors as distances to the bounds, a log
axis' floor, non-finite numbers as null) instead of trusting the renderer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from engine.report.chart import PALETTE, Chart, Series
from engine.report.interactive import figure_json, render_interactive, wrap

#: the report's budget at the demo's size (issue 18): plotly.js (~4.8 MB) plus the run's data
MAX_REPORT_BYTES = 6_000_000


def test_errorbars_bands_and_log_floor_from_the_specification() -> None:
    y, lo, hi = [2.0, 0.0, 5.0], [1.0, 0.0, 3.5], [4.0, 1.5, 9.0]
    c = Chart("t", "age (years)", "claims per 1,000 exposure-years",
              (Series("interval", [30, 31, 32], [], kind="band", lower=lo, upper=hi),
               Series("observed", [30, 31, 32], y, kind="errorbars", lower=lo, upper=hi)), y_log=True)
    fig = figure_json(c)
    band_lo, band_hi, err = fig["data"]
    floor = min(v for v in y + lo + hi if v > 0) / 2  # half the smallest positive value shown
    assert band_lo["y"] == [v if v > 0 else floor for v in lo] and band_hi["y"] == hi
    assert band_hi["fill"] == "tonexty" and band_lo["showlegend"] is False
    assert err["error_y"]["array"] == [h - m for h, m in zip(hi, y)]
    assert err["error_y"]["arrayminus"] == [m - v for m, v in zip(y, lo)]
    assert fig["layout"]["yaxis"]["type"] == "log"


def test_values_axes_colours_and_heatmap() -> None:
    day = dt.date(2021, 3, 1)
    c = Chart("t", "notice date", "CNY per member per period",
              (Series("share", [day], [np.float64(1.5)]),
               Series("members", [day], [float("inf")], axis="y2", dash=True, color="#123456"),
               Series("grid", ["a", "b"], ["r"], kind="heatmap", z=[[1.0, float("nan")]], values=True)),
              y2_label="members (000)")
    fig = figure_json(c)
    share, members, grid = fig["data"]
    assert share["x"] == ["2021-03-01"] and share["y"] == [1.5] and share["line"]["color"] == PALETTE[0]
    assert members["y"] == [None] and members["yaxis"] == "y2" and members["line"] == {
        "color": "#123456", "dash": "dash", "shape": "linear"}
    assert grid["z"] == [[1.0, None]] and grid["zmid"] == 0 and "texttemplate" in grid
    assert fig["layout"]["yaxis2"]["title"]["text"] == "members (000)"
    json.dumps(fig, allow_nan=False)  # valid JSON for the page's JSON.parse


def test_horizontal_bars_keep_their_order_and_wrap_long_titles() -> None:
    c = Chart("t", "leverage = benefit / annual share, before and after the caps of the plan", "plan",
              (Series("leverage", [3.0, 1.0], ["b", "a"], kind="hbar", values=True),))
    fig = figure_json(c)
    (bar,) = fig["data"]
    assert bar["orientation"] == "h" and bar["y"] == ["b", "a"] and bar["x"] == [3.0, 1.0]
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"  # first category on top, as in the static figure
    title = fig["layout"]["xaxis"]["title"]["text"]
    assert title.replace("<br>", " ") == c.x_label and all(len(p) <= 46 for p in title.split("<br>"))
    assert wrap("short") == "short"


def test_render_is_deterministic_and_cannot_close_its_script() -> None:
    c = Chart("a </script> title", "x", "y", (Series("</script><b>", [1, 2], [3.0, 4.0]),), caption="c")
    a, b = render_interactive(c, "s-1"), render_interactive(c, "s-1")
    assert a == b
    assert a.count("</script>") == 1 and "&lt;/script&gt;" in a  # in the JSON: "<\/script>"; in HTML: escaped
    payload = a.split('id="s-1-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(payload)["data"][0]["name"] == "</script><b>"


def test_lorenz_curve_is_thinned_to_its_own_points() -> None:
    from engine.report.figures import LORENZ_POINTS, thin

    for n in (1, 7, LORENZ_POINTS, LORENZ_POINTS + 1, 12_345):
        i = thin(n)
        assert len(i) == min(n, LORENZ_POINTS) and i[0] == 0 and i[-1] == n - 1
        assert np.all(np.diff(i) > 0)
        if n > LORENZ_POINTS:  # evenly spread: no gap wider than twice the even step
            assert np.diff(i).max() <= math.ceil(2 * (n - 1) / (LORENZ_POINTS - 1))


def test_small_demo_report_is_self_contained_and_within_budget(small_demo) -> None:
    from engine._optional import plotly_js

    html = (small_demo.out / "run" / "report.html").read_text(encoding="utf-8")
    size = len(html.encode("utf-8"))
    js = plotly_js()
    assert html.count(js) == 1  # plotly.js inlined once, whatever the number of plots
    assert size <= MAX_REPORT_BYTES, size
    # the run's own part (tables, figures' data, text) is small: the data of the report is aggregated
    # (cells, groups, periods), so its size does not grow with the number of members
    assert size - len(js.encode("utf-8")) < 400_000, size - len(js)
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=[\"']?(https?:)?//", html)


def test_static_mode_draws_png_figures(small_demo, tmp_path: Path) -> None:
    """``--static`` (or ``[output] static = true``): PNG figures for print and PDF, no plotly.js."""
    import base64
    import contextlib
    import io

    pytest.importorskip("matplotlib")
    from engine.cli.main import main
    from engine.pipeline.config import load_config

    out = tmp_path / "run"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(small_demo.out / "demo.toml"), "--static", "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    from engine._optional import plotly_js

    assert 'class="plot"' not in html and plotly_js()[:2000] not in html and len(html) < len(plotly_js())
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    interactive = (small_demo.out / "run" / "report.html").read_text(encoding="utf-8").count('class="plot"')
    assert len(pngs) == interactive  # the same figures, drawn by matplotlib
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert load_config(out / "config.toml").output.static is True  # recorded in the resolved configuration
    assert len(html.encode()) < MAX_REPORT_BYTES


def test_values_on_bars_skip_empty_bars() -> None:
    """Decomposition panels draw rises and falls as two series: a zero or missing bar carries no label."""
    from engine.report.chart import bar_labels

    assert bar_labels([0.0, 1234.5, float("nan"), None, -2.0, 3]) == ["", "1,234.50", "", "", "-2.00", "3.00"]
    c = Chart("t", "CNY", "driver", (Series("up", [1.5, 0.0], ["fee", "lag"], kind="hbar", values=True),))
    assert figure_json(c)["data"][0]["text"] == ["1.50", ""]


def test_report_options_of_the_command_line_and_the_configuration(monkeypatch, tmp_path: Path) -> None:
    """--static and --lang reach the demo; [output] static and language are strict (a TOML boolean, en or zh)."""
    import engine.cli.cmd_demo as cmd_demo
    from engine.cli.main import main
    from engine.errors import ConfigError
    from engine.pipeline.config import config_from_dict

    seen = {}
    monkeypatch.setattr(cmd_demo, "run_demo", lambda *a, **k: seen.update(k) or {"validation": type("V", (), {"usable": True})})
    assert main(["demo", "--out", str(tmp_path / "d"), "--static", "--lang", "zh"]) == 0
    assert seen["static"] is True and seen["language"] == "zh"
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    assert seen["static"] is None and seen["language"] is None  # the configuration's [output] decides
    data = {"members": "m.parquet", "claims": "c.parquet"}
    cfg = config_from_dict({"data": data, "output": {"static": True, "language": "zh"}})
    assert cfg.output.static is True and cfg.output.language == "zh"
    assert config_from_dict({"data": data}).output.static is False
    with pytest.raises(ConfigError, match=r"output\.static"):
        config_from_dict({"data": data, "output": {"static": "yes"}})
    with pytest.raises(ConfigError, match=r"output\.language"):
        config_from_dict({"data": data, "output": {"language": "english"}})


def test_many_bars_get_a_taller_plot() -> None:
    names = [f"plan {i}" for i in range(12)]
    many = Chart("t", "leverage", "plan", (Series("l", list(range(12)), names, kind="hbar"),))
    few = Chart("t", "leverage", "plan", (Series("l", [1, 2], names[:2], kind="hbar"),))
    assert f'style="height:{28 * 12 + 160}px"' in render_interactive(many)
    assert "style=" not in render_interactive(few)
