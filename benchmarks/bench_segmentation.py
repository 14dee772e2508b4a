"""Benchmark: RiskSegmenter on the cells of a 10^7-member platform (goal: <= 5 s per fit, K selection included).

Cells: 39 monthly periods x ages 0-59 x sex x 5 city tiers x 4 channels (93,600 rows),
about 2.5e7 exposure-years (10^7 members over ~3 years), Poisson claims around planted
rates. The cells do not grow with the number of members, only the sums in them do.
Every fit includes the incidence model, the tree (or DP), the 5-fold cross-validation
that chooses K and the frontier metrics. A second set of cells is the planted-groups
platform of engine.synth.planted at 10^7 members (3 yearly periods).

Run: python benchmarks/bench_segmentation.py
"""

from __future__ import annotations

import os
import time

from tests.kits.segmentation_sim import sim_cells

from engine.segmentation.segmenter import RiskSegmenter, default_model


def main() -> None:
    cells, _ = sim_cells(seed=0, scale=2.5e7 / 93_600, n_periods=39, ages=range(0, 60))
    print(f"cells: {cells.height:,} rows, exposure {cells['exposure_years'].sum():,.0f} years, "
          f"claims {cells['claims'].sum():,}; model: {type(default_model()).__name__}")
    runs = [
        ("tree (defaults), age x sex x tier x channel", dict(method="tree")),
        ("cluster, age x sex x tier x channel", dict(method="cluster")),
        ("tree, tier x channel adjusted for age, sex", dict(method="tree", features=["city_tier", "channel"], adjust_for=["age", "sex"])),
        ("cluster, monotone age", dict(method="cluster", monotone_age=True)),
    ]
    print(f"1-minute load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for label, kw in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        seg = RiskSegmenter(**kw).fit(cells)
        dt = time.perf_counter() - t0
        print(f"{label:45s} {dt:6.2f} s  (cpu {time.process_time() - c0:5.2f} s)  K={seg.n_groups_}")
    t0 = time.perf_counter()
    seg.assign(cells)
    print(f"{'assign 93,600 cells':45s} {time.perf_counter() - t0:6.2f} s")
    from engine.synth.planted import planted_platform

    for design in ("age_channel", "bands_tier"):
        planted = planted_platform(10**7, seed=0, design=design)
        pc = planted.cells.drop("heldout_claims", "true_rate", "true_group")
        t0, c0 = time.perf_counter(), time.process_time()
        seg = RiskSegmenter().fit(pc)
        label = f"planted {design} 10^7 members ({pc.height:,} cells)"
        print(f"{label:45s} {time.perf_counter() - t0:6.2f} s  (cpu {time.process_time() - c0:5.2f} s)  K={seg.n_groups_}")
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(above 2 other work competes and wall times are inflated; cpu is the process's CPU time)")

if __name__ == "__main__":
    main()
