"""Quick regression check (~15-30 s): 10^6 members against the committed ``benchmarks/results.json``.

    python -m benchmarks.run --quick        # or: python -m benchmarks.quick

Times the fentan stages of ``QUICK_STAGES`` at ``[sizes] quick`` members and the small
projection workload, each in a fresh process as in the full run, and compares every wall
time ``t`` with the committed one ``t0`` of the same stage and size:

* ``warn`` when ``t > warn_ratio * t0 + floor_seconds`` (printed; CI stays green),
* ``fail`` when ``t > fail_ratio * t0 + floor_seconds`` (a gross slowdown; exit status 1).

The absolute ``floor_seconds`` slack keeps sub-second timings on a shared machine from
flapping. Without a committed results file the check is skipped (exit status 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def compare(measured: list[dict[str, Any]], committed: list[dict[str, Any]], warn_ratio: float,
            fail_ratio: float, floor: float) -> list[dict[str, Any]]:
    """Verdict per measured record: ``ok``, ``warn``, ``fail`` or ``no reference``.

    Notes
    -----
    With committed time ``t0`` and measured ``t``: fail if ``t > fail_ratio * t0 + floor``,
    else warn if ``t > warn_ratio * t0 + floor``, else ok. Records that did not complete
    now but did in the committed run are ``fail`` (a stage broke).
    """
    ref = {(r["engine"], r["stage"], r["members"]): r for r in committed if r.get("status") == "ok"}
    out = []
    for r in measured:
        key = (r["engine"], r["stage"], r["members"])
        c = ref.get(key)
        row = {"engine": r["engine"], "stage": r["stage"], "members": r["members"],
               "wall_s": r.get("wall_s"), "committed_s": c["wall_s"] if c else None}
        if c is None:
            row["verdict"] = "no reference"
        elif r.get("status") != "ok":
            row.update(verdict="fail", reason=f"{r.get('status')}: {r.get('reason')}")
        else:
            t, t0 = float(r["wall_s"]), float(c["wall_s"])
            row["ratio"] = t / t0 if t0 > 0 else float("inf")
            row["verdict"] = ("fail" if t > fail_ratio * t0 + floor else
                              "warn" if t > warn_ratio * t0 + floor else "ok")
        out.append(row)
    return out


def run_quick(config: Path, root: Path) -> list[dict[str, Any]]:
    """Measure the quick workload (fresh process per stage); returns the records."""
    from benchmarks.adapters.common import load_config
    from benchmarks.run import QUICK_STAGES, _say, ensure_data, measure

    cfg = load_config(config)
    timeout = float(cfg["peers"]["timeout_seconds"])
    recs = []
    for n in [int(x) for x in cfg["sizes"]["quick"]]:
        ensure_data(n, root, config, timeout)
        for st in QUICK_STAGES:
            recs.append(measure(f"fentan.{st}", n, root / str(n), config, timeout))
            _say(recs[-1])
    recs.append(measure("fentan.projection_small", 0, root / str(int(cfg["sizes"]["quick"][0])), config, timeout))
    _say(recs[-1])
    return recs


def quick(config: Path, root: Path, committed: Path) -> int:
    """Run the quick check and print the verdicts; 1 only on a gross slowdown or a broken stage."""
    from benchmarks.adapters.common import load_config

    if not committed.exists():
        print(f"quick benchmark skipped: no committed results at {committed}")
        return 0
    cfg = load_config(config)["quick"]
    doc = json.loads(committed.read_text())
    rows = compare(run_quick(config, root), doc["records"], float(cfg["warn_ratio"]), float(cfg["fail_ratio"]),
                   float(cfg["floor_seconds"]))
    print(f"{'stage':<28} {'members':>9} {'now s':>8} {'committed s':>12} {'ratio':>6}  verdict")
    for r in rows:
        now = f"{r['wall_s']:.3f}" if r["wall_s"] is not None else "-"
        ref = f"{r['committed_s']:.3f}" if r["committed_s"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"{r['engine'] + '.' + r['stage']:<28} {r['members']:>9,} {now:>8} {ref:>12} {ratio:>6}  "
              f"{r['verdict']}{' (' + r['reason'] + ')' if 'reason' in r else ''}")
    (root / "quick.json").write_text(json.dumps(rows, indent=1))
    return 1 if any(r["verdict"] == "fail" for r in rows) else 0


if __name__ == "__main__":
    from benchmarks.run import DATA, HERE, RESULTS

    raise SystemExit(quick(HERE / "config.toml", DATA, RESULTS))
