"""Tables of a replay: parameters, observed against fitted, the dated share path with drivers, annual shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from engine.projection._calendar_model import DAYS_PER_YEAR
from engine.calibration._model import PARAMS, ReplayModel


def _annual(shares: np.ndarray, years: np.ndarray, cap: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Period shares charged to a full-year member (annual cap applied) and their sums per year."""
    out = np.array(shares, dtype=float, copy=True)
    ys = np.unique(years)
    tot = np.zeros((*out.shape[:-1], ys.size))
    for i, y in enumerate(ys):
        sel = years == y
        cum = np.cumsum(out[..., sel], axis=-1)
        if cap is not None:
            cum = np.minimum(cum, float(cap))
        out[..., sel] = np.diff(cum, axis=-1, prepend=0.0)
        tot[..., i] = cum[..., -1]
    return out, tot


def _drivers(m: ReplayModel, th: dict[str, float], inc: np.ndarray, paid_k: np.ndarray,
             sus: np.ndarray) -> dict[str, np.ndarray]:
    """Share / sustainable share = dilution x waiting x select x reporting_lag, per period (exact product)."""
    D = m.D
    cx = np.cumsum(m.x, axis=1)
    shifted = np.zeros_like(cx)
    if m.w < D:
        shifted[:, m.w:] = cx[:, :D - m.w]
    E = m.C[None, :] * (m.pre[:, None] + shifted)
    lam = th["level"] * m.base_rate[:, None] / DAYS_PER_YEAR
    per = lambda a: (np.add.reduceat(a, m.first, axis=1) * m.cost).sum(axis=0)  # noqa: E731
    Y, El, I = per(lam * m.members), per(lam * E), per(inc)
    P = (paid_k * m.cost).sum(axis=0)
    div = lambda a, b: np.divide(a, b, out=np.full(a.shape, np.nan), where=b > 0)  # noqa: E731
    return {"dilution": div(Y, sus), "waiting": div(El, Y), "select": div(I, El), "reporting_lag": div(P, I)}


def _params(theta: dict[str, float], boots: list[dict[str, float]], prof: dict[str, Any], free: list[str],
            level_ci: float) -> pl.DataFrame:
    a = (1.0 - level_ci) / 2.0
    rows = []
    for k in PARAMS:
        b = np.array([t[k] for t in boots]) if boots else np.array([])
        lo, hi = prof.get(k, (None, None))
        rows.append({"param": k, "estimate": theta[k], "fixed": k not in free, "profile_lower": lo,
                     "profile_upper": hi,
                     "boot_lower": float(np.quantile(b, a)) if b.size and k in free else None,
                     "boot_upper": float(np.quantile(b, 1 - a)) if b.size and k in free else None})
    return pl.DataFrame(rows, schema_overrides={"profile_lower": pl.Float64, "profile_upper": pl.Float64,
                                                "boot_lower": pl.Float64, "boot_upper": pl.Float64})


def _fit_table(m: ReplayModel, mu: np.ndarray) -> pl.DataFrame:
    mean, cov = m.moments(mu)
    sd = np.sqrt(np.diag(cov))
    return pl.DataFrame({"label": [a.label for a in m.aggregates], "kind": [a.kind for a in m.aggregates],
                         "date": [a.date for a in m.aggregates], "observed": m.y, "fitted": mean, "sd": sd,
                         "z": (m.y - mean) / sd})


def outputs(m: ReplayModel, theta: dict[str, float], boots: list[dict[str, float]], prof: dict[str, Any],
            loglik: float, free: list[str], *, rng: np.random.Generator, level_ci: float, annual_cap: float | None,
            tolerance: float, start: dt.date, end: dt.date) -> Any:
    """Assemble the :class:`engine.calibration.ReplayResult`."""
    from engine.calibration._result import ReplayResult
    from engine.projection._spiral import spiral_period

    inc, paid = m.daily(theta["level"], theta["s0"], theta["tau_months"])
    mu = np.add.reduceat(paid, m.first, axis=1)
    cal = m.periods
    years = cal["year"].to_numpy()
    dk = cal["days"].to_numpy().astype(float)
    det, det_year = _annual((mu * m.cost).sum(axis=0), years, annual_cap)
    sus = (m.members[:, m.last] * theta["level"] * m.base_rate[:, None] * dk / DAYS_PER_YEAR * m.cost).sum(axis=0)
    _, sus_year = _annual(sus, years, None)
    draws = boots if boots else [theta] * 200
    sims = np.empty((len(draws), det.size))
    for i, th in enumerate(draws):
        mb = m.mu(th["level"], th["s0"], th["tau_months"])
        mean = (mb * m.cost).sum(axis=0)
        sims[i] = mean + rng.normal(0.0, 1.0, mean.size) * np.sqrt((mb * m.cost ** 2).sum(axis=0))
    sims = np.maximum(sims, 0.0)
    sims, sims_year = _annual(sims, years, annual_cap)
    a = (1.0 - level_ci) / 2.0
    drv = _drivers(m, theta, inc, mu, sus)
    periods = cal.drop("first_day", "last_day").with_columns(
        pl.Series("members", m.N), pl.Series("claims_paid", mu.sum(axis=0)),
        pl.Series("share_cny", det), pl.Series("share_lower_cny", np.quantile(sims, a, axis=0)),
        pl.Series("share_upper_cny", np.quantile(sims, 1 - a, axis=0)), pl.Series("sustainable_share_cny", sus),
        *[pl.Series(k, v) for k, v in drv.items()],
    )
    uy = np.unique(years)
    yrs = pl.DataFrame({
        "year": uy.astype(np.int32),
        "complete": [start <= dt.date(int(y), 1, 1) and end >= dt.date(int(y), 12, 31) for y in uy],
        "periods": [int((years == y).sum()) for y in uy],
        "annual_share_cny": det_year, "annual_share_lower_cny": np.quantile(sims_year, a, axis=0),
        "annual_share_upper_cny": np.quantile(sims_year, 1 - a, axis=0), "sustainable_annual_share_cny": sus_year,
        "members_end": [float(m.N[years == y][-1]) for y in uy],
        "claims_paid": [float(mu[:, years == y].sum()) for y in uy],
    })
    inside = np.abs(det - sus) <= tolerance * sus
    out_idx = np.nonzero(~inside)[0]
    k = 0 if out_idx.size == 0 else int(out_idx[-1]) + 1
    t_sp = spiral_period(m.N, np.maximum(det, 1e-300), sus)
    sus_year_end = sus[-1] * DAYS_PER_YEAR / dk[-1]
    facts = {"loglik": loglik, "n_aggregates": int(m.y.size), "n_boot": len(boots), "level_ci": level_ci,
             "theta": theta, "sustainable_reached_on": cal["notice_date"][k].isoformat() if k < cal.height else None,
             "sustainable_share_end_cny": float(sus[-1]), "sustainable_annual_share_end_cny": float(sus_year_end),
             "leverage_sustainable": {f"{b:,.0f}": float(b / sus_year_end) for b in np.unique(m.benefit)},
             "death_spiral": t_sp is not None,
             "death_spiral_on": cal["notice_date"][t_sp].isoformat() if t_sp is not None else None}
    return ReplayResult(_params(theta, boots, prof, free, level_ci), _fit_table(m, mu), periods, yrs, facts)


__all__ = ["outputs"]
