"""fentan: actuarial pricing and segmentation engine for ex-post cost-sharing pools.

The package is laid out by stage of the flow (see ARCHITECTURE.md)::

    data -> cells -> estimators, segmentation, shares -> projection -> plans -> pipeline, report -> cli

Every public name is re-exported here explicitly. Heavy optional libraries (scikit-learn,
lifelines, matplotlib, scipy.stats) are imported inside the functions that need them, so
``import engine`` and ``fentan --help`` stay fast.
"""

from __future__ import annotations

from engine import synth
from engine._estimator import NotFittedError
from engine._version import __version__
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
