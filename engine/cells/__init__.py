"""The exposure core: member intervals and claims -> additive cells (period x keys).

Member rows are touched here once; every later stage fits on cells.
"""

from engine.cells._exposure import PERIODS, band_labels, classify_claims, exposure
from engine.cells._engines import executor_for
from engine.cells._executor import process_pool
from engine.cells.sums import exact_sum, group_index, group_sums

__all__ = [
    "PERIODS",
    "band_labels",
    "classify_claims",
    "exact_sum",
    "executor_for",
    "exposure",
    "group_index",
    "group_sums",
    "process_pool",
]
