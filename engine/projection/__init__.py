"""Stochastic projection of the share to its sustainable level: assumptions, cohort dynamics, results."""

from engine.projection._project import ProjectionResult, project, project_assumptions
from engine.projection.assumptions import ProjectionAssumptions, groups_from_table

__all__ = ["ProjectionAssumptions", "ProjectionResult", "groups_from_table", "project", "project_assumptions"]
