"""``fentan history``: realised share history per plan and sharing period."""

from __future__ import annotations

import argparse

from engine import conventions as c

NAME = "history"
HELP = "realised cost-share history per plan and sharing period (shares, caps, platform payments)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", required=True, help="members Parquet or CSV: file, glob or directory")
    p.add_argument("--claims", required=True, help="claims Parquet or CSV: file, glob or directory")
    p.add_argument("--start", required=True, help="first notice date included (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="last notice date included (YYYY-MM-DD, inclusive)")
    days = ",".join(str(d) for d in c.SHARING_DAYS)
    p.add_argument("--sharing-days", default=days, help=f"notice days of the month ('{days}'), one day, or 'monthly' (month ends)")
    p.add_argument("--fee", type=float, default=c.FEE, help=f"management fee as a fraction of approved claims (default {c.FEE})")
    p.add_argument("--waiting-days", type=int, default=c.WAITING_DAYS, help=f"waiting period in days (default {c.WAITING_DAYS})")
    p.add_argument("--reporting-lag-days", type=int, default=c.REPORTING_LAG_DAYS,
                   help=f"approval = event + lag when approved_date is null (default {c.REPORTING_LAG_DAYS})")
    p.add_argument("--per-claimant-cap", type=float, default=c.PER_CLAIMANT_CAP_CNY,
                   help=f"max CNY per member per claim; 0 = no cap (default {c.PER_CLAIMANT_CAP_CNY:g})")
    p.add_argument("--annual-cap", type=float, default=c.ANNUAL_CAP_CNY,
                   help=f"max CNY per member per calendar year; 0 = no cap (default {c.ANNUAL_CAP_CNY:g})")
    p.add_argument("--plan-col", default="plan_id", help="pool column; 'none' = one pool (default plan_id)")
    p.add_argument("--by", default="", help="extra member columns splitting pools, comma-separated")
    p.add_argument("--as-of", default=None, help="validation: the data's as-of date; births, joins, exits, events and approvals "
                   "after it are set aside (default: the latest claim approval date)")
    p.add_argument("--rejected-claims", default=None, help="write the claims not shared (with their reason) here")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    from engine.cli.common import parse_date, print_table, check_writable, input_args
    from engine.shares.history import history_summary, parse_sharing_days, share_history, with_shares_per_month_year
    from engine.data.io import read_claims, read_members, write_parquet
    from engine.data.validation import validate
    import polars as pl

    check_writable(args.out, "--out", input_args(args))  # before any work: never onto an input

    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    sharing_days = parse_sharing_days(args.sharing_days)
    as_of = parse_date(args.as_of, "--as-of") if args.as_of else None
    if args.rejected_claims:
        check_writable(args.rejected_claims, "--rejected-claims", input_args(args))
    res = validate(read_members(args.members), read_claims(args.claims), as_of=as_of, as_of_source="--as-of")
    res.require_usable(str(args.members))
    plan_col = None if args.plan_col.lower() == "none" else args.plan_col
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    from engine.cells._exposure import classify_claims

    from engine.data.factor_levels import fill_missing

    members = fill_missing(res.members.collect(), [b for b in by if b != "sex"])  # a null factor: "missing"
    claims = res.claims.collect()
    claims = claims.drop([c for c in ("eligible", "reason") if c in claims.columns])
    classified = classify_claims(members, claims, waiting_days=args.waiting_days)
    classified = classified.collect() if hasattr(classified, "collect") else classified
    if args.rejected_claims:
        write_parquet(classified.filter(~pl.col("eligible").fill_null(False)), args.rejected_claims)
    hist = share_history(
        members,
        classified,
        start=start,
        end=end,
        sharing_days=sharing_days,
        fee=args.fee,
        waiting_days=args.waiting_days,
        reporting_lag_days=args.reporting_lag_days,
        per_claimant_cap=args.per_claimant_cap or None,
        annual_cap=args.annual_cap or None,
        plan_col=plan_col,
        by=by,
    )
    write_parquet(with_shares_per_month_year(hist, sharing_days), args.out)
    summary = history_summary(hist, keys=[plan_col or "pool", *by]).with_columns(pl.col("year").cast(pl.String))
    print_table("share history: totals per pool and year", summary.to_dicts(), quiet=args.quiet)
    return 0
