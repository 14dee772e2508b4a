"""``fentan replay``: calibrate incidence and select wear-off to a platform's public figures, then project."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "replay"
HELP = "replay a platform from its public figures: fit incidence and select wear-off, project the shares"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="replay TOML (e.g. configs/xianghubao_public.toml, or the shipped name "
                                  "'xianghubao_public')")
    p.add_argument("--out", default=None, help="output directory (tables, figures, report.md); none: print only")
    p.add_argument("--boot", type=int, default=None, help="bootstrap refits (default: the config's n_boot)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's seed)")
    p.add_argument("--force", action="store_true", help="replace the contents of an existing output directory")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _report(res: Any, meta: dict[str, Any], years: list[int]) -> str:
    f = res.facts
    lines = [f"# Replay: {meta['name']}", "", f"Config `{meta['config']}`, data `{meta['data']}`.", "",
             "## Parameters (profile-likelihood and bootstrap intervals)", "", _md(res.params), "",
             "## Published figures: observed against fitted", "", _md(res.fit), "",
             "## Annual share of a member present all year (CNY)", "",
             _md(res.years.filter(res.years["year"].is_in(years)) if years else res.years), "",
             f"- sustainable share reached on: {f['sustainable_reached_on']}",
             f"- sustainable annual share at the end: {f['sustainable_annual_share_end_cny']:.2f} CNY",
             f"- leverage at the sustainable share: {f['leverage_sustainable']}",
             f"- death spiral: {'yes, from ' + f['death_spiral_on'] if f['death_spiral'] else 'no'}", "",
             "Figures: `shares.png`, `fit.png`. Method and assumptions: docs/replay.md.", ""]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if not isinstance(v, float):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _md(df: Any) -> str:
    cols = df.columns
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.iter_rows():
        rows.append("| " + " | ".join(_fmt(v) for v in r) + " |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from engine.calibration.config import replay_from_config

    res, meta = replay_from_config(args.config, n_boot=args.boot, seed=args.seed)
    years = meta["predict_years"]
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from engine.cli.common import prepare_out_dir
        from engine.data.io import write_json, write_parquet

        out = prepare_out_dir(args.out, force=args.force, must_be_new=True)
        for name in ("params", "fit", "periods", "years"):
            write_parquet(getattr(res, name), out / f"{name}.parquet")
        write_json({k: v for k, v in res.facts.items()}, out / "facts.json")
        write_parquet(meta["raw"], out / "public_figures.parquet")
        for name, fn in (("shares", res.plot_shares), ("fit", res.plot_fit)):
            ax = fn()
            ax.figure.tight_layout()
            ax.figure.savefig(out / f"{name}.png", dpi=110)
            plt.close(ax.figure)
        (out / "report.md").write_text(_report(res, meta, years), encoding="utf-8")
    if not args.quiet:
        _print_replay(res, years or None)
    return 0


def _print_replay(res: Any, years: list[int] | None) -> None:
    """The replay's tables through the CLI printer (``--format``; thousands separators)."""
    import polars as pl

    from engine._results import print_frame
    from engine.cli.common import print_table

    f = res.facts
    print(f"replay: log-likelihood {f['loglik']:.3f}, {f['n_aggregates']} aggregates, {f['n_boot']} bootstrap fits")
    print_frame(res.params, title="parameters")
    print_frame(res.fit.select("label", "kind", "date", "observed", "fitted", "sd", "z"), title="observed vs fitted")
    y = res.years if years is None else res.years.filter(pl.col("year").is_in(list(years)))
    print_frame(y.select("year", "complete", "annual_share_cny", "annual_share_lower_cny", "annual_share_upper_cny",
                         "sustainable_annual_share_cny", "members_end"), title="annual shares (CNY per member)")
    print_table("projection facts", [{"fact": k, "value": v} for k, v in f.items()
                                     if k in ("sustainable_reached_on", "death_spiral", "death_spiral_on",
                                              "leverage_sustainable")])
