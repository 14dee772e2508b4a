"""Imports flow one way: no cycle between the modules of ``engine``, and only the CLI imports ``engine.cli``.

Every ``import`` statement counts, at module level or inside a function (a deferred import
hides a cycle from the interpreter, not from the reader). Importing a name from a package
counts as importing that package's ``__init__`` unless the name is one of its submodules;
the implicit import of a module's parent packages does not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "engine"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _resolve(module: str, level: int, current: str) -> str:
    if level == 0:
        return module
    base = current.split(".")
    if current not in PACKAGES:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _imports(name: str) -> set[str]:
    """The engine modules that module ``name`` imports."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node.module or "", node.level, name)
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # ``import engine.x.y`` of a name inside a module: the module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]] | None = None) -> list[list[str]]:
    """Every strongly connected set of more than one node of ``graph`` (Tarjan), each as a sorted list."""
    graph = GRAPH if graph is None else graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package() -> None:
    assert {"engine", "engine.cli.main", "engine.pipeline.runner", "engine.cells._exposure"} <= set(MODULES)
    assert "engine.cells._exposure" in GRAPH["engine.cells"]
    assert "engine.errors" in GRAPH["engine.cells._exposure"]


def test_no_import_cycle() -> None:
    assert _cycles() == []


def _stage(name: str) -> str:
    """The stage a module belongs to: its sub-package (``engine.cells``) or top-level module (``engine.errors``)."""
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_stages() -> None:
    """The sub-packages (stages of the flow) import each other one way only; ``engine/__init__`` is left out."""
    stages: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        if name != "engine":
            stages.setdefault(_stage(name), set()).update(_stage(t) for t in targets if _stage(t) != _stage(name))
    for targets in list(stages.values()):
        for t in targets:
            stages.setdefault(t, set())
    assert "engine" not in set().union(*stages.values()), "a module imports the package engine itself"
    assert _cycles(stages) == []


#: entry points that exist to start the command line
ENTRY_POINTS = {"engine.__main__"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not (n == "engine.cli" or n.startswith("engine.cli.")
                                                                    or n in ENTRY_POINTS)))
def test_core_module_does_not_import_the_cli(name: str) -> None:
    bad = sorted(t for t in GRAPH[name] if t == "engine.cli" or t.startswith("engine.cli."))
    assert bad == [], f"{name} imports {bad}"


def test_the_detector_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GRAPH, "engine.errors", GRAPH["engine.errors"] | {"engine.cells._exposure"})
    assert any({"engine.cells._exposure", "engine.errors"} <= set(c) for c in _cycles())
