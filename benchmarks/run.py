"""fentan benchmark suite: every stage, every size, against the usual alternatives, in one run.

    python -m benchmarks.run                         # 10^5, 10^6, 10^7 members, all stages and peers
    python -m benchmarks.run --sizes 1e5,1e6         # chosen sizes
    python -m benchmarks.run --with-1e8              # also 10^8 members: streamed exposure, and fentan run end to end
    python -m benchmarks.run --quick                 # ~1 minute regression check against results.json
    python -m benchmarks.run --no-peers --stages exposure,glm

Every measurement runs in a fresh child process (``python -m benchmarks.run --child``):
the wall time is measured around the work inside the child (inputs are loaded from the
cache first, untimed); the peak RSS is that child's ``ru_maxrss`` from ``os.wait4``
(so it includes the inputs held in memory). Data are generated once per size into
``benchmarks/.data/<n>`` (gitignored). Results: ``benchmarks/results.json``,
``benchmarks/RESULTS.md`` and ``benchmarks/scaling.png`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / ".data"
RESULTS = HERE / "results.json"
MARK = "BENCH_RESULT "

#: fentan stages timed at every size: (adapter module, function)
FENTAN = ["read_validate", "exposure", "exposure_duration", "exposure_inmem", "glm", "segmentation", "select", "run"]
#: peers: (module, function, fentan stage it is compared with)
PEERS = [
    ("polars_naive", "exposure", "exposure"),
    ("pandas_vec", "exposure", "exposure"),
    ("actxps_peer", "exposure", "exposure"),
    ("dask_local", "exposure", "exposure"),  # fentan itself on a local Dask cluster (2 workers) vs one process
    ("duckdb_peer", "exposure", "exposure"),  # one DuckDB SQL query (keys period, age, sex), checked against fentan's
    ("statsmodels_glm", "glm", "glm"),
    ("lifelines_cox", "cox", "select"),
]
#: peers that fit a random sample of at most config[peers][<key>] rows (their cost stops growing)
SAMPLED = {"statsmodels_glm": "statsmodels_max_rows", "lifelines_cox": "lifelines_sample"}
QUICK_STAGES = ["read_validate", "exposure", "glm", "select", "segmentation"]


def _child(target: str, n: int, data: str, config: str) -> None:
    from benchmarks.adapters.common import load_config

    mod, fn = target.split(".")
    out = getattr(importlib.import_module(f"benchmarks.adapters.{mod}"), fn)(n, Path(data), load_config(config))
    print(MARK + json.dumps(out, default=str), flush=True)


def measure(target: str, n: int, data: Path, config: Path, timeout: float) -> dict[str, Any]:
    """Run ``adapters.<target>`` in a fresh process; wall time from the child, peak RSS from wait4."""
    engine, stage = target.split(".")
    rec: dict[str, Any] = {"engine": engine, "stage": stage, "members": n, "load_1min": round(os.getloadavg()[0], 2)}
    out_f, err_f = data / f".{target}.out", data / f".{target}.err"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(out_f, "w") as fo, open(err_f, "w") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "benchmarks.run", "--child", target, "--n", str(n),
                              "--data", str(data), "--config", str(config)], stdout=fo, stderr=fe, cwd=REPO, env=env)
        status, ru = 0, None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                _, status, ru = os.wait4(p.pid, 0)
                rec.update(status="timeout", reason=f"killed after {timeout:.0f} s (timeout_seconds)")
                break
            time.sleep(0.02)
        p.returncode = 0  # reaped by wait4
    rec["process_s"] = round(time.perf_counter() - t0, 3)
    rec["peak_rss_mb"] = round(ru.ru_maxrss / 1024, 1)
    rec["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
    if "status" in rec:
        return rec
    line = next((x for x in reversed(out_f.read_text().splitlines()) if x.startswith(MARK)), None)
    if os.waitstatus_to_exitcode(status) != 0 or line is None:
        err = [x for x in err_f.read_text().strip().splitlines() if x.strip()]
        rec.update(status="error", reason=(err[-1] if err else f"exit status {status}")[:300])
        return rec
    facts = json.loads(line[len(MARK):])
    rec["wall_s"] = round(float(facts.pop("wall_s")), 4)
    rec.update(status="ok", **facts)
    return rec


def _say(rec: dict[str, Any]) -> None:
    if rec["status"] == "ok":
        extra = f"  (full-size estimate {rec['est_full_s']:.1f} s)" if "est_full_s" in rec else ""
        print(f"  {rec['engine']:>16}.{rec['stage']:<18} n={rec['members']:>11,}  {rec['wall_s']:8.3f} s  "
              f"{rec['peak_rss_mb']:8.0f} MB{extra}", flush=True)
    else:
        print(f"  {rec['engine']:>16}.{rec['stage']:<18} n={rec['members']:>11,}  {rec['status']}: {rec.get('reason')}",
              flush=True)


def _skip_reason(done: list[dict[str, Any]], engine: str, stage: str, n: int, peers: dict[str, Any]) -> str | None:
    """Budget rule: extrapolate linearly from the largest smaller size this peer ran at."""
    prev = [r for r in done if r["engine"] == engine and r["stage"] == stage and r["members"] < n]
    if not prev or n <= peers.get("always_up_to", 0):
        return None
    last = max(prev, key=lambda r: r["members"])
    if last["status"] != "ok":
        return f"{last['status']} at {last['members']:,} members"
    cap = peers.get(SAMPLED[engine]) if engine in SAMPLED else None
    f = (min(n, cap) / min(last["members"], cap)) if cap else n / last["members"]  # sampled peers fit <= cap rows
    est_t, est_m = last["wall_s"] * f, last["peak_rss_mb"] * f / 1024
    if est_t > peers["budget_seconds"] or est_m > peers["budget_memory_gb"]:
        return (f"budget: estimated {est_t:.0f} s and {est_m:.1f} GB from {last['members']:,} members "
                f"(budget {peers['budget_seconds']} s, {peers['budget_memory_gb']} GB)")
    return None


def machine() -> dict[str, Any]:
    """Hardware, load and library versions of this run."""
    import platform

    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        cpu = [x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name")]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    try:
        info["free_h"] = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    except OSError:
        info["free_h"] = ""
    for lib in ("polars", "numpy", "pandas", "statsmodels", "lifelines", "actxps", "scipy", "sklearn"):
        try:
            from importlib.metadata import version

            info[lib] = version("scikit-learn" if lib == "sklearn" else lib)
        except Exception:  # noqa: BLE001 - optional library
            info[lib] = None
    return info


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ensure_data(n: int, root: Path, config: Path, timeout: float, partitioned: bool = False) -> dict[str, Any] | None:
    """Generate the platform of ``n`` members into the cache unless it is already there."""
    d = root / (f"{n}-parts" if partitioned else str(n))
    if (d / "READY").exists():
        return None
    d.mkdir(parents=True, exist_ok=True)
    rec = measure("fentan.generate_partitioned" if partitioned else "fentan.generate", n, d, config, timeout * 4)
    _say(rec)
    if rec["status"] != "ok":
        raise SystemExit(f"data generation failed for {n:,} members: {rec.get('reason')}")
    return rec


def suite(sizes: list[int], config: Path, root: Path, peers: bool, stages: list[str] | None,
          with_1e8: bool, cells_scaling: bool = True, only_peers: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement; returns the results document."""
    from benchmarks.adapters.common import load_config

    cfg = load_config(config)
    pb = cfg["peers"]
    timeout = float(pb["timeout_seconds"])
    records: list[dict[str, Any]] = []
    gen: list[dict[str, Any]] = []
    loads = [_load()]
    for n in sorted(sizes):
        print(f"members = {n:,} (load {os.getloadavg()[0]:.2f})", flush=True)
        g = ensure_data(n, root, config, timeout)
        if g:
            gen.append(g)
        d = root / str(n)
        for st in FENTAN:
            if stages is None or st in stages:
                records.append(measure(f"fentan.{st}", n, d, config, timeout))
                _say(records[-1])
        if peers:
            for mod, fn, _ in PEERS:
                if only_peers is not None and mod not in only_peers:
                    continue
                why = _skip_reason(records, mod, fn, n, pb)
                if why:
                    records.append({"engine": mod, "stage": fn, "members": n, "status": "skipped", "reason": why})
                else:
                    records.append(measure(f"{mod}.{fn}", n, d, config, timeout))
                _say(records[-1])
        loads.append(_load())
    d0 = root / str(max(sizes))
    for st in ("projection", "projection_small"):
        if stages is None or st in stages:
            records.append(measure(f"fentan.{st}", 0, d0, config, timeout))
            _say(records[-1])
    if cells_scaling and (stages is None or "cells_scaling" in stages):
        records.append(measure("fentan.cells_scaling", max(sizes), d0, config, timeout))
        _say(records[-1])
    if with_1e8:
        n = 10**8
        g = ensure_data(n, root, config, timeout, partitioned=True)
        if g:
            gen.append(g)
        records.append(measure("fentan.exposure_stream", n, root / f"{n}-parts", config, timeout * 3))
        _say(records[-1])
    loads.append(_load())
    return {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
            "load_average": loads, "sizes": sorted(sizes), "generation": gen, "records": records}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the records of ``new`` replacing those of the same (engine, stage, members)."""
    key = lambda r: (r["engine"], r["stage"], r["members"])  # noqa: E731
    fresh = {key(r) for r in new["records"]}
    recs = [r for r in old["records"] if key(r) not in fresh] + new["records"]
    return {**old, "records": recs, "sizes": sorted(set(old["sizes"]) | set(new["sizes"])),
            "merged_load_average": old.get("merged_load_average", []) + [new["load_average"]],
            "generation": old.get("generation", []) + new.get("generation", []),
            "command": f"{old.get('command')}; then {new.get('command')} --merge".replace(" --merge --merge", " --merge"),
            "merged": old.get("merged", []) + [new["created"]]}


def _sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_sizes, default=None, help="comma-separated member counts (default: config)")
    ap.add_argument("--with-1e8", action="store_true",
                    help="also 10^8 members: exposure over partitioned files and fentan run end to end (never in CI)")
    ap.add_argument("--quick", action="store_true", help="~1 minute regression check against results.json")
    ap.add_argument("--no-peers", action="store_true", help="time fentan only")
    ap.add_argument("--stages", default=None, help="comma-separated fentan stages to time (default: all)")
    ap.add_argument("--peers", default=None, help="comma-separated peers to time, e.g. dask_local (default: all)")
    ap.add_argument("--config", type=Path, default=HERE / "config.toml")
    ap.add_argument("--data-dir", type=Path, default=DATA, help="cache of generated platforms")
    ap.add_argument("--out", type=Path, default=None, help="results file (default: benchmarks/results.json)")
    ap.add_argument("--no-report", action="store_true", help="do not rewrite RESULTS.md and scaling.png")
    ap.add_argument("--merge", action="store_true",
                    help="replace only the re-measured records (same engine, stage, members) in the results file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(a.child, a.n, a.data, str(a.config))
        return 0
    if a.quick:
        from benchmarks.quick import quick

        return quick(config=a.config, root=a.data_dir, committed=RESULTS if a.out is None else a.out)
    from benchmarks.adapters.common import load_config

    cfg = load_config(a.config)
    sizes = a.sizes or [int(x) for x in cfg["sizes"]["default"]]
    stages = a.stages.split(",") if a.stages else None
    doc = suite(sizes, a.config, a.data_dir, not a.no_peers, stages, a.with_1e8,
                only_peers=a.peers.split(",") if a.peers else None)
    doc["command"] = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    from engine.data.io import write_json

    out = a.out or RESULTS
    old = json.loads(out.read_text()) if out.exists() else {}
    if a.merge and old:
        doc = merge(old, doc)
    for k in ("cli_runs", "cli_exposure"):  # whole-process records of the other commands: kept
        if k in old:
            doc.setdefault(k, old[k])
    if a.with_1e8:  # fentan run end to end at 10^8 (100 files), as benchmarks.bench_cli_run measures it
        from benchmarks.bench_cli_run import add_run, code_label, compile_once, one_run

        compile_once()
        rec = one_run(10**8, 100, a.data_dir / "cli-run", code_label(), True)
        print(f"{'fentan run (whole process)':>30} n={10**8:>12,} {rec['wall_s']:>9.3f} s {rec['peak_rss_mb']:>9.0f} MB")
        doc = add_run(doc, rec)
    write_json(doc, out)
    print(f"wrote {out}")
    if not a.no_report:
        from benchmarks.report import write_report

        for p in write_report(doc, cfg, HERE):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
