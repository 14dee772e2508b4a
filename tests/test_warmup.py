"""The import warm-up of ``fentan run`` (engine.pipeline._warmup): what it imports, when, and that it changes no byte.

The run checks use fresh interpreters, so the warm-up really imports scikit-learn and scipy.stats
while validation and exposure run (in this test process other tests may have imported them already).
"""

from __future__ import annotations

import importlib

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.pipeline._warmup import MODEL_MODULES, REPORT_MODULES, Warmup, warmup_modules

from tests.kits.runconfig import small_run_config

ROOT = Path(__file__).resolve().parents[1]

#: run in a fresh interpreter: ``fentan run`` with the warm-up on or off; prints what the warm-up did
_RUN = """
import json, sys
import engine.pipeline._stages as bs
import engine.pipeline._warmup as wu
import engine.pipeline.runner as r
r.WARMUP = {warm!r}
seen, started = {{}}, []
start = wu.Warmup.start
def recording_start(self):
    started.append(self)
    return start(self)
wu.Warmup.start = recording_start
incidence = bs.stage_incidence
def checked_incidence(ctx):
    t = started[0]._thread
    seen["alive_at_incidence"] = t is not None and t.is_alive()
    seen["sklearn_loaded"] = "sklearn" in sys.modules
    return incidence(ctx)
bs.stage_incidence = checked_incidence
from engine.cli.main import main
assert main({argv!r}) == 0
w = started[0]
print(json.dumps({{**seen, "modules": list(w.modules), "imported": w.imported,
                   "errors": {{k: repr(v) for k, v in w.errors.items()}}}}))
"""


def _run(config: Path, out: Path, warm: bool) -> dict:
    code = _RUN.format(warm=warm, argv=["run", str(config), "--out", str(out), "--quiet"])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "run.json"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("warmup")
    generate(6_000, 5, dirty=0.002, level=4.0).write(root / "data")
    (root / "run.toml").write_text(small_run_config(max_groups=3, horizon=12, scenarios=16, seed=2), encoding="utf-8")
    warm = _run(root / "run.toml", root / "warm", True)
    cold = _run(root / "run.toml", root / "cold", False)
    return SimpleNamespace(root=root, warm=warm, cold=cold)


def test_outputs_are_the_same_bytes_with_and_without_the_warmup(runs: SimpleNamespace) -> None:
    warm, cold = _files(runs.root / "warm"), _files(runs.root / "cold")
    assert len(warm) > 20 and "report.html" in warm
    assert warm.keys() == cold.keys()
    assert [k for k in warm if warm[k] != cold[k]] == []


def test_the_run_warms_the_model_and_report_modules_before_incidence(runs: SimpleNamespace) -> None:
    w = runs.warm
    assert w["errors"] == {}
    assert w["modules"] == list(warmup_modules(SimpleNamespace(output=SimpleNamespace(report=True))))
    assert w["imported"] == w["modules"]  # plotly (the test extra) included
    assert w["alive_at_incidence"] is False  # the runner waited: no stage imports beside the thread
    assert w["sklearn_loaded"] is True


def test_without_the_warmup_nothing_is_imported_early(runs: SimpleNamespace) -> None:
    c = runs.cold
    assert c["modules"] == [] and c["imported"] == []
    assert c["sklearn_loaded"] is False  # the incidence stage imports it itself, as before
    assert "warmup" not in json.loads((runs.root / "cold" / "run.json").read_text())


def test_run_json_records_the_warmup(runs: SimpleNamespace) -> None:
    rec = json.loads((runs.root / "warm" / "run.json").read_text())["warmup"]
    assert rec["modules"] == len(runs.warm["modules"]) and rec["failed"] == []
    assert rec["thread_seconds"] > 0 and rec["waited_seconds"] >= 0


def test_warmup_imports_the_intended_modules_in_a_fresh_interpreter() -> None:
    code = ("import sys, json\nfrom engine.pipeline._warmup import Warmup, MODEL_MODULES\n"
            "before = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'})\n"
            "w = Warmup(MODEL_MODULES).start()\nw.wait()\n"
            "print(json.dumps([before, w.imported, sorted(w.errors), 'sklearn.base' in sys.modules,"
            " 'scipy.stats' in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    before, imported, errors, sk, st = json.loads(res.stdout.strip().splitlines()[-1])
    assert before == []  # importing the warm-up module loads no model library
    assert imported == list(MODEL_MODULES) and errors == [] and sk and st


def test_a_failing_import_is_kept_and_raises_again_in_the_stage(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "fentan_broken_mod.py").write_text("raise RuntimeError('broken on purpose')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    w = Warmup(["fentan_broken_mod", "json", "fentan_no_such_pkg.sub"]).start()
    w.wait()
    assert list(w.errors) == ["fentan_broken_mod"] and isinstance(w.errors["fentan_broken_mod"], RuntimeError)
    assert w.imported == ["json"]  # a package not installed is skipped, not an error
    assert "fentan_broken_mod" not in sys.modules
    with pytest.raises(RuntimeError, match="broken on purpose"):
        importlib.import_module("fentan_broken_mod")  # the stage's own import raises the same error


def test_cancel_stops_before_the_next_module_and_wait_without_start_returns() -> None:
    w = Warmup(["json", "csv"])
    w.wait()  # never started: no-op
    w.cancel()
    w.start()
    w.wait()
    assert w.imported == [] and w.seconds is not None and w.waited >= 0
    assert Warmup([]).start()._thread is None
    assert Warmup([]).record() == {"modules": 0, "failed": [], "thread_seconds": None, "waited_seconds": 0.0}


def test_modules_follow_the_configuration() -> None:
    def cfg(report: bool, monotone: bool = False) -> SimpleNamespace:
        return SimpleNamespace(output=SimpleNamespace(report=report),
                               segmentation=SimpleNamespace(monotone_age=monotone, contiguous_age=False))

    assert warmup_modules(cfg(False)) == MODEL_MODULES
    assert warmup_modules(cfg(True)) == (*MODEL_MODULES, *REPORT_MODULES)
    assert "sklearn.isotonic" in warmup_modules(cfg(False, monotone=True))
