"""``fentan demo``: generate the default synthetic platform, validate it, print a summary.

Later stages (exposure, models, shares, report) extend :func:`run_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "demo"
HELP = "run the demo on a generated platform (default 1,000,000 members)"

DEFAULT_OUT = "fentan-demo"
DEFAULT_MEMBERS = 1_000_000
DEFAULT_SEED = 20181016
DEFAULT_DIRTY = 0.001  # a few dirty rows of every kind, so the row account shows every reason


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    p.add_argument("--members", type=int, default=DEFAULT_MEMBERS, help="memberships to generate (default 1,000,000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument("--dirty", type=float, default=DEFAULT_DIRTY, help=f"share of dirty rows (default {DEFAULT_DIRTY})")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run_demo(
    out: str | Path,
    members: int = DEFAULT_MEMBERS,
    seed: int = DEFAULT_SEED,
    quiet: bool = False,
    *,
    dirty: float = DEFAULT_DIRTY,
) -> dict[str, Any]:
    """Generate, write, read back and validate a platform; print and return a summary.

    Parameters
    ----------
    out : output directory; gets ``data/`` (members, claims, truth) and
        ``validation/`` (rejected rows and ``account.json``).
    members, seed : size and seed of the generated platform.
    dirty : share of dirty rows of every kind (set aside by validation).
    quiet : print nothing.

    Returns
    -------
    dict with ``out``, ``data`` (paths), ``params`` (generator parameters),
    ``account`` (row account) and ``validation`` (the ValidationResult).
    """
    from engine.cli.common import account_rows, prepare_out_dir, print_table
    from engine.io import read_claims, read_members, write_json, write_parquet
    from engine.synth import generate
    from engine.validate import validate

    root = prepare_out_dir(out)
    plat = generate(members, seed, dirty=dirty)
    data = plat.write(root / "data")
    res = validate(read_members(data["members"]), read_claims(data["claims"]))
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
    print_table("row account", account_rows(res.account), quiet=quiet)
    if not quiet:
        print(f"outputs in {root}")
    return {"out": root, "data": data, "params": p, "account": res.account, "validation": res}


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError

    if args.members < 1:
        raise ConfigError(f"--members must be >= 1, got {args.members}")
    result = run_demo(args.out, args.members, args.seed, args.quiet, dirty=args.dirty)
    return 0 if result["validation"].usable else 2
