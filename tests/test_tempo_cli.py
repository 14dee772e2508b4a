"""``fentan tempo``: outputs, seeding, one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[tempo]
growth = [0.0, 0.1]
target_members = 2_000_000
horizon = 36
scenarios = 20
seed = 5

[tempo.criteria]
max_surprise_p95 = 0.5

[projection]
waiting_periods = 3

[projection.elasticity]
base = 1.0

[[groups]]
group = "a"
members = 100_000
rate = 0.002
benefit = 300_000
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "tempo.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_cli_writes_outputs_and_is_seeded(tmp_path, capsys):
    cfg = _write(tmp_path, CONFIG)
    assert main([ "tempo", str(cfg), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["tempo", str(cfg), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    for f in ("tempo.parquet", "tempo_paths.parquet", "tempo.png", "tempo.html", "recommendation.json"):
        assert (tmp_path / "a" / f).exists()
    a, b = (pl.read_parquet(tmp_path / d / "tempo.parquet") for d in ("a", "b"))
    assert a.equals(b) and a["tempo"].to_list() == ["g=0", "g=0.1"]
    assert main(["tempo", str(cfg), "--out", str(tmp_path / "c"), "--quiet", "--seed", "6"]) == 0
    assert not pl.read_parquet(tmp_path / "c" / "tempo.parquet").equals(a)


def test_cli_sensitivity(tmp_path):
    cfg = _write(tmp_path, CONFIG.replace("[projection]", "[tempo.sensitivity]\nelasticity = [0.0, 2.0]\n"
                                          "education_speed = [0.1]\n\n[projection]"))
    assert main(["tempo", str(cfg), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    s = pl.read_parquet(tmp_path / "s" / "tempo_sensitivity.parquet")
    assert s["elasticity"].to_list() == [0.0, 2.0]


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    cases = [CONFIG.replace("growth = [0.0, 0.1]", "speed = [1]"),
             CONFIG.replace("growth = [0.0, 0.1]", ""),
             CONFIG.replace("max_surprise_p95 = 0.5", "max_surprise = 0.5"),
             CONFIG.replace("target_members = 2_000_000", "target_members = 10"),
             CONFIG.replace("[tempo]", "[tempo]\nstart = \"cold\""),
             CONFIG.replace("[projection]", "[tempo.sensitivity]\nelasticity = [1.0]\n\n[projection]")]
    for i, text in enumerate(cases):
        cfg = _write(tmp_path, text)
        assert main(["tempo", str(cfg), "--out", str(tmp_path / f"e{i}")]) == 2, text
        err = capsys.readouterr().err.strip()
        assert err.startswith("fentan tempo: error:") and "\n" not in err


def test_demo_config_parses():
    from engine.cli.cmd_tempo import load_tempo_config

    groups, kw, t = load_tempo_config(str(ROOT / "configs" / "tempo_demo.toml"))
    assert groups.height == 2 and t["target_members"] == 50_000_000 and kw["waiting_periods"] == 3
