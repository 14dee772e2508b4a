"""Synthetic Xianghubao-like platform: members, claims and the planted truth.

Example
-------
>>> from engine.synth import generate
>>> plat = generate(100_000, seed=1, dirty=0.01)
>>> plat.write("data/synth")  # members.parquet, claims.parquet, truth.parquet, synth_params.json

Every assumption is a field of :class:`SynthConfig` (documented in docs/data.md);
override any of them by keyword: ``generate(10**6, 7, select_factor=1.0)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.data._coerce import api_input
from engine.errors import ConfigError
from engine.synth.config import CAUSES, CHANNELS, RISK_GROUPS, SynthConfig, risk_group_codes
from engine.synth.events import Events, draw_events, rate_table, true_hazard
from engine.synth.population import (
    Population,
    attained_age,
    day_number,
    draw_exits,
    draw_population,
    expected_share_path,
    month_index,
)

__all__ = [
    "SynthConfig",
    "SynthPlatform",
    "generate",
    "true_hazard",
    "rate_table",
    "attained_age",
    "risk_group_codes",
    "RISK_GROUPS",
]

_DAY0 = dt.date(1970, 1, 1)


@dataclass
class SynthPlatform:
    """A generated platform.

    Attributes
    ----------
    members, claims : DataFrame in the data contract (possibly with dirty rows).
    truth : DataFrame, one row per generated member: ``member_id``,
        ``risk_multiplier`` (true multiplier of the non-age, non-select part of
        the incidence), ``risk_group`` (Int64 planted label), ``risk_group_name``.
    params : dict, the configuration used, the seed, counts, the expected share
        path and, with dirty rows, ``dirty_expected`` (reason -> rows).
    """

    members: pl.DataFrame
    claims: pl.DataFrame
    truth: pl.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write members/claims/truth Parquet and ``synth_params.json`` atomically into ``out_dir``."""
        from engine.data.io import write_json, write_parquet

        out = Path(out_dir)
        paths = {
            "members": write_parquet(self.members, out / "members.parquet"),
            "claims": write_parquet(self.claims, out / "claims.parquet"),
            "truth": write_parquet(self.truth, out / "truth.parquet"),
        }
        paths["params"] = write_json(self.params, out / "synth_params.json")
        return paths


def _dates(local: np.ndarray, start: dt.date, null_from: int | None = None) -> pl.Series:
    days = local + day_number(start)
    s = pl.Series(days.astype(np.int32)).cast(pl.Date)
    if null_from is not None:
        s = pl.select(pl.when(pl.lit(pl.Series(local >= null_from))).then(None).otherwise(s)).to_series()
    return s


def _ids(prefix: str, n: int, width: int) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.int_range(1, n + 1, dtype=pl.Int64).cast(pl.String).str.zfill(width)).to_series()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _month_label(start: dt.date, m: int) -> str:
    y, mo = divmod(start.month - 1 + m, 12)
    return dt.date(start.year + y, mo + 1, 1).isoformat()


def _frames(pop: Population, ev: Events, cfg: SynthConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n = pop.join.size
    n_days = day_number(cfg.end) - day_number(cfg.start) + 1
    width = max(9, len(str(n)))
    member_id = _ids("M", n, width).alias("member_id")
    members = pl.DataFrame(
        {
            "member_id": member_id,
            "birth_date": pl.Series(pop.birth.astype(np.int32)).cast(pl.Date),
            "sex": pl.Series(np.where(pop.male, "M", "F"), dtype=pl.String),
            "join_date": _dates(pop.join, cfg.start),
            "exit_date": _dates(pop.exit, cfg.start, null_from=n_days),
        }
    )
    if cfg.plan_id is not None:
        members = members.with_columns(pl.lit(cfg.plan_id, dtype=pl.String).alias("plan_id"))
    members = members.with_columns(
        pl.Series("city_tier", pop.tier, dtype=pl.Int64),
        pl.Series("channel", np.asarray(CHANNELS, dtype=object)[pop.channel], dtype=pl.String),
    )
    names = dict(RISK_GROUPS)
    truth = pl.DataFrame(
        {
            "member_id": member_id,
            "risk_multiplier": pl.Series(pop.multiplier, dtype=pl.Float64),
            "risk_group": pl.Series(pop.group, dtype=pl.Int64),
            "risk_group_name": pl.Series([names[g] for g in range(1, len(RISK_GROUPS) + 1)], dtype=pl.String).gather(
                pop.group - 1
            ),
        }
    )
    claims = pl.DataFrame(
        {
            "claim_id": _ids("C", ev.member.size, width),
            "member_id": member_id.gather(ev.member),
            "event_date": _dates(ev.event, cfg.start),
            "amount": pl.Series(ev.amount, dtype=pl.Float64),
            "approved_date": _dates(ev.approved, cfg.start),
            "cause": pl.Series(list(CAUSES), dtype=pl.String).gather(ev.cause),
        }
    )
    return members, claims, truth


@api_input(dates=("start", "end"))
def generate(
    n_members: int,
    seed: int,
    *,
    start: dt.date = dt.date(2018, 10, 16),
    end: dt.date = dt.date(2021, 12, 31),
    level: float = 0.5,
    dirty: float = 0.0,
    config: SynthConfig | None = None,
    **overrides: Any,
) -> SynthPlatform:
    """Generate a synthetic mutual-aid platform (vectorised; same seed, same bytes).

    Parameters
    ----------
    n_members : memberships generated over the window (rows of members before dirt).
    seed : seed of every random step (``numpy.random.SeedSequence(seed).spawn``).
    start, end : launch date and data cut-off (inclusive); no member joins after ``end``.
    level : incidence level relative to the reference table (CI2020 CI4).
    dirty : share of dirty rows of every kind validation catches (0 = clean).
    config : base assumptions (default :class:`SynthConfig`); ``overrides`` replace fields.

    Returns
    -------
    SynthPlatform

    Notes
    -----
    True incidence of member i on day d:
    lambda_i(d) = level * q_CI4(age_i(d), sex_i) * m_i * sel_i(d) * anti_i(d)
    (see :mod:`engine.synth.events`). Benefit: 300,000 CNY if the attained age at
    the event is below 40, else 100,000. Exits: lapse with a hazard rising with the
    expected share, the 60th birthday, and the approval of a paid claim.
    """
    if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 1:
        raise ConfigError(f"synth: n_members must be a positive integer, got {n_members!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synth: seed must be a non-negative integer, got {seed!r}")
    cfg = (config or SynthConfig()).replace(start=start, end=end, level=level, dirty=dirty, **overrides)
    cfg.check()
    r_pop, r_exit, r_events, r_dirty = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))

    pop = draw_population(int(n_members), cfg, r_pop)
    n_days = day_number(cfg.end) - day_number(cfg.start) + 1
    q = rate_table(cfg)
    age0 = np.minimum(attained_age(pop.birth, pop.join + day_number(cfg.start)), q.shape[1] - 1)
    benefit0 = np.where(age0 < cfg.benefit_age_limit, cfg.benefit_young_cny, cfg.benefit_old_cny)
    annual_cost = q[pop.male.astype(np.int64), age0] * pop.multiplier * benefit0
    n_months = int(month_index(np.array([n_days - 1]), cfg.start)[0]) + 1
    share, sharing = expected_share_path(pop, cfg, annual_cost, n_months)
    draw_exits(pop, cfg, share, r_exit)
    ev = draw_events(pop, cfg, r_events)
    members, claims, truth = _frames(pop, ev, cfg)

    # members at each month end (vectorised counts of joins and exits)
    joins_by_day = np.bincount(pop.join, minlength=n_days)[:n_days]
    exits_by_day = np.bincount(np.minimum(pop.exit, n_days), minlength=n_days + 1)[:n_days]
    active = np.cumsum(joins_by_day) - np.cumsum(exits_by_day)
    month_of_day = month_index(np.arange(n_days), cfg.start)
    last_day = np.r_[np.flatnonzero(np.diff(month_of_day)), n_days - 1]
    peak = int(active.max())
    params: dict[str, Any] = {
        "seed": int(seed),
        "n_members": int(n_members),
        "config": _jsonable(dataclasses.asdict(cfg)),
        "members_rows": members.height,
        "claims_rows": claims.height,
        "peak_members": peak,
        "peak_date": (cfg.start + dt.timedelta(days=int(active.argmax()))).isoformat(),
        "full_scale_factor": cfg.full_scale_peak_members / peak if peak else None,
        "monthly": [
            {
                "month": _month_label(cfg.start, m),
                "expected_share_cny": float(share[m]),
                "expected_members_sharing": float(sharing[m]),
                "members_at_month_end": int(active[last_day[m]]),
            }
            for m in range(n_months)
        ],
    }
    if cfg.dirty > 0:
        from engine.synth.dirty import make_dirty

        members, claims, expected = make_dirty(members, claims, cfg.dirty, r_dirty, cfg.waiting_days)
        params["dirty_expected"] = expected
        params["members_rows"] = members.height
        params["claims_rows"] = claims.height
    return SynthPlatform(members, claims, truth, params)
