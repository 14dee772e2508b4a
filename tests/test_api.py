"""The public API: every exported name resolves, and names shared with a submodule stay callable."""

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


def test_function_named_like_its_module_stays_callable_after_all_imports() -> None:
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(info.name)
    for name in ("exposure", "incidence", "decompose", "validate", "segment_plans", "plan_size", "tempo"):
        obj = getattr(engine, name)
        assert callable(obj), name
        fn = obj if isinstance(obj, types.FunctionType) else getattr(obj, name)
        assert isinstance(fn, types.FunctionType) and fn.__name__ == name


def test_submodule_imported_first_still_callable() -> None:
    """In a fresh interpreter the submodules are imported before the names are looked up."""
    code = (
        "import importlib, pkgutil, engine\n"
        "[importlib.import_module(i.name) for i in pkgutil.walk_packages(engine.__path__, 'engine.')]\n"
        "for n in ('exposure', 'incidence', 'decompose', 'validate', 'segment_plans'):\n"
        "    obj = getattr(engine, n)\n"
        "    assert type(obj).__name__.startswith('CallableModule'), n\n"
        "    assert callable(obj) and getattr(obj, n).__name__ == n, n\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        engine.nope  # noqa: B018


def test_import_is_light() -> None:
    """``import engine`` must not pull in sklearn, lifelines or matplotlib (the CLI starts fast)."""
    code = "import sys, engine; print(sorted(m for m in ('sklearn','lifelines','matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_validate_through_the_package_name(tmp_path) -> None:
    import datetime as dt

    import polars as pl

    import engine.validate  # noqa: F401  (the submodule import that used to hide the function)

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
