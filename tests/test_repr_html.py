"""Notebook display (issue 18, item 7): every result object has a compact, escaped ``_repr_html_``.

Each result class is built small, with a hostile label (``<script>``) where a label is shown; its
card must name the class, show at least one key number and escape the label. The estimators'
cards are checked in tests/test_estimator_contract.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _projection() -> tuple[Any, str]:
    from engine.projection._project import ProjectionResult
    from engine.projection.assumptions import ProjectionAssumptions

    plans = pl.DataFrame({"plan": [EVIL], "sustainable_share_cny": [8.79]})
    e = pl.DataFrame()
    return ProjectionResult(e, plans, e, e, e, ProjectionAssumptions(horizon=36, n_scenarios=50, seed=7),
                            share_scenarios=np.zeros((50, 36))), "8.79"


def _comparison() -> tuple[Any, str]:
    from engine.plans.compare import ComparisonResult

    plans = pl.DataFrame({"level": ["plan", "plan"], "planset": ["vertical", "pooled"], "plan": [EVIL, "all"],
                          "group": [None, None], "expected_share_cny": [3.25, 4.5]})
    return ComparisonResult(plans, pl.DataFrame(), pl.DataFrame({"group": ["a", "b"]}), pl.DataFrame()), "3.25"


def _migration() -> tuple[Any, str]:
    from engine.plans.migration import MigrationResult

    pools = pl.DataFrame({"plan": [EVIL], "members_start": [1000], "members_end": [1234]})
    e = pl.DataFrame()
    return MigrationResult(pools=pools, flows=e, history=e, rows=e, converged=True, rounds=4), "1,234"


def _optimise() -> tuple[Any, str]:
    from engine.plans.optimise import OptimiseResult

    return OptimiseResult(tradeoff=pl.DataFrame({"k": [1, 2]}), solutions={2: [], 3: []}, template=None,  # type: ignore[arg-type]
                          objective=EVIL), "2, 3"


def _validation() -> tuple[Any, str]:
    from engine.data.validation import ValidationResult

    acc = {"members": {"read": 1500, "used": 1498, "set_aside": {"null_sex": 2}},
           EVIL: {"read": 7, "used": 7, "set_aside": {}}}
    return ValidationResult(pl.LazyFrame(), pl.LazyFrame(), pl.DataFrame(), pl.DataFrame(), acc), "1,498"


def _drivers() -> tuple[Any, str]:
    from engine.shares._drivers import ShareDrivers

    d = ShareDrivers(fee=1.08, period_length=1 / 12, dilution=1.0, waiting=1.0, reporting_lag=1.0, ageing=12.0,
                     select=1.0, mix=1.0, incidence=1.0, label=EVIL)
    return d, "1.08"


def _plan_size() -> tuple[Any, str]:
    from engine.plans.size import PlanSizeResult

    return PlanSizeResult(pl.DataFrame({"plan": [EVIL], "members_for_target_cv": [52_000]}), target_cv=0.2), "52,000"


def _calendar() -> tuple[Any, str]:
    from engine.projection.calendar import CalendarProjection

    return CalendarProjection(pl.DataFrame({"period": [1, 2, 3]}), pl.DataFrame({"year": [2020]}),
                              {"sustainable_share_cny": 6.5, "note": EVIL, "nested": {"x": 1}},
                              shares=np.zeros((25, 3))), "6.5"


def _tempo() -> tuple[Any, str]:
    from engine.projection._tempo_result import TempoCriteria, TempoResult

    return TempoResult(pl.DataFrame({"tempo": ["slow", "fast"]}), pl.DataFrame(), EVIL, "spiral probability",
                       TempoCriteria(), 7.25, {"seed": 3}), "7.25"


def _replay() -> tuple[Any, str]:
    from engine.calibration._result import ReplayResult

    e = pl.DataFrame()
    return ReplayResult(pl.DataFrame({"parameter": ["a"]}), e, e, e,
                        {"loglik": -123.5, "n_aggregates": 12, "label": EVIL}), "-123.5"


def _run() -> tuple[Any, str]:
    from engine.pipeline.runner import RunResult

    acc = {"members": {"read": 20_000, "used": 19_990, "set_aside": {}}, "claims": {"read": 300, "used": 300}}
    return RunResult(out=Path("out") / EVIL, account=acc, summary={"p": {}}, facts={"gini": 0.31}), "19,990"


CASES: list[Callable[[], tuple[Any, str]]] = [_projection, _comparison, _migration, _optimise, _validation, _drivers,
                                              _plan_size, _calendar, _tempo, _replay, _run]


@pytest.mark.parametrize("make", CASES, ids=[f.__name__[1:] for f in CASES])
def test_repr_html_names_the_class_shows_a_key_number_and_escapes(make: Callable[[], tuple[Any, str]]) -> None:
    obj, number = make()
    out = obj._repr_html_()
    assert isinstance(out, str)
    assert type(obj).__name__ in out
    assert number in out, out
    assert EVIL not in out and ESCAPED in out, out
    assert len(out) < 5000  # compact: a card, not the tables
    assert not re.search(r"<script", out, re.I)


def test_every_result_class_is_covered() -> None:
    """Every public result class of the engine (a dataclass named *Result, *Projection or ShareDrivers) is in CASES."""
    import ast

    found = set()
    for f in (Path(__file__).resolve().parents[1] / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and re.search(r"(Result|Projection|ShareDrivers)$", node.name) \
                    and any(getattr(d, "id", getattr(d, "attr", "")) == "dataclass"
                            or getattr(getattr(d, "func", None), "id", "") == "dataclass" for d in node.decorator_list):
                found.add(node.name)
    covered = {type(make()[0]).__name__ for make in CASES}
    assert found <= covered, sorted(found - covered)


def test_dates_and_numpy_scalars_are_key_numbers() -> None:
    from engine._results import scalars

    s = scalars({"d": dt.date(2020, 1, 2), "n": np.float64(1.5), "frame": pl.DataFrame(), "list": [1]})
    assert list(s) == ["d", "n"]
