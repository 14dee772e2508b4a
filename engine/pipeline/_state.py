"""The typed state of one ``fentan run``: what each stage reads and adds.

:mod:`engine.pipeline._stages` and :mod:`engine.pipeline._plan_stages` both extend one
:class:`RunState`; neither imports the other's internals through it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from concurrent.futures import Executor

    import numpy as np

    from engine.data.validation import ValidationResult
    from engine.estimators.glm import PoissonGLM
    from engine.pipeline.config import RunConfig
    from engine.plans.planset import PlanSet
    from engine.projection._project import ProjectionResult
    from engine.segmentation.segmenter import RiskSegmenter


@dataclass
class RunState:
    """State shared by the stages of one run.

    ``cfg``, ``out`` (staging directory, None for a dry run), the tables written so far
    (``tables``) and the scalar facts of ``summary.json`` (``facts``); then, stage by stage,
    the typed intermediate results below (None until the stage that sets them has run).
    """

    cfg: RunConfig
    out: Path | None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    #: run: the ``concurrent.futures.Executor`` the member passes run their tasks on (None: this process)
    executor: Executor | None = None
    #: run: the memory estimate made from the Parquet footers before any data is read
    memory_check: dict[str, Any] | None = None
    #: validate: (pooled plan set or None, [(file label, plan set)]), checked before the data is read
    plansets: tuple[PlanSet | None, list[tuple[str, PlanSet]]] | None = None
    validation: ValidationResult | None = None
    #: validate: the clean members as partitions (frames or LazyFrames); every stage reduces them to counts
    members: list[pl.DataFrame | pl.LazyFrame] | None = None
    #: validate: the multiset fingerprint of ``members`` when validation took it in its own read (the report's
    #: data fingerprint; None: the report reads the members for it)
    members_fingerprint: str | None = None
    claims: pl.DataFrame | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    #: validate: the as-of date and study window, each with what defined it (ISO dates)
    window: dict[str, Any] = field(default_factory=dict)
    #: exposure: cells by period and ``by``; select cells by duration band; claims set aside at exposure time
    cells: pl.DataFrame | None = None
    select_cells: pl.DataFrame | None = None
    exposure_rejected: pl.DataFrame | None = None
    by: list[str] = field(default_factory=list)
    #: exposure: the claimants' member rows found in its pass (with the history's pool keys), for the history
    exposure_claimants: pl.DataFrame | None = None
    #: exposure: the history's member counts taken in its pass (``engine.shares._stream.MemberCounts``), or None
    member_counts: Any = None
    #: incidence: the GLM fitted on all cells, and (claims, predicted rate, exposure) of the held-out cells
    glm: PoissonGLM | None = None
    lorenz: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: segmentation
    segmenter: RiskSegmenter | None = None
    #: history: claims with their eligibility
    classified: pl.DataFrame | None = None
    #: history: members sharing on the study's last day by ``by`` (``members``, ``waiting_members``), counted in the
    #: history's pass over the members for the plans' risk table (``engine.pipeline._plan_stages.sharing_at``)
    sharing_at_end: pl.DataFrame | None = None
    #: plans: members sharing at the end of the study by risk class (see ``_plan_stages.risk_table``)
    risk_table: pl.DataFrame | None = None
    #: projection: one result per projected plan set label
    projections: dict[str, ProjectionResult] = field(default_factory=dict)

    def write(self, name: str, df: pl.DataFrame) -> None:
        """Keep ``df`` and write it as ``<name>.parquet`` (``rejected/x`` allowed)."""
        from engine.data.io import write_parquet

        self.tables[name] = df
        if self.out is not None:
            write_parquet(df, self.out / f"{name}.parquet")


__all__ = ["RunState"]
