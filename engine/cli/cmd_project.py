"""``fentan project``: stochastic projection of cost shares to the sustainable share."""

from __future__ import annotations

import argparse

from engine.conventions import FEE, REPORTING_LAG_DAYS, WAITING_DAYS

NAME = "project"
HELP = "project shares per plan (deterministic + Monte Carlo): sustainable share, leverage, death spiral"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--groups", default=None,
                     help="groups Parquet (plan, group, members, rate, benefit_cny, ...) or a projection TOML")
    src.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                     help="project the plans of a `fentan run` or `fentan plans` output directory, or the groups of a "
                          "`fentan segment` output or saved segmentation model directory (needs --benefit)")
    p.add_argument("--benefit", type=float, default=None, metavar="CNY",
                   help="benefit per claim of every group, with --from a segmentation (plans carry their own)")
    p.add_argument("--plan-per-group", action="store_true",
                   help="with --from a segmentation: each risk group is its own plan (default: the groups of one plan)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--horizon", type=int, default=None, help="periods projected (default 120)")
    p.add_argument("--scenarios", type=int, default=None, help="Monte Carlo scenarios (default 1000)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--periods-per-year", type=int, default=None, help="sharing periods a year (default 12)")
    p.add_argument("--fee", type=float, default=None, help=f"management fee share of claims (default {FEE})")
    p.add_argument("--waiting-periods", type=int, default=None,
                   help=f"waiting period in periods (default: {WAITING_DAYS} days in sharing periods: 3 monthly)")
    p.add_argument("--reporting-lag", type=int, default=None,
                   help=f"reporting lag in periods (default: {REPORTING_LAG_DAYS} days in sharing periods: 1 monthly)")
    p.add_argument("--per-claimant-cap", type=float, default=None, help="CNY per member per claim (default none)")
    p.add_argument("--annual-cap", type=float, default=None, help="CNY per member per year (default none)")
    p.add_argument("--joiners", type=float, default=None, help="joiners per period, platform-wide")
    p.add_argument("--growth", type=float, default=None, help="growth of joiners per period")
    p.add_argument("--then", choices=["stop", "replace"], default=None,
                   help="after the joiner schedule: stop, or replace exits")
    p.add_argument("--lapse", type=float, default=None, help="annual base lapse probability, all channels")
    p.add_argument("--elasticity", type=float, default=None, help="lapse elasticity to share / expected share")
    p.add_argument("--adverse-selection", type=float, default=None,
                   help="elasticity_g = elasticity * risk_g ** -adverse_selection")
    p.add_argument("--education-speed", type=float, default=None, help="speed at which expectations adapt")
    p.add_argument("--chunk-size", type=int, default=None, help="scenarios simulated at once (default 2048)")
    p.add_argument("--force", action="store_true", help="replace the contents of an existing output directory")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    from engine.cli.common import prepare_out_dir, input_args
    from engine.data.io import write_json, write_parquet
    from engine.errors import ConfigError
    from engine.projection._project import project_assumptions
    from engine.projection.assumptions import make_assumptions, read_groups

    if args.from_dir is not None:
        from engine.cli._project_from import groups_from_dir

        groups, kw = groups_from_dir(args.from_dir, args.benefit, args.fee, args.plan_per_group)
    else:
        if args.benefit is not None or args.plan_per_group:
            flag = "--benefit" if args.benefit is not None else "--plan-per-group"
            raise ConfigError(f"{flag}: only with --from (a groups table names its plans and benefit_cny)")
        groups, kw = read_groups(args.groups)
    flat = {"horizon": args.horizon, "n_scenarios": args.scenarios, "seed": args.seed,
            "periods_per_year": args.periods_per_year, "fee": args.fee, "waiting_periods": args.waiting_periods,
            "reporting_lag_periods": args.reporting_lag, "per_claimant_cap": args.per_claimant_cap,
            "annual_cap": args.annual_cap, "chunk_size": args.chunk_size}
    kw.update({k: v for k, v in flat.items() if v is not None})
    nested = {"joiners": {"per_period": args.joiners, "growth": args.growth, "then": args.then},
              "lapse": {"base_annual": args.lapse},
              "elasticity": {"base": args.elasticity, "adverse_selection": args.adverse_selection},
              "expectations": {"speed": args.education_speed}}
    for sec, vals in nested.items():
        vals = {k: v for k, v in vals.items() if v is not None}
        if vals:
            kw[sec] = {**dict(kw.get(sec) or {}), **vals}
    a = make_assumptions(**kw)
    out = prepare_out_dir(args.out, force=args.force, must_be_new=True, inputs=input_args(args))
    res = project_assumptions(groups, a)
    write_parquet(res.periods, out / "projection.parquet")
    write_parquet(res.plans, out / "projection_plans.parquet")
    write_parquet(res.leverage, out / "projection_leverage.parquet")
    write_parquet(res.bands, out / "projection_bands.parquet")
    from engine.projection._caps import caps_cost_projected

    write_parquet(caps_cost_projected(res.periods), out / "projection_caps_cost.parquet")  # the platform's subsidy
    write_json(a.model_dump(mode="json"), out / "projection_assumptions.json")
    if args.from_dir is not None:  # the groups projected, so the run can be repeated with --groups
        write_parquet(groups, out / "projection_groups.parquet")
    if not args.quiet:
        res.print_summary()
    return 0
