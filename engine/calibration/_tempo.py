"""Operating tempo of a replayed platform: what tempo would have kept members' expectations in line.

:func:`tempo_from_replay` takes a :class:`engine.calibration.ReplayResult` (the fitted incidence
level and select curve, the platform's rules, the membership curve) and sweeps growth tempos
from the launch pool through :func:`engine.projection.tempo`, with the actual membership curve
swept alongside as a joiners schedule (``multiples=[1.0]`` of its joiners). Elasticity and
education speed are assumptions: :func:`engine.projection.tempo_sensitivity` gives the answer over
a grid of both. Method and the Xianghubao result: ``docs/tempo.md``, section "Xianghubao".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine.calibration._model import select_curve
from engine.calibration._result import ReplayResult
from engine.conventions import DAYS_PER_YEAR, MONTHS_PER_YEAR, days_to_periods
from engine.errors import ConfigError
from engine.projection._tempo import tempo, tempo_sections, tempo_sensitivity
from engine.projection._tempo_result import TempoResult

__all__ = ["ReplayTempo", "replay_tempo_inputs", "tempo_from_config", "tempo_from_replay"]

#: default sweep: years from the launch pool to the target membership
YEARS_TO_TARGET = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
#: the select curve is cut where it is within this of the ultimate (then 1)
SELECT_TOL = 1e-3


def _select_factors(inputs: Mapping[str, Any], theta: Mapping[str, float], ppy: int, w: int) -> list[float]:
    """Per-period select factors by tenure since joining (zero-incidence wait handled by the projection).

    Parametric curve: sel at the middle of each covered period, m = (tau - w + 1/2) x 12 / ppy
    months since cover began; a fixed select table: read as the projection reads it.
    """
    if inputs.get("select_factors") is not None:
        from engine.projection.assumptions import select_factors_from_table

        return select_factors_from_table(inputs["select_factors"], ppy)
    s0, tau = float(theta["s0"]), float(theta["tau_months"])
    if abs(1.0 - s0) <= SELECT_TOL:
        return [1.0]
    n = int(math.ceil(tau * math.log(abs(1.0 - s0) / SELECT_TOL) * ppy / MONTHS_PER_YEAR)) + 1
    months = (np.arange(n) + 0.5) * MONTHS_PER_YEAR / ppy
    return [1.0] * w + [float(x) for x in select_curve(months, s0, tau)] + [1.0]


def _period_joiners(curve_joiners: np.ndarray, ppy: int) -> np.ndarray:
    """Daily joiners summed over projection periods of 365.25 / ppy days from the launch day."""
    D = curve_joiners.size
    n = int(math.ceil(D * ppy / DAYS_PER_YEAR))
    edges = np.minimum(np.floor(np.arange(n + 1) * DAYS_PER_YEAR / ppy).astype(np.int64), D)
    cum = np.concatenate([[0.0], np.cumsum(curve_joiners)])
    return cum[edges[1:]] - cum[edges[:-1]]


def replay_tempo_inputs(replay: ReplayResult, *, periods_per_year: int = 24,
                        horizon: int = 144) -> dict[str, Any]:
    """The groups table, projection assumptions and actual joiners schedule of a replayed platform.

    Returns a dict: ``groups`` (launch pool, all waiting; rates = level x base rate),
    ``projection`` (rules, select factors, base lapses), ``actual_joiners`` (per period of the
    sweep, 0 in period 0, whose joiners are the launch pool), ``launch_members``,
    ``target_members`` (the curve's peak), ``actual_periods_to_target`` (first period the
    curve reaches its peak) and ``curve_periods`` (periods the curve covers).

    Notes
    -----
    Period t covers days [t L, (t + 1) L) from launch, L = 365.25 / ppy. The launch pool is
    the curve's joiners of period 0. After the curve ends, the schedule recruits the curve's
    last membership times its base renewal rate o (base lapses and ultimate claim exits per
    period), i.e. it replaces the base exits, as the growth tempos do once at their target.
    """
    from engine.projection.membership import membership_from_curve

    inp = replay.inputs
    if not inp:
        raise ConfigError("tempo_from_replay: the replay result carries no inputs (run engine.replay)")
    ppy = int(periods_per_year)
    theta = replay.facts["theta"]
    curve = membership_from_curve(inp["points"], inp["start"], inp["end"],
                                  base_lapse_annual=inp["base_lapse_annual"], method=inp["interpolation"])
    j = _period_joiners(curve.daily["joiners"].to_numpy(), ppy)
    launch = float(j[0])
    if not launch > 0:
        raise ConfigError("tempo_from_replay: the membership curve has no joiners in the first period")
    g = inp["groups"]
    mix = g["weight"].to_numpy() / float(g["weight"].sum())
    rate = float(theta["level"]) * g["base_rate"].to_numpy()
    members = curve.daily["members"].to_numpy()
    peak_day = int(np.argmax(members))
    w = days_to_periods(inp["waiting_days"], ppy)
    exit_pp = 1.0 - (1.0 - inp["base_lapse_annual"]) ** (1.0 / ppy) + float(np.sum(mix * rate)) / ppy
    sched = np.full(max(horizon, j.size), exit_pp * float(members[-1]))
    sched[:j.size] = j
    sched[0] = 0.0
    groups = pl.DataFrame({"plan": "replay", "group": g["group"].cast(pl.String), "members": launch * mix,
                           "waiting_members": launch * mix, "rate": rate, "benefit_cny": g["benefit_cny"],
                           "joiner_mix": mix})
    projection = {"periods_per_year": ppy, "fee": inp["fee"], "waiting_periods": w,
                  "reporting_lag_periods": days_to_periods(inp["reporting_lag_days"], ppy),
                  "per_claimant_cap": inp["per_claimant_cap"], "annual_cap": None,
                  "select_factors": _select_factors(inp, theta, ppy, w),
                  "lapse": {"base_annual": inp["base_lapse_annual"]}}
    return {"groups": groups, "projection": projection, "actual_joiners": sched[:horizon].tolist(),
            "launch_members": launch, "target_members": float(members[peak_day]),
            "actual_periods_to_target": int(math.floor(peak_day * ppy / DAYS_PER_YEAR)),
            "curve_periods": int(j.size)}


@dataclass
class ReplayTempo:
    """Result of :func:`tempo_from_replay`.

    Attributes
    ----------
    frontier : TempoResult
        The planned tempos (time to reach the target membership from the launch pool).
    actual : TempoResult
        The actual membership curve's joiners schedule (and any other multiples of it).
    table : polars.DataFrame
        Both, one row per tempo ordered by speed (``kind`` ``planned`` or ``actual``); an
        actual row's ``periods_to_target`` is when its planned path (joiners less base exits)
        first reaches 99% of the target, and ``speed`` the equivalent growth per period.
    placement : dict
        Where the actual curve sits: its equivalent growth and time to target, whether it
        meets the criteria (and which it fails), the planned tempos either side of it, the
        recommended tempo and how many times faster the actual curve grew.
    sensitivity : polars.DataFrame or None
        :func:`engine.projection.tempo_sensitivity` over elasticity x education speed, with the
        actual curve's P95 peak surprise, spiral probability and verdict in each cell.
    assumptions : dict
    """

    frontier: TempoResult
    actual: TempoResult
    table: pl.DataFrame
    placement: dict[str, Any]
    sensitivity: pl.DataFrame | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)

    @property
    def recommended(self) -> str | None:
        """The fastest planned tempo meeting the criteria."""
        return self.frontier.recommended

    @property
    def binding(self) -> str:
        """The criterion that stops a faster planned tempo."""
        return self.frontier.binding

    @property
    def summary(self) -> pl.DataFrame:
        """The planned and actual tempos in one table."""
        return self.table

    def print_summary(self) -> None:
        """Print the frontier with the actual curve placed on it, the placement and the sensitivity."""
        from engine._display import print_table

        cols = ["kind", "tempo", "periods_to_target", "growth_per_period", "peak_surprise_mean", "peak_surprise_p95",
                "peak_lapse_annual", "retained_1y", "spiral_prob", "meets_criteria"]
        print_table(f"tempo from the replay (seed {self.assumptions.get('seed')}); recommended: {self.recommended} "
                    f"({self.binding})", self.table.select(cols).to_dicts())
        print_table("where the actual curve sits", [{"fact": k, "value": v} for k, v in self.placement.items()])
        if self.sensitivity is not None:
            print_table("sensitivity to elasticity x education speed", self.sensitivity.to_dicts())

    def _repr_html_(self) -> str:
        sens = "" if self.sensitivity is None else "<h4>Sensitivity</h4>" + self.sensitivity._repr_html_()
        return (f"<h4>Tempo from the replay: recommended {self.recommended} ({self.binding})</h4>"
                + self.table.drop("fails")._repr_html_() + sens)

    def plot_frontier(self, ax: Any = None) -> Any:
        """The planned frontier (:meth:`TempoResult.plot_frontier`) with the actual curve(s) marked; returns the ax."""
        ax = self.frontier.plot_frontier(ax)
        act = self.table.filter((pl.col("kind") == "actual") & pl.col("growth_per_period").is_not_null())
        x = act["growth_per_period"].to_numpy()
        ax.plot(x, act["peak_surprise_mean"].to_numpy(), "*", color="tab:red", markersize=12, label="actual (mean)")
        ax.plot(x, act["peak_surprise_p95"].to_numpy(), "*", color="tab:purple", markersize=12, label="actual (P95)")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel("growth per period (the actual curve: its equivalent growth)")
        return ax

    def write(self, out_dir: Any) -> Any:
        """The frontier's files (:meth:`TempoResult.write`) plus tempo_actual.parquet, tempo_actual_paths.parquet,
        tempo_replay.parquet (both), tempo_replay.png (the frontier with the actual curve), placement.json
        and tempo_sensitivity.parquet."""
        from pathlib import Path

        import matplotlib.pyplot as plt

        from engine.data.io import write_json, write_parquet

        out = Path(self.frontier.write(out_dir))
        ax = self.plot_frontier()
        ax.figure.tight_layout()
        ax.figure.savefig(out / "tempo_replay.png", dpi=110)
        plt.close(ax.figure)
        write_parquet(self.actual.table, out / "tempo_actual.parquet")
        write_parquet(self.actual.paths, out / "tempo_actual_paths.parquet")
        write_parquet(self.table, out / "tempo_replay.parquet")
        write_json({"placement": self.placement, "assumptions": self.assumptions}, out / "placement.json")
        if self.sensitivity is not None:
            write_parquet(self.sensitivity, out / "tempo_sensitivity.parquet")
        return out


def tempo_from_replay(
    replay: ReplayResult,
    *,
    years_to_target: Sequence[float] = YEARS_TO_TARGET,
    target_members: float | None = None,
    multiples: Sequence[float] = (1.0,),
    criteria: Any = None,
    periods_per_year: int = 24,
    horizon: int = 144,
    n_scenarios: int = 200,
    seed: int = 0,
    settle_tol: float = 0.05,
    elasticities: Sequence[float] | None = None,
    education_speeds: Sequence[float] | None = None,
    **projection: Any,
) -> ReplayTempo:
    """What tempo would have kept a replayed platform's members' expectations in line, and the actual one.

    Parameters
    ----------
    replay : ReplayResult
        From :func:`engine.replay` (its fitted level and select curve, rules and membership curve).
    years_to_target : sequence of float
        Planned tempos: years from the launch pool to ``target_members`` (growth at a constant
        rate per period, :func:`engine.projection.tempo` ``periods_to_target``).
    target_members : float, optional
        Default: the peak of the membership curve.
    multiples : sequence of float
        Multiples of the actual joiners schedule swept alongside (1.0: the actual curve).
    criteria, horizon, n_scenarios, seed, settle_tol :
        As for :func:`engine.projection.tempo` (the sweep starts from the launch pool, ``start="launch"``).
    periods_per_year : int
        Sharing periods a year of the projection (24: twice a month).
    elasticities, education_speeds : sequences of float, optional
        Both given: the sensitivity table over their grid.
    **projection :
        Behavioural assumptions (``elasticity``, ``expectations``, ``lapse``, ``spiral``,
        ``claimants_exit`` ...), over the replay's rules.

    Returns
    -------
    ReplayTempo

    Notes
    -----
    Incidence of group g at tenure tau: level x rate_g x sel(tau) with the replay's fitted
    level and select curve (:func:`replay_tempo_inputs`). Members' expectations start at the
    first period's share (0: the launch pool is waiting) unless ``expectations.initial_share_cny``
    is given; until the share passes ``expectations.floor_cny`` the surprise is measured against
    the floor.
    """
    if not years_to_target or any(not y > 0 for y in years_to_target):
        raise ConfigError("tempo_from_replay: years_to_target must be a non-empty list of values > 0")
    ppy = int(periods_per_year)
    inp = replay_tempo_inputs(replay, periods_per_year=ppy, horizon=horizon)
    target = float(target_members if target_members is not None else inp["target_members"])
    proj = {**inp["projection"], **projection}
    common = dict(criteria=criteria, horizon=horizon, n_scenarios=n_scenarios, seed=seed, settle_tol=settle_tol,
                  start="launch", joiners={"per_period": inp["actual_joiners"], "then": "stop"})
    ptt = [y * ppy for y in years_to_target]
    frontier = tempo(inp["groups"], periods_to_target=ptt, target_members=target, **common, **proj)
    actual = tempo(inp["groups"], multiples=list(multiples), **common, **proj)
    table, placement = _place(frontier, actual, inp, target, ppy)
    sens = None
    if elasticities is not None and education_speeds is not None:
        sens = _sensitivity(inp, ptt, target, elasticities, education_speeds, common, proj)
    settings = {**frontier.assumptions, "periods_per_year": ppy, "years_to_target": list(years_to_target),
                "launch_members": inp["launch_members"], "multiples": list(multiples),
                "replay_theta": dict(replay.facts["theta"])}
    return ReplayTempo(frontier, actual, table, placement, sens, settings)


def _planned_ptt(joiners: np.ndarray, launch: float, exit_pp: float, target: float) -> int | None:
    """First period the planned path (P_{t+1} = J_t + (1 - o) P_t from the launch pool) reaches 99% of target."""
    p = launch
    for t, j in enumerate(joiners):
        p = j + (1.0 - exit_pp) * p
        if p >= 0.99 * target:
            return t + 1
    return None


def _place(frontier: TempoResult, actual: TempoResult, inp: Mapping[str, Any], target: float,
           ppy: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The planned and actual rows in one table and where the actual (x1) curve sits among the planned."""
    launch = inp["launch_members"]
    base = np.asarray(inp["actual_joiners"], dtype=float)
    a0 = frontier.assumptions["assumptions"]
    mix = inp["groups"]["joiner_mix"].to_numpy()
    exit_pp = 1.0 - (1.0 - a0["lapse"]["base_annual"]) ** (1.0 / ppy) + float(
        np.sum(mix * inp["groups"]["rate"].to_numpy())) / ppy
    rows = []
    for r in actual.table.iter_rows(named=True):
        T = _planned_ptt(r["speed"] * base, launch, exit_pp, target)
        g = (target / launch) ** (1.0 / T) - 1.0 if T else None
        rows.append({**r, "tempo": f"actual {r['tempo']}", "multiple": r["speed"], "periods_to_target": T,
                     "growth_per_period": g, "speed": g if g is not None else float("inf")})
    act = pl.DataFrame(rows, schema=actual.table.schema | {"multiple": pl.Float64}).with_columns(kind=pl.lit("actual"))
    plan = frontier.table.with_columns(kind=pl.lit("planned"), multiple=pl.lit(None, dtype=pl.Float64))
    table = pl.concat([plan, act.select(plan.columns)]).sort("speed", maintain_order=True)
    table = table.select("kind", "tempo", pl.exclude("kind", "tempo"))
    x1 = act.filter(pl.col("multiple") == 1.0)
    place: dict[str, Any] = {"recommended": frontier.recommended, "binding": frontier.binding}
    rec = frontier.table.filter(pl.col("tempo") == frontier.recommended) if frontier.recommended else None
    if rec is not None:
        place["recommended_periods_to_target"] = int(rec["periods_to_target"][0])
        place["recommended_years_to_target"] = float(rec["periods_to_target"][0]) / ppy
        place["recommended_growth_per_period"] = float(rec["growth_per_period"][0])
    if x1.height:
        r = x1.row(0, named=True)
        sp = frontier.table["speed"].to_list()
        names = frontier.table["tempo"].to_list()
        slower = [n for n, s in zip(names, sp, strict=True) if s <= r["speed"]]
        faster = [n for n, s in zip(names, sp, strict=True) if s > r["speed"]]
        place.update({"actual_periods_to_target": r["periods_to_target"],
                      "actual_years_to_target": None if r["periods_to_target"] is None
                      else r["periods_to_target"] / ppy,
                      "actual_growth_per_period": r["growth_per_period"],
                      "actual_peak_surprise_p95": r["peak_surprise_p95"], "actual_spiral_prob": r["spiral_prob"],
                      "actual_meets_criteria": r["meets_criteria"], "actual_fails": r["fails"],
                      "planned_slower_neighbour": slower[-1] if slower else None,
                      "planned_faster_neighbour": faster[0] if faster else None})
        if rec is not None and r["growth_per_period"] is not None and place["recommended_growth_per_period"] > 0:
            place["actual_speed_over_recommended"] = r["growth_per_period"] / place["recommended_growth_per_period"]
    return table, place


def _sensitivity(inp: Mapping[str, Any], ptt: list[float], target: float, elasticities: Sequence[float],
                 education_speeds: Sequence[float], common: dict[str, Any], proj: dict[str, Any]) -> pl.DataFrame:
    """The recommended planned tempo and the actual curve's verdict for every elasticity x education speed."""
    sens = tempo_sensitivity(inp["groups"], elasticities=elasticities, education_speeds=education_speeds,
                             periods_to_target=ptt, target_members=target, **common, **proj)
    el = proj.get("elasticity")
    el = dict(el) if isinstance(el, Mapping) else ({"base": el} if el is not None else {})
    ex = proj.get("expectations")
    ex = dict(ex) if isinstance(ex, Mapping) else ({"speed": ex} if ex is not None else {})
    rest = {k: v for k, v in proj.items() if k not in ("elasticity", "expectations")}
    rows = []
    for e in elasticities:
        for v in education_speeds:
            r = tempo(inp["groups"], multiples=[1.0], elasticity={**el, "base": float(e)},
                      expectations={**ex, "speed": float(v)}, **common, **rest).table.row(0, named=True)
            rows.append({"actual_peak_surprise_p95": r["peak_surprise_p95"], "actual_spiral_prob": r["spiral_prob"],
                         "actual_meets_criteria": r["meets_criteria"]})
    years = {f"T={T:g}": T / proj["periods_per_year"] for T in ptt}
    yrs = pl.Series("recommended_years_to_target", [years.get(x) for x in sens["recommended"].to_list()],
                    dtype=pl.Float64)
    lyrs = pl.Series("least_surprise_years_to_target", [years.get(x) for x in sens["least_surprise"].to_list()],
                     dtype=pl.Float64)
    return pl.concat([sens.with_columns(yrs, lyrs), pl.DataFrame(rows)], how="horizontal")


#: keys of the [tempo] table of a replay tempo config
TEMPO_KEYS = {"years_to_target", "target_members", "multiples", "criteria", "periods_per_year", "horizon",
              "scenarios", "seed", "settle_tol", "sensitivity", "replay_boot"}


def load_tempo_config(path: str | Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replay config's path and the :func:`tempo_from_replay` keyword arguments from a TOML file.

    The file has ``replay = "xianghubao_public.toml"`` (relative to the file, or a shipped
    name), ``[tempo]`` (``years_to_target``, ``target_members``, ``multiples``, ``criteria``,
    ``periods_per_year``, ``horizon``, ``scenarios``, ``seed``, ``settle_tol``,
    ``[tempo.sensitivity]`` with ``elasticity`` and ``education_speed`` lists, ``replay_boot``)
    and ``[projection]`` (behavioural assumptions, as for :func:`engine.project`).
    """
    from pathlib import Path

    from engine.calibration.config import resolve

    from engine.data.io import read_toml

    p = resolve(path)
    raw = read_toml(p, "tempo configuration")
    unknown = set(raw) - {"replay", "tempo", "projection"}
    if unknown or not isinstance(raw.get("replay"), str):
        raise ConfigError(f"{p}: needs replay = \"<replay config>\", [tempo] and [projection] only")
    t, kw = tempo_sections(raw, p, TEMPO_KEYS,
                           fixed=("horizon", "n_scenarios", "scenarios", "seed", "periods_per_year"))
    sens = t.pop("sensitivity", None)
    if sens is not None:
        if not isinstance(sens, dict) or set(sens) != {"elasticity", "education_speed"}:
            raise ConfigError(f"{p}: tempo.sensitivity: needs exactly the lists elasticity and education_speed")
        t["elasticities"], t["education_speeds"] = list(sens["elasticity"]), list(sens["education_speed"])
    rp = Path(raw["replay"])
    rp = rp if rp.is_absolute() or not (p.parent / rp).exists() else p.parent / rp
    return {"replay": str(rp), "replay_boot": int(t.pop("replay_boot", 0)), "path": str(p)}, {**t, **kw}


def tempo_from_config(path: str | Any, **overrides: Any) -> tuple[ReplayTempo, ReplayResult, dict[str, Any]]:
    """Replay (point estimates; ``replay_boot`` bootstrap refits, default 0) then :func:`tempo_from_replay`.

    Returns (tempo result, replay result, metadata). ``overrides`` (``n_scenarios``,
    ``seed``, ...) replace the file's values when not None.
    """
    from engine.calibration.config import replay_from_config

    meta, kw = load_tempo_config(path)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    rep, rmeta = replay_from_config(meta["replay"], n_boot=meta["replay_boot"])
    try:
        res = tempo_from_replay(rep, **kw)
    except ConfigError as exc:
        raise ConfigError(f"{meta['path']}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{meta['path']}: projection: {exc}") from None
    return res, rep, {**meta, "replay_meta": rmeta}
