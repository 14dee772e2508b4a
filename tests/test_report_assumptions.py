"""The report's assumptions page (engine.report._assumptions) and the new sections on the shared small demo.

Values are checked against where they are defined (engine.conventions, the run configuration, the
shipped CI2020 provenance, account.json), the level factor against the Garwood interval written
from its chi-square definition, and every user-visible string of the new modules against the
Chinese catalogue.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import polars as pl
import pytest
from scipy.stats import chi2

import engine.conventions as cv
from engine.pipeline.config import config_from_dict
from engine.projection.assumptions import make_assumptions
from engine.report._assumptions import (basis_table, data_fingerprint, level_factor, plan_rules_table,
                                        projection_table, rules_table)
from engine.report.i18n import t, use_language, zh_catalogue

ROOT = Path(__file__).resolve().parents[1]
NEW_SECTIONS = ("assumptions", "groups", "relativities", "actual-expected", "drivers", "fan-charts")


def test_level_factor_is_the_mle_with_its_garwood_interval():
    k, lo, hi = level_factor(18, 46.5)
    assert k == pytest.approx(18 / 46.5, rel=1e-15)
    assert lo == pytest.approx(chi2.ppf(0.025, 36) / 93.0, rel=1e-12)
    assert hi == pytest.approx(chi2.ppf(0.975, 38) / 93.0, rel=1e-12)
    k0, lo0, hi0 = level_factor(0, 10.0, level=0.9)
    assert (k0, lo0) == (0.0, 0.0) and hi0 == pytest.approx(-math.log(0.05) / 10.0, rel=1e-12)
    assert all(math.isnan(v) for v in level_factor(3, 0.0))


def test_basis_table_names_the_table_and_its_provenance():
    prov = json.loads((ROOT / "models" / "reference" / "ci2020.json").read_text(encoding="utf-8"))
    inc = pl.DataFrame({"claims": [10, 8], "expected": [20.0, 26.5]})
    tab = dict(basis_table("ci2020", "CI4", inc).iter_rows())
    assert tab["basis"] == "CI2020 CI4"
    assert tab["table CI4"] == prov["tables"]["CI4"] and tab["source"] == prov["source"]
    assert tab["fitted level factor (actual / expected claims)"].startswith(f"{18 / 46.5:.3f} (95% interval")
    assert dict(basis_table(None, "CI4", None).iter_rows())["basis"] == "none (no basis configured)"


def test_rules_come_from_the_conventions_or_the_configuration():
    cfg = config_from_dict({"data": {"members": "m.parquet", "claims": "c.parquet"}})
    rows = {r[0]: r[1:] for r in rules_table(cfg).iter_rows()}
    assert rows["management fee (% of claims shared)"] == (f"{100 * cv.FEE:g}", "default (engine.conventions)")
    assert rows["waiting period (days)"][0] == f"{cv.WAITING_DAYS:,}"
    assert rows["sharing days of the month"][0] == ", ".join(map(str, cv.SHARING_DAYS))
    assert rows["sharing periods per year"][0] == str(cv.periods_per_year())
    assert rows["annual cap (CNY per member per year)"][0] == f"{cv.ANNUAL_CAP_CNY:,g}"
    assert rows["per-claimant cap (CNY per member per claim)"][0] == f"{cv.PER_CLAIMANT_CAP_CNY:g}"
    cfg2 = config_from_dict({"data": {"members": "m.parquet", "claims": "c.parquet"},
                             "history": {"fee": 0.05, "sharing_days": [28], "annual_cap": 0.0},
                             "study": {"waiting_days": 180}})
    rows = {r[0]: r[1:] for r in rules_table(cfg2).iter_rows()}
    assert rows["management fee (% of claims shared)"] == ("5", "run configuration")
    assert rows["waiting period (days)"] == ("180", "run configuration")
    assert rows["sharing periods per year"][0] == "12"
    assert rows["annual cap (CNY per member per year)"] == ("none", "run configuration")


def test_projection_assumptions_are_shown_as_projected():
    a = make_assumptions(lapse={"app": 0.2, "*": 0.1}, elasticity=1.5, expectations=0.3,
                         joiners={"per_period": 500, "growth": 0.01, "then": "replace"}, horizon=48, n_scenarios=200)
    rows = dict(projection_table(a).iter_rows())
    assert rows["lapse: base annual probability"] == "app: 20.0%, *: 10.0%"
    assert rows["price elasticity of lapses"] == "1.5"
    assert rows["expected share: adaptation speed per period"] == "0.3"
    assert rows["joiners"] == "500 per period, growth 0.01 per period, then replace"
    assert rows["horizon (sharing periods)"] == "48" and rows["Monte Carlo scenarios"] == "200"


def test_plan_rules_are_the_projected_ones():
    from types import SimpleNamespace

    res = SimpleNamespace(assumptions=make_assumptions(periods_per_year=24, fee=0.06, per_claimant_cap=0.05),
                          groups=pl.DataFrame({"benefit_cny": [300_000.0, 100_000.0, 300_000.0]}))
    (row,) = plan_rules_table({"pooled/p": res}).iter_rows(named=True)
    assert row["benefits (CNY)"] == "100,000, 300,000"
    assert row["management fee (% of claims shared)"] == pytest.approx(6.0)
    # days -> whole sharing periods: round(days x periods a year / 365.25)
    assert row["waiting period (sharing periods)"] == round(cv.WAITING_DAYS * 24 / 365.25) == 6
    assert row["reporting lag (sharing periods)"] == round(cv.REPORTING_LAG_DAYS * 24 / 365.25) == 2
    assert row["per-claimant cap (CNY per member per claim)"] == 0.05 and row["annual cap (CNY per member per year)"] is None


def test_data_fingerprint_ignores_row_and_column_order_not_content():
    m = pl.DataFrame({"member_id": ["a", "b", "c"], "age": [30, 40, 50]})
    c = pl.DataFrame({"claim_id": ["x"], "member_id": ["b"]})
    fp = data_fingerprint(m, c)
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert data_fingerprint(m.reverse().select("age", "member_id"), c) == fp
    assert data_fingerprint(m.with_columns(pl.Series("age", [30, 40, 51])), c) != fp
    assert data_fingerprint(c, m) != fp  # members and claims are not interchangeable


def _strings(path: Path) -> list[str]:
    """Every literal passed to t() in a module, and the driver labels."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = [n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "t"
           and n.args and isinstance(n.args[0], ast.Constant)]
    for n in ast.walk(tree):
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "DRIVER_LABELS":
            out += [v.value for v in n.value.values]
    return out


@pytest.mark.parametrize("module", ["_assumptions.py", "_pricing.py", "_share_views.py"])
def test_every_string_of_the_new_views_is_in_the_chinese_catalogue(module):
    keys = _strings(ROOT / "engine" / "report" / module)
    assert keys
    missing = [k for k in keys if k not in zh_catalogue()]
    assert missing == []
    with use_language("zh"):
        assert t("reporting lag (claims approved later)") == "报告延迟（理赔较晚审核通过）"


# ----------------------------------------------------------------------------- on the shared small demo
def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def test_small_demo_report_has_the_assumptions_and_pricing_sections(small_demo):
    from engine._version import __version__
    from engine.report.build import SECTIONS

    run = small_demo.out / "run"
    html = (run / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r'<section id="([^"]+)">', html)
    assert ids == list(SECTIONS) and set(NEW_SECTIONS) <= set(ids)
    a = _section(html, "assumptions")
    assert "CI2020 CI4" in a and "fitted level factor" in a and f"fentan {__version__}" in a
    # the level factor is the run's A/E against the basis (summary.json), the account is account.json's
    summ = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert f"{summ['facts']['ae_vs_basis']:.3f} (95% interval" in a
    acc = json.loads((run / "account.json").read_text(encoding="utf-8"))
    for what in ("members", "claims"):
        x = acc[what]
        assert f"{x['read']:,} = {x['used']:,} + {x['set_aside_total']:,}" in a
    # the fingerprint is the validated data's
    res = small_demo.result["validation"]
    assert data_fingerprint(res.members.collect(), res.claims.collect()) in a
    # pricing views: a chart per rating factor naming its reference level, an age curve per sex, A/E tables
    r = _section(html, "relativities")
    for f in ("sex", "city_tier", "channel"):
        assert f"{f}: relativity against the reference level" in r
    assert r.count('class="ct">Age curve, sex') == 2 and "age_bs" not in r
    ae = _section(html, "actual-expected")
    assert "Actual / expected claims by calendar period" in ae and "A/E, basis" in ae
    fans = _section(html, "fan-charts")
    assert fans.count("share paid (after caps)") == fans.count("cost per member before caps") >= 1


def test_pricing_views_rebuild_from_the_run_outputs_in_chinese(small_demo):
    """The views need only the run's outputs (cells, saved GLM, tables, configuration); in Chinese every
    heading is translated and the names the user wrote (factors, plans) stay as written."""
    from types import SimpleNamespace

    from engine.estimators.glm import PoissonGLM
    from engine.pipeline.config import load_config
    from engine.report._pricing import actual_expected, add_pricing, calendar_label
    from engine.report._share_views import add_share_views
    from engine.report.document import Report

    run = small_demo.out / "run"
    tables = {n: pl.read_parquet(run / f"{n}.parquet") for n in ("segments", "incidence", "decomposition", "projection")}
    cells = pl.read_parquet(run / "cells.parquet")
    ctx = SimpleNamespace(cfg=load_config(run / "config.toml"), tables=tables, cells=cells,
                          glm=PoissonGLM.load(run / "models" / "glm"))
    summ = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    acc = json.loads((run / "account.json").read_text(encoding="utf-8"))
    # one number for one thing: the A/E views add up to the run's claims used and its A/E against the basis
    ae = actual_expected(cells, calendar_label(cells), None, "ci2020", ctx.cfg.incidence.table)
    assert ae["claims"].sum() == acc["claims"]["used"]
    assert ae["claims"].sum() / ae["expected_basis"].sum() == pytest.approx(summ["facts"]["ae_vs_basis"], rel=1e-9)
    rep = Report("t")
    with use_language("zh"):
        add_pricing(rep, ctx)
        add_share_views(rep, ctx, summ["plans"])
    titles = {s.id: s.title for s in rep.sections}
    assert titles == {"groups": "风险组及其规则", "relativities": "单因素相对系数与年龄曲线",
                      "actual-expected": "按日历期间及按 city_tier, channel 的实际 / 预期",
                      "drivers": "分摊额变动的原因：各驱动因素及其数值", "fan-charts": "预测分摊：实付分摊与封顶前成本"}
    html = rep.render()
    assert "city_tier：相对于基准水平 1 的相对系数" in html and "pooled/xianghubao：实付分摊（封顶后）" in html
    assert "relativity against the reference level" not in html and "share paid (after caps)" not in html
