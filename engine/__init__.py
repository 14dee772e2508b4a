"""fentan: actuarial pricing and segmentation engine for ex-post cost-sharing pools.

The package is laid out by stage of the flow (see ARCHITECTURE.md)::

    data -> cells -> estimators, segmentation, shares -> projection -> plans -> pipeline, report -> cli

Every public name is listed in ``__all__`` and re-exported here **lazily** (PEP 562): ``import
engine`` loads almost nothing, and ``engine.PoissonGLM`` imports its module on first use, so
``fentan --help`` and a command that needs no model never load scikit-learn, scipy or lifelines.
Type checkers and IDEs read the imports of the ``TYPE_CHECKING`` block below. Heavy optional
libraries (scikit-learn, lifelines, matplotlib, scipy.stats) are also imported inside the
functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_exports
from engine._version import __version__

if TYPE_CHECKING:
    from engine import synth
    from engine._estimator import NotFittedError
    from engine.calibration import ReplayResult, ReplayTempo, replay, tempo_from_replay
    from engine.cells import band_labels, classify_claims, exposure
    from engine.data import (
        ValidationResult,
        load_model,
        read_claims,
        read_members,
        reference_basis,
        save_model,
        validate,
    )
    from engine.errors import (
        ConfigError,
        DataError,
        EngineError,
        InputFileError,
        ModelError,
        OutputError,
        ResourceError,
        SchemaError,
    )
    from engine.estimators import (
        BuhlmannStraub,
        PoissonGBM,
        PoissonGLM,
        SelectFactors,
        calibration_table,
        credibility_blend,
        full_standard,
        garwood_interval,
        gini,
        incidence,
        limited_fluctuation,
        limited_fluctuation_table,
        lorenz_curve,
        mean_poisson_deviance,
        plot_incidence,
        score_members,
        select_factors,
        select_table,
        split_cells,
    )
    from engine.pipeline import RunConfig, RunResult, load_config, run
    from engine.plans import (
        build_risk_table,
        compare_plans,
        compare_rules,
        load_plans,
        migrate,
        PlanSizeResult,
        optimise_plans,
        plan_size,
        rules_for_plan,
        share_rule,
    )
    from engine.projection import (
        CalendarProjection,
        ProjectionResult,
        TempoCriteria,
        TempoResult,
        groups_from_table,
        membership_from_curve,
        points_from_members,
        project,
        project_calendar,
        spiral_period,
        tempo,
    )
    from engine.segmentation import RiskSegmenter, segment_plans, segmentation_metrics
    from engine.shares import (
        ShareDrivers,
        decompose,
        drivers_from_cells,
        share_drivers,
        share_history,
        sharing_calendar,
        sustainable,
    )

#: public name -> the module that defines it (a submodule of engine for ``synth``)
_EXPORTS: dict[str, str] = {
    "synth": "engine.synth",
    "NotFittedError": "engine._estimator",
    "ReplayResult": "engine.calibration",
    "ReplayTempo": "engine.calibration",
    "replay": "engine.calibration",
    "tempo_from_replay": "engine.calibration",
    "band_labels": "engine.cells",
    "classify_claims": "engine.cells",
    "exposure": "engine.cells",
    "ValidationResult": "engine.data",
    "load_model": "engine.data",
    "read_claims": "engine.data",
    "read_members": "engine.data",
    "reference_basis": "engine.data",
    "save_model": "engine.data",
    "validate": "engine.data",
    "ConfigError": "engine.errors",
    "DataError": "engine.errors",
    "EngineError": "engine.errors",
    "InputFileError": "engine.errors",
    "ModelError": "engine.errors",
    "OutputError": "engine.errors",
    "ResourceError": "engine.errors",
    "SchemaError": "engine.errors",
    "BuhlmannStraub": "engine.estimators",
    "PoissonGBM": "engine.estimators",
    "PoissonGLM": "engine.estimators",
    "SelectFactors": "engine.estimators",
    "calibration_table": "engine.estimators",
    "credibility_blend": "engine.estimators",
    "full_standard": "engine.estimators",
    "garwood_interval": "engine.estimators",
    "gini": "engine.estimators",
    "incidence": "engine.estimators",
    "limited_fluctuation": "engine.estimators",
    "limited_fluctuation_table": "engine.estimators",
    "lorenz_curve": "engine.estimators",
    "mean_poisson_deviance": "engine.estimators",
    "plot_incidence": "engine.estimators",
    "score_members": "engine.estimators",
    "select_factors": "engine.estimators",
    "select_table": "engine.estimators",
    "split_cells": "engine.estimators",
    "RunConfig": "engine.pipeline",
    "RunResult": "engine.pipeline",
    "load_config": "engine.pipeline",
    "run": "engine.pipeline",
    "build_risk_table": "engine.plans",
    "compare_plans": "engine.plans",
    "compare_rules": "engine.plans",
    "load_plans": "engine.plans",
    "migrate": "engine.plans",
    "PlanSizeResult": "engine.plans",
    "optimise_plans": "engine.plans",
    "plan_size": "engine.plans",
    "rules_for_plan": "engine.plans",
    "share_rule": "engine.plans",
    "CalendarProjection": "engine.projection",
    "ProjectionResult": "engine.projection",
    "TempoCriteria": "engine.projection",
    "TempoResult": "engine.projection",
    "groups_from_table": "engine.projection",
    "membership_from_curve": "engine.projection",
    "points_from_members": "engine.projection",
    "project": "engine.projection",
    "project_calendar": "engine.projection",
    "spiral_period": "engine.projection",
    "tempo": "engine.projection",
    "RiskSegmenter": "engine.segmentation",
    "segment_plans": "engine.segmentation",
    "segmentation_metrics": "engine.segmentation",
    "ShareDrivers": "engine.shares",
    "decompose": "engine.shares",
    "drivers_from_cells": "engine.shares",
    "share_drivers": "engine.shares",
    "share_history": "engine.shares",
    "sharing_calendar": "engine.shares",
    "sustainable": "engine.shares",
}
_MODULES = {"synth"}

__all__ = [
    "__version__",
    # errors
    "EngineError",
    "DataError",
    "SchemaError",
    "InputFileError",
    "ConfigError",
    "ModelError",
    "OutputError",
    "ResourceError",
    "NotFittedError",
    # schema / io / validation
    "read_members",
    "read_claims",
    "validate",
    "ValidationResult",
    "reference_basis",
    "save_model",
    "load_model",
    # synthetic platform
    "synth",
    # exposure core
    "exposure",
    "classify_claims",
    "band_labels",
    # incidence
    "incidence",
    "garwood_interval",
    "PoissonGLM",
    "PoissonGBM",
    "score_members",
    "plot_incidence",
    "split_cells",
    "gini",
    "lorenz_curve",
    "calibration_table",
    "mean_poisson_deviance",
    "select_factors",
    "SelectFactors",
    "BuhlmannStraub",
    "limited_fluctuation",
    "limited_fluctuation_table",
    "full_standard",
    "credibility_blend",
    # segmentation
    "RiskSegmenter",
    "segmentation_metrics",
    "segment_plans",
    # shares
    "share_history",
    "sharing_calendar",
    "decompose",
    "share_drivers",
    "drivers_from_cells",
    "sustainable",
    "ShareDrivers",
    "project",
    "ProjectionResult",
    "groups_from_table",
    "project_calendar",
    "CalendarProjection",
    "membership_from_curve",
    "points_from_members",
    "spiral_period",
    # calibration to published figures
    "replay",
    "ReplayResult",
    "tempo_from_replay",
    "ReplayTempo",
    "select_table",
    # plans
    "load_plans",
    "compare_plans",
    "build_risk_table",
    "share_rule",
    "compare_rules",
    "rules_for_plan",
    "migrate",
    "optimise_plans",
    "plan_size",
    "PlanSizeResult",
    "tempo",
    "TempoResult",
    "TempoCriteria",
    # batch
    "run",
    "RunResult",
    "RunConfig",
    "load_config",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _MODULES)
