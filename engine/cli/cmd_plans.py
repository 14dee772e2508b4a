"""``fentan plans``: compare a plan set with a pooled plan on the same membership."""

from __future__ import annotations

import argparse
import sys

from engine.conventions import TARGET_SHARE_CV

from engine.cli._flags import add_renamed

NAME = "plans"
HELP = "compare vertical plans with a pooled plan: shares, leverage, volatility, cross-subsidy, migration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="plan-set TOML (e.g. configs/vertical.toml)")
    p.add_argument("--cells", required=True, help="cells Parquet (file, glob or directory) from the exposure core")
    p.add_argument("--model", default=None, help="fitted incidence model directory (predict); default crude rates")
    p.add_argument("--pooled", default=None, help="pooled plan TOML (default: one pool of every covered member)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--by", default=None, help="comma-separated cell keys to keep (default: all but period/duration)")
    p.add_argument("--group", default=None, help="column(s) naming risk groups, comma-separated (default: the plans)")
    p.add_argument("--periods-per-year", type=float, default=None, help="override every plan's sharing frequency")
    p.add_argument("--growth", type=float, default=0.0, help="steady growth of members per period (default 0)")
    p.add_argument("--migrate", action="store_true", help="also project migration between the pooled and vertical plans")
    p.add_argument("--threshold", type=float, default=0.0, help="migration: minimum annual saving (CNY) to move")
    p.add_argument("--waiting-cost", action="store_true",
                   help="migration: count the benefit lost in the new plan's waiting period as a switching cost")
    p.add_argument("--move-probability", type=float, default=0.5, help="migration: share of movers per round")
    p.add_argument("--optimise", type=int, default=None, metavar="K",
                   help="also propose up to K plans minimising the cross-subsidy (template: the pooled plan)")
    p.add_argument("--min-claims", type=float, default=30.0, help="optimiser: minimum expected claims per period per plan")
    p.add_argument("--max-share-cv", type=float, default=None,
                   help="deprecated name of --target-cv with --members-scale 1 (the optimiser's share-CV constraint)")
    p.add_argument("--target-cv", type=float, default=TARGET_SHARE_CV,
                   help=f"share CV per period that members_for_target_cv is sized for (default {TARGET_SHARE_CV})")
    p.add_argument("--members-scale", type=float, default=None,
                   help="optimiser: operating members per member of the table; with it, every plan must reach "
                        "the members needed for --target-cv")
    p.add_argument("--factors", default="", help="optimiser: comma-separated factors that may split an age band")
    add_renamed(p, "--sharing-rules", "--rules", action="store_true",
                help="also compare equal, risk-proportional and conditional-mean sharing inside every plan "
                     "(--rules is a deprecated alias; in `fentan segment`, --rules is a file of group rules)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def load_rate_model(path: str):
    """Load a saved model directory and return an object with ``predict`` (annual rates)."""
    import importlib

    from engine.errors import ModelError
    from engine.data.persist import load_model

    meta, _tables = load_model(path)
    kind = meta.get("kind", "")
    cls = None
    for mod in ("engine.estimators", "engine"):
        try:
            cls = getattr(importlib.import_module(mod), kind)
            break
        except (ImportError, AttributeError):
            continue
    if cls is None:
        raise ModelError(f"{path}: model kind '{kind}' is unknown to this engine")
    for loader in ("load", "from_dir", "from_saved"):
        fn = getattr(cls, loader, None)
        if callable(fn):
            model = fn(path)
            if not hasattr(model, "predict"):
                raise ModelError(f"{path}: a {kind} has no predict")
            return model
    raise ModelError(f"{path}: {kind} cannot be loaded (no load method)")


def run(args: argparse.Namespace) -> int:
    import polars as pl

    from engine.cli.common import prepare_out_dir, print_table, input_args
    from engine.plans.compare import build_risk_table, compare_plans
    from engine.errors import ConfigError, InputFileError
    from engine.data.io import file_schema, resolve_paths, write_parquet
    from engine.plans.planset import PlanSet, load_plans

    plans = load_plans(args.config)
    pooled = load_plans(args.pooled) if args.pooled else None
    if args.periods_per_year is not None and not args.periods_per_year > 0:
        raise ConfigError("--periods-per-year: must be > 0")
    out = prepare_out_dir(args.out, inputs=input_args(args))  # checked before any work
    files = resolve_paths(args.cells)
    for f in files:
        file_schema(f)
    try:
        cells = pl.concat([pl.read_parquet(f, glob=False) for f in files], how="diagonal_relaxed")
    except Exception as exc:
        raise InputFileError(f"{args.cells}: cells cannot be read ({str(exc).splitlines()[0]})") from None
    model = load_rate_model(args.model) if args.model else None
    by = [c.strip() for c in args.by.split(",") if c.strip()] if args.by else None
    table = build_risk_table(cells, model, by=by)
    group = None
    if args.group:
        cols = [c.strip() for c in args.group.split(",") if c.strip()]
        for c in cols:
            if c not in table.columns:
                raise ConfigError(f"--group: column '{c}' is not in the risk table ({', '.join(table.columns)})")
        table = table.with_columns(
            pl.concat_str([pl.col(c).cast(pl.String) for c in cols], separator="|").alias("group") if len(cols) > 1
            else pl.col(cols[0]).cast(pl.String).alias("group")
        )
        group = "group"
    res = compare_plans(table, plans, pooled=pooled, group=group, periods_per_year=args.periods_per_year,
                        growth_per_period=args.growth, target_share_cv=args.target_cv)
    res.write(out)
    write_parquet(table, out / "risk_table.parquet")
    if args.sharing_rules:
        import sys

        from engine.errors import DataError, ResourceError
        from engine.plans.sharing import rules_for_plan

        frames = []
        for label, pset in (("pooled", pooled), ("vertical", plans)):
            for plan in (pset or ()):
                try:
                    r = rules_for_plan(table, plan)
                except (ResourceError, DataError) as exc:  # e.g. a plan nobody is eligible for
                    print(f"fentan plans: warning: plan '{plan.name}': sharing rules skipped ({exc})", file=sys.stderr)
                    continue
                frames.append(r.with_columns(pl.lit(label).alias("planset"), pl.lit(plan.name).alias("plan")))
        if frames:
            write_parquet(pl.concat(frames).select("planset", "plan", pl.exclude("planset", "plan")), out / "rules.parquet")
    if args.optimise is not None:
        from engine.plans.optimise import optimise_plans

        if args.optimise < 1:
            raise ConfigError("--optimise: must be an integer >= 1")
        template = pooled[0] if pooled else plans[0]
        opt = optimise_plans(table, template, max_plans=args.optimise, min_claims_per_period=args.min_claims,
                             factors=[f.strip() for f in args.factors.split(",") if f.strip()],
                             periods_per_year=args.periods_per_year, target_share_cv=_optimiser_cv(args),
                             members_scale=args.members_scale or 1.0, growth_per_period=args.growth)
        write_parquet(opt.tradeoff, out / "optimise_tradeoff.parquet")
        if opt.solutions:
            write_parquet(pl.concat([opt.plans(k).with_columns(pl.lit(k).alias("k")) for k in opt.solutions]),
                          out / "optimise_plans.parquet")
            from engine.data.io import write_text

            for k in opt.solutions:  # ready-to-edit plan files, one per K
                write_text(opt.to_toml(k), out / f"optimised_k{k}.toml")
        print_table("granularity trade-off (optimiser)",
                    opt.tradeoff.with_columns(pl.col("feasible").cast(pl.String)).select("k", "feasible", "cross_subsidy_cny_per_period", "min_expected_claims_per_period",
                                        "max_share_cv_approx", "plans").to_dicts(), quiet=args.quiet)
    if args.migrate:
        from engine.plans.migration import migrate

        options = PlanSet(((pooled.plans if pooled else ()) + plans.plans), name="options", allow_overlap=True,
                          source=f"{args.pooled} + {args.config}" if pooled else args.config)
        mig = migrate(table, options, threshold=args.threshold, move_probability=args.move_probability,
                      waiting_cost=args.waiting_cost)
        write_parquet(mig.pools, out / "migration_pools.parquet")
        write_parquet(mig.flows, out / "migration_flows.parquet")
        write_parquet(mig.history, out / "migration_history.parquet")
        print_table(f"migration ({'converged' if mig.converged else 'NOT converged'} after {mig.rounds} rounds)",
                    mig.summary.to_dicts(), quiet=args.quiet)
    from engine.conventions import per_month, per_year

    ppy = pl.col("periods_per_year")
    shown = res.summary.select(
        "planset", "plan", "members", "expected_claims_per_period", "share_current_mix_cny",
        per_month(pl.col("share_current_mix_cny"), ppy).alias("per month"),
        per_year(pl.col("share_current_mix_cny"), ppy).alias("per year"),
        per_year(pl.col("share_after_caps_cny"), ppy).alias("after caps per year"),
        pl.col("leverage").alias("leverage before caps"), pl.col("leverage_after_caps").alias("after caps"), "share_cv")
    print_table("plans: share at today's mix in CNY per member per sharing period, per month and per year; what a "
                "member pays a year after the caps; leverage before and after the caps", shown.to_dicts(),
                quiet=args.quiet)
    print_table("what verticalisation changes (annual CNY per member)",
                res.changes.select("group", "annual_payment_before_cny", "annual_payment_after_cny",
                                   "annual_cross_subsidy_before_cny", "leverage_before", "leverage_after",
                                   "share_cv_before", "share_cv_after").to_dicts(), quiet=args.quiet)
    return 0


def _optimiser_cv(args: argparse.Namespace) -> float | None:
    """The optimiser's share-CV constraint: --target-cv with --members-scale, or the old --max-share-cv."""
    if args.max_share_cv is not None:
        print("fentan plans: --max-share-cv is deprecated; use --target-cv with --members-scale", file=sys.stderr)
        return args.max_share_cv
    return args.target_cv if args.members_scale is not None else None
