"""Every third-party package the code imports is declared in pyproject.toml.

A fresh ``pip install -e '.[test]'`` installs only what pyproject.toml declares; an import that works
here only because this machine happens to have the package would break a new user's install. The
check parses the source (ast), so it needs nothing installed.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: import name -> distribution name, where they differ
DISTRIBUTION = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "dateutil": "python-dateutil",
    "mpl_toolkits": "matplotlib",
}
FIRST_PARTY = {"engine", "tests", "benchmarks"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(reqs: list[str]) -> set[str]:
    return {_norm(re.split(r"[<>=!~\[;\s]", r, maxsplit=1)[0]) for r in reqs}


def _extra(name: str) -> set[str]:
    """The distributions of one extra, following self-references such as ``fentan[plot]``."""
    out: set[str] = set()
    for req in PROJECT["optional-dependencies"][name]:
        m = re.fullmatch(r"fentan\[([\w,\s]+)\]", req.strip())
        if m:
            for sub in m.group(1).split(","):
                out |= _extra(sub.strip())
        else:
            out |= _names([req])
    return out


CORE = _names(PROJECT["dependencies"])
EXTRAS = {name: _extra(name) for name in PROJECT["optional-dependencies"]}


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(top-level package, imported at module level?, line) of every absolute import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module_level = {id(n) for n in tree.body}
    for node in tree.body:  # imports inside a module-level ``if``/``try`` still run at import time
        if isinstance(node, (ast.If, ast.Try)):
            module_level |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
        else:
            continue
        for top in tops:
            if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
                continue
            found.append((top, id(node) in module_level, node.lineno))
    return found


def _third_party(folder: str) -> list[tuple[Path, str, bool, int]]:
    return [(f, top, at_top, line) for f in sorted((ROOT / folder).rglob("*.py"))
            for top, at_top, line in _imports(f)]


def test_the_parser_sees_imports() -> None:
    """The check itself works: it finds the engine's known core and optional imports."""
    tops = {top for _, top, _, _ in _third_party("engine")}
    assert {"polars", "numpy", "scipy", "sklearn", "lifelines", "pydantic", "rich"} <= tops


def test_optional_modules_name_a_declared_extra() -> None:
    """Each package that engine._optional imports on demand is in the extra its error message names."""
    from engine._optional import EXTRAS as OPTIONAL

    for module, (dist, extra) in OPTIONAL.items():
        assert _norm(dist) in EXTRAS[extra], f"{module}: {dist} is not in the [{extra}] extra"
        assert _norm(dist) not in CORE, f"{module} is a core dependency, not an optional one"


def test_engine_imports_are_declared() -> None:
    declared = CORE.union(*EXTRAS.values())
    missing = sorted({f"{_norm(DISTRIBUTION.get(top, top))} ({f.relative_to(ROOT)}:{line})"
                      for f, top, _, line in _third_party("engine")
                      if _norm(DISTRIBUTION.get(top, top)) not in declared})
    assert not missing, f"imported by engine/ but not declared in pyproject.toml: {missing}"


def test_optional_packages_are_imported_only_where_used() -> None:
    """A package of an extra is never imported at module level: ``import engine`` works without it."""
    at_top = sorted({f"{top} ({f.relative_to(ROOT)}:{line})" for f, top, top_level, line in _third_party("engine")
                     if top_level and _norm(DISTRIBUTION.get(top, top)) not in CORE})
    assert not at_top, f"optional packages imported at module level: {at_top}"


@pytest.mark.parametrize("folder,extras", [("tests", ("test",)), ("benchmarks", ("test", "bench"))])
def test_test_and_benchmark_imports_are_declared(folder: str, extras: tuple[str, ...]) -> None:
    declared = CORE.union(*(EXTRAS[e] for e in extras))
    local = {p.stem for d in ("tests", "benchmarks") for p in (ROOT / d).rglob("*.py")}  # helper modules
    missing = sorted({f"{_norm(DISTRIBUTION.get(top, top))} ({f.relative_to(ROOT)}:{line})"
                      for f, top, _, line in _third_party(folder)
                      if top not in local and _norm(DISTRIBUTION.get(top, top)) not in declared})
    assert not missing, f"imported by {folder}/ but not declared in the {extras} extras: {missing}"


def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib, plotting fails with one clear error that names the extra to install."""
    import builtins

    from engine._optional import MissingExtraError, pyplot

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(MissingExtraError, match=r"pip install 'fentan\[plot\]'") as err:
        pyplot()
    assert isinstance(err.value, ImportError) and err.value.exit_code == 2


def test_report_without_matplotlib_says_so_in_place_of_each_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's report is still written without the plot and report extras, with a note where each figure would be."""
    import engine.report.render as render
    from engine.report.chart import Chart, Series

    monkeypatch.setattr(render, "available", lambda module: False)
    chart = Chart("projected share fan charts", "period", "CNY", (Series("mean", [1], [2.0]),))
    for mode in ("static", "interactive"):
        assert render.render_chart(chart, mode) == (
            f'<p class="note">[figure omitted: projected share fan charts. {render.NO_PLOTS}]</p>')
    assert "pip install 'fentan[plot]'" in render.NO_PLOTS
