"""Benchmark of ``engine.project``: 10,000 scenarios x 120 periods x 50 groups (target <= 10 s).

Run: ``python benchmarks/bench_projection.py [--scenarios 10000] [--horizon 120] [--groups 50]
[--plans 5] [--chunk-size 2048]``. Prints wall and CPU time (single-threaded: CPU time is the
figure to compare when the machine is shared), peak RSS (resource.getrusage) and the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import polars as pl


def make_groups(n_groups: int, n_plans: int, seed: int = 1) -> pl.DataFrame:
    """Synthetic groups: plans of equal size, rates 0.2-3 per mille, two benefit bands, four channels."""
    rng = np.random.default_rng(seed)
    chans = ["organic", "subsidy", "referral", "employer"]
    return pl.DataFrame({
        "plan": [f"P{i % n_plans}" for i in range(n_groups)],
        "group": [f"G{i:03d}" for i in range(n_groups)],
        "members": rng.integers(20_000, 200_000, n_groups).astype(float),
        "rate": rng.uniform(0.0002, 0.003, n_groups),
        "benefit_cny": np.where(rng.random(n_groups) < 0.7, 300_000.0, 100_000.0),
        "channel": [chans[i % 4] for i in range(n_groups)],
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenarios", type=int, default=10_000)
    ap.add_argument("--horizon", type=int, default=120)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--plans", type=int, default=5)
    ap.add_argument("--chunk-size", type=int, default=2048)
    args = ap.parse_args()
    from engine.projection._project import project

    groups = make_groups(args.groups, args.plans)
    kw = dict(horizon=args.horizon, n_scenarios=args.scenarios, seed=0, waiting_periods=3,
              reporting_lag_periods=1, per_claimant_cap=0.1, annual_cap=188.0,
              joiners={"per_period": 50_000, "growth": -0.02, "then": "replace"},
              lapse={"base_annual": {"organic": 0.1, "subsidy": 0.3, "referral": 0.15, "employer": 0.05}},
              expectations={"speed": 0.1}, elasticity={"base": 1.5, "adverse_selection": 1.0},
              chunk_size=args.chunk_size)
    t0, c0 = time.perf_counter(), time.process_time()
    res = project(groups, **kw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()} "
          f"numpy {np.__version__}")
    print(f"scenarios={args.scenarios} horizon={args.horizon} groups={args.groups} plans={args.plans} "
          f"chunk_size={args.chunk_size}")
    print(f"wall time: {wall:.2f} s   CPU time: {cpu:.2f} s   peak RSS: {rss_mib:.0f} MiB   "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(res.plans.select("plan", "sustainable_share_cny", "share_end_mean_cny", "death_spiral"))


if __name__ == "__main__":
    main()
