"""``fentan run``: the run configuration, the typed run state, the stages, crash-safe output, memory guard.

Names are re-exported lazily (:mod:`engine._lazy`): importing ``engine.pipeline.outguard`` (every
command that writes) does not load the configuration schema or the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.pipeline.config import RunConfig, load_config
    from engine.pipeline.runner import STAGES, RunResult, run

__all__ = ["STAGES", "RunConfig", "RunResult", "load_config", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "RunConfig": "engine.pipeline.config", "load_config": "engine.pipeline.config",
    "STAGES": "engine.pipeline.runner", "RunResult": "engine.pipeline.runner", "run": "engine.pipeline.runner",
})
