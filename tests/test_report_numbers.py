"""The report's numbers agree with summary.json, account.json and the Parquet outputs (the shared small demo).

The HTML is parsed (sections, headline cards, tables); each shown number must equal the file's number to the
precision it is displayed with. Nothing here recomputes a number: it reads both sides.
"""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest


class _Report(HTMLParser):
    """Sections -> {"tables": [(headers, rows)], "kpis": [(label, value)]}."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, list]] = {}
        self.sec: str | None = None
        self.cell: list[str] | None = None
        self.row: list[str] | None = None
        self.kpi: dict[str, str] | None = None
        self.kpi_part: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sec = a.get("id")
            self.sections[self.sec] = {"tables": [], "kpis": []}
        elif self.sec is None:
            return
        elif tag == "table":
            self.sections[self.sec]["tables"].append(([], []))
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "div" and "kpi" == a.get("class"):
            self.kpi = {}
        elif tag == "div" and self.kpi is not None and a.get("class", "").split()[:1] in (["v"], ["l"]):
            self.kpi_part = a["class"].split()[0]
            self.kpi[self.kpi_part] = ""

    def handle_endtag(self, tag: str) -> None:
        if self.sec is None:
            return
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            headers, rows = self.sections[self.sec]["tables"][-1]
            (headers.extend(self.row) if not headers else rows.append(self.row))
            self.row = None
        elif tag == "div" and self.kpi_part is not None:
            self.kpi_part = None
        elif tag == "div" and self.kpi is not None:
            self.sections[self.sec]["kpis"].append((self.kpi.get("l", ""), self.kpi.get("v", "")))
            self.kpi = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        elif self.kpi_part is not None:
            self.kpi[self.kpi_part] += data


def _agrees(text: str, value: Any) -> bool:
    """``text`` (as the report shows it) is ``value`` to the precision shown."""
    text = text.strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return text in ("", "NaN", "n/a")
    if isinstance(value, bool):
        return text in (("True", "YES", "yes", "binds") if value else ("False", "no", "does not bind"))
    if isinstance(value, str):
        return text == value
    num = text.replace(",", "")
    x = float(num)
    if "e" in num.lower():  # %.3g in scientific notation: three significant digits
        return math.isclose(x, value, rel_tol=5e-3)
    decimals = len(num.split(".")[1]) if "." in num else 0
    return abs(x - float(value)) <= 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12 * abs(value)


@pytest.fixture(scope="module")
def run(small_demo) -> dict[str, Any]:
    out: Path = small_demo.out / "run"
    p = _Report()
    p.feed((out / "report.html").read_text(encoding="utf-8"))
    return {"out": out, "sections": p.sections, "summary": json.loads((out / "summary.json").read_text()),
            "account": json.loads((out / "account.json").read_text())}


def test_the_report_has_the_units_and_caps_sections(run):
    assert {"headline", "shares", "caps"} <= set(run["sections"])


#: header of the report's shares and caps tables -> key of the plan's entry in summary.json
SUMMARY_COLUMNS = {
    "periods a year": "periods_per_year",
    "sustainable share, CNY per period": "sustainable_share_cny",
    "sustainable share, CNY per month": "sustainable_share_cny_per_month",
    "sustainable share, CNY per year": "sustainable_share_cny_per_year",
    "today's mix, CNY per period": "share_current_mix_cny",
    "today's mix, CNY per month": "share_current_mix_cny_per_month",
    "today's mix, CNY per year": "share_current_mix_cny_per_year",
    "paid after the caps, CNY per period": "share_after_caps_cny",
    "paid after the caps, CNY per month": "share_after_caps_cny_per_month",
    "paid after the caps, CNY per year": "share_after_caps_cny_per_year",
    "per-claimant cap, CNY per member per claim": "per_claimant_cap_cny",
    "annual cap, CNY per member per year": "annual_cap_cny",
    "per-claimant cap binds": "per_claimant_cap_binding",
    "annual cap binds": "annual_cap_binding",
    "P(annual cap binds in a year), projection, max": "cap_binds_probability_max",
    "leverage before the caps": "leverage_before_caps",
    "leverage after the caps": "leverage_after_caps",
    "platform pays, % of cost, first projection year": "platform_paid_pct_of_cost_first_year",
    # the headline table (per period, month and year under the same headers as the shares table above)
    "leverage": "leverage",
    "share CV": "share_cv",
    "P(annual cap binds), max": "cap_binds_probability_max",
    "death spiral": "death_spiral",
}


@pytest.mark.parametrize("section", ["shares", "caps", "headline"])
def test_plan_tables_agree_with_summary_json(run, section):
    summary = run["summary"]["plans"]
    checked = 0
    for headers, rows in run["sections"][section]["tables"]:
        if not headers or headers[0] not in ("plan", "plan file / plan") or not rows or rows[0][0] not in summary:
            continue
        assert {r[0] for r in rows} == set(summary), section
        for r in rows:
            for h, text in zip(headers[1:], r[1:], strict=True):
                if h in SUMMARY_COLUMNS:
                    want = summary[r[0]].get(SUMMARY_COLUMNS[h])
                    assert _agrees(text, want), (section, r[0], h, text, want)
                    checked += 1
    assert checked >= len(summary) * {"shares": 10, "caps": 8, "headline": 10}[section], section


#: header of a subsidy table -> column of caps_cost_*.parquet
SUBSIDY_COLUMNS = {
    "projection year": "year", "calendar year": "year", "cost (benefits + fee), CNY": "cost_cny",
    "members pay, CNY": "members_paid_cny", "platform pays, CNY": "platform_paid_cny",
    "platform pays above the per-claimant cap, CNY": "platform_paid_per_claimant_cap_cny",
    "platform pays above the annual cap, CNY": "platform_paid_annual_cap_cny",
    "platform pays, % of cost": "platform_paid_pct_of_cost", "P(annual cap binds in the year)": "annual_cap_binds_prob",
}


@pytest.mark.parametrize(("year", "name"), [("projection year", "caps_cost_projection"),
                                            ("calendar year", "caps_cost_history")])
def test_subsidy_tables_agree_with_the_parquet_outputs(run, year, name):
    df = pl.read_parquet(run["out"] / f"{name}.parquet")
    tables = [(h, r) for h, r in run["sections"]["caps"]["tables"] if len(h) > 1 and h[1] == year]
    assert len(tables) == 1 and df.height > 0
    headers, rows = tables[0]
    assert len(rows) == df.height
    for r, want in zip(rows, df.iter_rows(named=True), strict=True):
        assert r[0] == want["plan"]
        for h, text in zip(headers[1:], r[1:], strict=True):
            assert _agrees(text, want[SUBSIDY_COLUMNS[h]]), (name, r[0], h, text, want[SUBSIDY_COLUMNS[h]])


def test_summary_subsidy_and_probability_come_from_the_parquet(run):
    caps = pl.read_parquet(run["out"] / "caps_cost_projection.parquet")
    for label, v in run["summary"]["plans"].items():
        mine = caps.filter(pl.col("plan") == label).sort("year")
        assert v["platform_paid_pct_of_cost_first_year"] == pytest.approx(mine["platform_paid_pct_of_cost"][0], rel=1e-12)
        assert v["cap_binds_probability_max"] == pytest.approx(mine["annual_cap_binds_prob"].max(), rel=1e-12)
        assert [y["platform_paid_cny"] for y in v["caps_cost_by_year"]] == pytest.approx(mine["platform_paid_cny"].to_list())


def test_tables_named_after_parquet_columns_agree_with_the_files(run):
    """The projection and plans sections show Parquet columns under their own names: same numbers."""
    plans = pl.read_parquet(run["out"] / "plans.parquet").filter(pl.col("level") == "plan")
    proj = pl.read_parquet(run["out"] / "projection_plans.parquet")
    checked = 0
    for section, df, key in (("projection", proj, "plan"), ("plans", plans, "plan")):
        for headers, rows in run["sections"][section]["tables"]:
            if key not in headers or not set(headers) <= set(df.columns):
                continue
            for r in rows:
                rec = dict(zip(headers, r, strict=True))
                cond = pl.all_horizontal(*(pl.col(c).cast(pl.String) == rec[c] for c in headers
                                           if df.schema[c] == pl.String))
                match = df.filter(cond)
                assert match.height == 1, (section, rec)
                for c in headers:
                    assert _agrees(rec[c], match[c][0]), (section, c, rec[c], match[c][0])
                    checked += 1
    assert checked > 0


def test_headline_cards_agree_with_account_and_summary(run):
    cards = dict(run["sections"]["headline"]["kpis"])
    acc = run["account"]
    used, read = (int(x.replace(",", "")) for x in cards["members used / read"].split(" / "))
    assert (used, read) == (acc["members"]["used"], acc["members"]["read"])
    pooled = next(v for v in run["summary"]["plans"].values() if v["planset"] == "pooled")
    label = next(k for k in cards if "pooled sustainable share" in k)
    assert label.endswith("CNY per member per period / month / year")
    parts = cards[label].split(" / ")
    keys = ("sustainable_share_cny", "sustainable_share_cny_per_month", "sustainable_share_cny_per_year")
    assert len(parts) == 3
    for text, key in zip(parts, keys, strict=True):
        assert _agrees(text, pooled[key]), (key, text, pooled[key])


@pytest.mark.parametrize(("section", "name", "shares"), [
    ("projection", "projection_plans", ("share_end_mean_cny", "share_end_p95_cny", "sustainable_share_cny")),
    ("plans", "plans", ("share_current_mix_cny", "share_after_caps_cny"))])
def test_projection_and_plans_tables_show_each_share_per_period_month_and_year(run, section, name, shares):
    """Each share beside its per-month and per-year columns; the per-month one is per period x periods a year / 12
    and the per-year one per period x periods a year in the file the table shows (checked above to agree)."""
    df = pl.read_parquet(run["out"] / f"{name}.parquet")
    headers = next(h for h, _ in run["sections"][section]["tables"] if "plan" in h and shares[0] in h)
    for c in shares:
        i = headers.index(c)
        assert headers[i + 1:i + 3] == [f"{c}_per_month", f"{c}_per_year"], (section, headers)
        ppy = df["periods_per_year"].to_numpy()
        assert df[f"{c}_per_month"].to_numpy() == pytest.approx(df[c].to_numpy() * ppy / 12, rel=1e-12)
        assert df[f"{c}_per_year"].to_numpy() == pytest.approx(df[c].to_numpy() * ppy, rel=1e-12)


def test_the_demo_says_it_scaled_the_per_claimant_cap(run, small_demo):
    caps = run["summary"]["facts"]["caps"]
    peak = small_demo.result["params"]["peak_members"]
    assert caps["scale_caps_to_members"] == peak
    assert caps["per_claimant_cap_scale"] == pytest.approx(caps["per_claimant_cap_design_members"] / peak)
    for p in caps["plans"]:
        assert p["per_claimant_cap_cny"] == pytest.approx(0.1 * caps["per_claimant_cap_scale"])
    assert caps["history_per_claimant_cap_cny"] == pytest.approx(0.1 * caps["per_claimant_cap_scale"])
    for v in run["summary"]["plans"].values():
        assert v["per_claimant_cap_cny"] in (None, pytest.approx(0.1 * caps["per_claimant_cap_scale"]))
    html = (run["out"] / "report.html").read_text(encoding="utf-8")
    assert f"scales it to a platform of {peak:,} members" in html


def test_share_cards_agree_with_summary_json(run):
    cards = run["sections"]["shares"]["kpis"]
    pooled_label, pooled = next((k, v) for k, v in run["summary"]["plans"].items() if v["planset"] == "pooled")
    want = {"sustainable share, CNY per member per period / month / year":
            ("sustainable_share_cny", "sustainable_share_cny_per_month", "sustainable_share_cny_per_year"),
            "paid after the caps, CNY per member per year (today's mix)": ("share_after_caps_cny_per_year",),
            "platform pays, % of cost, first projection year": ("platform_paid_pct_of_cost_first_year",),
            "leverage before / after the caps": ("leverage_before_caps", "leverage_after_caps")}
    assert len(cards) == len(want)
    for label, value in cards:
        plan, what = label.split(": ", 1)
        assert plan == pooled_label
        parts = value.split(" / ")
        assert len(parts) == len(want[what])
        for text, key in zip(parts, want[what], strict=True):
            assert _agrees(text, pooled[key]), (what, key, text, pooled[key])


def test_the_realised_history_uses_the_scaled_cap(run):
    """Scaled to the platform's peak (~10^4 members), the per-claimant cap is about 10^8 / 10^4 x 0.1 = 1,000 times
    a member's share of one claim at most (1.08 x 300,000 / 10^4 = 32 CNY): it never binds, whereas 0.1 CNY would
    bind on every claim. The realised cost is then paid by the members and above the annual cap only."""
    hist = pl.read_parquet(run["out"] / "history.parquet")
    caps = pl.read_parquet(run["out"] / "caps_cost_history.parquet")
    assert hist["claims_approved"].sum() > 0 and caps["cost_cny"].sum() > 0
    assert caps["platform_paid_per_claimant_cap_cny"].sum() == 0.0
    assert caps["members_paid_cny"].sum() + caps["platform_paid_annual_cap_cny"].sum() == pytest.approx(
        caps["cost_cny"].sum(), rel=1e-12)
