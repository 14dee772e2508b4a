"""The README's promises: the tour runs, the two set-up commands match CI, every linked file exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_tour_runs_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python block"
    tour = blocks[0]
    assert "engine.exposure(" in tour and "engine.project(" in tour
    out = subprocess.run([sys.executable, "-c", tour], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    # example 4: the default segmentation of the demo platform finds more than one risk group, with its rules
    k = re.search(r"risk groups: (\d+);", out.stdout)
    assert k and int(k.group(1)) > 1, out.stdout[-3000:]
    rules = re.findall(r"^(.+?) +[\d,]+ members +\d+ claims .* per mille$", out.stdout, flags=re.M)
    assert len(rules) == int(k.group(1)) and all("|" not in r for r in rules), rules


def test_test_command_is_what_ci_runs() -> None:
    assert "pip install -e '.[test]' && python -m pytest -q" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # a fresh virtual environment, then the README's install and test commands inside it
    assert re.search(r"python3 -m venv \S+", ci) and re.search(r"source \S+/bin/activate", ci)
    assert "python -m pip install" in ci and "-e '.[test]'" in ci
    assert re.search(r"^python -m pytest -q\b", ci, flags=re.M)
    assert ci.index("source ") < ci.index("python -m pip install") < ci.index("python -m pytest")
    assert "pip install -e '.[test]' && fentan demo" in README


def test_every_relative_link_exists() -> None:
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert len(links) > 10
    missing = [link for link in links if not (ROOT / link).exists()]
    assert missing == []


def test_every_cli_command_is_listed() -> None:
    from engine.cli.main import _commands  # type: ignore[attr-defined]

    names = sorted(m.NAME for m in _commands())
    assert names, "no CLI commands discovered"
    unlisted = [n for n in names if f"`fentan {n}" not in README]
    assert unlisted == []


def _architecture_tree() -> set[str]:
    """Paths named by the tree of ARCHITECTURE.md (two spaces of indent per level), e.g. ``engine/cells/dates.py``."""
    arch = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(engine/.*?)```", arch, flags=re.S)
    assert block, "ARCHITECTURE.md has no tree starting at engine/"
    paths: set[str] = set()
    stack: list[str] = []
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith(" " * 20):  # blank or a continued description
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0].rstrip(",")
        stack = stack[:depth]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        else:
            paths.add("/".join([*stack, name]))
    return paths


def test_architecture_lists_every_module() -> None:
    tree = _architecture_tree()
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "engine").rglob("*.py")
               if p.name != "__init__.py" and not p.name.startswith("cmd_")}
    assert sorted(modules - tree) == []
    listed = {p for p in tree if p.startswith("engine/") and p.endswith(".py") and "*" not in p}
    assert sorted(listed - modules) == []  # no stale entry
