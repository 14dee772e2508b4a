"""``fentan run``: the run configuration, the typed run state, the stages, crash-safe output, memory guard."""

from engine.pipeline.config import RunConfig, load_config
from engine.pipeline.runner import STAGES, RunResult, run

__all__ = ["STAGES", "RunConfig", "RunResult", "load_config", "run"]
