"""Benchmark: ``fentan run`` end to end as a user runs it, whole processes, the demo configuration.

    python -m benchmarks.bench_cli_run --members 10000000 --root /tmp/fentan-bench-run
    python -m benchmarks.bench_cli_run --members 100000000 --files 100 --root /tmp/fentan-bench-run   # opt-in, ~10 GB

The platform is written once under ``root/<n>-<files>``: for up to 10^7 members,
``fentan synth --n-members N --seed 1 --dirty 0.01`` (1% dirty rows of every kind, which validation
sets aside) cut into ``--files`` Parquet files; above, ``--files`` independent clean synthetic
platforms of N / files members each (seeds 1, 2, ...; ids prefixed by the file number; the
generator of ``python -m benchmarks.run --with-1e8``), since one platform of 10^8 rows does not
fit in memory at once. The run is ``fentan run CONFIG --out OUT --force --quiet`` in a fresh process
under ``/usr/bin/time -v`` (wall, CPU = user + system of every thread, peak RSS), with CONFIG =
``configs/demo.toml`` whose ``[data]`` points at the platform (plan files and every other key as
shipped). Stage wall seconds come from the run's ``run.json``. Each record is merged into
``benchmarks/results.json`` under ``cli_runs`` (rendered in RESULTS.md by :mod:`benchmarks.report`),
replacing an earlier record of the same code, members and files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.bench_cli_exposure import compile_once, timed

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SYNTH_MAX = 10**7  # above: independent partitions (benchmarks.adapters.fentan.generate_partitioned)


def make_data(n: int, files: int, root: Path) -> tuple[Path, str]:
    """(directory with members/ and claims.parquet, description of the data), written once."""
    d = root / f"{n}-{files}"
    desc = (f"fentan synth --n-members {n} --seed 1 --dirty 0.01, cut into {files} file{'s' * (files != 1)}" if n <= SYNTH_MAX else
            f"{files} independent clean synthetic platforms of {n // files:,} members (seeds 1..{files})")
    if (d / "READY").exists():
        return d, desc
    (d / "members").mkdir(parents=True, exist_ok=True)
    if n <= SYNTH_MAX:
        import numpy as np
        import polars as pl

        subprocess.run([sys.executable, "-m", "engine", "synth", "--n-members", str(n), "--seed", "1", "--dirty",
                        "0.01", "--out", str(d / "raw"), "--quiet", "--force"], check=True)
        m = pl.read_parquet(d / "raw" / "members.parquet")
        cuts = np.linspace(0, m.height, files + 1).astype(int)
        for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
            m.slice(int(a), int(b - a)).write_parquet(d / "members" / f"part-{i:03d}.parquet")
        (d / "raw" / "claims.parquet").rename(d / "claims.parquet")
        (d / "raw" / "members.parquet").unlink()
    else:
        from benchmarks.adapters.common import load_config
        from benchmarks.adapters.fentan import generate_partitioned

        generate_partitioned(n, d, load_config(), parts=files)
    (d / "READY").write_text(f"{n}\n")
    return d, desc


def demo_config(data: Path, where: Path, stream: bool = True) -> Path:
    """``configs/demo.toml`` with ``[data]`` pointing at ``data`` (plan files resolved to the repository)."""
    text = (REPO / "configs" / "demo.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^members = ".*"$', f'members = "{data / "members"}"', text)
    text = re.sub(r'(?m)^claims = ".*"$', f'claims = "{data / "claims.parquet"}"', text)
    text = re.sub(r'(?m)^pooled = "(.*)"$', lambda m: f'pooled = "{REPO / "configs" / m.group(1)}"', text)
    text = re.sub(r'(?m)^files = \["(.*)"\]$', lambda m: f'files = ["{REPO / "configs" / m.group(1)}"]', text)
    if not stream:
        text += "\n[run]\nstream = false\n"
    where.mkdir(parents=True, exist_ok=True)
    path = where / ("run.toml" if stream else "run-inmemory.toml")
    path.write_text(text, encoding="utf-8")
    return path


def one_run(n: int, files: int, root: Path, code: str, stream: bool) -> dict[str, Any]:
    d, desc = make_data(n, files, root)
    cfg = demo_config(d, root / "configs", stream)
    out = root / "out" / f"{n}-{files}"
    load = os.getloadavg()[0]
    rec = timed([sys.executable, "-m", "engine", "run", str(cfg), "--out", str(out), "--force", "--quiet"])
    run = json.loads((out / "run.json").read_text())
    return {"code": code, "members": n, "files": files,
            "config": f"configs/demo.toml{'' if stream else ' + [run] stream = false'} (data: {desc})",
            "wall_s": rec["seconds"], "cpu_s": rec["cpu_seconds"], "peak_rss_mb": rec["peak_rss_mb"],
            "load_1min": round(max(load, os.getloadavg()[0]), 2),
            "stages": {k: {"wall_s": v} for k, v in run["seconds"].items()},
            "command": "/usr/bin/time -v fentan run CONFIG --out OUT --force --quiet",
            "measured": dt.date.today().isoformat()}


def code_label() -> str:
    """The commit measured (``git describe --always``), with ``-dirty`` when the code a run executes (the
    engine, the configurations, pyproject.toml) differs from it; results files written by an earlier
    benchmark of the same session do not count."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "engine", "configs", "pyproject.toml")
    return git("describe", "--always") + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    from engine.data.io import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10**7)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--root", type=Path, default=Path("/tmp/fentan-bench-run"))
    ap.add_argument("--code", default=None, help="label of the code measured (default: git describe)")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the one with the least CPU is kept")
    ap.add_argument("--in-memory", action="store_true", help="[run] stream = false")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args(argv)
    code = a.code or code_label()
    compile_once()
    recs = [one_run(a.members, a.files, a.root, code, not a.in_memory) for _ in range(a.repeat)]
    rec = min(recs, key=lambda r: r["cpu_s"])
    rec["runs"] = [{k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "load_1min")} for r in recs]
    print(json.dumps(rec, indent=1))
    if not a.no_save:
        doc = json.loads(a.out.read_text()) if a.out.exists() else {}
        write_json(add_run(doc, rec), a.out)
    return 0


def add_run(doc: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a results document) with ``rec`` appended to ``cli_runs``, replacing a record of the same code,
    members, files and configuration."""
    same = lambda r: (r["code"], r["members"], r.get("files"), r["config"]) == (  # noqa: E731
        rec["code"], rec["members"], rec["files"], rec["config"])
    return {**doc, "cli_runs": [r for r in doc.get("cli_runs", []) if not same(r)] + [rec]}


if __name__ == "__main__":
    raise SystemExit(main())
