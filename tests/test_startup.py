"""Start-up (issue 22): ``import engine``, ``fentan --help`` and ``fentan exposure`` load no model library.

A module-set check, not a timing test: each command runs in a fresh interpreter that then lists
the heavy libraries it imported. The lazy re-exports of ``engine/__init__.py`` (PEP 562) must
still give every public name, and its ``TYPE_CHECKING`` imports must match ``__all__``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import engine

HEAVY = ("sklearn", "scipy", "lifelines", "matplotlib", "pandas", "statsmodels", "pydantic")
#: not needed to print help: imported by the commands that read data, where used
DATA = ("polars", "pyarrow", "numpy")
ROOT = Path(__file__).resolve().parents[1]


def _loaded(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``heavy`` top-level packages a fresh interpreter has imported after running ``code``."""
    probe = (f"{code}\nimport sys, json\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_engine_loads_no_model_library() -> None:
    assert _loaded("import engine") == []


def _help(*commands: str) -> str:
    """Code printing ``fentan --help`` and ``fentan COMMAND --help`` for each command."""
    argvs = [["--help"], *([c, "--help"] for c in commands)]
    return ("from engine.cli.main import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    for argv in {argvs!r}:\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass")


def test_fentan_help_loads_no_model_library() -> None:
    assert _loaded(_help("exposure", "validate")) == []


def test_fentan_exposure_help_loads_no_data_library() -> None:
    """Printing help needs neither polars, numpy nor pyarrow (docs/scale.md, "Start-up")."""
    assert _loaded(_help("exposure")) == []
    assert _loaded(_help("exposure"), DATA) == []


def test_the_probe_sees_a_data_library() -> None:
    assert _loaded("import engine.data.io", DATA) == ["numpy", "polars"]


def test_fentan_exposure_and_validate_load_no_model_library(tmp_path) -> None:
    from engine.synth import generate

    plat = generate(500, seed=3, level=300.0)
    (tmp_path / "m").mkdir()
    plat.members.write_parquet(tmp_path / "m" / "a.parquet")
    plat.claims.write_parquet(tmp_path / "c.parquet")
    args = ["exposure", "--members", str(tmp_path / "m"), "--claims", str(tmp_path / "c.parquet"), "--start",
            "2019-01-01", "--end", "2021-06-30", "--by", "age,sex,channel", "--out", str(tmp_path / "x.parquet"),
            "--quiet"]
    vargs = ["validate", "--members", str(tmp_path / "m"), "--claims", str(tmp_path / "c.parquet"), "--out",
             str(tmp_path / "v"), "--quiet"]
    code = f"from engine.cli.main import main\nassert main({args!r}) == 0\nassert main({vargs!r}) == 0"
    assert _loaded(code) == []
    assert pl.read_parquet(tmp_path / "x.parquet").height > 0


def test_the_probe_sees_a_heavy_import() -> None:
    assert _loaded("import engine\nengine.PoissonGLM") != []


def test_every_public_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    assert set(engine.__all__) <= set(dir(engine))
    with pytest.raises(AttributeError, match="no_such_name"):
        engine.no_such_name  # noqa: B018


def test_subpackages_reachable_after_import_engine() -> None:
    """``import engine; engine.cells.process_pool`` works as when everything was imported eagerly."""
    code = ("import engine\nassert callable(engine.cells.process_pool) and callable(engine.data.io.read_members)\n"
            "assert engine.pipeline.outguard.release_locks")
    assert _loaded(code) == []


def test_type_checking_block_matches_all() -> None:
    """The imports type checkers read, the lazy table and ``__all__`` list the same names."""
    tree = ast.parse((ROOT / "engine" / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    typed = {a.asname or a.name for n in ast.walk(block) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert typed | {"__version__"} == set(engine.__all__)
    assert set(engine._EXPORTS) | {"__version__"} == set(engine.__all__)


def test_fentan_run_dry_run_loads_no_model_library(tmp_path) -> None:
    """A dry run validates only: the import warm-up of a full run (engine.pipeline._warmup) stays off.

    (scipy itself is loaded by every run, to limit its BLAS to one thread: engine._threads.)
    """
    from engine.synth import generate

    from tests.kits.runconfig import small_run_config

    generate(500, seed=3, level=300.0).write(tmp_path / "data")
    (tmp_path / "run.toml").write_text(small_run_config(plans=False), encoding="utf-8")
    code = ("import time\nfrom engine.cli.main import main\n"
            f"assert main(['run', {str(tmp_path / 'run.toml')!r}, '--dry-run', '--quiet']) == 0\n"
            "time.sleep(0.5)  # a warm-up thread, had one started, would be importing by now")
    assert _loaded(code, ("sklearn", "lifelines", "matplotlib", "plotly", "pandas")) == []
