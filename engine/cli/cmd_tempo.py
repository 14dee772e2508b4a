"""``fentan tempo``: sweep growth schedules for a plan and recommend the fastest acceptable tempo."""

from __future__ import annotations

import argparse

NAME = "tempo"
HELP = "operating tempo frontier: how fast a plan may grow without outrunning members' expectations"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml",
                   help="[tempo] sweep (growth | periods_to_target | multiples, target_members, criteria), "
                        "[projection] assumptions and [[groups]] rows (or groups = \"file.parquet\"); or "
                        "replay = \"REPLAY.toml\" with [tempo] years_to_target: the tempo of a replayed platform "
                        "(e.g. configs/xianghubao_tempo.toml, or the shipped name 'xianghubao_tempo')")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--plan", default=None, help="the plan swept (overrides tempo.plan)")
    p.add_argument("--scenarios", type=int, default=None, help="Monte Carlo scenarios per tempo (default 200)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace the contents of an existing output directory")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


TEMPO_KEYS = {"plan", "growth", "periods_to_target", "multiples", "target_members", "criteria", "horizon",
              "scenarios", "seed", "settle_tol", "start", "sensitivity"}


def load_tempo_config(path: str) -> tuple[object, dict, dict]:
    """Groups table, projection keyword arguments and tempo keyword arguments from a tempo TOML."""
    from pathlib import Path

    import polars as pl

    from engine.errors import ConfigError
    from engine.projection._tempo import tempo_sections
    from engine.projection.assumptions import prepare_groups, read_groups_parquet

    from engine.data.io import read_toml

    p = Path(path)
    raw = read_toml(p, "configuration")
    unknown = set(raw) - {"tempo", "projection", "groups"}
    if unknown:
        raise ConfigError(f"{p}: {sorted(unknown)[0]}: unknown key (expected [tempo], [projection], [[groups]])")
    t, kw = tempo_sections(raw, p, TEMPO_KEYS)
    g = raw.get("groups")
    if isinstance(g, str):
        groups = read_groups_parquet(Path(g) if Path(g).is_absolute() else p.resolve().parent / g)
    elif isinstance(g, list) and g and all(isinstance(r, dict) for r in g):
        groups = pl.DataFrame(g)
    else:
        raise ConfigError(f"{p}: groups: must be [[groups]] tables or a Parquet path")
    return prepare_groups(groups, f"{p}: groups"), kw, t


def _replay_config(path: str) -> bool:
    """Whether the TOML is a replayed platform's tempo config (a top-level ``replay`` key), or a shipped name."""
    import tomllib
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        from engine.calibration.config import resolve

        try:
            p = resolve(path)
        except Exception:  # not a shipped name either: the ordinary loader names the missing file
            return False
    try:
        return "replay" in tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def _run_replay(args: argparse.Namespace) -> int:
    """``fentan tempo xianghubao_tempo.toml``: replay the platform, then sweep tempos from its launch pool."""
    from engine.calibration._tempo import tempo_from_config
    from engine.cli.common import prepare_out_dir

    if args.plan is not None:
        from engine.errors import ConfigError

        raise ConfigError(f"{args.config}: --plan: a replayed platform has one plan")
    res, _, _ = tempo_from_config(args.config, n_scenarios=args.scenarios, seed=args.seed)
    out = prepare_out_dir(args.out, force=args.force, must_be_new=True)
    res.write(out)
    if not args.quiet:
        res.print_summary()
        print(f"recommended tempo: {res.recommended} ({res.binding}); actual curve: "
              f"{'meets' if res.placement.get('actual_meets_criteria') else 'fails'} the criteria; written to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from engine.cli.common import prepare_out_dir
    from engine.errors import ConfigError
    from engine.projection._tempo import tempo

    if _replay_config(args.config):
        return _run_replay(args)
    groups, kw, t = load_tempo_config(args.config)
    for key, val in (("plan", args.plan), ("n_scenarios", args.scenarios), ("seed", args.seed)):
        if val is not None:
            t[key] = val
    if not any(k in t for k in ("growth", "periods_to_target", "multiples")):
        raise ConfigError(f"{args.config}: tempo: give growth, periods_to_target or multiples")
    sens = t.pop("sensitivity", None)
    if sens is not None and (not isinstance(sens, dict) or set(sens) != {"elasticity", "education_speed"}):
        raise ConfigError(f"{args.config}: tempo.sensitivity: needs exactly the lists elasticity and education_speed")
    out = prepare_out_dir(args.out, force=args.force, must_be_new=True)
    try:
        res = tempo(groups, **t, **kw)
        if sens is not None:
            from engine.data.io import write_parquet
            from engine.projection._tempo import tempo_sensitivity

            table = tempo_sensitivity(groups, elasticities=list(sens["elasticity"]),
                                      education_speeds=list(sens["education_speed"]), **t, **kw)
            write_parquet(table, out / "tempo_sensitivity.parquet")
    except ConfigError as exc:
        raise ConfigError(f"{args.config}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{args.config}: projection: {exc}") from None
    res.write(out)
    if not args.quiet:
        res.print_summary()
        print(f"recommended tempo: {res.recommended} ({res.binding}); written to {out}")
    return 0
