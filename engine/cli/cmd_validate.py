"""``fentan validate``: check members and claims against the data contract."""

from __future__ import annotations

import argparse

#: no linear algebra: the CLI need not load scipy to limit BLAS threads
BLAS = False
NAME = "validate"
HELP = "validate members and claims; write the set-aside rows and the row account"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", required=True, help="members Parquet or CSV: file, glob or directory")
    p.add_argument("--claims", required=True, help="claims Parquet or CSV: file, glob or directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--as-of", default=None, help="the data's as-of date: births, joins, exits, events and approvals after it are set aside "
                   "(default: the latest claim approval date)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    from engine.cli.common import account_rows, parse_date, prepare_out_dir, print_table, input_args
    from engine.data.io import read_claims, read_members, write_json, write_parquet
    from engine.data.validation import validate

    out = prepare_out_dir(args.out, inputs=input_args(args))
    as_of = parse_date(args.as_of, "--as-of") if args.as_of else None
    # streaming (file by file, duplicate ids by a hash-bucket pass): the members are never all in memory
    res = validate(read_members(args.members), read_claims(args.claims), as_of=as_of, as_of_source="--as-of",
                   stream=True)
    write_parquet(res.rejected_members, out / "rejected_members.parquet")
    write_parquet(res.rejected_claims, out / "rejected_claims.parquet")
    write_json(res.account, out / "account.json")
    print_table("row account", account_rows(res.account), quiet=args.quiet)
    if not args.quiet:
        print(f"as-of date {res.account['as_of']['date']} ({res.account['as_of']['source']}); "
              "joins, exits, events and approvals after it are set aside")
    res.require_usable(str(args.members))  # outputs are written first: they say why
    return 0
