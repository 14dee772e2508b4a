"""Pooled versus vertical comparison: a hand-computed example, a loop oracle, identities, the CLI."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.plans.compare import build_risk_table, compare_plans
from engine.errors import ConfigError, DataError
from engine.plans.planset import plans_from_dict
from tests.kits.cli_error import error_line

ROOT = Path(__file__).resolve().parents[1]


def _plan(name, ages, benefit, **kw):
    return {"name": name, "eligibility": {"age": list(ages)}, "benefit": benefit, "fee": 0.08,
            "waiting_days": 90, "sharing_days": [14, 28], **kw}


POOLED = plans_from_dict({"plans": [_plan("pool", (0, 59), [{"age": [0, 39], "amount": 300000},
                                                             {"age": [40, 59], "amount": 100000}])]}, "pool.toml")
VERTICAL = plans_from_dict({"plans": [_plan("young", (0, 39), 300000), _plan("old", (40, 59), 100000)]}, "vert.toml")
# group A: 1000 members aged 30, 0.012 claims/year; group B: 500 members aged 50, 0.048 claims/year
TABLE = pl.DataFrame({"age": [30, 50], "members": [1000.0, 500.0], "rate": [0.012, 0.048], "group": ["A", "B"]})


def _row(res, planset, plan, group=None):
    df = res.plans.filter((pl.col("planset") == planset) & (pl.col("plan") == plan))
    df = df.filter(pl.col("level") == "plan") if group is None else df.filter(pl.col("group") == group)
    assert df.height == 1
    return df.row(0, named=True)


def test_hand_computed_example():
    # Hand computation (24 periods a year, fee 8%):
    # m_A = 1000*0.012/24 = 0.5 claims/period, cost 0.5*300000*1.08 = 162000
    # m_B = 500*0.048/24 = 1.0 claims/period, cost 1.0*100000*1.08 = 108000
    # pooled share = 270000/1500 = 180; own A = 162; own B = 216; cross-subsidy A +18, B -36
    res = compare_plans(TABLE, VERTICAL, pooled=POOLED)
    p = _row(res, "pooled", "pool")
    assert p["members"] == 1500
    assert p["expected_claims_per_period"] == pytest.approx(1.5)
    assert p["share_current_mix_cny"] == pytest.approx(180.0)
    assert p["expected_share_cny"] == pytest.approx(180.0)
    assert p["share_cv_approx"] == pytest.approx(1 / math.sqrt(1.5))
    assert p["share_cv"] == pytest.approx(math.sqrt(0.5 * 300000**2 + 1.0 * 100000**2) / 250000)  # 0.938083
    assert p["share_cv"] == pytest.approx(0.9380831519646859)
    a = _row(res, "pooled", "pool", "A")
    b = _row(res, "pooled", "pool", "B")
    assert a["own_share_cny"] == pytest.approx(162.0) and b["own_share_cny"] == pytest.approx(216.0)
    assert a["cross_subsidy_cny"] == pytest.approx(18.0) and b["cross_subsidy_cny"] == pytest.approx(-36.0)
    assert a["leverage"] == pytest.approx(300000 / (24 * 180))  # 69.44
    assert b["leverage"] == pytest.approx(100000 / (24 * 180))
    y = _row(res, "vertical", "young")
    o = _row(res, "vertical", "old")
    assert y["share_current_mix_cny"] == pytest.approx(162.0) and o["share_current_mix_cny"] == pytest.approx(216.0)
    assert y["leverage"] == pytest.approx(300000 / (24 * 162)) and o["leverage"] == pytest.approx(100000 / (24 * 216))
    assert y["share_cv"] == pytest.approx(1 / math.sqrt(0.5)) and o["share_cv"] == pytest.approx(1.0)
    # matrix: gross[A->B] = 180000 * 108000/270000 = 72000; gross[B->A] = 90000 * 162000/270000 = 54000
    m = res.cross_subsidy
    ab = m.filter((pl.col("payer_group") == "A") & (pl.col("beneficiary_group") == "B")).row(0, named=True)
    ba = m.filter((pl.col("payer_group") == "B") & (pl.col("beneficiary_group") == "A")).row(0, named=True)
    assert ab["gross_cny_per_period"] == pytest.approx(72000.0) and ba["gross_cny_per_period"] == pytest.approx(54000.0)
    assert ab["net_cny_per_period"] == pytest.approx(18000.0) and ba["net_cny_per_period"] == pytest.approx(-18000.0)
    assert ab["net_cny_per_member_year"] == pytest.approx(18.0 * 24)
    ch = {r["group"]: r for r in res.changes.iter_rows(named=True)}
    assert ch["A"]["annual_payment_before_cny"] == pytest.approx(180 * 24)
    assert ch["A"]["annual_payment_after_cny"] == pytest.approx(162 * 24)
    assert ch["B"]["annual_payment_change_cny"] == pytest.approx(36 * 24)
    assert ch["A"]["annual_cross_subsidy_before_cny"] == pytest.approx(18 * 24)
    assert ch["B"]["share_cv_after"] == pytest.approx(1.0)
    assert ch["A"]["plan_after"] == "young" and ch["A"]["plan_before"] == "pool"


def test_default_pooled_is_the_union_and_groups_default_to_plans():
    res = compare_plans(TABLE.drop("group"), VERTICAL)
    p = _row(res, "pooled", "pooled")
    assert p["share_current_mix_cny"] == pytest.approx(180.0)
    assert set(res.changes["group"]) == {"young", "old"}


def test_caps_and_growth():
    raw = {"plans": [_plan("pool", (0, 59), [{"age": [0, 39], "amount": 300000}, {"age": [40, 59], "amount": 100000}],
                           caps={"per_claimant": 0.1, "annual": 188.0})]}
    capped = plans_from_dict(raw, "c.toml")
    res = compare_plans(TABLE, VERTICAL, pooled=capped, growth_per_period=0.01)
    p = _row(res, "pooled", "pool")
    assert p["share_after_caps_cny"] == pytest.approx(0.15)  # 0.1 CNY x 1.5 expected claimants < 188/24
    assert p["cap_binding"] is True
    assert p["expected_share_cny"] == pytest.approx(180.0 * 1.01 ** (-90 * 24 / 365.25))
    assert p["share_current_mix_cny"] == pytest.approx(180.0)


def test_risk_proportional_plan_has_no_cross_subsidy():
    raw = {"plans": [_plan("pool", (0, 59), [{"age": [0, 39], "amount": 300000}, {"age": [40, 59], "amount": 100000}],
                           rule="risk_proportional")]}
    res = compare_plans(TABLE, VERTICAL, pooled=plans_from_dict(raw, "rp.toml"))
    g = res.plans.filter((pl.col("planset") == "pooled") & (pl.col("level") == "group"))
    assert np.allclose(g["cross_subsidy_cny"].to_numpy(), 0.0)
    assert np.allclose(res.cross_subsidy["net_cny_per_period"].to_numpy(), 0.0)


def _oracle(rows, assign_pool):
    """Loop oracle: pooled share and each group's own share from plain Python."""
    tot_cost, tot_n = {}, {}
    g_cost, g_n = {}, {}
    for r in rows:
        plan, ben = assign_pool(r["age"])
        c = 1.08 * r["members"] * r["rate"] / 24 * ben
        tot_cost[plan] = tot_cost.get(plan, 0) + c
        tot_n[plan] = tot_n.get(plan, 0) + r["members"]
        k = (plan, r["group"])
        g_cost[k] = g_cost.get(k, 0) + c
        g_n[k] = g_n.get(k, 0) + r["members"]
    return {k: (tot_cost[k[0]] / tot_n[k[0]], g_cost[k] / g_n[k], g_n[k]) for k in g_cost}


def test_against_loop_oracle_and_matrix_identities():
    rng = np.random.default_rng(1)
    rows = [{"age": int(a), "members": float(rng.integers(1, 5000)), "rate": float(rng.uniform(0, 0.02)),
             "group": f"g{rng.integers(0, 4)}"} for a in rng.integers(0, 60, size=80)]
    t = pl.DataFrame(rows)
    res = compare_plans(t, VERTICAL, pooled=POOLED)
    want = _oracle(rows, lambda a: ("pool", 300000 if a <= 39 else 100000))
    g = res.plans.filter((pl.col("planset") == "pooled") & (pl.col("level") == "group"))
    for r in g.iter_rows(named=True):
        share, own, n = want[(r["plan"], r["group"])]
        assert r["payment_cny"] == pytest.approx(share)
        assert r["own_share_cny"] == pytest.approx(own)
        assert r["cross_subsidy_cny"] == pytest.approx(share - own)
        assert r["members"] == pytest.approx(n)
    # sum_k N_k x_k = 0 and sum_j net[k, j] = N_k x_k
    assert float((g["members"] * g["cross_subsidy_cny"]).sum()) == pytest.approx(0.0, abs=1e-6)
    net = res.cross_subsidy.group_by("payer_group").agg(pl.col("net_cny_per_period").sum())
    xs = dict(zip(g["group"], g["members"] * g["cross_subsidy_cny"]))
    for grp, v in net.iter_rows():
        assert v == pytest.approx(xs[grp], rel=1e-9, abs=1e-6)
    vert_want = _oracle(rows, lambda a: ("young", 300000) if a <= 39 else ("old", 100000))
    v = res.plans.filter((pl.col("planset") == "vertical") & (pl.col("level") == "group"))
    for r in v.iter_rows(named=True):
        assert r["payment_cny"] == pytest.approx(vert_want[(r["plan"], r["group"])][0])


def test_uncovered_rows_are_reported():
    t = pl.DataFrame({"age": [30, 65], "members": [10.0, 20.0], "rate": [0.01, 0.02]})
    res = compare_plans(t, VERTICAL, pooled=POOLED)
    assert res.uncovered["age"].to_list() == [65]


def test_input_errors():
    with pytest.raises(DataError, match="column 'rate'"):
        compare_plans(TABLE.drop("rate"), VERTICAL)
    with pytest.raises(DataError, match="'members' \\(or 'exposure_years'\\)"):
        compare_plans(TABLE.drop("members"), VERTICAL)
    with pytest.raises(DataError, match="column 'age'"):
        compare_plans(TABLE.drop("age"), VERTICAL)
    with pytest.raises(DataError, match="column 'rate' must be finite"):
        compare_plans(TABLE.with_columns(pl.lit(-1.0).alias("rate")), VERTICAL)
    with pytest.raises(DataError, match="group column 'seg'"):
        compare_plans(TABLE, VERTICAL, group="seg")
    with pytest.raises(ConfigError, match="growth_per_period"):
        compare_plans(TABLE, VERTICAL, growth_per_period=-2)
    with pytest.raises(ConfigError, match="periods_per_year"):
        compare_plans(TABLE, VERTICAL, periods_per_year=0)
    with pytest.raises(ConfigError, match="PlanSet"):
        compare_plans(TABLE, [1])


def _cells():
    rows = []
    for m in range(1, 13):
        for age, tier, e, c in ((30, 1, 100.0, 1), (50, 4, 50.0, 2)):
            rows.append({"period": dt.date(2020, m, 1), "age": age, "city_tier": tier, "duration": m,
                         "exposure_years": e / 12, "claims": c})
    return pl.DataFrame(rows)


def test_build_risk_table_crude_and_model():
    t = build_risk_table(_cells())
    assert t.columns[:2] == ["age", "city_tier"]
    r = {row["age"]: row for row in t.iter_rows(named=True)}
    assert r[30]["members"] == pytest.approx(100.0)  # 12 monthly periods = 1 year
    assert r[30]["rate"] == pytest.approx(12 / 100.0)
    assert r[50]["rate"] == pytest.approx(24 / 50.0)

    class Fake:
        def predict(self, df):
            return (df["age"] / 1000.0).to_numpy()

    t2 = build_risk_table(_cells(), Fake(), by=["age"])
    assert t2["rate"].to_list() == pytest.approx([0.03, 0.05])
    class Seg:
        def assign(self, df):
            return pl.Series("group", [1 if a < 40 else 2 for a in df["age"]], dtype=pl.Int32)

    t4 = build_risk_table(_cells(), segmenter=Seg())
    assert t4["group"].to_list() == ["1", "2"]
    t3 = build_risk_table(_cells(), study_years=2.0)
    assert t3["members"].to_list() == pytest.approx([50.0, 25.0])
    with pytest.raises(DataError, match="'nope'"):
        build_risk_table(_cells(), by=["nope"])


def test_cli_writes_outputs(tmp_path, capsys):
    from engine.cli.main import main

    cells = tmp_path / "cells.parquet"
    _cells().write_parquet(cells)
    out = tmp_path / "out"
    code = main(["plans", str(ROOT / "configs" / "vertical.toml"), "--cells", str(cells), "--pooled",
                 str(ROOT / "configs" / "xianghubao.toml"), "--out", str(out), "--quiet", "--migrate",
                 "--waiting-cost"])
    assert code == 0
    plans = pl.read_parquet(out / "plans.parquet")
    xs = pl.read_parquet(out / "cross_subsidy.parquet")
    assert {"pooled", "vertical"} == set(plans["planset"])
    assert xs.height == 4  # two groups (youth, middle_tier4-5) in the pooled plan: a 2 x 2 matrix
    assert (out / "migration_pools.parquet").exists()
    code = main(["plans", str(tmp_path / "nope.toml"), "--cells", str(cells), "--out", str(out)])
    assert code == 2
    error_line(capsys, "plans", str(tmp_path / "nope.toml"), "no such plan file")
    code = main(["plans", str(ROOT / "configs" / "vertical.toml"), "--cells", str(cells), "--pooled",
                 str(ROOT / "configs" / "xianghubao.toml"), "--out", str(out), "--quiet", "--optimise", "2",
                 "--min-claims", "0.1", "--factors", "city_tier", "--sharing-rules", "--group", "age,city_tier"])
    assert code == 0
    rules = pl.read_parquet(out / "rules.parquet")
    assert set(rules["rule"]) == {"equal", "risk_proportional", "conditional_mean"}
    assert set(rules["group"]) == {"30|1", "50|4"}
    trade = pl.read_parquet(out / "optimise_tradeoff.parquet")
    assert trade["k"].to_list() == [1, 2] and trade["feasible"].all()
    from engine.plans.planset import load_plans

    assert len(load_plans(out / "optimised_k2.toml")) == 2
    capsys.readouterr()  # the warnings of the runs above
    code = main(["plans", str(ROOT / "configs" / "vertical.toml"), "--cells", str(tmp_path / "none.parquet"),
                 "--out", str(out), "--quiet"])
    assert code == 2
    error_line(capsys, "plans", str(tmp_path / "none.parquet"), "no such file")


def test_conditional_mean_plan_payment_cv_matches_sharing_module():
    from engine.plans.sharing import share_rule

    raw = {"plans": [_plan("pool", (0, 59), [{"age": [0, 39], "amount": 300000}, {"age": [40, 59], "amount": 100000}],
                           rule="conditional_mean")]}
    res = compare_plans(TABLE, VERTICAL, pooled=plans_from_dict(raw, "cm.toml"))
    a = _row(res, "pooled", "pool", "A")
    b = _row(res, "pooled", "pool", "B")
    assert a["cross_subsidy_cny"] == pytest.approx(0.0) and b["payment_cny"] == pytest.approx(216.0)
    want = share_rule("conditional_mean", pl.DataFrame({"members": [1000.0, 500.0], "rate": [0.012, 0.048],
                                                        "benefit_cny": [300000.0, 100000.0]}), periods_per_year=24)
    assert a["payment_cv"] == pytest.approx(want["payment_cv"][0], rel=1e-9)
    assert b["payment_cv"] == pytest.approx(want["payment_cv"][1], rel=1e-9)
    assert a["payment_cv"] != pytest.approx(a["share_cv"])  # differs from the equal-sharing CV


def test_write(tmp_path):
    res = compare_plans(TABLE, VERTICAL, pooled=POOLED)
    out = res.write(tmp_path / "o")
    for f in ("plans", "cross_subsidy", "changes", "uncovered"):
        assert (out / f"{f}.parquet").exists()
    assert pl.read_parquet(out / "plans.parquet").equals(res.plans)


def test_rules_for_plan_agrees_with_compare():
    from engine.plans.sharing import rules_for_plan

    r = rules_for_plan(TABLE, POOLED[0])
    eq = {row["group"]: row for row in r.filter(pl.col("rule") == "equal").iter_rows(named=True)}
    assert eq["A"]["expected_payment_cny"] == pytest.approx(180.0)
    assert eq["A"]["cross_subsidy_cny"] == pytest.approx(18.0) and eq["B"]["cross_subsidy_cny"] == pytest.approx(-36.0)
    cm = r.filter(pl.col("rule") == "conditional_mean")
    assert np.allclose(cm["fairness"].to_numpy(), 1.0, rtol=1e-9)
    with pytest.raises(DataError, match="no row is eligible"):
        rules_for_plan(TABLE.with_columns(pl.lit(80).alias("age")), POOLED[0])


def test_plots_and_summaries_return(capsys):
    import matplotlib

    matplotlib.use("Agg")
    from engine.plans.migration import migrate
    from engine.plans.optimise import optimise_plans
    from engine.plans.planset import PlanSet

    import matplotlib.pyplot as plt

    res = compare_plans(TABLE, VERTICAL, pooled=POOLED)
    assert res.plot_changes() is not None and res.plot_cross_subsidy() is not None
    res.print_summary()
    mig = migrate(TABLE, PlanSet(POOLED.plans + VERTICAL.plans))
    assert mig.plot_history() is not None
    mig.print_summary()
    opt = optimise_plans(TABLE, POOLED[0], max_plans=2, min_claims_per_period=0.1)
    assert opt.plot_tradeoff() is not None
    opt.print_summary(decimals=2)
    out = capsys.readouterr().out
    assert "migration" in out and "granularity" in out and "plans" in out
    # the result-object contract: summary is a DataFrame property, plots draw on the ax given, HTML card
    for r in (res, mig, opt):
        assert isinstance(r.summary, pl.DataFrame) and r.summary.height > 0
        assert type(r).__name__ in r._repr_html_()
    for plot in (res.plot_changes, res.plot_cross_subsidy, mig.plot_history, opt.plot_tradeoff):
        fig, ax = plt.subplots()
        assert plot(ax=ax) is ax
        plt.close(fig)


def test_cli_with_saved_glm(tmp_path, capsys):
    glm = pytest.importorskip("engine.estimators.glm")
    from engine.cli.main import main

    rng = np.random.default_rng(5)
    rows = []
    for m in range(1, 13):
        for age in range(0, 60, 3):
            for tier in (1, 2, 3, 4, 5):
                e = 500.0 * (1 + tier) / 12
                rows.append({"period": dt.date(2020, m, 1), "age": age, "city_tier": tier, "exposure_years": e,
                             "claims": int(rng.poisson(e * 0.001 * 1.06**age))})
    cells = pl.DataFrame(rows).with_columns(pl.col("age").cast(pl.Int32))
    cells.write_parquet(tmp_path / "cells.parquet")
    model = glm.PoissonGLM(factors=["city_tier"]).fit(cells)
    model.save(tmp_path / "glm")
    out = tmp_path / "out"
    code = main(["plans", str(ROOT / "configs" / "vertical.toml"), "--cells", str(tmp_path / "cells.parquet"),
                 "--model", str(tmp_path / "glm"), "--out", str(out), "--quiet"])
    assert code == 0
    risk = pl.read_parquet(out / "risk_table.parquet")
    assert np.allclose(risk["rate"].to_numpy(), model.predict(risk))
    code = main(["plans", str(ROOT / "configs" / "vertical.toml"), "--cells", str(tmp_path / "cells.parquet"),
                 "--model", str(tmp_path / "nomodel"), "--out", str(out), "--quiet"])
    assert code == 2
    error_line(capsys, "plans", str(tmp_path / "nomodel"), "not a fentan model directory", "model.json")


def test_plan_without_members_is_listed():
    t = TABLE.filter(pl.col("age") < 40)
    res = compare_plans(t, VERTICAL, pooled=POOLED)
    old = _row(res, "vertical", "old")
    assert old["members"] == 0.0 and old["share_current_mix_cny"] is None


def test_matrix_size_guard_and_lazy_input(monkeypatch):
    import engine.plans.compare as cmp
    from engine.errors import ResourceError

    res = compare_plans(TABLE.lazy(), VERTICAL, pooled=POOLED)
    assert _row(res, "pooled", "pool")["share_current_mix_cny"] == pytest.approx(180.0)
    monkeypatch.setattr(cmp, "MAX_MATRIX_GROUPS", 1)
    with pytest.raises(ResourceError, match="2 groups"):
        compare_plans(TABLE, VERTICAL, pooled=POOLED)
    with pytest.raises(DataError, match="polars DataFrame"):
        compare_plans({"age": [1]}, VERTICAL)
