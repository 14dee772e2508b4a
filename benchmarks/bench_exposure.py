"""Benchmark: fentan exposure vs a naive polars member-month explode, wall time and peak RSS.

Each measurement runs in a fresh subprocess (peak RSS = ``ru_maxrss`` of that
process, data generation included; the wall time is the exposure call only).

    python benchmarks/bench_exposure.py                 # 10^5 and 10^6
    python benchmarks/bench_exposure.py --big           # also 10^7 (fentan; naive with --naive-big)
    python benchmarks/bench_exposure.py --sizes 1000000 --only fentan
    python benchmarks/bench_exposure.py --stream 10000000   # Parquet partitions, streamed file by file

Workload: monthly periods over 3 years (2019-01-01 .. 2021-12-31), keys
attained age x sex x city_tier, waiting period 90 days, 1 claim per 100 members.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time

START, END = dt.date(2019, 1, 1), dt.date(2021, 12, 31)
BY = ("age", "sex", "city_tier")


def generate(n: int, seed: int = 0, id_offset: int = 0):
    """Members and claims in the data contract (numpy generator, seeded)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    day0 = (dt.date(2017, 1, 1) - dt.date(1970, 1, 1)).days
    join = day0 + rng.integers(0, 5 * 365, n, dtype=np.int32)
    birth = join - rng.integers(18 * 365, 60 * 365, n, dtype=np.int32)
    stay = rng.exponential(700.0, n).astype(np.int32)
    exit_ = np.where(rng.random(n) < 0.5, join + stay, np.iinfo(np.int32).min)
    members = pl.DataFrame(
        {
            "member_id": pl.int_range(id_offset, id_offset + n, eager=True, dtype=pl.Int64).cast(pl.String),
            "birth_date": pl.Series(birth).cast(pl.Date),
            "sex": pl.Series(np.where(rng.random(n) < 0.5, "M", "F")),
            "join_date": pl.Series(join).cast(pl.Date),
            "exit_date": pl.Series(exit_).cast(pl.Date),
            "city_tier": pl.Series(rng.integers(1, 6, n, dtype=np.int64)),
        }
    ).with_columns(pl.when(pl.col("exit_date") < pl.col("join_date")).then(None).otherwise(pl.col("exit_date")).alias("exit_date"))
    k = n // 100
    who = rng.integers(0, n, k)
    claims = pl.DataFrame(
        {
            "claim_id": pl.int_range(id_offset, id_offset + k, eager=True, dtype=pl.Int64).cast(pl.String),
            "member_id": pl.Series(who + id_offset).cast(pl.String),
            "event_date": pl.Series(join[who] + rng.integers(0, 1500, k, dtype=np.int32)).cast(pl.Date),
            "amount": pl.Series(rng.choice([1e5, 3e5], k)),
        }
    )
    return members, claims


def naive(members, claims):
    """Explode every member into member-days-per-month rows, then group (the usual polars approach)."""
    import polars as pl

    w = 90
    first = (
        claims.join(members.select("member_id", "join_date", "exit_date"), on="member_id")
        .filter((pl.col("event_date") >= pl.col("join_date") + pl.duration(days=w))
                & (pl.col("exit_date").is_null() | (pl.col("event_date") < pl.col("exit_date"))))
        .group_by("member_id").agg(pl.col("event_date").min().alias("first"))
    )
    m = members.join(first, on="member_id", how="left").with_columns(
        lo=pl.max_horizontal(pl.col("join_date") + pl.duration(days=w), pl.lit(START)),
        hi=pl.min_horizontal(pl.col("exit_date") - pl.duration(days=1), pl.col("first"), pl.lit(END)),
    ).filter(pl.col("lo") <= pl.col("hi"))
    mm = m.with_columns(month=pl.date_ranges(pl.col("lo").dt.truncate("1mo"), pl.col("hi"), "1mo")).explode("month")
    mm = mm.with_columns(
        s=pl.max_horizontal("lo", "month"),
        e=pl.min_horizontal("hi", pl.col("month").dt.month_end()),
    )
    # age at the start of the month piece (naive: ignores the birthday inside the month)
    mm = mm.with_columns(
        age=(pl.col("s").dt.year() - pl.col("birth_date").dt.year()
             - ((pl.col("s").dt.month() * 32 + pl.col("s").dt.day())
                < (pl.col("birth_date").dt.month() * 32 + pl.col("birth_date").dt.day())).cast(pl.Int32)),
        days=(pl.col("e") - pl.col("s")).dt.total_days() + 1,
    )
    return mm.group_by("month", *BY).agg(pl.col("days").sum())


def child(engine: str, n: int) -> None:
    members, claims = generate(n)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if engine == "fentan":
        from engine.cells._exposure import exposure

        out = exposure(members, claims, start=START, end=END, period="month", waiting_days=90, by=BY)
        total = int(out["exposure_days"].sum())
    else:
        out = naive(members, claims)
        total = int(out["days"].sum())
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "n": n, "wall_s": wall, "peak_rss_mb": rss, "data_rss_mb": rss_data, "cells": out.height,
                      "exposure_days": total}))


def write_partitions(n: int, parts: int, root: str) -> None:
    """Write ``n`` members (and their claims) as ``parts`` Parquet files under ``root``."""
    import polars as pl

    os.makedirs(os.path.join(root, "members"), exist_ok=True)
    claims = []
    step = -(-n // parts)
    for i in range(parts):
        k = min(step, n - i * step)
        m, c = generate(k, seed=i, id_offset=i * step)
        m.write_parquet(os.path.join(root, "members", f"part-{i:04d}.parquet"))
        claims.append(c)
    pl.concat(claims).write_parquet(os.path.join(root, "claims.parquet"))


def child_stream(root: str) -> None:
    """Exposure over partition files, one lazy frame per file (streamed)."""
    import glob

    from engine.cells._exposure import exposure
    from engine.data.io import read_claims, read_members

    files = sorted(glob.glob(os.path.join(root, "members", "*.parquet")))
    t0 = time.perf_counter()
    out = exposure([read_members(f) for f in files], read_claims(os.path.join(root, "claims.parquet")),
                   start=START, end=END, period="month", waiting_days=90, by=BY)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": "fentan-files", "n": -1, "files": len(files), "wall_s": wall, "peak_rss_mb": rss,
                      "data_rss_mb": 0.0, "cells": out.height, "exposure_days": int(out["exposure_days"].sum())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--big", action="store_true", help="add 10^7 members")
    ap.add_argument("--naive-big", action="store_true", help="also run the naive baseline at 10^7 (slow, ~5 GB)")
    ap.add_argument("--only", choices=["fentan", "naive"], default=None)
    ap.add_argument("--stream", type=int, default=None, metavar="N",
                    help="write N members as Parquet partitions (10 per 10^7) in --dir, then time exposure over the files")
    ap.add_argument("--dir", default="/tmp/fentan_bench_exposure", help="where --stream writes its files")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.child[0] == "stream":
            child_stream(a.child[1])
        else:
            child(a.child[0], int(a.child[1]))
        return
    if a.stream:
        write_partitions(a.stream, max(1, a.stream // 1_000_000), a.dir)
        r = subprocess.run([sys.executable, __file__, "--child", "stream", a.dir], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            raise SystemExit(1)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{a.stream:,} members in {res['files']} files: {res['wall_s']:.2f} s (read + exposure), "
              f"peak RSS {res['peak_rss_mb']:.0f} MB, {res['cells']:,} cells")
        return
    sizes = a.sizes or [10**5, 10**6] + ([10**7] if a.big else [])
    rows = []
    for n in sizes:
        for eng in ("fentan", "naive"):
            if a.only and eng != a.only:
                continue
            if eng == "naive" and n >= 10**7 and not a.naive_big:
                continue
            r = subprocess.run([sys.executable, __file__, "--child", eng, str(n)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{'engine':<8} {'members':>12} {'wall s':>8} {'peak RSS MB':>12} {'(data only)':>12} {'cells':>8} {'ratio':>7}")
    for r in rows:
        base = next((x for x in rows if x["engine"] == "naive" and x["n"] == r["n"]), None)
        ratio = f"{base['wall_s'] / r['wall_s']:.1f}x" if base and r["engine"] == "fentan" else ""
        print(f"{r['engine']:<8} {r['n']:>12,} {r['wall_s']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['data_rss_mb']:>12.0f} {r['cells']:>8,} {ratio:>7}")


if __name__ == "__main__":
    main()
