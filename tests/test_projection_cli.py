"""``fentan project``: outputs, TOML configuration and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from engine.cli.main import main
from engine.projection._project import project
from engine.projection.assumptions import load_projection_config
from tests.kits.cli_error import error_line

TOML = """
[projection]
horizon = 18
scenarios = 300
seed = 4
annual_cap = 188.0
select_factors = [0.5, 0.5, 0.5, 0.8, 1.0]

[projection.joiners]
per_period = [500.0, 500.0]
then = "replace"

[projection.lapse]
base_annual = { organic = 0.1, subsidy = 0.3 }

[projection.elasticity]
base = 1.0
adverse_selection = 1.0

[[groups]]
plan = "P"
group = "g1"
members = 10000
rate = 0.001
benefit_cny = 300000
channel = "organic"

[[groups]]
plan = "P"
group = "g2"
members = 5000
rate = 0.002
benefit_cny = 100000
channel = "subsidy"
"""


@pytest.fixture()
def groups_parquet(tmp_path):
    p = tmp_path / "groups.parquet"
    pl.DataFrame({"plan": ["A", "A", "B"], "group": ["x", "y", "z"], "members": [3000.0, 2000.0, 800.0],
                  "rate": [0.002, 0.004, 0.003], "benefit_cny": [300_000.0, 100_000.0, 300_000.0]}).write_parquet(p)
    return p


def test_cli_parquet_writes_outputs_matching_the_api(tmp_path, groups_parquet):
    out = tmp_path / "out"
    rc = main(["project", "--groups", str(groups_parquet), "--out", str(out), "--horizon", "12",
               "--scenarios", "200", "--seed", "3", "--joiners", "50", "--elasticity", "1.0", "--quiet"])
    assert rc == 0
    periods = pl.read_parquet(out / "projection.parquet")
    plans = pl.read_parquet(out / "projection_plans.parquet")
    assert periods.height == 2 * 12 and plans.height == 2
    assert {"share_mean_cny", "share_p5_cny", "share_p50_cny", "share_p95_cny", "members", "eligible_members",
            "expected_claims", "annual_cap_binds_prob"} <= set(periods.columns)
    assert {"sustainable_share_cny", "sustainable_leverage_max", "death_spiral", "death_spiral_period"} <= set(
        plans.columns)
    api = project(pl.read_parquet(groups_parquet), horizon=12, n_scenarios=200, seed=3, joiners=50.0,
                  elasticity=1.0)
    assert periods.equals(api.periods)
    saved = json.loads((out / "projection_assumptions.json").read_text())
    assert saved["n_scenarios"] == 200 and saved["elasticity"]["base"] == 1.0
    assert (out / "projection_leverage.parquet").exists() and (out / "projection_bands.parquet").exists()


def test_cli_toml_config_and_flag_override(tmp_path):
    cfg = tmp_path / "proj.toml"
    cfg.write_text(TOML)
    groups, kw = load_projection_config(cfg)
    assert groups.height == 2 and kw["n_scenarios"] == 300
    out = tmp_path / "out"
    assert main(["project", "--groups", str(cfg), "--out", str(out), "--scenarios", "100", "--quiet"]) == 0
    periods = pl.read_parquet(out / "projection.parquet")
    assert periods.height == 18
    api = project(groups, **{**kw, "n_scenarios": 100})
    np.testing.assert_array_equal(periods["share_p95_cny"].to_numpy(), api.periods["share_p95_cny"].to_numpy())


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.replace("adverse_selection = 1.0", "adverse_selection = 1.0\nspeed = 2"),
     "projection.elasticity.speed: unknown key"),
    (lambda s: s.replace("rate = 0.002", "rate = -0.002"), "groups: column 'rate' has a value out of range"),
    (lambda s: s.replace("horizon = 18", "horizon = 'long'"), "projection.horizon"),
    (lambda s: s + "\n[extra]\nx = 1\n", "extra: unknown key"),
    (lambda s: s.replace("[projection.joiners]", "[projection.joiners"), "not valid TOML"),
])
def test_cli_config_errors_are_one_line(tmp_path, capsys, edit, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(edit(TOML))
    rc = main(["project", "--groups", str(cfg), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and "\n" not in err and str(cfg) in err


def test_cli_missing_groups_and_existing_out(tmp_path, capsys, groups_parquet):
    assert main(["project", "--groups", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o")]) == 2
    error_line(capsys, "project", str(tmp_path / "none.parquet"), "no such file")
    out = tmp_path / "o2"
    out.mkdir()
    (out / "x").write_text("")
    assert main(["project", "--groups", str(groups_parquet), "--out", str(out), "--horizon", "2",
                 "--scenarios", "5", "--quiet"]) == 2
    error_line(capsys, "project", str(out), "output directory exists", "--force")
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"group": ["a"], "members": [1.0]}).write_parquet(bad)
    assert main(["project", "--groups", str(bad), "--out", str(tmp_path / "o3")]) == 2
    error_line(capsys, "project", str(bad), "column 'rate' is required")


def test_summary_print_and_plot(capsys):
    import matplotlib

    matplotlib.use("Agg")
    g = pl.DataFrame({"group": ["a"], "members": [1000.0], "rate": [0.002], "benefit_cny": [100_000.0]})
    res = project(g, horizon=6, n_scenarios=20)
    assert res.summary.equals(res.plans)
    res.print_summary()
    out = capsys.readouterr().out
    assert "sustainable" in out and "death" in out
    ax = res.plot_share()
    assert ax.get_title() == "plan all" and len(ax.lines) == 2
    assert res.plot_share(ax=ax) is ax
    res.print_summary(decimals=2)
    assert "sustainable" in capsys.readouterr().out
    assert "ProjectionResult" in res._repr_html_()
