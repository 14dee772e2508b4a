"""The quick benchmark runs, and its verdict logic is right.

Timings never fail the test suite: wall times depend on the machine, its load and the library
builds, so a slowdown against benchmarks/results.json only prints a warning here. Performance is
judged by ``python -m benchmarks.run --quick`` (which exits non-zero on a gross slowdown) and the
full benchmark run, not by the unit tests. A stage that breaks (status other than ok) still fails.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from benchmarks.quick import compare

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"


def _rec(stage: str, wall: float | None, status: str = "ok") -> dict:
    r = {"engine": "fentan", "stage": stage, "members": 100_000, "status": status}
    if wall is not None:
        r["wall_s"] = wall
    return r


def test_compare_verdicts() -> None:
    committed = [_rec("a", 1.0), _rec("b", 1.0), _rec("c", 1.0), _rec("d", 0.01), _rec("e", 1.0)]
    measured = [_rec("a", 1.4), _rec("b", 3.0), _rec("c", 4.6), _rec("d", 0.4), _rec("e", None, "error"),
                _rec("new", 1.0)]
    got = {r["stage"]: r["verdict"] for r in compare(measured, committed, 2.0, 4.0, 0.5)}
    # 1.4 <= 2.5: ok; 3.0 > 2.5: warn; 4.6 > 4.5: fail; 0.4 <= 4*0.01+0.5 (floor): ok;
    # a stage that broke: fail; nothing committed: no reference
    assert got == {"a": "ok", "b": "warn", "c": "fail", "d": "ok", "e": "fail", "new": "no reference"}


def test_committed_results_shape() -> None:
    if not RESULTS.exists():
        pytest.skip("no committed benchmarks/results.json")
    doc = json.loads(RESULTS.read_text())
    assert {"machine", "records", "sizes", "command"} <= set(doc)
    ok = [r for r in doc["records"] if r["status"] == "ok"]
    assert ok and all(r["wall_s"] > 0 and r["peak_rss_mb"] > 0 for r in ok)


@pytest.mark.slow
def test_quick_benchmark(tmp_path: Path) -> None:
    if not RESULTS.exists():
        pytest.skip("no committed benchmarks/results.json")
    from benchmarks.adapters.common import load_config
    from benchmarks.quick import run_quick
    from benchmarks.run import HERE

    cfg_path = HERE / "config.toml"
    q = load_config(cfg_path)["quick"]
    measured = run_quick(cfg_path, tmp_path)
    broken = [r for r in measured if r.get("status") != "ok"]
    assert not broken, f"benchmark stages that failed to run: {broken}"
    rows = compare(measured, json.loads(RESULTS.read_text())["records"],
                   float(q["warn_ratio"]), float(q["fail_ratio"]), float(q["floor_seconds"]))
    assert any(r["verdict"] != "no reference" for r in rows), "quick workload absent from the committed results"
    for r in rows:
        if r["verdict"] in ("warn", "fail") and "ratio" in r:
            warnings.warn(f"benchmark {r['stage']}: {r['wall_s']:.2f} s vs committed {r['committed_s']:.2f} s "
                          f"(x{r['ratio']:.1f}) on this machine; timings are judged by the benchmarks, "
                          "not by the test suite", stacklevel=1)
