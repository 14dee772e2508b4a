"""``fentan segment``: split cells into homogeneous risk groups; write segments and the frontier."""

from __future__ import annotations

import argparse

from engine.cli._flags import add_renamed

NAME = "segment"
HELP = "segment cells into risk groups (tree, cluster or rules); write segments.parquet and frontier.parquet"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cells", default=None,
                   help="cells Parquet (output of fentan exposure): file, glob or directory; required unless --load")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--method", choices=("tree", "cluster", "rules"), default="tree", help="segmentation method (default tree)")
    p.add_argument("--max-groups", type=int, default=8, help="largest number of groups on the frontier (default 8)")
    add_renamed(p, "--n-groups", "--groups", type=int, default=None, metavar="K",
                help="use exactly this many groups (default: the recommended K; --groups is a deprecated alias)")
    p.add_argument("--min-claims", type=float, default=50.0,
                   help="credibility floor: observed claims per group over the data (default 50)")
    p.add_argument("--max-rel-width", type=float, default=None,
                   help="credibility floor: largest relative width of a group's 95%% rate interval (e.g. 0.5)")
    p.add_argument("--min-expected-claims", type=float, default=None,
                   help="deprecated: floor of expected claims per sharing period per group (use --min-claims; "
                        "share stability is a plan-design target)")
    p.add_argument("--max-clauses", type=int, default=3, help="at most this many features in a group's rule (default 3)")
    p.add_argument("--search-depth", type=int, default=2,
                   help="tree: restart the first N best-first trees with every feature's best split (default 2; 0 = greedy)")
    p.add_argument("--folds", type=int, default=5, help="folds of the cross-validation choosing K (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds (default 0)")
    p.add_argument("--min-credibility", type=float, default=None, help="floor of limited-fluctuation credibility Z")
    p.add_argument("--period-months", type=float, default=1.0, help="sharing period in months (default 1)")
    p.add_argument("--window-years", type=float, default=None,
                   help="length of the data window in years (default: from the period column)")
    p.add_argument("--by", default=None, help="segmentation features, comma-separated (default: all keys but period)")
    p.add_argument("--adjust-for", default="", help="keys divided out first, comma-separated (e.g. age,sex)")
    p.add_argument("--rules", default=None, help="JSON or TOML file with the groups of a rules plan (--method rules)")
    p.add_argument("--monotone-age", action="store_true", help="group rates must not fall with age")
    p.add_argument("--contiguous-age", action="store_true", help="groups are age bands (marketable plans)")
    add_renamed(p, "--rate-model", "--model", choices=("glm", "cell"), default="glm",
                help="incidence model for predicted rates: glm = engine.estimators.glm.PoissonGLM with the features' "
                     "interactions (default), cell = the built-in ridge Poisson GLM on cells (--model is a deprecated "
                     "alias; in `fentan plans`, --model is a fitted model directory)")
    p.add_argument("--save-model", default=None, help="also save the segmentation as a model directory here")
    p.add_argument("--plans-template", default=None, metavar="TOML",
                   help="also write plans.toml: one vertical plan per group, terms of the first plan of this "
                        "plan file (e.g. configs/xianghubao.toml)")
    sc = p.add_argument_group("scoring with a saved segmentation (instead of fitting)")
    sc.add_argument("--load", default=None, metavar="DIR",
                    help="saved segmentation directory (from --save-model): assign --members (or --cells) to its groups")
    sc.add_argument("--members", default=None, help="members Parquet to assign (with --load): file, glob or directory")
    sc.add_argument("--at", default=None, help="date of the attained age / duration of the members (YYYY-MM-DD)")
    sc.add_argument("--unknown", choices=("error", "null"), default="error",
                    help="rows matching no group: error (default) or a null group")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _read_rules(path: str) -> object:
    import json
    import tomllib
    from pathlib import Path

    from engine.errors import ConfigError, InputFileError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{path}: rules file not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse the rules ({str(exc).splitlines()[0]})") from None


def run(args: argparse.Namespace) -> int:

    from engine.cli.common import input_args, prepare_out_dir, print_table, read_cells
    from engine.errors import ConfigError
    from engine.data.io import write_parquet
    from engine.segmentation._model import CellPoissonModel
    from engine.segmentation.segmenter import RiskSegmenter

    if args.load:
        return _score(args)
    if not args.cells:
        raise ConfigError("--cells: a cells Parquet is required to fit a segmentation (or --load DIR to score)")
    if args.members:
        raise ConfigError("--members: scoring members needs a saved segmentation (--load DIR)")
    if args.method == "rules" and not args.rules:
        raise ConfigError("--rules: a rules file is required with --method rules")
    template = None
    if args.plans_template:
        from engine.plans.planset import load_plans

        template = load_plans(args.plans_template)[0]
    out = prepare_out_dir(args.out, inputs=input_args(args))
    if args.save_model:
        prepare_out_dir(args.save_model, inputs=input_args(args))
    cells = read_cells(args.cells)
    seg = RiskSegmenter(
        method=args.method,
        max_groups=args.max_groups,
        n_groups=args.n_groups,
        min_claims=args.min_claims,
        max_rel_width=args.max_rel_width,
        min_expected_claims=args.min_expected_claims,
        max_clauses=args.max_clauses,
        search_depth=args.search_depth,
        n_folds=args.folds,
        random_state=args.seed,
        min_credibility=args.min_credibility,
        period_months=args.period_months,
        monotone_age=args.monotone_age,
        contiguous_age=args.contiguous_age,
        features=_split(args.by),
        adjust_for=tuple(_split(args.adjust_for) or ()),
        rules=_read_rules(args.rules) if args.rules else None,
        model=CellPoissonModel() if args.rate_model == "cell" else None,
        window_years=args.window_years,
    ).fit(cells)
    segments = seg.groups_.select(
        "group", "name", "rule", "members", "exposure_years", "claims", "rate", "rate_lower", "rate_upper",
        "relativity_to_portfolio", "relativity", "predicted_rate", "expected_claims_per_period", "share_cv",
        "credibility",
        "own_share", "cross_subsidy", "cross_subsidy_per_period", "cross_subsidy_pct", "meets_floor", "note",
    )
    write_parquet(segments, out / "segments.parquet")
    write_parquet(seg.frontier_, out / "frontier.parquet")
    if args.save_model:
        seg.save(args.save_model)
    if template is not None:
        from engine.data.io import write_text
        from engine.plans.planset import to_toml
        from engine.segmentation._plans import segment_plans

        write_text(to_toml(segment_plans(seg, template)), out / "plans.toml")
    print_table(f"risk groups ({args.method}, K={seg.n_groups_}, recommended K={seg.recommended_k_})",
                seg.summary.select("group", "name", "rule", "members", "claims", "rate", "rate_lower", "rate_upper",
                                   "expected_claims_per_period", "share_cv", "cross_subsidy_pct").to_dicts(), quiet=args.quiet)
    if not args.quiet:
        print(f"K: {seg.selection_}")
    return 0


def _unseen(seg, rows) -> str:
    """The first unmatched row's feature values, naming the columns whose value the segmentation never saw."""
    first = rows.row(0, named=True)
    feats = [f for f in seg.features_ if f in rows.columns]
    seen = getattr(seg, "unit_groups_", None)
    unseen = [f for f in feats if seen is not None and f in seen.columns and first[f] not in set(seen[f].to_list())]
    return ", ".join(f"column '{f}' = {first[f]!r}" + (" unseen" if f in unseen else "") for f in feats)


def _score(args: argparse.Namespace) -> int:
    """Assign members (or cells) to the groups of a saved segmentation; write assignments.parquet."""
    import polars as pl

    from engine.cli.common import input_args, parse_date, prepare_out_dir, print_table, read_cells
    from engine.errors import ConfigError, DataError
    from engine.data.io import read_members, write_parquet
    from engine.segmentation.segmenter import RiskSegmenter

    if bool(args.members) == bool(args.cells):
        raise ConfigError("--load: give exactly one of --members or --cells to assign")
    out = prepare_out_dir(args.out, inputs=input_args(args))  # checked before any work
    seg = RiskSegmenter.load(args.load)
    at = parse_date(args.at, "--at") if args.at else None
    if args.members:
        frame = read_members(args.members).collect()
        if at is None and any(f in ("age", "duration") and f not in frame.columns for f in seg.features_):
            raise ConfigError("--at: a date is needed to compute the members' attained age or duration")
        ids = ["member_id"]
    else:
        frame = read_cells(args.cells)
        ids = [c for c in frame.columns if c in ("period", *seg.features_, "exposure_years", "claims")]
    group = seg.assign(frame, at=at, unknown="null")
    if args.unknown == "error" and group.null_count():
        raise DataError(f"{args.members or args.cells}: {group.null_count()} rows match no group of the saved "
                        f"segmentation ({_unseen(seg, frame.filter(group.is_null().to_numpy()))}); "
                        "use --unknown null to keep them with a null group")
    names = seg.groups_.select(pl.col("group").cast(pl.Int32), "name")
    keep = [c for c in ids if c in frame.columns] + [f for f in seg.features_ if f in frame.columns and f not in ids]
    out_df = frame.select(keep).with_columns(group).join(names, on="group", how="left", maintain_order="left")
    write_parquet(out_df, out / "assignments.parquet")
    counts = out_df.group_by("group", "name").len().sort("group")
    print_table(f"{out_df.height:,} rows assigned to {seg.n_groups_} groups ({out / 'assignments.parquet'})",
                counts.rename({"len": "rows"}).to_dicts(), quiet=args.quiet)
    return 0
