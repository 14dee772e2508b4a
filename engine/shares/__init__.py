"""Realised shares: the share history per pool and period, and the decomposition of its changes."""

from engine.shares._drivers import ShareDrivers, drivers_from_cells, share_drivers, sustainable
from engine.shares.decomposition import decompose
from engine.shares.history import share_history, sharing_calendar

__all__ = [
    "ShareDrivers",
    "decompose",
    "drivers_from_cells",
    "share_drivers",
    "share_history",
    "sharing_calendar",
    "sustainable",
]
