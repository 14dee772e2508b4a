"""fentan: actuarial pricing and segmentation engine for ex-post cost-sharing pools.

The public API is imported lazily (``engine.exposure`` etc.) so the CLI starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "EngineError": "engine.errors",
    "DataError": "engine.errors",
    "SchemaError": "engine.errors",
    "InputFileError": "engine.errors",
    "ConfigError": "engine.errors",
    "ModelError": "engine.errors",
    "OutputError": "engine.errors",
    "ResourceError": "engine.errors",
    # schema / io / validation
    "read_members": "engine.io",
    "read_claims": "engine.io",
    "validate": "engine.validate",
    "ValidationResult": "engine.validate",
    "reference_basis": "engine.reference",
    "save_model": "engine.persist",
    "load_model": "engine.persist",
    # synthetic platform
    "synth": "engine.synth",
    # exposure core
    "exposure": "engine.exposure",
    "classify_claims": "engine.exposure",
    "band_labels": "engine.exposure",
    # incidence
    "incidence": "engine.incidence",
    "garwood_interval": "engine.incidence",
    "PoissonGLM": "engine.glm",
    "PoissonGBM": "engine.glm",
    "score_members": "engine.glm",
    "plot_incidence": "engine.incidence",
    "split_cells": "engine.metrics",
    "gini": "engine.metrics",
    "lorenz_curve": "engine.metrics",
    "calibration_table": "engine.metrics",
    "mean_poisson_deviance": "engine.metrics",
    "select_factors": "engine.select",
    "SelectFactors": "engine.select",
    "BuhlmannStraub": "engine.credibility",
    "limited_fluctuation": "engine.credibility",
    "limited_fluctuation_table": "engine.credibility",
    "full_standard": "engine.credibility",
    "credibility_blend": "engine.credibility",
    # segmentation
    "RiskSegmenter": "engine.segmentation",
    "segmentation_metrics": "engine.segment_metrics",
    "segment_plans": "engine.segment_plans",
    # shares
    "share_history": "engine.history",
    "sharing_calendar": "engine.history",
    "decompose": "engine.decompose",
    "share_drivers": "engine.decompose",
    "drivers_from_cells": "engine.decompose",
    "sustainable": "engine.decompose",
    "ShareDrivers": "engine.decompose",
    "project": "engine.projection",
    "ProjectionResult": "engine.projection",
    "groups_from_table": "engine.projection_config",
    "project_calendar": "engine.calendar_projection",
    "CalendarProjection": "engine.calendar_projection",
    "membership_from_curve": "engine.membership_curve",
    "points_from_members": "engine.membership_curve",
    "select_table": "engine.select_table",
    "spiral_period": "engine.spiral",
    # plans
    "load_plans": "engine.plans",
    "compare_plans": "engine.compare",
    "build_risk_table": "engine.compare",
    "share_rule": "engine.sharing",
    "compare_rules": "engine.sharing",
    "rules_for_plan": "engine.sharing",
    "migrate": "engine.migration",
    "optimise_plans": "engine.optimise",
    "plan_size": "engine.plan_size",
    "PlanSizeResult": "engine.plan_size",
    "tempo": "engine.tempo",
    "TempoResult": "engine.tempo",
    "TempoCriteria": "engine.tempo",
    # batch
    "run": "engine.batch",
    "RunResult": "engine.batch",
    "RunConfig": "engine.config",
    "load_config": "engine.config",
}


def __getattr__(name: str) -> Any:
    if name == "synth":  # a submodule, not an attribute of it
        return importlib.import_module("engine.synth")
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'engine' has no attribute '{name}'")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["__version__", *_EXPORTS]
