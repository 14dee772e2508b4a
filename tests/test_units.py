"""Every number with its unit: percentages in percent, shares per period, month and year (hand-computed oracles)."""

from __future__ import annotations

import re

import polars as pl
import pytest

from engine.conventions import per_claimant_cap_scale, per_month, per_year


def test_shares_per_month_and_year():
    # a half-monthly calendar (24 periods a year): 8.79 a period is 17.58 a month and 210.96 a year
    assert per_month(8.79, 24) == pytest.approx(17.58)
    assert per_year(8.79, 24) == pytest.approx(210.96)
    assert per_month(3.0, 12) == pytest.approx(3.0)
    df = pl.DataFrame({"s": [1.0, 2.0], "ppy": [24, 12]})
    got = df.select(per_month(pl.col("s"), pl.col("ppy")).alias("m"), per_year(pl.col("s"), pl.col("ppy")).alias("y"))
    assert got.rows() == [(2.0, 24.0), (2.0, 24.0)]


def test_per_claimant_cap_scale_keeps_the_members_payment_per_claim():
    # 0.1 CNY x 10^8 members = 10 CNY x 10^6 members: the most the members pay for one claim is unchanged
    f = per_claimant_cap_scale(1_000_000)
    assert 0.1 * f == pytest.approx(10.0)
    assert 0.1 * f * 1_000_000 == pytest.approx(0.1 * 100_000_000)
    with pytest.raises(ValueError, match="members"):
        per_claimant_cap_scale(0)


def test_cross_subsidy_percentages_are_percent():
    from engine.segmentation.metrics import segmentation_metrics

    # two cells, one exposure-year each, predicted rates 0.01 and 0.03, benefit 1, fee 0:
    # own shares 0.01 and 0.03, pooled s = 0.02; group 0 overpays 0.01 = 50 % of s, group 1 -50 %
    cells = pl.DataFrame({"exposure_years": [1.0, 1.0], "claims": [0, 1]})
    table, scal = segmentation_metrics(cells, [0, 1], [0.01, 0.03], benefit=1.0, fee=0.0, window=1.0)
    assert table["cross_subsidy_pct"].to_list() == pytest.approx([50.0, -50.0])
    # between groups: (1 x 0.01 + 1 x 0.01) / (2 x 0.02) = 50 %; nothing left inside the one-cell groups
    assert scal["cross_subsidy_abs_pct"] == pytest.approx(50.0)
    assert scal["residual_cross_subsidy_pct"] == pytest.approx(0.0)
    _, one = segmentation_metrics(cells, [0, 0], [0.01, 0.03], benefit=1.0, fee=0.0, window=1.0)
    assert one["residual_cross_subsidy_pct"] == pytest.approx(50.0)


def test_units_and_caps_sections_in_chinese():
    """Every header, label and caption of the units and caps sections is in the catalogue; plan names stay."""
    from types import SimpleNamespace

    from engine.report._economics import add_economics
    from engine.report.document import Report
    from engine.report.i18n import use_language, zh_catalogue

    plan = {"planset": "pooled", "periods_per_year": 24.0, "sustainable_share_cny": 8.79,
            "sustainable_share_cny_per_month": 17.58, "sustainable_share_cny_per_year": 210.96,
            "per_claimant_cap_binding": False, "annual_cap_binding": True, "leverage_before_caps": 1400.0,
            "leverage_after_caps": 1600.0, "platform_paid_pct_of_cost_first_year": 12.0}
    caps = pl.DataFrame({"plan": ["pooled/main"], "year": [0], "cost_cny": [10.0], "members_paid_cny": [8.0],
                         "platform_paid_cny": [2.0], "platform_paid_pct_of_cost": [20.0], "annual_cap_binds_prob": [1.0]})
    facts = {"caps": {"per_claimant_cap_design_members": 100_000_000, "scale_caps_to_members": 1_000_000,
                      "per_claimant_cap_scale": 100.0}}
    ctx = SimpleNamespace(facts=facts, tables={"caps_cost_projection": caps})
    zh = set(zh_catalogue().values())
    with use_language("zh"):
        rep = Report("t")
        add_economics(rep, ctx, {"pooled/main": plan})
        html = rep.render()
    shown = re.sub(r' (data-col|title)="[^"]*"', "", html)  # attributes keep the column names, as in the Parquet
    assert [s.title for s in rep.sections] == ["每位成员的分摊金额：每期、每月、每年", "封顶的成本"]
    assert "pooled/main" in html  # the user's names are kept
    for english in ("sustainable share, CNY per period", "The caps&#x27; cost", "platform pays, % of cost",
                    "half a month", "scales it to a platform"):  # checked in what is shown
        assert english not in shown
    assert "可持续分摊额（元/期）" in zh and "可持续分摊额（元/期）" in html
    assert "单案分摊上限是与规模相关的规则" in html and "1,000,000" in html


def test_caps_charts_carry_the_tables_numbers_with_units():
    from engine.report._economics import realised_chart, subsidy_chart

    proj = pl.DataFrame({"plan": ["a", "a", "b"], "year": [0, 1, 0], "platform_paid_pct_of_cost": [10.0, 12.5, 0.0]})
    c = subsidy_chart(proj)
    assert "%" in c.y_label and [s.name for s in c.series] == ["a", "b"]
    assert (c.series_named("a").x, c.series_named("a").y) == (["0", "1"], [10.0, 12.5])
    hist = pl.DataFrame({"plan": ["all", "all"], "year": [2020, 2021], "cost_cny": [1e8, 2e8],
                         "platform_paid_cny": [0.0, 5e7]})
    r = realised_chart(hist)
    assert "million CNY" in r.y_label
    assert r.series_named("cost (benefits + fee)").y == [100.0, 200.0]
    assert r.series_named("platform pays").y == [0.0, 50.0]


def test_leverage_chart_shows_both_leverages_per_plan():
    from engine.report._economics import leverage_chart

    summary = {"pooled/a": {"leverage_before_caps": 1163.0, "leverage_after_caps": 1306.0},
               "v/b": {"leverage_before_caps": 259.0, "leverage_after_caps": 532.0}, "v/c": {}}
    c = leverage_chart(summary)
    assert c.series_named("before the caps (the cost)").x == [1163.0, 259.0]
    assert c.series_named("after the caps (what members pay)").x == [1306.0, 532.0]
    assert c.series_named("before the caps (the cost)").y == ["pooled/a", "v/b"]
    assert leverage_chart({"v/c": {}}) is None
