"""``fentan credibility``: credibility-weighted group incidence rates from cells."""

from __future__ import annotations

import argparse

from engine.cli._flags import add_renamed

from engine.conventions import FULL_CREDIBILITY_CLAIMS

NAME = "credibility"
HELP = "credibility-weighted group rates (Bühlmann-Straub or limited fluctuation) from cells Parquet"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", required=True, help="cells Parquet (output of the exposure step): file or glob")
    p.add_argument("--group", required=True, nargs="+", help="group column(s), e.g. plan_id or city_tier channel")
    add_renamed(p, "--period-col", "--period", default="period",
                help="within-group period column (default: period; --period is a deprecated alias)")
    p.add_argument("--method", choices=["buhlmann-straub", "limited-fluctuation"], default="buhlmann-straub")
    p.add_argument("--within", choices=["empirical", "poisson"], default="empirical",
                   help="Bühlmann-Straub within-group variance (default: empirical, as R actuar)")
    p.add_argument("--complement", default="collective",
                   help="'collective', 'reference' (needs an 'expected' column) or a fixed rate (default: collective)")
    p.add_argument("--full-standard", type=float, default=FULL_CREDIBILITY_CLAIMS,
                   help=f"limited fluctuation: claims for full credibility (default {FULL_CREDIBILITY_CLAIMS:,.1f})")
    add_renamed(p, "--claims-col", "--claims", default="claims",
                help="claims column (default: claims; --claims is a deprecated alias)")
    add_renamed(p, "--exposure-col", "--exposure", default="exposure_years",
                help="exposure column (default: exposure_years; --exposure is a deprecated alias)")
    p.add_argument("--out", required=True, help="output directory (credibility.parquet, structure.json)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _complement(text: str) -> str | float:
    from engine.errors import ConfigError

    if text in ("collective", "reference", "overall"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--complement: '{text}' is not 'collective', 'reference' or a number") from None


def run(args: argparse.Namespace) -> int:

    from engine.cli.common import prepare_out_dir, print_table, read_cells, input_args, require_columns
    from engine.estimators.credibility import BuhlmannStraub, limited_fluctuation_table
    from engine.data.io import write_json, write_parquet

    out = prepare_out_dir(args.out, inputs=input_args(args))  # checked before any work
    cells = read_cells(args.cells)
    require_columns(cells, args.group, args.cells, "--group")
    for option, col in (("--claims-col", args.claims_col), ("--exposure-col", args.exposure_col)):
        require_columns(cells, [col], args.cells, option)
    if args.method == "buhlmann-straub":
        require_columns(cells, [args.period_col], args.cells, "--period-col")
    comp = _complement(args.complement)
    if args.method == "buhlmann-straub":
        if comp == "overall":
            comp = "collective"
        fit = BuhlmannStraub(group=args.group, period=args.period_col, claims_col=args.claims_col,
                             exposure_col=args.exposure_col, complement=comp, within=args.within).fit(cells)
        table = fit.summary
        structure = {"method": "buhlmann-straub", **fit.structure_}
    else:
        if comp == "collective":
            comp = "overall"
        elif comp == "reference":
            comp = "expected"
        table = limited_fluctuation_table(cells, args.group, complement=comp, full_standard=args.full_standard,
                                          claims_col=args.claims_col, exposure_col=args.exposure_col)
        structure = {"method": "limited-fluctuation", "full_standard": args.full_standard,
                     "complement": args.complement}
    write_parquet(table, out / "credibility.parquet")
    write_json({k: (None if isinstance(v, float) and v == float("inf") else v) for k, v in structure.items()},
               out / "structure.json")
    print_table(f"{args.method} credibility", table.to_dicts(), quiet=args.quiet)
    return 0
