"""``fentan incidence``: crude incidence by group with Garwood intervals and A/E from cells."""

from __future__ import annotations

import argparse

NAME = "incidence"
HELP = "crude incidence by group (exact Poisson intervals) and actual/expected against CI2020 from cells Parquet"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", required=True, help="cells Parquet (output of the exposure step): file, glob or directory")
    p.add_argument("--by", default="age,sex", help="comma-separated group keys (default: age,sex; '' = overall)")
    p.add_argument("--out", required=True, help="output Parquet file, e.g. incidence.parquet")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--basis", default="ci2020", help="reference basis for A/E: ci2020 or none (default ci2020)")
    p.add_argument("--table", default="CI4", help="basis table CI1..CI4 (default CI4)")
    p.add_argument("--scale-basis", action="store_true",
                   help="scale the basis by the fitted level factor sum(claims)/sum(expected) (compare shape)")
    g = p.add_argument_group("Poisson GLM (optional): fit on the same cells and save to models/<name>")
    g.add_argument("--model-out", default=None, help="fit a PoissonGLM and save it to this directory")
    g.add_argument("--factors", default=None, help="comma-separated GLM factors (default: --by keys except age)")
    g.add_argument("--age", default="auto", choices=["auto", "spline", "factor", "linear", "none"],
                   help="GLM age term (default auto)")
    g.add_argument("--age-df", type=int, default=6, help="degrees of freedom of the age spline (default 6)")
    g.add_argument("--age-knots", choices=["claims", "exposure", "uniform"], default="claims",
                   help="age spline knots at claims or exposure quantiles, or uniform (default claims)")
    g.add_argument("--interactions", default="", help="factor pairs, e.g. city_tier:channel,sex:channel")
    g.add_argument("--alpha", type=float, default=0.0, help="ridge penalty (sklearn scale, default 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:

    from engine.cli.common import check_writable, input_args, prepare_out_dir, print_table, read_cells, require_columns
    from engine.errors import ConfigError
    from engine.estimators.crude import incidence
    from engine.data.io import write_parquet

    check_writable(args.out, "--out", input_args(args))  # before any work: never onto an input
    if args.model_out:
        prepare_out_dir(args.model_out, inputs=input_args(args))
    cells = read_cells(args.cells)
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    require_columns(cells, by, args.cells, "--by")
    basis = None if args.basis.lower() in ("none", "") else args.basis.lower()
    if args.scale_basis and basis is None:
        raise ConfigError("--scale-basis: needs a reference basis (not --basis none)")
    out = incidence(cells, by=by, level=args.level, basis=basis, table=args.table, scale_basis=args.scale_basis)
    write_parquet(out, args.out)
    if args.model_out:
        _fit_glm(cells, by, args)
    if not args.quiet:
        show = out.head(40) if out.height > 40 else out
        print_table(f"incidence by {', '.join(by) or 'overall'} ({out.height} rows; written to {args.out})",
                    show.to_dicts())
    return 0


def _fit_glm(cells, by: list[str], args: argparse.Namespace) -> None:
    from engine.errors import ConfigError
    from engine.estimators.glm import PoissonGLM

    factors = ([f.strip() for f in args.factors.split(",") if f.strip()] if args.factors is not None
               else [b for b in by if b != "age"])
    pairs = []
    for item in [x.strip() for x in args.interactions.split(",") if x.strip()]:
        parts = item.split(":")
        if len(parts) != 2:
            raise ConfigError(f"--interactions: '{item}' is not a pair 'a:b'")
        pairs.append(tuple(parts))
    model = PoissonGLM(factors=tuple(factors), age=None if args.age == "none" else args.age, age_df=args.age_df,
                       age_knots=args.age_knots, interactions=tuple(pairs), alpha=args.alpha, level=args.level).fit(cells)
    model.save(args.model_out)
    if not args.quiet:
        from engine._results import print_frame

        print_frame(model.summary, title=f"PoissonGLM: {model.n_cells_:,} cells, {model.exposure_years_:,.1f} "
                    f"exposure-years, {model.claims_:,.0f} claims, deviance {model.deviance_:,.2f} "
                    f"(null {model.null_deviance_:,.2f}), {model.n_iter_} iterations")
        print(f"model saved to {args.model_out}")
