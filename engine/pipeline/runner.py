"""``fentan run``: the whole pipeline from a configuration file to a directory of answers.

validate -> exposure cells -> incidence (crude vs basis, GLM, Lorenz/Gini, calibration,
select factors, credibility) -> segmentation (+ frontier) -> history (+ decomposition)
-> plan comparison -> projection -> summary and report. See ``docs/batch.md``.

Every file is written atomically into a staging directory that replaces the output
directory only when the run is complete (:func:`engine.pipeline.outdir.staged_output`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.pipeline.config import RunConfig, load_config, to_toml

__all__ = ["run", "RunResult", "STAGES"]

#: stage name -> (function name in engine.pipeline._stages / engine.pipeline._plan_stages, description)
STAGES: list[tuple[str, str]] = [
    ("validate", "reading and validating members and claims"),
    ("exposure", "exposure cells"),
    ("incidence", "incidence, GLM, metrics, select factors, credibility"),
    ("segmentation", "risk groups and granularity frontier"),
    ("history", "realised share history and decomposition"),
    ("plans", "plan comparison"),
    ("projection", "share projection (deterministic + Monte Carlo)"),
    ("report", "summary and report"),
]


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    out : output directory (None for a dry run).
    account : the row account (members and claims: read, used, set aside per reason).
    summary : per plan headline answers (as in summary.json); empty for a dry run.
    facts : run-level headline numbers (study window, Gini, held-out deviance ...).
    files : output files relative to ``out``.
    timings : seconds per stage.
    """

    out: Path | None
    account: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        """Compact HTML card: the output directory, the row account and the run's scalar facts."""
        from engine._results import frames_card, scalars

        numbers: dict[str, Any] = {"out": str(self.out) if self.out is not None else "dry run"}
        for what in ("members", "claims"):
            acc = self.account.get(what)
            if isinstance(acc, dict) and "read" in acc:
                numbers[f"{what} read"], numbers[f"{what} used"] = int(acc["read"]), int(acc["used"])
        return frames_card(self, {**numbers, "plans": len(self.summary), **scalars(self.facts, 8)})


class _Progress:
    """A rich status line per stage on stderr (silent when quiet or not wanted)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._status = None
        self._console = None
        if enabled:
            from rich.console import Console

            self._console = Console(stderr=True)

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._status = self._console.status("starting")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold]fentan run[/bold]: {text}")

    def done(self, text: str, seconds: float) -> None:
        if self._console is not None:
            self._console.print(f"  [green]done[/green] {text} ({seconds:.1f} s)")


def _as_config(config: RunConfig | str | Path) -> RunConfig:
    return config if isinstance(config, RunConfig) else load_config(config)


def run(config: RunConfig | str | Path, out: str | Path | None = None, *, force: bool = False,
        dry_run: bool = False, quiet: bool = False, progress: bool = True,
        memory_limit: str | int | None = None, executor: Executor | None = None,
        scratch: str | None = None) -> RunResult:
    """Run the whole pipeline of ``config`` and write every output into ``out``.

    Parameters
    ----------
    config : a :class:`engine.pipeline.config.RunConfig` or the path of its TOML file.
    out : output directory (default: ``fentan-run`` beside the configuration file).
    force : replace an existing output directory (only one fentan created: it holds the
        ``.fentan-output`` marker). The target is checked before any work: never the root, the
        home directory, a mount point, nor a directory that is, contains or lies inside an input
        (:func:`engine.pipeline.outguard.guard_target`); a concurrent run to the same target refuses.
    dry_run : validate the configuration and the data, compute the row account, write nothing.
    quiet : print nothing. progress : show a progress line per stage on stderr.
    memory_limit : peak memory allowed (bytes or ``'8GB'``); default ``[run] memory_limit``, else
        80 % of the available memory. Checked from the Parquet footers before any data is read
        (:func:`engine.pipeline.memguard.check_memory`): above it the run stops with a ResourceError.
    executor : a ``concurrent.futures.Executor`` (a thread pool, or a process pool whose workers are
        *spawned*: :func:`engine.cells.process_pool`; one that forks is refused). The passes over the
        members (exposure, share history, decomposition windows, members sharing at the end) run one
        task per partition on it and sum the tasks' integer counts in this process; every output is
        bit-identical to the run without one. None: everything in this process.
    scratch : where validation's id buckets go (``s3://bucket/prefix`` or a shared directory), so its
        tasks run on ``executor`` whatever it is (a remote Dask cluster's included); default ``[run]
        scratch``, else a local temporary directory (then they run on ``executor`` only when it is a
        pool of this machine). Checked (written to) before any data is read.

    Returns
    -------
    RunResult

    Notes
    -----
    The row account must satisfy, for members and for claims,
    ``read = used + sum(set_aside)``; claims set aside include those found
    ineligible at exposure time (waiting period, before joining, after exit, ...).
    A violation is an internal error.
    """
    from engine._threads import one_blas_thread
    from engine.cells._executor import check_executor

    check_executor(executor)
    with one_blas_thread():  # same bytes whatever the BLAS thread count (engine._threads)
        return _run(config, out, force=force, dry_run=dry_run, quiet=quiet, progress=progress,
                    memory_limit=memory_limit, executor=executor, scratch=scratch)


def _run(config: RunConfig | str | Path, out: str | Path | None, *, force: bool, dry_run: bool, quiet: bool,
         progress: bool, memory_limit: str | int | None, executor: Executor | None = None,
         scratch: str | None = None) -> RunResult:
    import engine.pipeline._plan_stages as bp
    import engine.pipeline._stages as bs
    from engine.pipeline._state import RunState
    from engine.pipeline._warmup import Warmup, warmup_modules
    from engine.pipeline.outdir import MARKER, staged_output

    cfg = _with_scratch(_as_config(config), scratch)
    if out is None:
        base = Path(cfg.source).resolve().parent if cfg.source and Path(cfg.source).exists() else Path.cwd()
        out = base / "fentan-run"
    timings: dict[str, float] = {}
    show = progress and not quiet
    mem = _memory_check(cfg, memory_limit)  # footers only: refuse early, before any data is read
    if cfg.run.stream and cfg.run.scratch is not None:
        from engine.data._scratch import check_scratch

        check_scratch(cfg.run.scratch, cfg.data.storage_options,
                      where="--scratch" if scratch is not None else f"{cfg.source}: run.scratch")
    if dry_run:
        ctx = RunState(cfg, None, executor=executor)
        ctx.memory_check = mem.as_dict()
        with _Progress(show) as pg:
            _timed("validate", lambda: bs.stage_validate(ctx), pg, timings)
        acc = bs.account(ctx)
        return RunResult(None, acc, facts=ctx.facts, timings=timings)
    started = dt.datetime.now(dt.timezone.utc)
    warm = Warmup(warmup_modules(cfg) if WARMUP else ())
    with staged_output(out, force=force, inputs=run_inputs(cfg)) as stage, _Progress(show) as pg, _cancelling(warm):
        warm.start()  # the model and report imports overlap validate and exposure (engine.pipeline._warmup)
        ctx = RunState(cfg, stage, executor=executor)
        ctx.memory_check = mem.as_dict()
        (stage / "rejected").mkdir()
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("validate", lambda: bs.stage_validate(ctx)),
            ("exposure", lambda: bs.stage_exposure(ctx)),
            ("incidence", lambda: bs.stage_incidence(ctx)),
            ("segmentation", lambda: bs.stage_segmentation(ctx)),
            ("history", lambda: bs.stage_history(ctx)),
            ("plans", lambda: bp.stage_plans(ctx)),
            ("projection", lambda: bp.stage_projection(ctx, progress=pg.update)),
        ]
        for name, fn in steps:
            if name == "incidence":
                warm.wait()  # no stage imports concurrently with the thread
            _timed(name, fn, pg, timings)
        acc = bs.account(ctx)
        summ = bp.summary(ctx)
        _timed("report", lambda: _finish(ctx, acc, summ, timings), pg, timings)
        _run_record(ctx, started, timings, warmup=warm.record() if warm.modules else None)
        files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() and p.name != MARKER)
    return RunResult(Path(out), acc, summ, ctx.facts, files, timings)


#: start the import warm-up thread in full runs (tests turn it off to compare outputs)
WARMUP = True


@contextmanager
def _cancelling(warm: Any) -> Iterator[None]:
    """Stop the warm-up thread's remaining imports when the run ends, early or not."""
    try:
        yield
    finally:
        warm.cancel()


def run_inputs(cfg: RunConfig) -> list[str]:
    """Every path a run reads: data, the configuration file and plan files (outputs must avoid them)."""
    paths = [cfg.data.members, cfg.data.claims, *cfg.plans.files]
    return [p for p in (*paths, cfg.plans.pooled, cfg.source) if p]


def _with_scratch(cfg: RunConfig, scratch: str | None) -> RunConfig:
    """``cfg`` with ``[run] scratch`` replaced by ``scratch`` when it is given."""
    if scratch is None:
        return cfg
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"scratch": scratch})})


def _memory_check(cfg: RunConfig, memory_limit: str | int | None) -> Any:
    from engine.pipeline.memguard import check_memory

    limit, source = memory_limit, "--memory-limit"
    if limit is None and cfg.run.memory_limit is not None:
        limit, source = cfg.run.memory_limit, f"{cfg.source}: run.memory_limit"
    return check_memory(cfg.data.members, cfg.data.claims, limit, source=source if limit is not None else None,
                        held=not cfg.run.stream, storage_options=cfg.data.storage_options)


def _timed(name: str, fn: Callable[[], Any], pg: _Progress, timings: dict[str, float]) -> None:
    desc = dict(STAGES)[name]
    pg.update(desc)
    t0 = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - t0, 3)
    pg.done(desc, timings[name])


def _finish(ctx: Any, acc: dict[str, Any], summ: dict[str, Any], timings: dict[str, float]) -> None:
    from engine.data.io import write_json, write_text

    out = ctx.out
    write_json(acc, out / "account.json")
    write_json({"study": {k: ctx.facts.get(k) for k in ("study_start", "study_end")},
                "facts": _jsonable(ctx.facts), "plans": _jsonable(summ)}, out / "summary.json")
    write_text(to_toml(ctx.cfg), out / "config.toml")
    if ctx.cfg.output.models:
        ctx.glm.save(out / "models" / "glm")
        ctx.segmenter.save(out / "models" / "segmentation")
    if ctx.cfg.output.report:
        from engine.report.build import build_report

        write_text(build_report(ctx, acc, summ), out / "report.html")


#: the only output that records wall-clock times, host facts and input paths (exempt from byte identity)
RUN_RECORD = "run.json"


def _run_record(ctx: Any, started: dt.datetime, timings: dict[str, float],
                warmup: dict[str, Any] | None = None) -> None:
    """Write ``run.json``: when, where and how fast the run went (the one non-reproducible output).

    Every other output depends only on the data and the configuration; wall times, versions
    and the input file list live here so they never break the byte identity of the others.
    ``warmup``: the import warm-up's record (:meth:`engine.pipeline._warmup.Warmup.record`).
    """
    import platform

    import polars as pl

    from engine._version import __version__
    from engine.data.io import resolve_paths, write_json
    from engine.data.remote import file_size

    cfg = ctx.cfg
    inputs = {}
    for what, path in (("members", cfg.data.members), ("claims", cfg.data.claims)):
        try:
            files = resolve_paths(path, cfg.data.storage_options)
        except Exception:  # pragma: no cover - the data was read, so this does not fail
            files = []
        inputs[what] = {"path": str(path), "files": len(files),
                        "bytes": int(sum(file_size(f, cfg.data.storage_options) for f in files))}
    write_json({"started_utc": started.isoformat(timespec="seconds"),
                "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "seconds": timings, "config": cfg.source, "inputs": inputs,
                "memory": ctx.memory_check, **({"warmup": warmup} if warmup is not None else {}),
                "versions": {"engine": __version__, "python": platform.python_version(), "polars": pl.__version__}},
               ctx.out / RUN_RECORD)


def _jsonable(v: Any) -> Any:
    """JSON-safe copy: dates as ISO text, NaN and infinities as null."""
    v = json.loads(json.dumps(v, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o)))

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(y) for k, y in x.items()}
        if isinstance(x, list):
            return [clean(y) for y in x]
        return x

    return clean(v)
