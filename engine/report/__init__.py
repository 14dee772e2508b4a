"""The self-contained HTML report of a run: document model, figures, assembly."""

from engine.report.build import build_report
from engine.report.document import Report

__all__ = ["Report", "build_report"]
