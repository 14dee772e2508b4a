"""report.html in a real browser: headless Chromium driven by selenium (file:// URL, offline).

Checks what an HTML parser cannot: the page's script runs without a console error, tables sort,
plots are drawn by plotly and react to hover and zoom, the Chinese version, and screenshots at 1300
and 420 px whose plots are not blank. Screenshots go to ``$FENTAN_TEST_ARTEFACTS`` (default
``build/test-artefacts/report``); docs/report-check.md says how to look at them.

Skipped, with the reason, only when Chromium or its driver is not installed (``.ci/run`` installs
Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("FENTAN_TEST_ARTEFACTS", ROOT / "build" / "test-artefacts" / "report"))
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")

pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="Chromium not installed: apt-get install chromium chromium-driver (.ci/run does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fentan-chromium-")
    opts = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver, report: Path, width: int, height: int = 1000) -> None:
    """Load the report at this window width and wait until plotly has drawn every plot."""
    driver.set_window_size(width, height)
    driver.get(report.resolve().as_uri())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n, drawn = driver.execute_script(
            "return [document.querySelectorAll('div.plot').length, document.querySelectorAll('div.plot.js-plotly-plot').length]")
        if n and n == drawn:
            return
        time.sleep(0.2)
    raise AssertionError(f"plots not drawn within 30 s ({drawn} of {n})")


def _severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _sections(driver) -> list[str]:
    return driver.execute_script("return [].map.call(document.querySelectorAll('main > section'), s => s.id)")


def test_every_section_and_no_console_error(browser, small_demo) -> None:
    from engine.report.build import SECTIONS

    _open(browser, small_demo.out / "run" / "report.html", 1300)
    assert _sections(browser) == list(SECTIONS)
    assert _severe(browser) == []
    assert browser.execute_script("return document.documentElement.lang") == "en"
    # every plot is a plotly plot with data, none left empty
    counts = browser.execute_script(
        "return [].map.call(document.querySelectorAll('div.plot'), d => d.data.length)")
    assert len(counts) >= 10 and min(counts) >= 1


def test_sorting_and_filtering_a_table(browser, small_demo) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, small_demo.out / "run" / "report.html", 1300)
    box = browser.find_element(By.CSS_SELECTOR, "#account div.tbl")
    col = [th.get_attribute("data-col") for th in box.find_elements(By.CSS_SELECTOR, "th")].index("rows")
    values = lambda: [int(td.get_attribute("data-v")) for td in  # noqa: E731
                      box.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({col + 1})")]
    before = values()
    assert before != sorted(before)  # read, used, then the set-aside reasons: not already in order
    header = box.find_elements(By.CSS_SELECTOR, "th")[col]
    header.click()
    assert values() == sorted(before) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert values() == sorted(before, reverse=True) and header.get_attribute("aria-sort") == "descending"
    box.find_element(By.CSS_SELECTOR, "input").send_keys("claims")
    shown = [tr for tr in box.find_elements(By.CSS_SELECTOR, "tbody tr") if tr.is_displayed()]
    assert 0 < len(shown) < len(before) and all("claims" in tr.text for tr in shown)
    assert box.find_element(By.CSS_SELECTOR, ".count").text == f"{len(shown)} / {len(before)}"
    assert _severe(browser) == []


def test_csv_download_of_a_table(browser, small_demo, tmp_path: Path) -> None:
    """The row account's CSV: Parquet-style column names, every row, the counts of account.json."""
    import csv

    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    _open(browser, small_demo.out / "run" / "report.html", 1300)
    box = browser.find_element(By.CSS_SELECTOR, "#account div.tbl")
    box.find_element(By.CSS_SELECTOR, "button").click()
    path = tmp_path / f"{box.get_attribute('data-name')}.csv"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    account = json.loads((small_demo.out / "run" / "account.json").read_text())
    want = {(what, status): n for what in ("members", "claims")
            for status, n in [("read", account[what]["read"]), ("used", account[what]["used"]),
                              *((f"set aside: {r}", k) for r, k in account[what]["set_aside"].items())]}
    assert {(r["table"], r["status"]): int(r["rows"]) for r in rows} == want
    assert len(rows) == len(box.find_elements(By.CSS_SELECTOR, "tbody tr"))


def test_a_plot_is_interactive(browser, small_demo) -> None:
    """The leverage plot: plotly drew it from its data; hovering a bar shows its value; dragging zooms."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(browser, small_demo.out / "run" / "report.html", 1300)
    plot = browser.find_element(By.CSS_SELECTOR, "#leverage div.plot")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    spec = json.loads(browser.find_element(By.ID, plot.get_attribute("id") + "-data").get_attribute("textContent"))
    assert browser.execute_script("return arguments[0].data[0].x", plot) == spec["data"][0]["x"]
    bar = plot.find_elements(By.CSS_SELECTOR, "g.trace.bars g.point path")[0]
    ActionChains(browser).move_to_element(bar).perform()
    time.sleep(0.3)
    hover = plot.find_elements(By.CSS_SELECTOR, "g.hoverlayer g.hovertext")
    assert hover and spec["data"][0]["y"][0] in hover[0].text  # the hovered bar's plan
    before = browser.execute_script("return arguments[0]._fullLayout.xaxis.range.slice()", plot)
    drag = plot.find_element(By.CSS_SELECTOR, "rect.nsewdrag")
    ActionChains(browser).move_to_element_with_offset(drag, -80, 0).click_and_hold().move_by_offset(120, 0) \
        .release().perform()
    time.sleep(0.3)
    after = browser.execute_script("return arguments[0]._fullLayout.xaxis.range.slice()", plot)
    assert after[1] - after[0] < 0.8 * (before[1] - before[0])  # zoomed in on the dragged box
    assert _severe(browser) == []


def test_the_chinese_version(browser, small_demo_zh) -> None:
    from engine.report.build import SECTIONS

    _open(browser, small_demo_zh.out / "report.html", 1300)
    assert browser.execute_script("return document.documentElement.lang") == "zh-CN"
    assert _sections(browser) == list(SECTIONS)
    headings = browser.execute_script("return [].map.call(document.querySelectorAll('h2'), h => h.textContent)")
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in h) for h in headings), headings
    axis = browser.execute_script("return document.querySelector('#incidence .g-xtitle text').textContent")
    assert axis == "到达年龄（岁）"
    assert _severe(browser) == []


def _screenshot(driver, name: str) -> tuple[np.ndarray, list[dict]]:
    """A full-page screenshot into the artefact directory, as an RGB array, and the plots' boxes (page pixels)."""
    import matplotlib.image

    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(driver.get_window_size()["width"], height + 200)
    time.sleep(0.8)  # plotly's responsive resize
    boxes = driver.execute_script(  # each plot's div and its data area (plotly's drag rectangle)
        "const box = e => {const r = e.getBoundingClientRect();"
        " return {x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}};"
        "return [].map.call(document.querySelectorAll('div.plot'), d => Object.assign(box(d),"
        " {id: d.id, area: box(d.querySelector('rect.nsewdrag'))}))")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    img = matplotlib.image.imread(str(path))[..., :3]
    assert img.shape[1] >= width - 1
    return img, boxes


def ink(img: np.ndarray, box: dict) -> float:
    """Share of coloured pixels inside ``box`` of the screenshot (RGB in 0-1).

    The axes, grid lines, tick labels and plotly's tool bar are grey; every plot of the report draws its data
    in colour (lines, bands, bars, heat-map cells), so a plot whose data area has no colour is blank.
    """
    x0, y0 = int(box["x"]), int(box["y"])
    crop = img[y0:y0 + int(box["h"]), x0:x0 + int(box["w"])]
    return float((crop.max(axis=-1) - crop.min(axis=-1) > 0.08).mean())


@pytest.mark.parametrize("width", [1300, 420])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_screenshots_show_every_plot(browser, small_demo, small_demo_zh, width: int, lang: str) -> None:
    """Full-page screenshots at 1300 and 420 px; every plot inside the page, wide enough, and not blank."""
    report = small_demo.out / "run" / "report.html" if lang == "en" else small_demo_zh.out / "report.html"
    _open(browser, report, width)
    img, boxes = _screenshot(browser, f"report-{lang}-{width}px")
    assert boxes
    page = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert page[0] <= page[1] + 1  # no sideways scrolling of the page
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= width + 1, box
        assert box["w"] >= (360 if width <= 480 else 450) and box["h"] >= 350, box  # legible at 420 px
        # inside the axes: data in colour (a blank plot, its traces hidden, measures 0.0; one marker about 0.0005)
        assert ink(img, box["area"]) > 0.0005, box
    assert _severe(browser) == []
