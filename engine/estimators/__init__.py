"""Estimators on cells: crude incidence, GLM and GBM rate models, metrics, select factors, credibility."""

from engine.estimators._base import RateModel, score_members
from engine.estimators._limited import credibility_blend, full_standard, limited_fluctuation, limited_fluctuation_table
from engine.estimators.credibility import BuhlmannStraub
from engine.estimators.crude import garwood_interval, incidence, plot_incidence
from engine.estimators.gbm import PoissonGBM
from engine.estimators.glm import PoissonGLM
from engine.estimators.metrics import calibration_table, gini, lorenz_curve, mean_poisson_deviance, split_cells
from engine.estimators._select_table import select_table
from engine.estimators.select import SelectFactors, select_factors

__all__ = [
    "select_table",
    "BuhlmannStraub",
    "PoissonGBM",
    "PoissonGLM",
    "RateModel",
    "SelectFactors",
    "calibration_table",
    "credibility_blend",
    "full_standard",
    "garwood_interval",
    "gini",
    "incidence",
    "limited_fluctuation",
    "limited_fluctuation_table",
    "lorenz_curve",
    "mean_poisson_deviance",
    "plot_incidence",
    "score_members",
    "select_factors",
    "split_cells",
]
