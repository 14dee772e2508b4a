"""The report's assumptions page: basis, platform rules, projection assumptions, run record.

Every value is read from where it is defined (the shipped basis and its provenance, the run
configuration, :mod:`engine.conventions`, the projection's assumptions, the row account);
nothing is typed again here. Every user-visible string goes through
:func:`engine.report.i18n.t`.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from engine.report.document import Report, Section
from engine.report.i18n import t

#: section id of the assumptions page
SECTION_ID = "assumptions"


def level_factor(claims: float, expected: float, level: float = 0.95) -> tuple[float, float, float]:
    """The fitted level factor of a basis with its exact Poisson interval.

    Parameters
    ----------
    claims : float
        Claims observed, D.
    expected : float
        Claims the basis expects on the same exposure, sum_cells E x q_ref(age, sex).
    level : float
        Confidence level of the interval.

    Returns
    -------
    (k, lower, upper) : tuple of float (``nan`` when nothing is expected)

    Notes
    -----
    k = D / expected is the Poisson maximum-likelihood estimate of a multiplier of the basis;
    its interval is the Garwood interval of D with the expected count as exposure
    (:func:`engine.estimators.crude.garwood_interval`, the one home of the formula).
    """
    from engine.estimators.crude import garwood_interval

    if not expected > 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = garwood_interval(claims, expected, level)
    return float(claims) / float(expected), float(lo), float(hi)


def basis_table(basis: str | None, table: str, incidence: pl.DataFrame | None, level: float = 0.95) -> pl.DataFrame:
    """The basis the incidence is compared with: name, table id, description, provenance, level factor."""
    from engine.data.reference import reference_provenance

    if basis is None:
        return pl.DataFrame({"item": [t("basis")], "value": [t("none (no basis configured)")]})
    prov = reference_provenance(basis)
    rows = [(t("basis"), f"{basis.upper()} {table.upper()}"),
            (t("basis title"), str(prov.get("title", ""))),
            (t("table {table}", table=table.upper()), str(prov.get("tables", {}).get(table.upper(), ""))),
            (t("units"), str(prov.get("units", ""))),
            (t("source"), str(prov.get("source", "")))]
    if incidence is not None and "expected" in incidence.columns:
        d, e = float(incidence["claims"].sum()), float(incidence["expected"].sum())
        k, lo, hi = level_factor(d, e, level)
        rows.append((t("fitted level factor (actual / expected claims)"),
                     t("{k:.3f} ({pct:.0%} interval {lo:.3f} to {hi:.3f}; {d:,.0f} claims / {e:,.1f} expected)",
                       k=k, pct=level, lo=lo, hi=hi, d=d, e=e)))
    return pl.DataFrame({"item": [r[0] for r in rows], "value": [r[1] for r in rows]})


def _source(value: Any, default: Any) -> str:
    return t("default (engine.conventions)") if value == default else t("run configuration")


def rules_table(cfg: Any) -> pl.DataFrame:
    """Fee, waiting period, reporting lag, caps and sharing calendar of the run, with where each comes from."""
    import engine.conventions as cv

    h, s = cfg.history, cfg.study
    ppy = cv.periods_per_year(h.sharing_days)
    pcc = h.per_claimant_cap if h.per_claimant_cap else None
    ann = h.annual_cap if h.annual_cap else None
    rows = [
        (t("management fee (% of claims shared)"), f"{100 * h.fee:g}", _source(h.fee, cv.FEE)),
        (t("waiting period (days)"), f"{s.waiting_days:,}", _source(s.waiting_days, cv.WAITING_DAYS)),
        (t("reporting lag when the approval date is missing (days)"), f"{h.reporting_lag_days:,}",
         _source(h.reporting_lag_days, cv.REPORTING_LAG_DAYS)),
        (t("sharing days of the month"), ", ".join(str(d) for d in h.sharing_days),
         _source(tuple(h.sharing_days), cv.SHARING_DAYS)),
        (t("sharing periods per year"), f"{ppy}", t("12 x sharing days of the month")),
        (t("per-claimant cap (CNY per member per claim)"), t("none") if pcc is None else f"{pcc:g}",
         _source(h.per_claimant_cap, cv.PER_CLAIMANT_CAP_CNY)),
        (t("annual cap (CNY per member per year)"), t("none") if ann is None else f"{ann:,g}",
         _source(h.annual_cap, cv.ANNUAL_CAP_CNY)),
        (t("benefit bands (age: CNY)"), "; ".join(f"{lo}-{hi}: {b:,.0f}" for lo, hi, b in cv.BENEFIT_BANDS),
         t("default (engine.conventions)")),
        (t("exposure-year (days)"), f"{cv.DAYS_PER_YEAR}", t("default (engine.conventions)")),
    ]
    return pl.DataFrame({"rule": [r[0] for r in rows], "value": [r[1] for r in rows],
                         "from": [r[2] for r in rows]})


def _joiners(j: Any) -> str:
    per = j.per_period
    if per is None:
        what = t("none")
    elif callable(per):
        what = t("a schedule (function of the period)")
    elif isinstance(per, (list, dict)):
        what = t("a schedule ({n} entries)", n=len(per))
    else:
        what = f"{per:,g}"
    return t("{what} per period, growth {g:g} per period, then {then}", what=what, g=j.growth, then=j.then)


def projection_table(a: Any) -> pl.DataFrame:
    """Lapse, elasticities, expectations, joiners and the Monte Carlo settings of a projection.

    ``a`` is a :class:`engine.projection.assumptions.ProjectionAssumptions`.
    """
    lap = a.lapse.base_annual
    lap_s = (", ".join(f"{k}: {v:.1%}" for k, v in lap.items()) if isinstance(lap, dict) else f"{lap:.1%}")
    rows = [
        (t("lapse: base annual probability"), lap_s),
        (t("lapse: factors by tenure (periods)"), ", ".join(f"{v:g}" for v in a.lapse.tenure_factors)),
        (t("lapse: largest hazard per period"), f"{a.lapse.max_hazard:g}"),
        (t("price elasticity of lapses"), f"{a.elasticity.base:g}"),
        (t("adverse selection of the elasticity"), f"{a.elasticity.adverse_selection:g}"),
        (t("expected share: starting value (CNY per period)"),
         t("the first period's share") if a.expectations.initial_share_cny is None
         else f"{a.expectations.initial_share_cny:,.2f}"),
        (t("expected share: adaptation speed per period"), f"{a.expectations.speed:g}"),
        (t("joiners"), _joiners(a.joiners)),
        (t("claimants leave after their claim"), t("yes") if a.claimants_exit else t("no")),
        (t("horizon (sharing periods)"), f"{a.horizon:,}"),
        (t("Monte Carlo scenarios"), f"{a.n_scenarios:,}"),
    ]
    return pl.DataFrame({"assumption": [r[0] for r in rows], "value": [r[1] for r in rows]})


def plan_rules_table(projections: dict[str, Any]) -> pl.DataFrame:
    """Per projected plan: benefits, sharing periods a year, fee, waiting period and lag in periods, caps (as projected)."""
    rows = []
    for label, res in projections.items():
        a = res.assumptions
        benefits = sorted({float(b) for b in res.groups["benefit_cny"].to_list()}) if "benefit_cny" in res.groups.columns else []
        rows.append({"plan": label, "benefits (CNY)": ", ".join(f"{b:,.0f}" for b in benefits),
                     "sharing periods per year": a.periods_per_year,
                     "management fee (% of claims shared)": 100 * a.fee,
                     "waiting period (sharing periods)": a.waiting_periods,
                     "reporting lag (sharing periods)": a.reporting_lag_periods,
                     "per-claimant cap (CNY per member per claim)": a.per_claimant_cap,
                     "annual cap (CNY per member per year)": a.annual_cap})
    return pl.DataFrame(rows)


def data_fingerprint(members: Any, claims: Any, members_fp: str | None = None) -> str:
    """One SHA-256 of the validated members and claims, independent of row order, column order and files.

    ``members`` may be the run's member partitions (one lazy frame per file): they are read one
    at a time, never all together. ``members_fp``: their multiset fingerprint when already known
    (taken by the streaming validation in its own read, :func:`engine.validate`): then they are not read.

    Notes
    -----
    sha256("members:" fp(M) "claims:" fp(C)) with fp the multiset fingerprint of
    :func:`engine.data.row_hash.multiset_fingerprint` (a sum of row hashes over the columns in
    name order): the same data split into other files or read in another order gives the same value.
    """
    import hashlib

    from engine.data.row_hash import multiset_fingerprint

    h = hashlib.sha256()
    for name, df in (("members", members), ("claims", claims)):
        parts = list(df) if isinstance(df, (list, tuple)) else [] if df is None else [df]
        fp = "absent" if not parts else members_fp if name == "members" and members_fp else multiset_fingerprint(parts)
        h.update(f"{name}:{fp}\n".encode())
    return h.hexdigest()


def record_table(ctx: Any, account: dict[str, Any]) -> pl.DataFrame:
    """Seeds, engine version, run date, data fingerprint, study window and the row account."""
    from engine._version import __version__

    cfg, f = ctx.cfg, ctx.facts
    fp = f.get("data_fingerprint") or data_fingerprint(getattr(ctx, "members", None), getattr(ctx, "claims", None),
                                                       getattr(ctx, "members_fingerprint", None))
    glm = getattr(ctx, "glm", None)
    rows = [
        (t("engine version"), f"fentan {__version__}"),
        (t("run date (model fitted)"), str(getattr(glm, "fit_date_", None) or t("n/a"))),
        (t("data fingerprint (SHA-256 of the validated members and claims)"), fp),
        (t("seeds: hold-out split, segmentation, projection"),
         f"{cfg.incidence.seed}, {cfg.segmentation.seed}, {cfg.projection.seed}"),
        (t("study window"), f"{f.get('study_start')} - {f.get('study_end')}"),
        (t("as-of date"), str(f.get("as_of"))),
    ]
    for what in ("members", "claims"):
        a = account.get(what)
        if isinstance(a, dict) and "read" in a:
            rows.append((t("{what}: read = used + set aside", what=t(what)),
                         f"{a['read']:,} = {a['used']:,} + {a['set_aside_total']:,}"))
    return pl.DataFrame({"item": [r[0] for r in rows], "value": [r[1] for r in rows]})


def add_assumptions(rep: Report, ctx: Any, account: dict[str, Any]) -> Section:
    """Add the assumptions page to ``rep`` from a finished run (``ctx``: the run's state)."""
    cfg, tb = ctx.cfg, ctx.tables
    ic = cfg.incidence
    s = rep.section(SECTION_ID, t("Assumptions"))
    basis = None if ic.basis.lower() in ("", "none") else ic.basis.lower()
    Report.text(s, t("Incidence basis and its fitted level:"))
    Report.table(s, basis_table(basis, ic.table, tb.get("incidence"), ic.level))
    Report.text(s, t("Platform rules used for the history, the plans and the projection:"))
    Report.table(s, rules_table(cfg))
    res = next(iter(ctx.projections.values()), None) if getattr(ctx, "projections", None) else None
    if res is not None:
        Report.text(s, t("Projection assumptions (behavioural defaults are illustrative; see docs/projection.md):"))
        Report.table(s, projection_table(res.assumptions))
        Report.text(s, t("Rules of each projected plan (days converted to whole sharing periods; empty: no cap):"))
        Report.table(s, plan_rules_table(ctx.projections))
    Report.text(s, t("Run record:"))
    Report.table(s, record_table(ctx, account))
    return s


__all__ = ["SECTION_ID", "add_assumptions", "basis_table", "data_fingerprint", "level_factor", "plan_rules_table", "projection_table",
           "record_table", "rules_table"]
