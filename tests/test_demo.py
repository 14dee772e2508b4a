"""``fentan demo`` runs the whole pipeline on a generated platform (small size here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.cli.main import main


def test_demo_small_platform_end_to_end(small_demo, tmp_path: Path, capsys) -> None:
    printed = small_demo.printed
    out = tmp_path / "demo"
    shutil.copytree(small_demo.out, out)  # the shared run is read-only; the re-run below writes into a copy
    assert "headline" in printed and "pooled/xianghubao" in printed and "row account" in printed
    for f in ("data/members.parquet", "data/claims.parquet", "demo.toml", "run/report.html", "run/summary.json",
              "run/account.json", "run/cells.parquet", "run/projection.parquet", "validation/account.json"):
        assert (out / f).exists(), f
    acc = json.loads((out / "run" / "account.json").read_text())
    raw = json.loads((out / "validation" / "account.json").read_text())
    assert acc["members"] == {**acc["members"], "read": raw["members"]["read"], "used": raw["members"]["used"]}
    assert acc["claims"]["read"] == raw["claims"]["read"]
    # demo.toml is a valid run configuration pointing at the generated data
    from engine.pipeline.config import load_config

    cfg = load_config(small_demo.out / "demo.toml")
    assert Path(cfg.data.members) == (small_demo.out / "data" / "members.parquet").resolve()
    # a second demo into the same directory replaces the run (the demo owns its directory)
    assert main(["demo", "--out", str(out), "--n-members", "5000", "--seed", "5", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    replaced = json.loads((out / "validation" / "account.json").read_text())
    assert replaced["members"]["read"] < raw["members"]["read"]  # the new, smaller platform replaced the old


def test_demo_validate_only(tmp_path: Path) -> None:
    out = tmp_path / "v"
    assert main(["demo", "--out", str(out), "--n-members", "5000", "--validate-only", "--quiet"]) == 0
    assert (out / "validation" / "account.json").exists() and not (out / "run").exists()
