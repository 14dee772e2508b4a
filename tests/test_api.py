"""The public API: every exported name resolves, and no module hides a public function of the same name."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import engine


@pytest.mark.parametrize("name", [n for n in engine.__all__ if n != "__version__"])
def test_every_export_resolves(name: str) -> None:
    value = getattr(engine, name)
    assert value is not None
    if name != "synth":  # engine.synth is the synthetic-platform package
        assert callable(value), name


def test_functions_are_plain_functions_after_all_imports() -> None:
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(info.name)
    for name in ("exposure", "incidence", "decompose", "validate", "segment_plans", "plan_size", "tempo"):
        obj = getattr(engine, name)
        assert isinstance(obj, types.FunctionType) and obj.__name__ == name, name


def test_no_module_named_like_a_public_function() -> None:
    """A submodule named like a function re-exported by its package would replace it once imported."""
    names = {n.rsplit(".", 1)[-1] for n in (i.name for i in pkgutil.walk_packages(engine.__path__, "engine."))}
    functions = {n for n in engine.__all__ if isinstance(getattr(engine, n), types.FunctionType)}
    assert not names & functions


def test_submodules_imported_first_keep_the_functions() -> None:
    """In a fresh interpreter the submodules are imported before the names are looked up."""
    code = (
        "import importlib, pkgutil, types, engine\n"
        "[importlib.import_module(i.name) for i in pkgutil.walk_packages(engine.__path__, 'engine.')]\n"
        "for n in ('exposure', 'incidence', 'decompose', 'validate', 'segment_plans'):\n"
        "    obj = getattr(engine, n)\n"
        "    assert isinstance(obj, types.FunctionType) and obj.__name__ == n, n\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        engine.nope  # noqa: B018


def test_import_is_light() -> None:
    """``import engine`` must not pull in lifelines or matplotlib (the CLI starts faster without them).

    scikit-learn (and with it scipy) is imported: every estimator derives from its ``BaseEstimator``
    (one estimator contract), and ``engine/__init__`` re-exports the estimators explicitly."""
    code = ("import sys, engine; "
            "print(sorted(m for m in ('lifelines','matplotlib','matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_validate_through_the_package_name(tmp_path) -> None:
    import datetime as dt

    import polars as pl

    import engine.data.validation  # noqa: F401  (the submodule import that used to hide the function)

    members = pl.DataFrame(
        {
            "member_id": ["a", "b", "b"],
            "birth_date": [dt.date(1980, 1, 1)] * 3,
            "sex": ["M", "F", "F"],
            "join_date": [dt.date(2020, 1, 1)] * 3,
            "exit_date": [None, None, None],
        },
        schema_overrides={"exit_date": pl.Date},
    )
    claims = pl.DataFrame(
        {"claim_id": ["c1"], "member_id": ["a"], "event_date": [dt.date(2021, 1, 1)], "amount": [1000.0]}
    )
    res = engine.validate(members.lazy(), claims.lazy())
    assert res.account["members"]["read"] == 3
    assert res.account["members"]["used"] == 1
