"""End-to-end tests of ``fentan run`` (engine.pipeline.runner) on a small generated platform."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import main

from tests.kits.runconfig import small_run_config
from tests.kits.cli_error import error_line

REPO = Path(__file__).resolve().parents[1]

#: output file -> columns it must have
OUTPUTS = {
    "cells.parquet": ["period", "age", "sex", "city_tier", "channel", "exposure_days", "exposure_years",
                      "sharing_days", "sharing_years", "claims", "amount"],
    "incidence.parquet": ["age", "sex", "exposure_years", "claims", "rate", "rate_lower", "rate_upper",
                          "expected_rate", "ae"],
    "segments.parquet": ["group", "name", "exposure_years", "claims", "rate", "expected_claims_per_period",
                         "share_cv", "cross_subsidy_pct_of_pooled_share"],
    "frontier.parquet": ["k", "residual_cross_subsidy_pct", "share_cv_max", "recommended"],
    "history.parquet": ["notice_date", "sharing_members", "claims_approved", "share_cny", "share_paid_cny"],
    "projection.parquet": ["plan", "period", "members", "share_mean_cny", "share_p5_cny", "share_p95_cny",
                           "annual_cap_binds_prob"],
    "projection_plans.parquet": ["plan", "sustainable_share_cny", "death_spiral"],
    "plans.parquet": ["plan_file", "planset", "plan", "level", "members", "share_current_mix_cny", "leverage",
                      "share_cv", "share_after_caps_cny"],
    "cross_subsidy.parquet": ["plan_file", "plan", "payer_group", "beneficiary_group", "net_cny_per_member_year"],
    "cross_subsidy_classes.parquet": ["plan", "factor", "age_band", "factor_level", "members",
                                      "own_cost_cny_per_year", "pooled_payment_cny_per_year",
                                      "cross_subsidy_cny_per_year"],
    "decomposition.parquet": ["comparison", "driver", "contribution_cny", "share_a_cny", "share_b_cny"],
    "glm_coefficients.parquet": ["term", "coef"],
    "calibration.parquet": ["bin", "predicted_claims", "claims"],
    "rejected/rejected_members.parquet": ["member_id", "reason"],
    "rejected/rejected_claims.parquet": ["claim_id", "member_id", "reason", "stage"],
}
OTHER = ["account.json", "summary.json", "report.html", "config.toml", "models/glm", "models/segmentation"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("batch")
    generate(30_000, 11, dirty=0.002, level=4.0).write(root / "data")
    (root / "run.toml").write_text(small_run_config(max_groups=4, horizon=24, scenarios=64, seed=3), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def done(platform: Path) -> Path:
    out = platform / "out"
    assert main(["run", str(platform / "run.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def test_every_output_with_its_columns(done: Path) -> None:
    for name, cols in OUTPUTS.items():
        df = pl.read_parquet(done / name)
        missing = [c for c in cols if c not in df.columns]
        assert not missing, f"{name}: missing {missing}"
    for name in OTHER:
        assert (done / name).exists(), name
    assert pl.read_parquet(done / "cells.parquet")["exposure_years"].sum() > 0
    assert pl.read_parquet(done / "decomposition.parquet").height > 0


def test_account_identity_and_rejected_rows(done: Path) -> None:
    acc = json.loads((done / "account.json").read_text())
    for what in ("members", "claims"):
        a = acc[what]
        assert a["read"] == a["used"] + sum(a["set_aside"].values()), what
        assert a["identity_holds"]
    cells = pl.read_parquet(done / "cells.parquet")
    assert acc["claims"]["used"] == int(cells["claims"].sum())
    rej_m = pl.read_parquet(done / "rejected/rejected_members.parquet")
    rej_c = pl.read_parquet(done / "rejected/rejected_claims.parquet")
    assert rej_m.height == sum(acc["members"]["set_aside"].values())
    assert rej_c.height == sum(acc["claims"]["set_aside"].values())
    by_reason = dict(rej_c.group_by("reason").len().iter_rows())
    assert by_reason == acc["claims"]["set_aside"]
    # exposure-time reasons are in the account (the generator plants ineligible claims)
    assert "in_waiting_period" in acc["claims"]["set_aside"]
    raw = pl.read_parquet(done.parent / "data" / "claims.parquet")
    assert acc["claims"]["read"] == raw.height


def test_summary_per_plan(done: Path) -> None:
    s = json.loads((done / "summary.json").read_text())
    plans = s["plans"]
    assert "pooled/xianghubao" in plans and "vertical/youth" in plans
    for p in plans.values():
        for key in ("sustainable_share_cny", "leverage", "death_spiral", "cap_binds_probability_max"):
            assert key in p
        assert p["sustainable_share_cny"] > 0
        assert 0.0 <= p["cap_binds_probability_max"] <= 1.0
    # the copied configuration is the resolved one and loads again
    from engine.pipeline.config import load_config

    cfg = load_config(done / "config.toml")
    assert Path(cfg.data.members).is_absolute() and Path(cfg.data.members).exists()


def _section_text(html: str, sid: str) -> str:
    """The text of ``<section id=sid>`` of a report (tags removed)."""
    import re

    body = html.split(f'<section id="{sid}">', 1)[1].split("</section>", 1)[0]
    return re.sub(r"<[^>]+>", " ", body)


def test_one_number_for_one_thing(done: Path) -> None:
    """summary.json, the Parquet outputs and report.html show the same number for the same concept."""
    from engine.report.document import _fmt

    summary = json.loads((done / "summary.json").read_text())["plans"]
    proj = pl.read_parquet(done / "projection_plans.parquet")
    plans = pl.read_parquet(done / "plans.parquet").filter(pl.col("level") == "plan")
    html = (done / "report.html").read_text(encoding="utf-8")
    headline, projection = _section_text(html, "headline"), _section_text(html, "projection")
    for label, entry in summary.items():
        # the sustainable share: the projection's, in summary.json, the headline and the projection table
        sus = proj.filter(pl.col("plan") == label)["sustainable_share_cny"].item()
        assert entry["sustainable_share_cny"] == sus, label
        assert _fmt(sus) in headline and _fmt(sus) in projection, label
        # the share at today's mix and after caps, and the leverage: the plan comparison's
        planset = "pooled" if entry["planset"] == "pooled" else entry["plan_file"]
        row = plans.filter((pl.col("plan") == entry["plan"]) & (pl.col("planset") == entry["planset"])
                           & (pl.lit(planset == "pooled") | (pl.col("plan_file") == planset))).row(0, named=True)
        for key in ("share_current_mix_cny", "share_after_caps_cny", "leverage"):
            assert entry[key] == pytest.approx(row[key], rel=1e-12), (label, key)
        assert "sustainable_share_cny" not in plans.columns  # one meaning: no second "sustainable" column
    pooled = next(v for v in summary.values() if v["planset"] == "pooled")
    assert f"{pooled['sustainable_share_cny']:,.2f}" in headline


@pytest.fixture(scope="module")
def done_two_groups(platform: Path) -> Path:
    """The platform run with two risk groups by age rules (the default tree keeps one on this platform)."""
    text = small_run_config(horizon=6, scenarios=8, seed=3).replace(
        "[segmentation]\n", '[segmentation]\nmethod = "rules"\n'
        'rules = [{name = "young", age = [0, 39]}, {name = "old", age = [40, 200]}]\n')
    text += "\n[history]\nfee = 0.05\n"  # not the default: the segmenter must receive the configured fee
    (platform / "rules.toml").write_text(text, encoding="utf-8")
    out = platform / "out-rules"
    assert main(["run", str(platform / "rules.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def test_group_cross_subsidy_is_one_number(done_two_groups: Path) -> None:
    """Each risk group's cross-subsidy in the pooled plan: segments.parquet = plans.parquet = the heat map's data."""
    done = done_two_groups
    model = json.loads((done / "models" / "segmentation" / "model.json").read_text())
    assert model["params"]["fee"] == 0.05  # the batch passes the configured fee to the segmenter
    seg = pl.read_parquet(done / "segments.parquet")
    flows = pl.read_parquet(done / "cross_subsidy.parquet")
    pf, pn = flows["plan_file"][0], flows["plan"][0]
    heat = (flows.filter((pl.col("plan_file") == pf) & (pl.col("plan") == pn))
            .group_by("payer_group").agg(pl.col("net_cny_per_member_year").sum()))
    groups = pl.read_parquet(done / "plans.parquet").filter(
        (pl.col("level") == "group") & (pl.col("planset") == "pooled") & (pl.col("plan_file") == pf)
        & (pl.col("plan") == pn))
    assert seg.height >= 2  # a real comparison between groups
    assert not {"own_share", "cross_subsidy", "cross_subsidy_per_period", "cross_subsidy_pct"} & set(seg.columns)
    for g, xs, xs_pp, own in seg.select("group", "cross_subsidy_cny_per_year", "cross_subsidy_cny_per_period",
                                        "own_share_cny_per_year").iter_rows():
        h = heat.filter(pl.col("payer_group") == str(g))["net_cny_per_member_year"]
        r = groups.filter(pl.col("group") == str(g)).row(0, named=True)
        if h.len() == 0:  # a group with no member sharing at the end of the study
            assert xs is None
            continue
        assert xs == pytest.approx(h.item(), rel=1e-9, abs=1e-9), g
        assert xs == pytest.approx(r["cross_subsidy_cny"] * r["periods_per_year"], rel=1e-12), g
        assert xs_pp == pytest.approx(r["cross_subsidy_cny"], rel=1e-12), g
        assert own == pytest.approx(r["own_share_cny"] * r["periods_per_year"], rel=1e-12), g


def test_same_seed_same_bytes(platform: Path, done: Path) -> None:
    """Every output but run.json (wall times) is byte-identical on a rerun (see also test_determinism)."""
    out2 = platform / "out2"
    assert main(["run", str(platform / "run.toml"), "--out", str(out2), "--quiet"]) == 0
    files = sorted(str(p.relative_to(done)) for p in done.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(out2)) for p in out2.rglob("*") if p.is_file())
    assert "run.json" in files and "select_factors.parquet" in files
    differ = [f for f in files if (done / f).read_bytes() != (out2 / f).read_bytes()]
    for f in [f for f in differ if f.endswith("model.json")]:  # fit_date: only if the runs straddle midnight
        a, b = json.loads((done / f).read_text()), json.loads((out2 / f).read_text())
        assert a.pop("fit_date") != b.pop("fit_date") and a == b, f
        differ.remove(f)
    assert differ == ["run.json"]
    shutil.rmtree(out2)


def test_existing_output_refused(platform: Path, done: Path, capsys: pytest.CaptureFixture) -> None:
    before = (done / "summary.json").read_bytes()
    assert main(["run", str(platform / "run.toml"), "--out", str(done)]) == 2
    error_line(capsys, "run", str(done), "output directory exists", "--force")
    assert (done / "summary.json").read_bytes() == before


def test_failure_mid_run_leaves_previous_outputs(platform: Path, done: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pipeline._stages as bs

    snapshot = {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()}

    def boom(ctx):  # a stage that crashes after earlier stages wrote files
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(bs, "stage_history", boom)
    assert main(["run", str(platform / "run.toml"), "--out", str(done), "--force", "--quiet"]) == 1
    after = {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()}
    assert after == snapshot
    leftovers = [p.name for p in done.parent.iterdir() if p.name.startswith(f".{done.name}.")]
    assert leftovers == []


def test_dry_run_writes_nothing(platform: Path, capsys: pytest.CaptureFixture) -> None:
    target = platform / "dry"
    listing = sorted(p.name for p in platform.iterdir())
    assert main(["run", str(platform / "run.toml"), "--out", str(target), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "members" in out and "claims" in out and "read" in out
    assert not target.exists()
    assert sorted(p.name for p in platform.iterdir()) == listing


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        (("[segmentation]", "[segmentation]\nmax_grups = 3"), ("bad.toml: segmentation.max_grups: unknown key",)),
        (("scenarios = 64", "scenarios = 0"), ("bad.toml: projection.scenarios: ", "greater than or equal to 1")),
        (("data/members.parquet", "data/nothere.parquet"), ("data/nothere.parquet: no such file",)),
        (("configs/vertical.toml", "configs/nothere.toml"), ("bad.toml: plans.files[0]: no such plan file",
                                                             "configs/nothere.toml")),
        (("[segmentation]", "[study]\nfactors = [\"city_tier\", \"occupation\"]\n[segmentation]"),
         ("bad.toml: study.factors: members have no column 'occupation'",)),
    ],
)
def test_bad_config_exit_2_naming_the_key(platform: Path, patch: tuple[str, str], needle: str,
                                          capsys: pytest.CaptureFixture) -> None:
    text = (platform / "run.toml").read_text().replace(*patch, 1)
    bad = platform / "bad.toml"
    bad.write_text(text)
    assert main(["run", str(bad), "--out", str(platform / "bad-out"), "--quiet"]) == 2
    error_line(capsys, "run", *needle)  # file or key, column and rule
    assert not (platform / "bad-out").exists()


def test_report_has_every_section_and_its_images(done: Path) -> None:
    import base64
    from html.parser import HTMLParser

    from engine.report.build import SECTIONS

    class Parse(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sections: dict[str, list[str]] = {}
            self.current: str | None = None
            self.external: list[str] = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section":
                self.current = a.get("id")
                self.sections[self.current] = []
            if tag == "img" and self.current is not None:
                self.sections[self.current].append(a.get("src", ""))
            if tag == "div" and a.get("class") == "plot" and self.current is not None:
                self.sections[self.current].append(f"plot:{a['id']}")
            for key in ("src", "href"):
                v = a.get(key) or ""
                if v and not (v.startswith("data:") or v.startswith("#")):
                    self.external.append(v)

    p = Parse()
    p.feed((done / "report.html").read_text(encoding="utf-8"))
    assert list(p.sections) == list(SECTIONS)
    assert p.external == []  # self-contained
    several_k = pl.read_parquet(done / "frontier.parquet").height > 1  # a frontier of one K is said in words
    want_images = {"incidence": 1, "model": 1, "segmentation": int(several_k), "history": 1, "leverage": 1,
                   "cross-subsidy": 1, "drivers": 1, "fan-charts": 2}  # fan charts and drivers: their own sections
    html = (done / "report.html").read_text(encoding="utf-8")
    for sec, n in want_images.items():
        imgs = p.sections[sec]
        assert len(imgs) >= n, sec
        for src in imgs:
            if src.startswith("plot:"):  # interactive (the report extra): the plotly figure's JSON, with data
                raw = html.split(f'<script type="application/json" id="{src[5:]}-data">', 1)[1].split("</script>", 1)[0]
                fig = json.loads(raw)
                assert fig["data"] and any(len(tr.get("x") or tr.get("z") or []) for tr in fig["data"]), sec
                continue
            assert src.startswith("data:image/png;base64,")
            png = base64.b64decode(src.split(",", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, sec  # a real, non-empty plot
    for text in ("Headline answers", "Row account", "in_waiting_period", "pooled/xianghubao", "vertical/youth"):
        assert text in html


def test_class_cross_subsidy_against_a_loop() -> None:
    from engine.pipeline._plan_stages import class_cross_subsidy
    from engine.plans.planset import load_plans

    pooled = load_plans(REPO / "configs" / "xianghubao.toml")
    table = pl.DataFrame({
        "age": [10, 35, 45, 45, 58, 61], "sex": ["M", "F", "M", "F", "M", "F"], "city_tier": [1, 1, 2, 2, 1, 1],
        "members": [100.0, 50.0, 30.0, 20.0, 10.0, 99.0], "rate": [0.0002, 0.0008, 0.002, 0.0015, 0.006, 0.01],
    })
    got = class_cross_subsidy(table, pooled)
    # oracle: plain loops; age 61 is not eligible; benefit 300k to 39, 100k at 40-59; fee 8%
    rows = [r for r in table.iter_rows(named=True) if r["age"] <= 59]
    cost = [(1.08 * r["rate"] * (300_000 if r["age"] <= 39 else 100_000)) for r in rows]
    pay = sum(r["members"] * c for r, c in zip(rows, cost)) / sum(r["members"] for r in rows)
    cells: dict = {}
    for r, c in zip(rows, cost):
        band = next(f"{a}-{b - 1}" for a, b in [(0, 18), (18, 30), (30, 40), (40, 50), (50, 60)] if a <= r["age"] < b)
        n, tot = cells.get((band, str(r["city_tier"])), (0.0, 0.0))
        cells[(band, str(r["city_tier"]))] = (n + r["members"], tot + r["members"] * c)
    assert got.height == len(cells)
    for g in got.iter_rows(named=True):
        n, tot = cells[(g["age_band"], g["factor_level"])]
        assert g["members"] == pytest.approx(n)
        assert g["pooled_payment_cny_per_year"] == pytest.approx(pay, rel=1e-12)
        assert g["cross_subsidy_cny_per_year"] == pytest.approx(pay - tot / n, rel=1e-12)
    assert (got["members"] * got["cross_subsidy_cny_per_year"]).sum() == pytest.approx(0.0, abs=1e-9)


def test_study_window_quiet_and_progress(platform: Path, capsys: pytest.CaptureFixture) -> None:
    """A narrower window sets claims outside it aside (identity still holds); --quiet prints nothing."""
    text = (platform / "run.toml").read_text().replace(
        "[segmentation]", "[study]\nstart = 2019-06-01\nend = 2020-12-31\nperiod = \"quarter\"\n\n[segmentation]", 1)
    cfg = platform / "window.toml"
    cfg.write_text(text)
    out = platform / "window-out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    acc = json.loads((out / "account.json").read_text())["claims"]
    assert acc["set_aside"].get("outside_study", 0) > 0
    assert acc["read"] == acc["used"] + sum(acc["set_aside"].values())
    cells = pl.read_parquet(out / "cells.parquet")
    assert cells["period"].min().isoformat() == "2019-04-01" and cells["period"].max().isoformat() == "2020-10-01"
    # without --quiet: headline table on stdout, progress on stderr
    assert main(["run", str(cfg), "--out", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert "headline" in captured.out and "row account" in captured.out
    assert "exposure cells" in captured.err
    shutil.rmtree(out)
