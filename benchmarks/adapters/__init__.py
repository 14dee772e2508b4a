"""One module per engine benchmarked: fentan itself and each competing library.

Every adapter exposes functions ``stage(ctx) -> dict``: they load their inputs
from the data cache (untimed), time only the work itself with
``time.perf_counter`` and return ``{"wall_s": ..., **facts}``. They run inside a
fresh child process started by :mod:`benchmarks.run` (peak RSS per process).
"""
