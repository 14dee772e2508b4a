"""RiskSegmenter: recovery of planted groups, hand-computed metrics, persistence, CLI."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import chi2

from tests.kits.segmentation_sim import planted_group, sim_cells

from engine.errors import ConfigError, DataError, ModelError
from engine.segmentation.metrics import gini, weighted_ari
from engine.segmentation._model import CellPoissonModel
from engine.segmentation.segmenter import RiskSegmenter
from tests.kits.cli_error import error_line


class FixedModel:
    """Reference model for tests: the rate is the cells' ``_rate`` column."""

    def fit(self, cells):
        return self

    def predict(self, cells):
        return cells["_rate"].to_numpy()


@pytest.fixture(scope="module")
def sim():
    cells, rate = sim_cells(seed=1, scale=500)
    return cells.with_columns(pl.Series("_rate", rate)), rate


def _truth(cells):
    return planted_group(cells["city_tier"].to_numpy(), cells["channel"].to_numpy())


def _dev(d, mu):
    d = np.asarray(d, float)
    t = np.where(d > 0, d * np.log(np.where(d > 0, d, 1) / mu), 0.0)
    return 2 * np.sum(t - (d - mu))


@pytest.mark.parametrize("method", ["tree", "cluster"])
def test_planted_groups_recovered(sim, method):
    cells, rate = sim
    # the planted "tiers 3-5 but not tiers 4-5 & subsidy" group is two conjunctions: the tree merges leaves
    seg = RiskSegmenter(method=method, features=["city_tier", "channel"], adjust_for=["age", "sex"],
                        model=CellPoissonModel(), merge_leaves=method == "tree").fit(cells)
    assert seg.n_groups_ == 4
    ari = weighted_ari(_truth(cells), seg.assign(cells).to_numpy(), cells["exposure_years"].to_numpy())
    assert ari >= 0.9
    # held-out claims drawn from the same true rates: deviance within 2% of the oracle
    rng = np.random.default_rng(99)
    e = cells["exposure_years"].to_numpy()
    held = rng.poisson(rate * e)
    d_seg = _dev(held, seg.predict(cells) * e)
    d_oracle = _dev(held, rate * e)
    assert d_seg <= 1.02 * d_oracle


def test_tree_rules_are_readable_and_reproduce_assignment(sim):
    cells, _ = sim
    seg = RiskSegmenter(features=["city_tier", "channel"], adjust_for=["age", "sex"], model=FixedModel()).fit(cells)
    rules = seg.groups_["rule"].to_list()
    assert any("city_tier in {4,5} & channel in {subsidy}" == r for r in rules)
    # evaluating the rule texts by hand gives the assignment
    g = seg.assign(cells).to_numpy()
    for row in cells.select("city_tier", "channel").unique().iter_rows(named=True):
        mask = (cells["city_tier"] == row["city_tier"]) & (cells["channel"] == row["channel"])
        gid = np.unique(g[mask.to_numpy()])
        assert gid.size == 1
        text = rules[gid[0] - 1]
        hits = []
        for alt in text.split(" | "):
            ok = True
            for cond in alt.split(" & "):
                f, _, vals = cond.partition(" in ")
                vals = vals.strip("{}").split(",")
                ok &= str(row[f]) in vals
            hits.append(ok)
        assert any(hits)


def test_age_bands_tree_contiguous_and_monotone():
    cells, rate = sim_cells(seed=2, scale=300, ages=range(20, 60))
    seg = RiskSegmenter(features=["age"], contiguous_age=True, monotone_age=True, max_groups=6,
                        model=FixedModel()).fit(cells.with_columns(pl.Series("_rate", rate)))
    g = seg.groups_.sort("group")
    assert g.height >= 3
    assert all(r.startswith("age") for r in g["rule"])  # e.g. "age 40-49"
    assert np.all(np.diff(g["rate"].to_numpy()) > 0)
    by_age = pl.DataFrame({"age": np.arange(20, 60, dtype=np.int32)})
    a = seg.assign(by_age).to_numpy()
    assert np.all(np.diff(a) >= 0)  # groups numbered by rate, monotone & contiguous in age


def test_rules_reproduce_hand_computed_metrics():
    # 4 cells over one year; the model rate is given; benefit 300k below 40, 100k from 40
    cells = pl.DataFrame({
        "age": pl.Series([30, 30, 50, 50], dtype=pl.Int32),
        "city_tier": [1, 4, 1, 4],
        "exposure_years": [1000.0, 3000.0, 2000.0, 4000.0],
        "claims": [1, 6, 10, 30],
        "_rate": [0.001, 0.002, 0.005, 0.007],
    })
    cfg = [{"name": "young", "age": [0, 39]}, {"name": "old", "age": [40, 59]}]
    seg = RiskSegmenter(method="rules", rules=cfg, model=FixedModel(), min_claims=0,
                        period_months=1, benefit=[(39, 300_000), (200, 100_000)]).fit(cells)
    g = seg.groups_.sort("group")
    assert g["name"].to_list() == ["young", "old"]
    assert g["rule"].to_list() == ["age <= 39", "age >= 40"] or g["rule"].to_list() == ["age 0-39", "age 40-59"]
    # by hand
    E = [4000.0, 6000.0]
    D = [7.0, 40.0]
    assert g["exposure_years"].to_list() == E
    assert g["claims"].to_list() == D
    assert g["rate"].to_list() == pytest.approx([7 / 4000, 40 / 6000])
    # relativity against the named reference, the portfolio's crude rate 47 / 10,000 (not the rate itself)
    assert g["relativity_to_portfolio"].to_list() == pytest.approx([(7 / 4000) / (47 / 10000), (40 / 6000) / (47 / 10000)])
    assert g["relativity"].to_list() == g["relativity_to_portfolio"].to_list()  # the deprecated alias
    assert g["relativity_to_base"].to_list() == pytest.approx([7 / 4000, 40 / 6000])  # no base: the rate
    assert seg.predict(cells).tolist() == pytest.approx([7 / 4000, 7 / 4000, 40 / 6000, 40 / 6000])
    assert g["rate_upper"][0] == pytest.approx(chi2.ppf(0.975, 16) / 8000)
    assert g["rate_lower"][1] == pytest.approx(chi2.ppf(0.025, 80) / 12000)
    assert g["expected_claims_per_period"].to_list() == pytest.approx([7 / 12, 40 / 12])
    assert g["share_cv"].to_list() == pytest.approx([1 / math.sqrt(7 / 12), 1 / math.sqrt(40 / 12)])
    fee = 0.08  # the platform's fee, the default of every share (engine.conventions.FEE)
    cost = [(1 + fee) * c for c in (0.001 * 300e3, 0.002 * 300e3, 0.005 * 100e3, 0.007 * 100e3)]
    ex = [1000, 3000, 2000, 4000]
    pooled = sum(c * e for c, e in zip(cost, ex)) / 10000
    own = [(cost[0] * 1000 + cost[1] * 3000) / 4000, (cost[2] * 2000 + cost[3] * 4000) / 6000]
    assert g["cross_subsidy"].to_list() == pytest.approx([pooled - own[0], pooled - own[1]])
    assert g["cross_subsidy_per_period"].to_list() == pytest.approx([(pooled - own[0]) / 12, (pooled - own[1]) / 12])
    # Gini: groups sorted by rate, Lorenz of claims against exposure
    x = [0, 0.4, 1.0]
    y = [0, 7 / 47, 1.0]
    gin = 1 - sum((x[i] - x[i - 1]) * (y[i] + y[i - 1]) for i in (1, 2))
    assert seg.metrics_["gini"] == pytest.approx(gin)
    # deviance explained by the two rates vs one rate
    d = np.array([1, 6, 10, 30.0])
    e = np.array(ex, float)
    mu_seg = e * np.array([7 / 4000, 7 / 4000, 40 / 6000, 40 / 6000])
    mu_one = e * 47 / 10000
    assert seg.metrics_["deviance_explained"] == pytest.approx(1 - _dev(d, mu_seg) / _dev(d, mu_one))
    # homogeneity of the predicted rates
    r = np.array([0.001, 0.002, 0.005, 0.007])
    gm = [(0.001 * 1000 + 0.002 * 3000) / 4000, (0.005 * 2000 + 0.007 * 4000) / 6000]
    within = sum(e[i] * (r[i] - gm[i // 2]) ** 2 for i in range(4)) / 10000
    mean = sum(e * r) / 10000
    total = sum(e[i] * (r[i] - mean) ** 2 for i in range(4)) / 10000
    assert seg.metrics_["within_dispersion"] == pytest.approx(within)
    assert seg.metrics_["homogeneity"] == pytest.approx(1 - within / total)


def test_relativity_is_to_the_portfolio_rate_and_predict_keeps_the_base(sim):
    """Adjusted for age and sex, a group's ``relativity_to_portfolio`` is its crude rate over the portfolio's (summed
    here from the cells and the assignment, not from the table); ``predict`` = base x relativity_to_base, so the
    expected claims of each group equal its observed claims."""
    cells, _ = sim
    seg = RiskSegmenter(features=["city_tier", "channel"], adjust_for=("age", "sex"), method="cluster",
                        model=CellPoissonModel(), n_groups=3).fit(cells.drop("_rate"))
    lab = cells.with_columns(seg.assign(cells).alias("g"), pl.Series("mu", seg.predict(cells)))
    by = lab.group_by("g").agg(pl.col("claims").sum(), pl.col("exposure_years").sum(),
                               (pl.col("mu") * pl.col("exposure_years")).sum().alias("expected")).sort("g")
    crude = lab["claims"].sum() / lab["exposure_years"].sum()
    g = seg.groups_.sort("group")
    want = (by["claims"] / by["exposure_years"] / crude).to_list()
    assert g["relativity_to_portfolio"].to_list() == pytest.approx(want, rel=1e-12)
    assert g["relativity"].to_list() == g["relativity_to_portfolio"].to_list()
    assert by["expected"].to_list() == pytest.approx(by["claims"].to_list(), rel=1e-9)
    assert not np.allclose(g["relativity_to_base"].to_numpy(), g["relativity_to_portfolio"].to_numpy())
    assert float((g["relativity_to_portfolio"] * g["exposure_years"]).sum() / g["exposure_years"].sum()) == pytest.approx(1.0)
    assert "relativity_to_portfolio" in seg.summary.columns


def test_a_model_saved_before_relativity_to_portfolio_loads_with_the_new_columns(sim, tmp_path):
    """An artefact whose groups table has the old ``relativity`` (relative to the base rate) loads: that column
    becomes ``relativity_to_base`` (predictions unchanged) and the relativity to the portfolio is added."""
    from engine.segmentation._frontier import _current_groups

    cells, _ = sim
    seg = RiskSegmenter(features=["city_tier", "channel"], method="cluster", model=CellPoissonModel(),
                        n_groups=3).fit(cells.drop("_rate"))
    path = seg.save(tmp_path / "seg")
    old = seg.groups_.drop("relativity_to_portfolio", "relativity").rename({"relativity_to_base": "relativity"})
    new = _current_groups(old)
    for c in ("relativity_to_base", "relativity_to_portfolio", "relativity"):
        assert new[c].to_list() == pytest.approx(seg.groups_[c].to_list(), rel=1e-12), c
    assert _current_groups(seg.groups_).equals(seg.groups_)
    assert RiskSegmenter.load(path).predict(cells).tolist() == pytest.approx(seg.predict(cells).tolist(), rel=1e-12)


def test_rules_unmatched_error_or_other():
    cells = pl.DataFrame({"age": pl.Series([30, 50, 65], dtype=pl.Int32), "exposure_years": [10.0, 10.0, 10.0],
                          "claims": [1, 2, 3], "_rate": [0.1, 0.2, 0.3]})
    cfg = [{"name": "young", "age": [0, 39]}, {"name": "mid", "age": [40, 59]}]
    with pytest.raises(ConfigError, match="match no group"):
        RiskSegmenter(method="rules", rules=cfg, model=FixedModel(), min_claims=0).fit(cells)
    seg = RiskSegmenter(method="rules", rules=cfg, other="group", model=FixedModel(), min_claims=0).fit(cells)
    assert seg.groups_["name"].to_list() == ["young", "mid", "other"]
    assert seg.assign(cells).to_list() == [1, 2, 3]
    with pytest.raises(ConfigError, match=r"rules\[1\]"):
        RiskSegmenter(method="rules", rules=[{"age": [0, 39]}, {"age": [50, 40]}], model=FixedModel()).fit(cells)


def test_input_errors():
    with pytest.raises(ConfigError, match="method"):
        RiskSegmenter(method="kmeans").fit(pl.DataFrame({"exposure_years": [1.0], "claims": [0]}))
    with pytest.raises(DataError, match="claims"):
        RiskSegmenter().fit(pl.DataFrame({"exposure_years": [1.0]}))
    with pytest.raises(ModelError):
        RiskSegmenter().assign(pl.DataFrame({"age": [1]}))
    with pytest.raises(ConfigError, match="search_depth"):
        RiskSegmenter(search_depth=-1).fit(pl.DataFrame({"age": [1], "exposure_years": [1.0], "claims": [0]}))


def test_save_load_and_member_scoring(sim, tmp_path):
    cells, _ = sim
    seg = RiskSegmenter(features=["age", "city_tier", "channel"], max_groups=6, model=FixedModel()).fit(cells)
    path = seg.save(tmp_path / "models" / "seg")
    assert not list(path.glob("*.pkl"))
    back = RiskSegmenter.load(path)
    from engine.data.persist import fingerprint

    assert back.data_fingerprint_ == seg.data_fingerprint_ == fingerprint(cells.reverse(), ignore_row_order=True)
    assert back.data_fingerprint_ != fingerprint(cells.head(cells.height - 1), ignore_row_order=True)
    members = pl.DataFrame({
        "member_id": ["a", "b", "c", "d"],
        "birth_date": [dt.date(1980, 2, 29), dt.date(1980, 3, 1), dt.date(1995, 6, 30), dt.date(1962, 1, 1)],
        "city_tier": [5, 1, 4, 2], "channel": ["subsidy", "employer", "organic", "referral"],
    })
    at = dt.date(2021, 2, 28)
    g1 = seg.assign(members, at=at)
    g2 = back.assign(members, at=at)
    assert g1.to_list() == g2.to_list()
    assert back.assign(cells).to_list() == seg.assign(cells).to_list()
    # attained age: born 29 Feb 1980 is 40 on 28 Feb 2021 (birthday on 1 March in common years)
    age_cells = pl.DataFrame({"age": pl.Series([40, 41, 25, 59], dtype=pl.Int32), "city_tier": [5, 1, 4, 2],
                              "channel": ["subsidy", "employer", "organic", "referral"]})
    assert seg.assign(age_cells).to_list() == g1.to_list()
    assert back.summary.equals(seg.summary)
    assert back.frontier_.equals(seg.frontier_)
    with pytest.raises(ModelError, match="stability"):
        back.stability(cells, n_boot=1)
    # an unseen channel matches no group where a group's rule names the channel
    tv = pl.DataFrame({"age": pl.Series([25, 50] * 5, dtype=pl.Int32), "city_tier": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                       "channel": ["tv"] * 10})
    assert any("channel" in r for rs in back.rules_ for r in rs)
    with pytest.raises(DataError, match="match no group"):
        back.assign(tv)


def test_frontier_criterion_and_plot(sim):
    cells, _ = sim
    with pytest.warns(DeprecationWarning, match="min_marginal_gain"):  # the former greedy rule, still available
        seg = RiskSegmenter(method="cluster", features=["city_tier", "channel"], adjust_for=["age", "sex"],
                            min_marginal_gain=0.05, model=CellPoissonModel()).fit(cells)
    fr = seg.frontier_
    rem = fr["cross_subsidy_removed"].to_list()
    assert rem[0] == pytest.approx(0.0)
    k = 1
    while k < len(rem) and rem[k] - rem[k - 1] >= 0.05:
        k += 1
    assert seg.recommended_k_ == k == fr.filter(pl.col("recommended"))["k"][0]
    assert np.all(np.diff(fr["share_cv_weighted"].to_numpy()) > 0)
    two = RiskSegmenter(method="cluster", features=["city_tier", "channel"], adjust_for=["age", "sex"],
                        n_groups=2, model=CellPoissonModel()).fit(cells)
    assert two.n_groups_ == 2 and two.groups_.height == 2 and two.recommended_k_ == seg.recommended_k_
    import matplotlib

    matplotlib.use("Agg")
    ax = seg.plot_frontier()
    assert ax.get_xlabel().startswith("share CV")


def test_stability_seeded(sim):
    cells, _ = sim
    small = cells.filter(pl.col("period") == pl.col("period").min())
    seg = RiskSegmenter(features=["city_tier", "channel"], model=FixedModel(), min_claims=60,
                        window_years=1.0).fit(small)
    s1 = seg.stability(small, n_boot=3)
    s2 = seg.stability(small, n_boot=3)
    assert s1 == s2
    assert -1.0 <= s1["ari_min"] <= s1["ari_mean"] <= 1.0


def test_cli_segment(sim, tmp_path, capsys):
    from engine.cli.main import main

    cells, _ = sim
    cells.drop("_rate").write_parquet(tmp_path / "cells.parquet")
    rc = main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "out"),
               "--by", "city_tier,channel", "--adjust-for", "age,sex", "--method", "cluster", "--rate-model", "cell",
               "--quiet"])
    assert rc == 0
    s = pl.read_parquet(tmp_path / "out" / "segments.parquet")
    f = pl.read_parquet(tmp_path / "out" / "frontier.parquet")
    assert {"group", "rule", "exposure_years", "claims", "rate", "rate_lower", "rate_upper", "relativity_to_portfolio",
            "relativity", "expected_claims_per_period", "share_cv"} <= set(s.columns)
    crude = s["claims"].sum() / s["exposure_years"].sum()
    assert s["relativity_to_portfolio"].to_list() == pytest.approx((s["rate"] / crude).to_list(), rel=1e-12)
    assert s["exposure_years"].sum() == pytest.approx(cells["exposure_years"].sum())
    assert f["recommended"].sum() == 1
    assert {"cv_deviance", "cv_se_diff", "cv_best"} <= set(f.columns) and "members" in s.columns
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".") and p.name != ".fentan-output"]
    # deterministic: a second run writes the same bytes
    rc = main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "out2"),
               "--by", "city_tier,channel", "--adjust-for", "age,sex", "--method", "cluster", "--rate-model", "cell",
               "--quiet"])
    for name in ("segments.parquet", "frontier.parquet"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()
    rc = main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "out3"),
               "--search-depth", "-1", "--rate-model", "cell", "--quiet"])
    assert rc == 2 and "search_depth" in capsys.readouterr().err


def test_gini_and_weighted_ari_against_oracles():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 40)
    b = rng.integers(0, 4, 40)
    w = rng.integers(1, 5, 40)
    assert weighted_ari(a, b, w) == pytest.approx(adjusted_rand_score(np.repeat(a, w), np.repeat(b, w)))
    # Gini of a perfect ranking of two equal-exposure groups with claims 0 and 10: 0.5
    assert gini(np.array([1.0, 2.0]), np.array([0.0, 10.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)


def test_cli_rules_plan_from_toml(tmp_path, capsys):
    from engine.cli.main import main

    cells = pl.DataFrame({"age": pl.Series([30, 45, 55], dtype=pl.Int32), "sex": ["F", "M", "F"],
                          "exposure_years": [100.0, 200.0, 300.0], "claims": [2, 5, 9],
                          "amount": [600_000.0, 500_000.0, 900_000.0]})
    cells.write_parquet(tmp_path / "cells.parquet")
    (tmp_path / "plan.toml").write_text('[[groups]]\nname = "young"\nage = [0, 39]\n\n[[groups]]\nname = "old"\nage = [40, 59]\n')
    rc = main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "o"), "--method", "rules",
               "--rules", str(tmp_path / "plan.toml"), "--min-claims", "0", "--save-model", str(tmp_path / "m"),
               "--rate-model", "cell"])
    assert rc == 0
    s = pl.read_parquet(tmp_path / "o" / "segments.parquet")
    assert s["name"].to_list() == ["young", "old"]
    assert s["claims"].to_list() == [2.0, 14.0]
    assert "young" in capsys.readouterr().out
    back = RiskSegmenter.load(tmp_path / "m")
    assert back.assign(cells).to_list() == [1, 2, 2]
    back.print_summary()
    assert main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "o2"),
                 "--method", "rules"]) == 2
    error_line(capsys, "segment", "--rules", "a rules file is required with --method rules")


def test_default_model_is_glm_with_interactions(sim):
    """The default incidence model is engine.estimators.glm.PoissonGLM with the features' pairwise interactions."""
    pytest.importorskip("engine.estimators.glm")
    cells, _ = sim
    seg = RiskSegmenter(method="cluster", features=["city_tier", "channel"], adjust_for=["age", "sex"],
                        n_groups=4).fit(cells.drop("_rate"))
    assert type(seg.model_).__name__ == "PoissonGLM"
    assert [tuple(p) for p in seg.model_.interactions] == [("city_tier", "channel")]
    ari = weighted_ari(_truth(cells), seg.assign(cells).to_numpy(), cells["exposure_years"].to_numpy())
    assert ari >= 0.9


def test_member_duration_and_age_conventions():
    from engine.cells.dates import attained_age_expr as member_attained_age
    from engine.cells.dates import completed_months_expr as member_duration

    def slow_months(j, d):
        """Count month boundaries one by one (plain loop oracle)."""
        import calendar

        n = 0
        y, m = j.year, j.month
        while True:
            m += 1
            if m == 13:
                y, m = y + 1, 1
            b = dt.date(y, m, min(j.day, calendar.monthrange(y, m)[1]))
            if b > d:
                return n
            n += 1

    joins = [dt.date(2021, 1, 31), dt.date(2020, 1, 15), dt.date(2019, 2, 28), dt.date(2020, 2, 29), dt.date(2020, 12, 1)]
    ats = [dt.date(2021, 2, 27), dt.date(2021, 2, 28), dt.date(2021, 3, 14), dt.date(2021, 3, 15), dt.date(2024, 2, 29),
           dt.date(2021, 3, 31), dt.date(2020, 12, 1)]
    for at in ats:
        df = pl.DataFrame({"join_date": [j for j in joins if j <= at]})
        got = df.select(member_duration(pl.col("join_date"), at).alias("d"))["d"].to_list()
        assert got == [slow_months(j, at) for j in joins if j <= at]
    births = pl.DataFrame({"b": [dt.date(2000, 2, 29)]})
    age = lambda at: births.select(member_attained_age(pl.col("b"), at).alias("a"))["a"][0]  # noqa: E731
    assert [age(dt.date(2021, 2, 28)), age(dt.date(2021, 3, 1)), age(dt.date(2024, 2, 29))] == [20, 21, 24]


def test_cli_scores_members_with_a_saved_segmentation(sim, tmp_path, capsys):
    """fentan segment --save-model, then --load DIR --members ... --at: same groups as the API."""
    from engine.cli.main import main

    cells, _ = sim
    cells.drop("_rate").write_parquet(tmp_path / "cells.parquet")
    model_dir = tmp_path / "models" / "seg"
    assert main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(tmp_path / "fit"),
                 "--by", "age,city_tier,channel", "--rate-model", "cell", "--save-model", str(model_dir), "--quiet"]) == 0
    seg = RiskSegmenter.load(model_dir)
    members = pl.DataFrame({
        "member_id": ["a", "b", "c", "d"],
        "birth_date": [dt.date(1980, 2, 29), dt.date(1980, 3, 1), dt.date(1995, 6, 30), dt.date(1962, 1, 1)],
        "sex": ["M", "F", "F", "M"], "join_date": [dt.date(2020, 1, 1)] * 4,
        "exit_date": [None, None, None, None],
        "city_tier": [5, 1, 4, 2], "channel": ["subsidy", "employer", "organic", "referral"],
    }, schema_overrides={"exit_date": pl.Date})
    members.write_parquet(tmp_path / "members.parquet")
    assert main(["segment", "--load", str(model_dir), "--members", str(tmp_path / "members.parquet"),
                 "--at", "2021-02-28", "--out", str(tmp_path / "score"), "--quiet"]) == 0
    got = pl.read_parquet(tmp_path / "score" / "assignments.parquet")
    assert got["member_id"].to_list() == ["a", "b", "c", "d"]
    assert got["group"].to_list() == seg.assign(members, at=dt.date(2021, 2, 28)).to_list()
    # the group of a member is the group of the cell with her attained age (29 Feb 1980 -> 40 on 28 Feb 2021)
    age_cells = pl.DataFrame({"age": pl.Series([40, 41, 25, 59], dtype=pl.Int32), "city_tier": [5, 1, 4, 2],
                              "channel": ["subsidy", "employer", "organic", "referral"]})
    assert got["group"].to_list() == seg.assign(age_cells).to_list()
    names = dict(seg.groups_.select("group", "name").iter_rows())
    assert got["name"].to_list() == [names[g] for g in got["group"].to_list()]
    # cells can be scored too, and reproduce the fit's assignment
    assert main(["segment", "--load", str(model_dir), "--cells", str(tmp_path / "cells.parquet"),
                 "--out", str(tmp_path / "score_cells"), "--quiet"]) == 0
    gc = pl.read_parquet(tmp_path / "score_cells" / "assignments.parquet")
    assert gc["group"].to_list() == seg.assign(cells).to_list()
    # errors: no date for attained age, unseen category, both inputs, members without --load
    bad = tmp_path / "bad.parquet"
    older = pl.DataFrame({"member_id": ["e"], "birth_date": [dt.date(1970, 5, 5)], "sex": ["F"],
                          "join_date": [dt.date(2020, 1, 1)], "exit_date": [None], "city_tier": [5], "channel": ["organic"]},
                         schema=members.schema)
    pl.concat([members, older]).with_columns(pl.lit("tv").alias("channel")).write_parquet(bad)  # tier 5 at 50: by channel
    base = ["segment", "--load", str(model_dir), "--out", str(tmp_path / "e"), "--quiet"]
    capsys.readouterr()
    assert main([*base, "--members", str(tmp_path / "members.parquet")]) == 2
    error_line(capsys, "segment", "--at", "a date is needed", "attained age")
    assert main([*base, "--members", str(bad), "--at", "2021-02-28"]) == 2
    error_line(capsys, "segment", str(bad), "rows match no group", "column 'channel' = 'tv' unseen", "--unknown null")
    assert main([*base, "--members", str(bad), "--at", "2021-02-28", "--unknown", "null"]) == 0
    want = seg.assign(pl.read_parquet(bad), at=dt.date(2021, 2, 28), unknown="null")
    got_bad = pl.read_parquet(tmp_path / "e" / "assignments.parquet")["group"]
    assert got_bad.to_list() == want.to_list() and got_bad.null_count() >= 1
    assert main([*base, "--members", str(tmp_path / "members.parquet"), "--cells", str(tmp_path / "cells.parquet")]) == 2
    error_line(capsys, "segment", "--load", "give exactly one of --members or --cells")
    assert main(["segment", "--members", str(tmp_path / "members.parquet"), "--cells", str(tmp_path / "cells.parquet"),
                 "--out", str(tmp_path / "e2"), "--quiet"]) == 2
    error_line(capsys, "segment", "--members", "scoring members needs a saved segmentation (--load DIR)")


def test_cli_scoring_maps_a_null_factor_to_the_missing_level(sim, tmp_path, capsys):
    """A null rating factor is the level "missing" when a saved segmentation scores members, as when it was fitted.

    Fitted on cells whose tier held nulls (levels "1".."4", "missing"), a member with a null tier goes to the
    group of the "missing" cells; fitted with integer levels, a null tier matches no group and the error names it.
    """
    from engine.cli.main import main
    from engine.data.factor_levels import fill_missing

    cells, _ = sim
    cells = cells.drop("_rate")
    with_null = fill_missing(cells.with_columns(pl.when(pl.col("city_tier") == 5).then(None)
                                                .otherwise(pl.col("city_tier")).alias("city_tier")),
                             ["city_tier"], sums=("exposure_years", "claims", "amount_cny"))
    assert "missing" in with_null["city_tier"].to_list()
    members = pl.DataFrame({
        "member_id": ["a", "b", "c"], "birth_date": [dt.date(1980, 2, 29), dt.date(1995, 6, 30), dt.date(1962, 1, 1)],
        "sex": ["M", "F", "M"], "join_date": [dt.date(2020, 1, 1)] * 3, "exit_date": [None] * 3,
        "city_tier": [None, 1, 4], "channel": ["subsidy", "employer", "organic"],
    }, schema_overrides={"exit_date": pl.Date, "city_tier": pl.Int64})
    members.write_parquet(tmp_path / "members.parquet")
    at = dt.date(2021, 2, 28)
    for name, fit_cells in (("text", with_null), ("int", cells)):
        fit_cells.write_parquet(tmp_path / f"{name}.parquet")
        assert main(["segment", "--cells", str(tmp_path / f"{name}.parquet"), "--out", str(tmp_path / f"fit-{name}"),
                     "--by", "age,city_tier,channel", "--rate-model", "cell",
                     "--save-model", str(tmp_path / f"m-{name}"), "--quiet"]) == 0
    seg = RiskSegmenter.load(tmp_path / "m-text")
    assert main(["segment", "--load", str(tmp_path / "m-text"), "--members", str(tmp_path / "members.parquet"),
                 "--at", "2021-02-28", "--out", str(tmp_path / "s-text"), "--quiet"]) == 0
    got = pl.read_parquet(tmp_path / "s-text" / "assignments.parquet")["group"].to_list()
    as_cells = pl.DataFrame({"age": pl.Series([40, 25, 59], dtype=pl.Int32), "city_tier": ["missing", "1", "4"],
                             "channel": ["subsidy", "employer", "organic"]})
    assert got == seg.assign(as_cells).to_list()
    assert None not in got
    # a null tier against integer levels: unseen, named in the one-line error
    capsys.readouterr()
    assert main(["segment", "--load", str(tmp_path / "m-int"), "--members", str(tmp_path / "members.parquet"),
                 "--at", "2021-02-28", "--out", str(tmp_path / "s-int"), "--quiet"]) == 2
    error_line(capsys, "segment", "members.parquet", "1 rows match no group", "column 'city_tier' = None unseen")
    assert RiskSegmenter.load(tmp_path / "m-int").assign(members, at=at, unknown="null").null_count() == 1
