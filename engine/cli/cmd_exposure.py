"""``fentan exposure``: cells of exposure, sharing days, claims and amount (the exposure core)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.conventions import WAITING_DAYS

#: no linear algebra: the CLI need not load scipy to limit BLAS threads
BLAS = False
#: members per batch of the command (smaller than the API default: peak memory is bounded by a batch and a
#: file, at little cost in time; the cells do not depend on it)
CLI_BATCH = 250_000
NAME = "exposure"
HELP = "exposure cells (period x age x ... : exposure/sharing days and years, claims, amount)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", required=True, help="members Parquet or CSV: file, glob or directory")
    p.add_argument("--claims", required=True, help="claims Parquet or CSV: file, glob or directory")
    p.add_argument("--start", required=True, help="first day of the study (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="last day of the study (YYYY-MM-DD, inclusive)")
    p.add_argument("--period", default="month", help="month, quarter or year (default month)")
    p.add_argument("--waiting-days", default=str(WAITING_DAYS), help=f"waiting period in days (default {WAITING_DAYS})")
    p.add_argument("--by", default="age,sex", help="keys after period, comma-separated: age, sex, duration, "
                   "duration_band or any member column (default age,sex); 'none' for period only")
    p.add_argument("--duration-bands", default="0,3,6,12,24", help="lower edges in months of duration_band (default 0,3,6,12,24)")
    p.add_argument("--no-terminate-on-claim", action="store_true", help="cover continues after an eligible claim")
    p.add_argument("--batch-size", default=None, help=f"members per batch (default {CLI_BATCH:,}: memory is bounded by a batch)")
    p.add_argument("--as-of", default=None, help="validation: the data's as-of date; births, joins, exits, events and approvals "
                   "after it are set aside (default: the latest claim approval date)")
    p.add_argument("--out", required=True, help="output cells Parquet file")
    p.add_argument("--rejected-claims", default=None, help="write every claim set aside (validation and eligibility) with its reason")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    from engine.cli._engine_flags import add_engine_arguments

    add_engine_arguments(p)  # --engine, --address, --workers, --scratch


def _int(text: str, what: str, lo: int) -> int:
    from engine.errors import ConfigError

    try:
        v = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{what}: '{text}' is not an integer") from None
    if v < lo:
        raise ConfigError(f"{what}: must be >= {lo}, got {v}")
    return v


def run(args: argparse.Namespace) -> int:
    from engine.cli._engine_flags import check_engine_args, engine_executor

    check_engine_args(args)  # --engine, --address, --workers: before any data is read
    with engine_executor(args) as executor:  # open for the whole command, closed (a local cluster stopped) after
        return _run(args, executor)


def _run(args: argparse.Namespace, executor: Any) -> int:
    import polars as pl

    from engine.cli.common import check_writable, input_args, parse_date
    from engine.errors import ConfigError, DataError
    from engine.cells._exposure import PERIODS, exposure
    from engine.data.io import read_claims, read_members, write_parquet
    from engine.data.factor_levels import check_factor_types
    from engine.data.validation import validate

    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    if end < start:
        raise ConfigError(f"--end: {end} is before --start {start}")
    if args.period not in PERIODS:
        raise ConfigError(f"--period: must be one of {', '.join(PERIODS)}, got '{args.period}'")
    waiting = _int(args.waiting_days, "--waiting-days", 0)
    batch = _int(args.batch_size, "--batch-size", 1) if args.batch_size is not None else CLI_BATCH
    by = [] if args.by.strip().lower() == "none" else [b.strip() for b in args.by.split(",") if b.strip()]
    if len(set(by)) != len(by):
        raise ConfigError(f"--by: a key is repeated in '{args.by}'")
    bands = [_int(x, "--duration-bands", 0) for x in args.duration_bands.split(",") if x.strip()]
    if not bands or bands[0] != 0 or any(b <= a for a, b in zip(bands, bands[1:])):
        raise ConfigError(f"--duration-bands: must be increasing integers starting at 0, got '{args.duration_bands}'")
    as_of = parse_date(args.as_of, "--as-of") if args.as_of else None
    check_writable(args.out, "--out", input_args(args))
    if args.rejected_claims:
        check_writable(args.rejected_claims, "--rejected-claims", input_args(args))
    if args.scratch:
        from engine.data._scratch import check_scratch

        check_scratch(args.scratch, where="--scratch")

    # streaming: validation file by file, then exposure file by file; no step holds every member
    # with --scratch, validation's tasks run on the executor too (its id buckets below the scratch location)
    res = validate(read_members(args.members), read_claims(args.claims), as_of=as_of, as_of_source="--as-of",
                   stream=True, executor=executor if args.scratch else None, scratch=args.scratch)
    res.require_usable(str(args.members))
    parts = res.member_parts or [res.members]
    schema = parts[0].collect_schema()  # every part has the columns and dtypes of all files together
    missing = [b for b in by if b not in ("age", "duration", "duration_band") and b not in schema]
    if missing:
        raise ConfigError(f"--by: members have no column '{missing[0]}'")
    factors = [b for b in by if b in schema]
    check_factor_types(schema, factors, "--by")
    claims = res.claims.collect()
    cells, rejected = exposure(
        parts, claims, start=start, end=end, period=args.period, waiting_days=waiting,
        terminate_on_claim=not args.no_terminate_on_claim, by=by, duration_bands=bands,
        batch_size=batch, return_rejected=True, executor=executor,
    )
    from engine.cells._exposure import SUMS
    from engine.data.factor_levels import fill_missing

    # a null factor is the level "missing": filled in the cells (additive), not in every member row
    cells = fill_missing(cells, [b for b in factors if b != "sex"], sums=SUMS)
    if cells.height == 0 or int(cells["exposure_days"].sum()) == 0:
        raise DataError(f"{args.members}: no member is at risk in the study window {start} to {end} "
                        f"(--start/--end; {res.account['members']['used']:,} valid members)")
    write_parquet(cells, args.out)
    all_rejected = pl.concat([res.rejected_claims, rejected], how="diagonal_relaxed")
    if args.rejected_claims:
        write_parquet(all_rejected, args.rejected_claims)
    if not args.quiet:
        acc = res.account
        used = int(cells["claims"].sum())
        print(f"members: {acc['members']['read']:,} read, {acc['members']['used']:,} used, "
              f"{acc['members']['read'] - acc['members']['used']:,} set aside by validation "
              f"{_fmt(acc['members']['set_aside'])}")
        reasons = dict(zip(*all_rejected.group_by("reason").len().sort("reason").to_dict(as_series=False).values()))
        print(f"claims: {acc['claims']['read']:,} read = {used:,} used + {all_rejected.height:,} set aside {_fmt(reasons)}")
        for what in ("members", "claims"):  # files found but not read, with the reasons
            for f, why in (acc[what].get("files") or {}).get("skipped", {}).items():
                print(f"{what}: skipped {f}: {why}")
        print(f"as-of date {acc['as_of']['date']} ({acc['as_of']['source']}); study {start} to {end} (--start/--end)")
        print(f"cells: {cells.height:,} rows, {cells['exposure_years'].sum():,.1f} exposure-years, "
              f"{cells['sharing_years'].sum():,.1f} sharing-years, amount {cells['amount'].sum():,.0f} -> {args.out}")
    return 0


def _fmt(d: dict) -> str:
    return "(" + ", ".join(f"{k}: {v:,}" for k, v in sorted(d.items())) + ")" if d else ""
