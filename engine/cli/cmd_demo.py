"""``fentan demo``: generate the default synthetic platform and run the whole pipeline on it.

Writes ``DIR/data`` (the platform), ``DIR/demo.toml`` (the resolved run configuration,
from ``configs/demo.toml``) and ``DIR/run`` (every output of ``fentan run`` and ``report.html``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from engine.cli._flags import add_renamed, add_report_arguments

NAME = "demo"
HELP = "run the demo on a generated platform (default 1,000,000 members)"

DEFAULT_OUT = "out/demo"  # where configs/demo.toml's [data] points (relative to the repository root)
DEFAULT_MEMBERS = 1_000_000
DEFAULT_SEED = 20181016
DEFAULT_DIRTY = 0.001  # a few dirty rows of every kind, so the row account shows every reason


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    add_renamed(p, "--n-members", "--members", type=int, default=DEFAULT_MEMBERS, metavar="N",
                help="memberships to generate (default 1,000,000; --members is a deprecated alias)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument("--dirty", type=float, default=DEFAULT_DIRTY, help=f"share of dirty rows (default {DEFAULT_DIRTY})")
    p.add_argument("--config", default=None, help="run configuration to use instead of configs/demo.toml ([data] is replaced)")
    p.add_argument("--validate-only", action="store_true", help="generate and validate only (no pipeline)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_report_arguments(p)


def demo_config_path() -> Path:
    """The shipped ``configs/demo.toml`` (next to the ``engine`` package in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


#: what defines the demo's as-of date (recorded in the row account)
AS_OF_SOURCE = "the synthetic platform's extract date (cut-off + the longest approval lag)"


def extract_date(params: dict[str, Any]) -> dt.date:
    """The as-of date of a generated platform: its cut-off plus the longest approval lag.

    The generator approves claims up to ``lag_days[1]`` days after their event, so an extract
    that holds every claim of the study is taken that late; no generated date lies after it.
    """
    cfg = params["config"]
    return dt.date.fromisoformat(str(cfg["end"])) + dt.timedelta(days=int(cfg["lag_days"][1]))


def demo_config(data: dict[str, Path], config: str | Path | None = None,
                window: tuple[str, str] | None = None, as_of: dt.date | None = None,
                platform_members: int | None = None) -> Any:
    """The demo RunConfig: ``configs/demo.toml`` (or ``config``) with ``[data]`` pointing at ``data``.

    ``platform_members``: the generated platform's peak membership; the size-dependent rules (the
    per-claimant cap, designed for 10^8 members) are scaled to it (``[plans] scale_caps_to_members``),
    unless a configuration given with ``config`` sets that key itself.

    ``window`` (ISO dates): the generated platform's launch and cut-off, the ``[study]`` start
    and end unless the configuration sets them (claims approved after the cut-off are in the
    data, so the as-of date, derived from the approvals, is later than the cut-off).
    """
    import tomllib

    from engine.pipeline.config import config_from_dict
    from engine.errors import ConfigError

    path = Path(config) if config else demo_config_path()
    if not path.is_file():
        raise ConfigError(f"{path}: demo configuration not found (pass --config)")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw["data"] = {"members": str(Path(data["members"]).resolve()), "claims": str(Path(data["claims"]).resolve())}
    if as_of is not None:
        raw["data"]["as_of"] = as_of
    if platform_members:  # the shipped configuration is scaled to the platform generated; a user's keeps its value
        plans = raw.setdefault("plans", {})
        if config is None or "scale_caps_to_members" not in plans:
            plans["scale_caps_to_members"] = int(platform_members)
    if window:
        study = raw.setdefault("study", {})
        for key, day in zip(("start", "end"), window, strict=True):
            study.setdefault(key, dt.date.fromisoformat(day))
    return config_from_dict(raw, str(path), path.resolve().parent)


def run_demo(
    out: str | Path,
    members: int = DEFAULT_MEMBERS,
    seed: int = DEFAULT_SEED,
    quiet: bool = False,
    *,
    dirty: float = DEFAULT_DIRTY,
    pipeline: bool = True,
    config: str | Path | None = None,
    progress: bool = True,
    static: bool | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """Generate a platform, validate it and (by default) run the whole pipeline on it.

    Parameters
    ----------
    out : output directory; gets ``data/`` (members, claims, truth),
        ``validation/`` (rejected rows and ``account.json``), ``demo.toml`` (the
        resolved run configuration) and ``run/`` (every output of ``fentan run``,
        with ``report.html``).
    members, seed : size and seed of the generated platform.
    dirty : share of dirty rows of every kind (set aside by validation).
    quiet : print nothing. pipeline : run the whole pipeline (else validate only).
    config : run configuration replacing ``configs/demo.toml`` (its ``[data]`` is replaced).
    static, language : the report's figures (PNG instead of interactive) and language (``"en"``,
        ``"zh"``), over the configuration's ``[output]``; ``None`` keeps it.

    Returns
    -------
    dict with ``out``, ``data`` (paths), ``params`` (generator parameters),
    ``account`` (row account), ``validation`` (the ValidationResult),
    ``run`` (the :class:`engine.pipeline.runner.RunResult` or None) and ``seconds`` per step.
    """
    import time

    from engine.cli.common import account_rows, prepare_out_dir, print_table
    from engine.data.io import read_claims, read_members, write_json, write_parquet, write_text
    from engine.synth import generate
    from engine.data.validation import validate

    t0 = time.perf_counter()
    root = prepare_out_dir(out, inputs=[config])
    plat = generate(members, seed, dirty=dirty)
    data = plat.write(root / "data")
    seconds = {"generate": round(time.perf_counter() - t0, 3)}
    as_of = extract_date(plat.params)
    res = validate(read_members(data["members"]), read_claims(data["claims"]), as_of=as_of,
                   as_of_source=AS_OF_SOURCE)
    vdir = prepare_out_dir(root / "validation")
    write_parquet(res.rejected_members, vdir / "rejected_members.parquet")
    write_parquet(res.rejected_claims, vdir / "rejected_claims.parquet")
    write_json(res.account, vdir / "account.json")
    p = plat.params
    summary = [
        {"item": "members (rows)", "value": p["members_rows"]},
        {"item": "claims (rows)", "value": p["claims_rows"]},
        {"item": "peak members sharing", "value": p["peak_members"]},
        {"item": "peak date", "value": p["peak_date"]},
        {"item": "members at cut-off", "value": p["monthly"][-1]["members_at_month_end"]},
        {"item": "expected share at cut-off (CNY/month)", "value": round(p["monthly"][-1]["expected_share_cny"], 2)},
    ]
    print_table("fentan demo: synthetic platform", summary, quiet=quiet)
    result = None
    if pipeline:
        from engine.pipeline.runner import run as run_batch
        from engine.cli.cmd_run import print_run
        from engine.pipeline.config import to_toml, with_output

        cfg = demo_config(data, config, (str(p["config"]["start"]), str(p["config"]["end"])), as_of=as_of,
                          platform_members=int(p["peak_members"]))
        cfg = with_output(cfg, static=static, language=language)
        write_text(to_toml(cfg), root / "demo.toml")
        t1 = time.perf_counter()
        result = run_batch(cfg, root / "run", force=True, quiet=quiet, progress=progress)
        seconds["pipeline"] = round(time.perf_counter() - t1, 3)
        print_run(result, quiet=quiet)
    else:
        print_table("row account", account_rows(res.account), quiet=quiet)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    if not quiet:
        print(f"fentan demo: {seconds['total']:.1f} s; outputs in {root}")
    return {"out": root, "data": data, "params": p, "account": res.account, "validation": res, "run": result,
            "seconds": seconds}


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    if args.n_members < 1:
        raise ConfigError(f"--n-members must be >= 1, got {args.n_members}")
    result = run_demo(args.out, args.n_members, args.seed, args.quiet, dirty=args.dirty,
                      pipeline=not args.validate_only, config=args.config, static=args.static, language=args.lang)
    return 0 if result["validation"].usable else 2
