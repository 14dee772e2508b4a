"""Stochastic projection of the share to its sustainable level: assumptions, cohort dynamics, results."""

from engine.projection._caps import caps_cost_projected, caps_cost_realised
from engine.projection._project import ProjectionResult, project, project_assumptions
from engine.projection._spiral import spiral_period
from engine.projection._tempo import tempo, tempo_sensitivity
from engine.projection._tempo_result import TempoCriteria, TempoResult
from engine.projection.assumptions import ProjectionAssumptions, groups_from_table
from engine.projection.calendar import CalendarProjection, calendar_periods, project_calendar
from engine.projection.membership import MembershipCurve, membership_from_curve, points_from_members

__all__ = ["caps_cost_projected", "caps_cost_realised", "CalendarProjection", "MembershipCurve", "ProjectionAssumptions", "ProjectionResult", "calendar_periods",
           "groups_from_table", "membership_from_curve", "points_from_members", "project", "project_assumptions",
           "project_calendar", "spiral_period", "tempo", "tempo_sensitivity", "TempoCriteria", "TempoResult"]
