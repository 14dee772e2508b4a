"""Suite-wide settings.

Hypothesis runs derandomised by default, so CI sees the same examples on every run (a failure is
reproducible, never a coin toss). To explore new examples locally, run with a fresh random
stream: ``HYPOTHESIS_PROFILE=explore python -m pytest tests/test_properties.py``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ----------------------------------------------------------------------------- shared slow fixtures
# One small demo (generated platform, validation and the whole pipeline) is run once per session and
# shared by the tests that only read it, instead of each module generating and running its own.
import contextlib  # noqa: E402
import io  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

#: the shared small demo: 20,000 members, seed 5, 1% dirty rows of every kind
SMALL_DEMO = {"members": 20_000, "seed": 5, "dirty": 0.01}


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """``fentan demo`` on a small platform, run once: ``out`` (its directory), ``printed`` (its stdout)
    and ``result`` (what :func:`engine.cli.cmd_demo.run_demo` returned). Read it; never write into it."""
    from engine.cli.cmd_demo import run_demo

    out = tmp_path_factory.mktemp("small_demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = run_demo(out, progress=False, **SMALL_DEMO)
    return SimpleNamespace(out=Path(out), printed=buf.getvalue(), result=result)


@pytest.fixture(scope="session")
def small_demo_zh(small_demo, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The small demo's run again with ``fentan run demo.toml --lang zh`` (its data, not regenerated): ``out``
    (the run directory) and ``missing`` (the texts the Chinese catalogue lacked while building it). Read it only."""
    from engine.cli.main import main
    from engine.report.i18n import missing_keys

    out = tmp_path_factory.mktemp("small_demo_zh") / "run"
    missing_keys(clear=True)
    with contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(small_demo.out / "demo.toml"), "--lang", "zh", "--out", str(out), "--quiet"])
    assert code == 0
    return SimpleNamespace(out=Path(out), missing=missing_keys(clear=True))
