"""Calibration to published figures: replay a platform from its membership curve and public aggregates.

:func:`replay` fits the incidence level and a select wear-off curve by maximum likelihood to dated
aggregates (claimants, shares, annual shares), then projects forward on the sharing calendar.
"""

from engine.calibration._model import Aggregate, ReplayModel, select_curve
from engine.calibration._replay import ReplayResult, build_model, replay
from engine.calibration.config import load_replay_config, read_public_figures, replay_from_config
from engine.calibration._tempo import ReplayTempo, tempo_from_config, tempo_from_replay

__all__ = ["Aggregate", "ReplayModel", "ReplayResult", "ReplayTempo", "build_model", "load_replay_config",
           "read_public_figures", "replay", "replay_from_config", "select_curve", "tempo_from_config",
           "tempo_from_replay"]
