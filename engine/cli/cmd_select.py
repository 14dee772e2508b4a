"""``fentan select``: incidence factors by duration since joining (select / anti-selection effects)."""

from __future__ import annotations

import argparse

from engine.conventions import WAITING_DAYS

NAME = "select"
HELP = "select and duration factors with intervals by duration band, from members+claims or cells Parquet"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("input: either --cells, or --members and --claims with --start and --end")
    src.add_argument("--cells", default=None,
                     help="cells Parquet with 'duration' (or 'duration_band'), claims and exposure_years: file, glob or directory")
    src.add_argument("--members", default=None, help="members Parquet or CSV: file, glob or directory")
    src.add_argument("--claims", default=None, help="claims Parquet or CSV: file, glob or directory")
    src.add_argument("--start", default=None, help="first day of the study (YYYY-MM-DD, with --members)")
    src.add_argument("--end", default=None, help="last day of the study (YYYY-MM-DD, inclusive, with --members)")
    src.add_argument("--waiting-days", type=int, default=WAITING_DAYS, help=f"waiting period in days (default {WAITING_DAYS}, with --members)")
    src.add_argument("--period", default="year", help="calendar period of the cells built from members (default year)")
    p.add_argument("--bands", default="3,6,12,24",
                   help="month breakpoints starting each duration band (default 3,6,12,24: 3-5, 6-11, 12-23, 24+)")
    p.add_argument("--reference", default=None, help="reference band whose factor is 1 (default: the last band)")
    p.add_argument("--adjust", default=None,
                   help="factors adjusted for in the GLM, comma-separated (default: age,sex when present; 'none' = crude)")
    p.add_argument("--age-width", type=int, default=5, help="age grouped into bands of this many years (default 5)")
    p.add_argument("--route", choices=("glm", "lifelines", "both"), default="glm",
                   help="glm (Poisson GLM, adjusted), lifelines (piecewise exponential, crude) or both (default glm)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--out", required=True, help="output Parquet file, e.g. select_factors.parquet")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _ints(text: str, what: str) -> list[int]:
    from engine.errors import ConfigError

    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what}: '{text}' is not a comma-separated list of integers") from None
    return vals


def _cells_from_members(args: argparse.Namespace, adjust: list[str] | None):
    from engine.cli.common import parse_date
    from engine.errors import ConfigError
    from engine.cells._exposure import PERIODS, exposure
    from engine.data.io import read_claims, read_members
    from engine.data.validation import validate

    if not (args.members and args.claims):
        raise ConfigError("--members/--claims: give both, or --cells")
    if not (args.start and args.end):
        raise ConfigError("--start/--end: the study window is required with --members")
    start, end = parse_date(args.start, "--start"), parse_date(args.end, "--end")
    if end < start:
        raise ConfigError(f"--end: {end} is before --start {start}")
    if args.period not in PERIODS:
        raise ConfigError(f"--period: must be one of {', '.join(PERIODS)}, got '{args.period}'")
    if args.waiting_days < 0:
        raise ConfigError(f"--waiting-days: must be >= 0, got {args.waiting_days}")
    res = validate(read_members(args.members), read_claims(args.claims))
    res.require_usable(str(args.members))
    members = res.members.collect()
    extra = [c for c in (adjust if adjust is not None else ["sex"]) if c not in ("age", "duration")]
    missing = [c for c in extra if c not in members.columns]
    if missing:
        raise ConfigError(f"--adjust: members have no column '{missing[0]}'")
    by = ["duration", "age", *dict.fromkeys(extra)]
    return exposure(members, res.claims.collect(), start=start, end=end, period=args.period,
                    waiting_days=args.waiting_days, by=by)


def run(args: argparse.Namespace) -> int:

    from engine.cli.common import check_writable, input_args, print_table, read_cells, require_columns
    from engine.errors import ConfigError
    from engine.data.io import write_parquet
    from engine.estimators.select import SelectFactors

    check_writable(args.out, "--out", input_args(args))  # before any work: never onto an input

    adjust: list[str] | None = None
    if args.adjust is not None:
        adjust = [] if args.adjust.strip().lower() in ("none", "") else [a.strip() for a in args.adjust.split(",")
                                                                          if a.strip()]
    if args.cells and (args.members or args.claims):
        raise ConfigError("--cells: give either --cells or --members/--claims, not both")
    if args.cells:
        cells = read_cells(args.cells)
        require_columns(cells, adjust or [], args.cells, "--adjust")
    elif args.members or args.claims:
        cells = _cells_from_members(args, adjust)
    else:
        raise ConfigError("--cells: give --cells, or --members and --claims with --start and --end")
    model = SelectFactors(bands=_ints(args.bands, "--bands"), reference=args.reference, adjust=adjust,
                          age_width=args.age_width, route=args.route, level=args.level).fit(cells)
    table = model.summary
    write_parquet(table, args.out)
    if not args.quiet:
        show = table.select("route", "duration_band", "exposure_years", "claims", "rate", "factor", "factor_lower",
                            "factor_upper", "adjusted_for")
        print_table(f"duration factors vs {model.reference_} ({args.level:.0%} intervals; written to {args.out})",
                    show.to_dicts())
    return 0
