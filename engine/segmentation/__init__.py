"""Risk segmentation: homogeneous risk groups on cells, their metrics, and a segmentation as a plan set."""

from engine.segmentation._plans import segment_plans
from engine.segmentation.metrics import segmentation_metrics
from engine.segmentation.segmenter import RiskSegmenter

__all__ = ["RiskSegmenter", "segment_plans", "segmentation_metrics"]
