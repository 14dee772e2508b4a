"""Crash safety of ``fentan run`` (issue 10, item 4): SIGKILL a run at seeded random points.

After every kill the output directory holds exactly the previous complete outputs (the
run is deterministic, so a completed new run has the same bytes except run.json), no
partial file is visible under the final names, and the next run succeeds and removes
the hidden staging directories the killed runs left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.pipeline.outdir import check_target, recover, staged_output
from engine.pipeline.outguard import MARKER, write_marker

from tests.kits.runconfig import small_run_config

REPO = Path(__file__).resolve().parents[1]


def _cmd(cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "engine.cli.main", "run", str(cfg), "--out", str(out), "--force", "--quiet"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_complete(out: Path, before: dict[str, bytes]) -> None:
    now = _snapshot(out)
    assert sorted(now) == sorted(before), "a file is missing or an extra (partial) file is visible"
    for name, data in before.items():
        if name != "run.json":  # wall times: the previous run's or a complete new run's
            assert now[name] == data, name
    rec = json.loads(now["run.json"])  # complete, parseable
    assert "finished_utc" in rec


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("crash")
    generate(8_000, 5, dirty=0.002, level=6.0).write(root / "data")
    cfg = root / "run.toml"
    cfg.write_text(small_run_config(), encoding="utf-8")
    out = root / "out"
    t0 = time.monotonic()
    subprocess.run(_cmd(cfg, out), check=True, cwd=REPO, timeout=300)
    return cfg, out, time.monotonic() - t0


def test_sigkill_at_random_points_keeps_the_previous_outputs(platform: tuple[Path, Path, float]) -> None:
    cfg, out, seconds = platform
    before = _snapshot(out)
    rng = np.random.default_rng(20261124)
    delays = np.sort(rng.uniform(0.15, 0.95, size=4)) * seconds  # spanning start-up, stages, report, swap
    killed = 0
    for delay in delays:
        proc = subprocess.Popen(_cmd(cfg, out), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=float(delay))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert proc.returncode == 0
        _assert_complete(out, before)
        # anything the kill left is hidden and temporary by name
        extra = [p.name for p in out.parent.iterdir() if p.name not in ("out", "data", "run.toml")]
        assert all(n.startswith(".out.partial-") for n in extra), extra
    assert killed >= 2, f"only {killed} of {len(delays)} runs were interrupted (run takes {seconds:.1f} s)"
    # the next run succeeds and removes the killed runs' staging directories
    subprocess.run(_cmd(cfg, out), check=True, cwd=REPO, timeout=300)
    _assert_complete(out, before)
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_fallback_swap_killed_between_renames_is_recovered(tmp_path: Path) -> None:
    """Where renameat2 is missing the swap is two renames; a kill between them is undone."""
    out = tmp_path / "out"
    pid = _dead_pid()
    old = tmp_path / f".out.old-{pid}"  # the previous outputs, moved aside
    old.mkdir()
    (old / "summary.json").write_text("{}")
    write_marker(old)  # fentan's previous outputs
    staging = tmp_path / f".out.partial-{pid}"
    staging.mkdir()
    (staging / "cells.parquet").write_bytes(b"new")
    check_target(out, force=True)  # every run starts with recover()
    assert (out / "summary.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_recover_leaves_live_runs_alone(tmp_path: Path) -> None:
    live = tmp_path / f".out.partial-{os.getpid()}"
    live.mkdir()
    dead = tmp_path / f".out.partial-{_dead_pid()}"
    dead.mkdir()
    recover(tmp_path / "out")
    assert live.exists() and not dead.exists()


@pytest.mark.parametrize("exchange", [True, False])
def test_staged_output_swaps_and_cleans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setenv("FENTAN_NO_RENAME_EXCHANGE", "1")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    write_marker(out)  # created by fentan: --force may replace it
    with staged_output(out, force=True) as stage:
        (stage / "b.txt").write_text("new")
        assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.txt"]  # nothing new visible yet
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(RuntimeError), staged_output(out, force=True) as stage:
        (stage / "c.txt").write_text("partial")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
