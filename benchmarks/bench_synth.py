"""Benchmark of ``engine.synth.generate``, writing and validation (target: 10^7 members well under a minute).

Run: ``python benchmarks/bench_synth.py [--members 10000000] [--seed 1] [--dirty 0.01] [--out DIR]``.
Prints wall time per step and peak RSS (resource.getrusage).
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dirty", type=float, default=0.01)
    ap.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = ap.parse_args()
    from engine.synth import generate
    from engine.data.validation import validate

    t0 = time.perf_counter()
    plat = generate(args.members, args.seed, dirty=args.dirty)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        plat.write(args.out or tmp)
        t2 = time.perf_counter()
        res = validate(plat.members, plat.claims)
        res.members.collect()
        t3 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"members rows {plat.members.height:,}, claims rows {plat.claims.height:,}")
    print(f"generate {t1 - t0:.1f} s, write {t2 - t1:.1f} s, validate {t3 - t2:.1f} s; peak RSS {rss_mb:,.0f} MB")
    print(f"row account balances: {all(a['read'] == a['used'] + sum(a['set_aside'].values()) for a in res.account.values())}")


if __name__ == "__main__":
    main()
