"""``fentan synth``: generate a synthetic Xianghubao-like platform."""

from __future__ import annotations

import argparse

from engine.cli._flags import add_renamed

NAME = "synth"
HELP = "generate a synthetic mutual-aid platform (members, claims, planted truth)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_renamed(p, "--n-members", "--members", type=int, default=1_000_000, metavar="N",
                help="memberships to generate (default 1,000,000; --members is a deprecated alias)")
    p.add_argument("--seed", type=int, default=20181016, help="random seed (same seed, same bytes)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--dirty", type=float, default=0.0, help="share of dirty rows of every kind (e.g. 0.01)")
    add_renamed(p, "--incidence-level", "--level", type=float, default=0.5,
                help="incidence level relative to CI2020 CI4 (default 0.5; --level is a deprecated alias)")
    p.add_argument("--start", default="2018-10-16", help="launch date (default 2018-10-16)")
    p.add_argument("--end", default="2021-12-31", help="data cut-off, inclusive (default 2021-12-31)")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty directory")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    from engine.cli.common import parse_date, prepare_out_dir, print_table
    from engine.synth import generate

    out = prepare_out_dir(args.out, force=args.force, must_be_new=True)
    plat = generate(
        args.n_members,
        args.seed,
        start=parse_date(args.start, "--start"),
        end=parse_date(args.end, "--end"),
        level=args.incidence_level,
        dirty=args.dirty,
    )
    paths = plat.write(out)
    p = plat.params
    rows = [
        {"item": "members rows", "value": p["members_rows"]},
        {"item": "claims rows", "value": p["claims_rows"]},
        {"item": "peak members", "value": p["peak_members"]},
        {"item": "peak date", "value": p["peak_date"]},
        {"item": "output", "value": str(paths["members"].parent)},
    ]
    print_table("synthetic platform", rows, quiet=args.quiet)
    return 0
