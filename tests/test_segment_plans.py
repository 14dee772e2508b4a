"""segment_plans: a fitted segmentation written as a plan set assigns every row as the segmentation does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.kits.segmentation_sim import sim_cells

from engine.errors import ConfigError, ModelError
from engine.plans.planset import assign_plans, load_plans, to_toml
from engine.segmentation._model import CellPoissonModel
from engine.segmentation._plans import rule_expression, segment_plans
from engine.segmentation.segmenter import RiskSegmenter
from tests.kits.cli_error import error_line

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def cells():
    c, _ = sim_cells(seed=3, scale=300, n_periods=12)
    return c


@pytest.fixture(scope="module")
def template():
    return load_plans(CONFIGS / "xianghubao.toml")[0]


def _check_same_assignment(seg, ps, frame):
    names = seg.groups_.sort("group")["name"].to_list()
    want = [names[g - 1] for g in seg.assign(frame).to_list()]
    got = assign_plans(frame, ps)["plan"].to_list()
    assert got == want


def test_rule_expression_text():
    assert rule_expression({"age": ("range", 40, 49), "city_tier": ("in", [5, 4])}, ["age", "city_tier"]) == \
        "40 <= age <= 49 and city_tier in {4, 5}"
    assert rule_expression({"channel": ("in", ["subsidy", "organic"]), "age": ("range", None, 39)}) == \
        "age <= 39 and channel in {\"organic\", \"subsidy\"}"
    assert rule_expression({"age": ("range", 50, None)}) == "age >= 50"
    assert rule_expression({"age": ("range", 7, 7)}) == "age == 7"
    assert rule_expression({}) is None
    with pytest.raises(ConfigError, match="Boolean"):
        rule_expression({"flag": ("in", [True])})


@pytest.mark.parametrize("kw", [
    dict(method="tree", features=["age", "city_tier", "channel"]),
    dict(method="tree", features=["age", "city_tier"], contiguous_age=True, monotone_age=True, n_groups=4,
         max_groups=4),
    dict(method="cluster", features=["city_tier", "channel"], adjust_for=["age", "sex"]),
])
def test_plans_assign_like_the_segmentation_and_survive_toml(cells, template, tmp_path, kw):
    seg = RiskSegmenter(model=CellPoissonModel(), **kw).fit(cells)
    if seg.rules_ is None:  # a cluster grouping that is not a union of a few conjunctions
        with pytest.raises(ModelError, match="cannot be written"):
            segment_plans(seg, template)
        return
    assert seg.n_groups_ >= 3
    ps = segment_plans(seg, template, prefix="v_")
    assert len(ps) == seg.n_groups_ and ps.names == [f"v_{n}" for n in seg.groups_.sort("group")["name"]]
    ps_plain = segment_plans(seg, template)
    _check_same_assignment(seg, ps_plain, cells)
    for p in ps:  # template terms kept
        assert p.fee == template.fee and p.benefits == template.benefits and p.eligibility.age == (0, 59)
        assert p.annual_cap == template.annual_cap and p.sharing_days == template.sharing_days
    # the TOML file reads back to plans that assign identically (and to the same plan set)
    f = tmp_path / "segments.toml"
    f.write_text(to_toml(ps_plain), encoding="utf-8")
    back = load_plans(f)
    _check_same_assignment(seg, back, cells)
    assert [p.eligibility.when.text if p.eligibility.when else None for p in back] == \
        [p.eligibility.when.text if p.eligibility.when else None for p in ps_plain]
    # plans are disjoint (a tree / cluster grouping is a partition): assign_plans refuses overlaps
    assert not ps_plain.allow_overlap


def test_rules_segmentation_with_overlap_and_other_group(cells, template):
    rules = [
        {"name": "young_subsidy", "age": [20, 39], "channel": ["subsidy"]},
        {"name": "young", "age": [20, 39]},  # overlaps the first: first match wins
        {"name": "tier5", "city_tier": [5]},
    ]
    seg = RiskSegmenter(method="rules", rules=rules, other="group", model=CellPoissonModel(),
                        features=["age", "city_tier", "channel"], min_claims=0).fit(cells)
    ps = segment_plans(seg, template)
    assert ps.allow_overlap and ps.names == seg.groups_.sort("group")["name"].to_list()
    assert "other" in ps.names
    _check_same_assignment(seg, ps, cells)
    other = ps["other"].eligibility.when.text
    assert other.startswith("not (")


def test_template_expression_is_kept_and_errors(cells, template, tmp_path):
    from dataclasses import replace

    from engine.plans.expr import Expression
    from engine.plans.planset import Eligibility

    seg = RiskSegmenter(method="tree", features=["age", "city_tier"], model=CellPoissonModel()).fit(cells)
    t2 = replace(template, eligibility=Eligibility(age=(0, 59), when=Expression.parse("sex == 'F'")))
    ps = segment_plans(seg, t2)
    out = assign_plans(cells, ps)
    assert out.filter(pl.col("sex") == "M")["plan"].null_count() == cells.filter(pl.col("sex") == "M").height
    fem = cells.filter(pl.col("sex") == "F")
    names = seg.groups_.sort("group")["name"].to_list()
    assert assign_plans(fem, ps)["plan"].to_list() == [names[g - 1] for g in seg.assign(fem).to_list()]
    with pytest.raises(ModelError, match="not fitted"):
        segment_plans(RiskSegmenter(), template)
    with pytest.raises(ConfigError, match="template"):
        segment_plans(seg, "xianghubao")
    # a saved and loaded segmentation converts to the same plans
    back = segment_plans(RiskSegmenter.load(seg.save(tmp_path / "seg")), t2)
    assert [p.eligibility.when.text for p in back] == [p.eligibility.when.text for p in ps]
    assert np.all(np.asarray(back.names) == np.asarray(names))


def test_cli_segment_writes_plans_toml_usable_by_fentan_plans(cells, template, tmp_path, capsys):
    from engine.cli.main import main

    cells.write_parquet(tmp_path / "cells.parquet")
    out = tmp_path / "seg"
    assert main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(out), "--by", "age,city_tier",
                 "--contiguous-age", "--monotone-age", "--n-groups", "4", "--max-groups", "4", "--rate-model", "cell",
                 "--plans-template", str(CONFIGS / "xianghubao.toml"), "--quiet"]) == 0
    ps = load_plans(out / "plans.toml")
    seg = RiskSegmenter(method="tree", features=["age", "city_tier"], contiguous_age=True, monotone_age=True,
                        n_groups=4, max_groups=4, model=CellPoissonModel()).fit(cells)
    _check_same_assignment(seg, ps, cells)
    segs = pl.read_parquet(out / "segments.parquet")
    assert ps.names == segs.sort("group")["name"].to_list()
    # the plan file feeds fentan plans directly (vertical plans vs the pooled Xianghubao plan)
    rc = main(["plans", str(out / "plans.toml"), "--cells", str(tmp_path / "cells.parquet"),
               "--pooled", str(CONFIGS / "xianghubao.toml"), "--out", str(tmp_path / "cmp"), "--quiet"])
    assert rc == 0
    res = pl.read_parquet(tmp_path / "cmp" / "plans.parquet")
    assert set(res.filter(pl.col("planset") == "vertical")["plan"].to_list()) == set(ps.names)
    assert main(["segment", "--cells", str(tmp_path / "cells.parquet"), "--out", str(out), "--rate-model", "cell",
                 "--plans-template", str(tmp_path / "missing.toml"), "--quiet"]) == 2
    error_line(capsys, "segment", str(tmp_path / "missing.toml"), "no such plan file")
