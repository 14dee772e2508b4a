"""``python -m engine`` is the same command line as the ``fentan`` script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_python_m_engine_help_lists_every_command(tmp_path: Path) -> None:
    from engine.cli.main import build_parser

    out = _run("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: fentan ")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert name in out.stdout, name


def test_python_m_engine_version_and_user_error(tmp_path: Path) -> None:
    import engine

    out = _run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"fentan {engine.__version__}"
    # a user error: exit 2, one line naming the file, no traceback (as with the fentan script)
    out = _run("validate", "--members", str(tmp_path / "absent.parquet"), "--claims", str(tmp_path / "c.parquet"),
               "--out", str(tmp_path / "v"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "absent.parquet" in lines[0] and "Traceback" not in out.stderr
