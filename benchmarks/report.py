"""RESULTS.md and scaling.png from a results document written by :mod:`benchmarks.run`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from benchmarks.run import FENTAN, PEERS

#: (label, stage, members, seconds limit, MB limit)
TARGETS = [
    ("exposure, 10^6 members", "exposure", 10**6, 1.0, None),
    ("exposure, 10^7 members", "exposure", 10**7, 2.0, 1024.0),
    ("exposure, 10^8 members streamed", "exposure_stream", 10**8, None, 8192.0),
    ("fentan run end to end, 10^7", "run", 10**7, 30.0, None),
    ("projection 10,000 x 120 x 50", "projection", 0, 10.0, None),
    ("segmentation of cells from 10^7 members", "segmentation", 10**7, 5.0, None),
]

LIMITS = """\
* **naive polars** (`adapters/polars_naive.py`): explodes every member into one row per month
  at risk (`date_ranges` + `explode`), then groups. Attained age is taken at the start of each
  month piece (a birthday inside the month is not split), so its cells differ from fentan's by
  age; total at-risk days are identical (checked in the table: `exposure_days`).
* **vectorised pandas** (`adapters/pandas_vec.py`): the same member-month expansion with
  `np.repeat` (no Python loop) and a pandas `groupby`.
* **actxps** (`adapters/actxps_peer.py`): `ExposedDF.expose_cm` (calendar-month exposure
  records) then a group-by. actxps has **no attained age** (we join age at the start of each
  month record ourselves), **no waiting period** (we shift the issue date to join + 90 days),
  and no termination at the first *eligible* claim (we prepare status/term date by hand).
  Exposure is a fraction of a month; converted back to days (fraction x days in the month) the
  total differs from fentan's by rounding only.
* **Dask local** (`adapters/dask_local.py`): fentan itself, the clean members cut into 8 Parquet
  files, on a local Dask cluster of 2 worker processes with 1 thread each (`--engine dask
  --workers 2`) against the same call without an executor in the same process; the cells must be
  identical. `overhead_ratio` = Dask time / one-process time; the cluster start is not timed.
* **DuckDB** (`adapters/duckdb_peer.py`): one SQL query over the clean members' Parquet file (events
  at interval starts, ends and birthdays summed per month by a window sum: the `union` query of
  `python -m benchmarks.bench_cli_exposure`, 2 threads, memory limit 2 GB), keys period x age x sex
  (the query's; fentan's stage also splits by tier and channel). Its cells are checked identical to
  fentan's summed to those keys (day counts and claims exact, amounts to 1e-12). No validation.
* **statsmodels GLM** (`adapters/statsmodels_glm.py`): Poisson GLM on one row per member
  (log exposure offset), `event ~ C(sex) + C(city_tier) + C(channel) + bs(age, df=6)`; age is
  the age at the start of the member's interval (one age per row). Above
  `statsmodels_max_rows` it fits a random sample and `est_full_s` extrapolates linearly.
* **lifelines CoxPH** (`adapters/lifelines_cox.py`): time since joining in months, left
  truncation at the window start (`entry_col`), event = first eligible claim, on a random
  sample of `lifelines_sample` members; compared with fentan's select factors (duration-band
  GLM on cells of *all* members). `est_full_s` extrapolates the sample time linearly.
"""


def _ok(recs: list[dict[str, Any]], engine: str, stage: str) -> dict[int, dict[str, Any]]:
    return {r["members"]: r for r in recs if r["engine"] == engine and r["stage"] == stage and r["status"] == "ok"}


def slope(points: dict[int, float]) -> float | None:
    """Least-squares slope of log(time) on log(members) (1 = linear)."""
    xs = [(math.log(n), math.log(t)) for n, t in points.items() if n > 0 and t > 0]
    if len(xs) < 2:
        return None
    mx = sum(x for x, _ in xs) / len(xs)
    my = sum(y for _, y in xs) / len(xs)
    sxx = sum((x - mx) ** 2 for x, _ in xs)
    return sum((x - mx) * (y - my) for x, y in xs) / sxx if sxx else None


#: a record measured at a 1-minute load above this (2 cores; the suite itself reaches about 2) is marked as loaded
LOADED = 2.5


def _fmt_s(r: dict[str, Any] | None) -> str:
    """``wall s / peak MB``, marked when other work loaded the machine during the measurement."""
    if r is None:
        return "-"
    if r["status"] != "ok":
        return r["status"]
    out = f"{r['wall_s']:.2f} s / {r['peak_rss_mb']:,.0f} MB"
    if r.get("load_1min", 0.0) > LOADED:
        cpu = f", CPU {r['work_cpu_s']:.2f} s" if "work_cpu_s" in r else ""
        out += f" (machine loaded by other work: 1-min load {r['load_1min']:.1f}{cpu})"
    return out


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and met / MISSED / not measured."""
    recs = doc["records"]
    out = []
    for label, stage, n, t_lim, m_lim in TARGETS:
        r = _ok(recs, "fentan", stage).get(n)
        if r is None:
            out.append({"target": label, "limit": _limit(t_lim, m_lim), "measured": "not measured", "verdict": "not measured"})
            continue
        miss = (t_lim is not None and r["wall_s"] > t_lim) or (m_lim is not None and r["peak_rss_mb"] > m_lim)
        meas = _fmt_s(r)
        if m_lim is not None and "input_rss_mb" in r:
            if r.get("input") == "parquet_lazy":
                meas += (f" (peak of the whole process, Parquet files read inside the timed work; "
                         f"{r['input_rss_mb']:,.0f} MB before exposure started)")
            else:
                meas += (f" (peak of the whole process; the member and claim frames alone held "
                         f"{r['input_rss_mb']:,.0f} MB before exposure started)")
        verdict = "MISSED" if miss else "met"
        if miss and r.get("load_1min", 0.0) > LOADED and "work_cpu_s" in r and t_lim is not None \
                and r["work_cpu_s"] <= t_lim and (m_lim is None or r["peak_rss_mb"] <= m_lim):
            verdict = f"MISSED in wall time on the loaded machine (CPU time {r['work_cpu_s']:.2f} s is within the limit)"
        out.append({"target": label, "limit": _limit(t_lim, m_lim), "measured": meas, "verdict": verdict})
    return out


def _limit(t: float | None, m: float | None) -> str:
    return " and ".join(x for x in ((f"<= {t:g} s" if t else ""), (f"<= {m / 1024:g} GB" if m else "")) if x)


def _load_note(loads: list[list[float]]) -> str:
    top = max((x[0] for x in loads), default=0.0)
    before = loads[0][0] if loads else 0.0
    if before < 0.5 and top <= 2.5:
        return (f"The machine was idle before the run (1-minute load {before:.2f}); during the run the load "
                f"reached {top:.2f} from the suite's own child process (polars and fentan use up to two "
                "threads, plus a reading thread), consistent with no other job competing for the 2 cores.\n")
    if top > 1.5:
        return (f"**Other processes were running**: the 1-minute load reached {top:.2f} on {os.cpu_count()} cores while the "
                "suite itself keeps at most one child busy (up to 2 threads), so the machine was oversubscribed "
                "and wall times are inflated relative to an idle machine (multi-threaded polars stages the most). "
                "The numbers are reported as measured.\n")
    return f"The machine was quiet (1-minute load at most {top:.2f}).\n"


def _merged_note(doc: dict[str, Any]) -> list[str]:
    """Which records were re-measured later (``--merge``), with the loads of those runs."""
    if not doc.get("merged"):
        return []
    stages = sorted({r["stage"] for r in doc["records"] if "load_1min" in r})
    loads = doc.get("merged_load_average", [])
    return [f"Re-measured later with `--merge` on {', '.join(doc['merged'])}: {', '.join(stages) or 'some records'}"
            + (f" (load averages of those runs: {loads})" if loads else "")
            + f". Each such record carries the 1-minute load at its start; above {LOADED} it is marked "
              "\"machine loaded by other work\" with the CPU time of the work where recorded, since its wall "
              "time is then inflated.", ""]


def markdown(doc: dict[str, Any], cfg: dict[str, Any]) -> str:
    recs = doc["records"]
    sizes = doc["sizes"]
    mc = doc["machine"]
    la = doc["load_average"]
    L = ["# fentan benchmark results", "",
         f"Produced by `{doc.get('command', 'python -m benchmarks.run')}` on {doc['created']} "
         "(report rendered from `benchmarks/results.json` by `python -m benchmarks.report`).", "",
         "## Machine", "",
         f"* CPU: {mc.get('cpu')}, `nproc` = {mc.get('nproc')}; {mc.get('platform')}",
         "* `free -h` at the run:", "", "```", mc.get("free_h", ""), "```", "",
         "* Python " + mc.get("python", "?") + ", " + ", ".join(
             f"{k} {mc.get(k)}" for k in ("polars", "numpy", "pandas", "scipy", "sklearn", "statsmodels", "lifelines",
                                           "actxps")),
         f"* Load average (1, 5, 15 min) before the run, after each size and at the end: {la}. "
         "The machine is shared with other engineers running tests.", "",
         _load_note(la), *_merged_note(doc),
         "Each number is one measurement in a fresh process: wall time of the work only (inputs "
         "loaded from the cache first), peak RSS of the whole process (inputs included). Exception: "
         "`exposure` and `exposure_duration` run the user path `engine.exposure(engine.read_members(file), "
         "engine.read_claims(file), ...)`, so reading the clean Parquet files is inside their time and "
         "their RSS is what fentan needs; `exposure_inmem` is the same job on frames already in memory "
         "(loaded untimed, as inside `fentan run`). Peers read their inputs untimed, so the exposure "
         "ratios favour the peers.", "",
         "## Targets", "", "| target | limit | measured | verdict |", "|---|---|---|---|"]
    for t in targets(doc):
        L.append(f"| {t['target']} | {t['limit']} | {t['measured']} | {t['verdict']} |")
    L += ["", "## fentan stages (wall time / peak RSS)", "",
          "| stage | " + " | ".join(f"{n:,}" for n in sizes) + " | slope (all sizes) | slope (top two) |",
          "|---|" + "---|" * (len(sizes) + 2)]
    for st in FENTAN:
        rs = {r["members"]: r for r in recs if r["engine"] == "fentan" and r["stage"] == st}
        ok = {n: r["wall_s"] for n, r in rs.items() if r["status"] == "ok"}
        s_all = slope(ok)
        top = dict(sorted(ok.items())[-2:])
        s_top = slope(top) if len(top) == 2 else None
        cols = " | ".join(_fmt_s(rs.get(n)) for n in sizes)
        fa = f"{s_all:.2f}" if s_all is not None else "-"
        ft = f"{s_top:.2f}" if s_top is not None else "-"
        L.append(f"| {st} | {cols} | {fa} | {ft} |")
    for st in ("projection", "projection_small", "exposure_stream"):
        for r in recs:
            if r["engine"] == "fentan" and r["stage"] == st:
                extra = (f" ({r.get('scenarios')} scenarios x {r.get('horizon')} periods x {r.get('groups')} groups, "
                         f"CPU {r.get('cpu_s')} s)") if st.startswith("projection") else f" ({r['members']:,} members)"
                L.append(f"* {st}: {_fmt_s(r)}{extra}")
    runs = _ok(recs, "fentan", "run")
    if runs:
        order = ["validate", "exposure", "incidence", "segmentation", "history", "plans", "projection", "report"]
        names = [k for k in order if k in runs[max(runs)]["stage_s"]]
        names += [k for k in runs[max(runs)]["stage_s"] if k not in names]
        L += ["", "Where the time of `fentan run` goes (seconds per pipeline stage, from `RunResult.timings`):", "",
              "| members | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for n in sorted(runs):
            st = runs[n]["stage_s"]
            L.append(f"| {n:,} | " + " | ".join(f"{st[k]:.2f}" if k in st else "-" for k in names) + " |")
    L += _cli_runs(doc.get("cli_runs") or [])
    errs = [r for r in recs if r["engine"] == "fentan" and r["status"] != "ok"]
    if errs:
        L += ["", "Stages that did not complete:", ""]
        L += [f"* {r['stage']} at {r['members']:,}: {r['status']}: {r.get('reason')}" for r in errs]
    L += ["", "## Peers (same data, same run)", "",
          "Ratio = peer time / fentan time for the same job at the same size (> 1: fentan is faster).", "",
          "| peer | vs fentan stage | members | peer | fentan | ratio | notes |", "|---|---|---|---|---|---|---|"]
    for mod, fn, fst in PEERS:
        fen = _ok(recs, "fentan", fst)
        for r in [r for r in recs if r["engine"] == mod and r["stage"] == fn]:
            f = fen.get(r["members"])
            note, ratio = "", "-"
            if r["status"] == "ok" and f:
                ratio = f"{r['wall_s'] / f['wall_s']:.1f}x"
                if "est_full_s" in r:
                    ratio = f"{r['wall_s'] / f['wall_s']:.1f}x on a {r['rows']:,}-row sample; {r['est_full_s'] / f['wall_s']:.0f}x est. full"
                if "exposure_days" in r and "exposure_days" in f:
                    rel = r["exposure_days"] / f["exposure_days"] - 1
                    note = f"total exposure days {'identical' if rel == 0 else f'{rel:+.4%}'}; cells {r.get('cells'):,} vs {f.get('cells'):,}"
                elif "rows" in r:
                    note = f"{r['rows']:,} of {r['rows_full']:,} member rows"
            elif r["status"] != "ok":
                note = f"{r['status']}: {r.get('reason')}"
            L.append(f"| {mod} | {fst} | {r['members']:,} | {_fmt_s(r)} | {_fmt_s(f)} | {ratio} | {note} |")
    L += ["", LIMITS]
    L += ["## How cost grows", "",
          "Slopes above are least-squares fits of log(wall time) on log(members): 1.0 is linear. At 10^5 "
          "members the fixed costs (thread start-up, the study calendar, model set-up) dominate, so the "
          "slope over the two largest sizes is the better estimate of the marginal cost.", ""]
    cs = [r for r in recs if r["stage"] == "cells_scaling" and r["status"] == "ok"]
    if cs:
        pts = cs[0]["points"]
        L += ["Model fits run on cells, not members: beyond ~10^6 members the number of cells stops "
              "growing (it is bounded by periods x ages x sexes x tiers x channels), so the GLM, select "
              "factors and segmentation costs are flat in members. Their cost against the number of cells "
              f"(same {cs[0]['members']:,}-member data re-aggregated to fewer periods):", "",
              "| periods | cells | GLM fit s | segmentation s |", "|---|---|---|---|"]
        for p in pts:
            seg = f"{p['segmentation_s']:.2f}" if p["segmentation_s"] is not None else "error"
            L.append(f"| {p['periods']} | {p['cells']:,} | {p['glm_s']:.3f} | {seg} |")
        g = slope({p["cells"]: p["glm_s"] for p in pts})
        sg = slope({p["cells"]: p["segmentation_s"] for p in pts if p["segmentation_s"]})
        L += ["", f"Slope of log time on log cells: GLM {g:.2f}" + (f", segmentation {sg:.2f}" if sg else "") + "."]
        if cs[0].get("load_1min", 0.0) > LOADED:
            L += ["", f"These cell-scaling times were measured while other work loaded the machine (1-minute load "
                      f"{cs[0]['load_1min']:.1f} on 2 cores): they are inflated."]
    L += _growth(doc.get("cli_runs") or [])
    if "cli_exposure" in doc:  # python -m benchmarks.bench_cli_exposure
        from benchmarks.bench_cli_exposure import markdown as cli_exposure_markdown

        L += cli_exposure_markdown(doc["cli_exposure"])
    L += ["", "![time vs members](scaling.png)", ""]
    return "\n".join(L) + "\n"


def _files(k: int) -> str:
    return f"{k} file" + ("" if k == 1 else "s")


def _latest_runs(runs: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """The latest streamed ``fentan run`` record of each (members, files) of :mod:`benchmarks.bench_cli_run`
    (records are appended in the order they were measured)."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for r in runs:
        if r.get("files") and "stream = false" not in r["config"]:
            out[(r["members"], r["files"])] = r
    return out


def _growth(runs: list[dict[str, Any]]) -> list[str]:
    """How a whole ``fentan run`` grows with members and with files: the latest record of each members and
    files (:func:`_latest_runs`), with the ratios between them."""
    best = _latest_runs(runs)
    if len(best) < 2:
        return []
    L = ["", "`fentan run` (the demo configuration, whole process) by members and by files: the latest "
         "record of each, with the code it measured:", "",
         "| members | files | members per file | code | wall s | CPU s | CPU µs per member | peak RSS |",
         "|---|---|---|---|---|---|---|---|"]
    for (n, f), r in sorted(best.items()):
        L.append(f"| {n:,} | {f} | {n // f:,} | {r['code']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                 f"{1e6 * r['cpu_s'] / n:.2f} | {r['peak_rss_mb']:,.0f} MB |")
    said = []
    for (n, f), r in sorted(best.items()):
        for (n2, f2), r2 in sorted(best.items()):
            if (n2 == 10 * n and f2 in (f, 10 * f)) or (n2 == n and f2 == 10 * f):
                said.append(f"from {n:,} members in {_files(f)} to {n2:,} in {_files(f2)}: wall x {r2['wall_s'] / r['wall_s']:.1f}, "
                            f"CPU x {r2['cpu_s'] / r['cpu_s']:.1f}, peak RSS x {r2['peak_rss_mb'] / r['peak_rss_mb']:.1f}")
    if said:
        L += ["", "Ratios: " + "; ".join(said) + "."]
    return L


def _cli_runs(runs: list[dict[str, Any]]) -> list[str]:
    """Whole-process ``fentan run`` measurements (``/usr/bin/time -v``), before/after a change, with CPU per stage."""
    if not runs:
        return []
    L = ["", "`fentan run` as a user runs it (whole process, `/usr/bin/time -v`; wall and CPU seconds, "
         "CPU = user + system of all threads; peak RSS of the process; `python -m benchmarks.bench_cli_run`):", ""]
    for note in dict.fromkeys(r.get("note", "") for r in runs):
        if note:
            L.append(f"* {note}")
    L += ["", "| code | members | configuration | wall s | CPU s | peak RSS | load (1 min) | seconds per stage |",
          "|---|---|---|---|---|---|---|---|"]
    for r in runs:  # CPU seconds per stage in the older records, wall seconds (run.json) in those of bench_cli_run
        st = ", ".join(f"{k} {v['cpu_s']:.1f} CPU" if "cpu_s" in v else f"{k} {v['wall_s']:.1f}"
                       for k, v in r.get("stages", {}).items())
        L.append(f"| {r['code']} | {r['members']:,} | {r['config']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                 f"{r['peak_rss_mb']:,.0f} MB | {r.get('load_1min', '-')} | {st} |")
    return L


def _whole_process_series(doc: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Whole-process wall times against members: ``fentan run`` (the demo configuration, the latest record per
    size, in 10 files up to 10^7 members and files of 10^6 above), ``fentan exposure`` and the DuckDB ``union``
    query (the better of fentan's two runs), from ``cli_runs`` and ``cli_exposure``."""
    out: dict[str, list[tuple[int, float]]] = {}
    runs = [(n, r["wall_s"]) for (n, f), r in _latest_runs(doc.get("cli_runs") or []).items() if f == max(10, n // 10**6)]
    if runs:  # files of at most 10^6 members, at least 10 files
        out["fentan run, whole process (demo config)"] = sorted(runs)
    sizes = (doc.get("cli_exposure") or {}).get("sizes") or []
    fen = [(r["members"], min(r["fentan_exposure"]["seconds"], r["fentan_exposure_again"]["seconds"])) for r in sizes]
    duck = [(r["members"], r["duckdb_union"]["seconds"]) for r in sizes if "duckdb_union" in r]
    if fen:
        out["fentan exposure, whole process (validation included)"] = sorted(fen)
    if duck:
        out["DuckDB union query, whole process"] = sorted(duck)
    return {k: v for k, v in out.items() if v}


def plot(doc: dict[str, Any], path: Path) -> Path | None:
    """Log-log time vs members per stage (fentan solid, peers dashed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = doc["records"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for st in FENTAN:
        pts = sorted((n, r["wall_s"]) for n, r in _ok(recs, "fentan", st).items())
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"fentan {st}")
    for mod, fn, _ in PEERS:
        pts = sorted((n, r.get("est_full_s", r["wall_s"])) for n, r in _ok(recs, mod, fn).items())
        sampled = any("est_full_s" in r for r in _ok(recs, mod, fn).values())
        if pts:
            ax.plot(*zip(*pts), "s--", label=f"{mod} ({fn})" + (", sample time x rows/sample" if sampled else ""),
                    alpha=0.8)
    colours = iter(["black", "#e6007e", "goldenrod"])
    for label, pts in _whole_process_series(doc).items():
        ax.plot(*zip(*pts), "D-" if label.startswith("fentan") else "D--", linewidth=2.2, color=next(colours),
                label=label)
    ns = [n for n in doc["sizes"] if n > 0]
    if ns:
        ref = [(n, 1.0 * n / max(ns)) for n in ns]
        ax.plot(*zip(*ref), ":", color="grey", label="slope 1 (linear)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("members")
    ax.set_ylabel("wall time (s)")
    ax.set_title("fentan benchmark: time vs members (log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(doc: dict[str, Any], cfg: dict[str, Any], where: Path) -> list[Path]:
    """Write RESULTS.md and scaling.png into ``where``."""
    from engine.data.io import write_text

    paths = [write_text(markdown(doc, cfg), where / "RESULTS.md")]
    png = plot(doc, where / "scaling.png")
    if png:
        paths.append(png)
    return paths


def main() -> int:
    import json

    from benchmarks.adapters.common import load_config
    from benchmarks.run import HERE, RESULTS

    doc = json.loads(RESULTS.read_text())
    for p in write_report(doc, load_config(), HERE):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
