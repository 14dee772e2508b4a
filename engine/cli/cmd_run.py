"""``fentan run CONFIG.toml``: the whole pipeline, every output and the HTML report (see docs/batch.md)."""

from __future__ import annotations

import argparse

from engine.cli._flags import add_report_arguments

NAME = "run"
HELP = "run the whole pipeline of a configuration file: validate, cells, incidence, groups, shares, plans, report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="run configuration TOML (see docs/batch.md)")
    p.add_argument("--out", default=None, help="output directory (default: fentan-run beside the configuration)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--dry-run", action="store_true", help="validate the configuration and data, print the row account, write nothing")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_report_arguments(p)
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="peak memory allowed, e.g. 8GB (default: [run] memory_limit, else 80%% of the available memory); "
                        "checked from the Parquet footers before any data is read")
    from engine.cli._engine_flags import add_engine_arguments

    add_engine_arguments(p)  # --engine, --address, --workers, --scratch (else [run] engine, address, workers, scratch)


def print_run(result, *, quiet: bool = False) -> None:
    """Print the headline table of a finished run (and the row account)."""
    from engine.cli.common import account_rows, print_table

    if quiet:
        return
    import sys

    for w in result.facts.get("warnings", []):
        print(f"fentan run: warning: {w}", file=sys.stderr)
    rows = [{"plan": k, "members": round(v.get("members") or 0),
             "share / period": v.get("sustainable_share_cny") or 0.0,
             "/ month": v.get("sustainable_share_cny_per_month") or 0.0,
             "/ year": v.get("sustainable_share_cny_per_year") or 0.0,
             "paid / year": v.get("share_after_caps_cny_per_year") or 0.0,
             "platform %": v.get("platform_paid_pct_of_cost_first_year") or 0.0,
             "leverage": round(v.get("leverage_before_caps") or 0),
             "after caps": round(v.get("leverage_after_caps") or 0),
             "CV": v.get("share_cv") or 0.0, "spiral": "YES" if v.get("death_spiral") else "no",
             "P(annual cap)": v.get("cap_binds_probability_max") or 0.0} for k, v in result.summary.items()]
    print_table("headline per plan: sustainable share in CNY per member per sharing period, per month and per year; "
                "paid / year = what a member pays a year at today's mix after the caps; platform % = the platform's "
                "share of the cost (benefits + fee) in the first projection year; leverage before and after the caps; "
                "share CV; death spiral; P(annual cap binds)", rows)
    print_table("row account", account_rows(result.account))
    f = result.facts
    print(window_line(f))
    print(f"study {f.get('study_start')} to {f.get('study_end')}: {f.get('claims_used', 0):,} eligible claims, "
          f"{f.get('exposure_years', 0):,.0f} exposure-years, Gini {f.get('gini', float('nan')):.3f}, "
          f"{f.get('groups')} risk groups; {sum(result.timings.values()):.1f} s")
    print(f"outputs in {result.out} (report: {result.out / 'report.html'})")


def window_line(facts: dict) -> str:
    """One line: the as-of date and the study window, each with what defined it."""
    return (f"as-of date {facts.get('as_of')} ({facts.get('as_of_source')}); study window {facts.get('study_start')} "
            f"({facts.get('study_start_source')}) to {facts.get('study_end')} ({facts.get('study_end_source')})")


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.runner import run as run_batch
    from engine.cli.common import account_rows, print_table

    from engine.cli._engine_flags import run_executor
    from engine.pipeline.config import load_config, with_output

    config = args.config
    if args.static or args.lang:
        config = with_output(load_config(args.config), static=args.static, language=args.lang)
    with run_executor(args) as ex:  # None for the local engine: the runner's own default
        result = run_batch(config, args.out, force=args.force, dry_run=args.dry_run, quiet=args.quiet,
                           memory_limit=args.memory_limit, scratch=args.scratch,
                           **({"executor": ex} if ex is not None else {}))
    if args.dry_run:
        if not args.quiet:
            print_table(f"row account (dry run; study {result.facts.get('study_start')} to "
                        f"{result.facts.get('study_end')})", account_rows(result.account))
        return 0
    print_run(result, quiet=args.quiet)
    return 0
