"""The report's pricing views: risk groups, one-way relativities, the age curve, actual / expected.

Each view is a pure function of the run's outputs (cells, the fitted GLM, the segments
table) returning a polars frame and a :class:`engine.report.chart.Chart`; :func:`add_pricing`
puts them into a report. Intervals are exact Poisson (Garwood) intervals from
:func:`engine.estimators.crude.garwood_interval` (counts) or the GLM's Wald intervals
(relativities, fitted curve). Rates are shown per 1,000 exposure-years.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from engine.report.chart import Chart, Series
from engine.report.document import Report
from engine.report.i18n import t

#: rates are shown per this many exposure-years
PER = 1000.0


def _rate_label() -> str:
    return t("claims per 1,000 exposure-years")


# ----------------------------------------------------------------------------- groups
def groups_view(segments: pl.DataFrame) -> tuple[pl.DataFrame, Chart]:
    """Risk groups with their rules, members, exposure, claims, rate and interval (from ``segments``)."""
    g = segments.sort("group")
    names = [str(n) for n in (g["name"] if "name" in g.columns else g["group"]).to_list()]
    table = pl.DataFrame({
        "group": names,
        "rule": g["rule"].cast(pl.String) if "rule" in g.columns else [""] * g.height,
        "members": g["members"].round(0).cast(pl.Int64),
        "exposure (exposure-years)": g["exposure_years"],
        "claims": g["claims"].round(0).cast(pl.Int64),
        "rate (claims per 1,000 exposure-years)": g["rate"] * PER,
        "lower (95%)": g["rate_lower"] * PER,
        "upper (95%)": g["rate_upper"] * PER,
    })
    chart = Chart(t("Risk groups: rate with its exact Poisson interval"), t("risk group"), _rate_label(),
                  (Series(t("exposure-years"), names, g["exposure_years"].to_list(), kind="bar", axis="y2"),
                   Series(t("observed rate (95% interval)"), names, (g["rate"] * PER).to_list(), kind="errorbars",
                          lower=(g["rate_lower"] * PER).to_list(), upper=(g["rate_upper"] * PER).to_list())),
                  y2_label=t("exposure-years"), x_categorical=True,
                  caption=t("Rate = claims / exposure-years of the group; exact Poisson (Garwood) interval."))
    return table, chart


# ----------------------------------------------------------------------------- one-way relativities
def _glm_factor(glm: Any, factor: str) -> dict[str, Any] | None:
    return next((f for f in glm.spec_["factors"] if f["name"] == factor), None)


def factor_relativities(cells: pl.DataFrame, glm: Any, factor: str, level: float = 0.95) -> pl.DataFrame:
    """One-way and fitted relativities of one rating factor, against its reference level.

    Returns
    -------
    DataFrame: ``level``, ``exposure_years``, ``claims``, ``crude_rate``, ``crude_relativity`` with
    ``crude_lower``/``crude_upper``, ``glm_relativity``, ``glm_lower``, ``glm_upper``, ``is_reference``
    (levels in the model's order).

    Notes
    -----
    crude_relativity = (D_l / E_l) / (D_ref / E_ref) (one-way, no other factor held fixed), with the
    Garwood interval of D_l against the expected count E_l x D_ref / E_ref (the reference rate
    treated as known, as an A/E; :func:`engine.estimators.crude.garwood_interval`);
    glm_relativity = exp(b_l) (other factors held fixed), interval exp(b_l -/+ z se_l); the
    reference level has 1 and no interval.
    """
    from engine.cells.sums import group_sums
    from engine.estimators.crude import garwood_interval

    spec = _glm_factor(glm, factor)
    if spec is None:
        raise KeyError(factor)
    ref = str(spec["reference"])
    sums = group_sums(cells.with_columns(pl.col(factor).cast(pl.String)), [factor], ["exposure_years", "claims"])
    by = {r[0]: (r[1], r[2]) for r in sums.iter_rows()}
    coef = {r[0]: r[1:] for r in glm.summary.select("term", "exp_coef", "lower", "upper").iter_rows()}
    rows = []
    for lv in (str(v) for v in spec["levels"]):
        e, d = by.get(lv, (0.0, 0.0))
        c = coef.get(f"{factor}[{lv}]")
        with np.errstate(over="ignore"):  # a diverged coefficient (a level without claims) gives inf, not a warning
            rel, lo, hi = (1.0, None, None) if lv == ref or c is None else (c[0], float(np.exp(c[1])), float(np.exp(c[2])))
        rows.append({"level": lv, "exposure_years": e, "claims": d, "crude_rate": d / e if e > 0 else None,
                     "glm_relativity": rel, "glm_lower": lo, "glm_upper": hi, "is_reference": lv == ref})
    out = pl.DataFrame(rows, schema={"level": pl.String, "exposure_years": pl.Float64, "claims": pl.Float64,
                                     "crude_rate": pl.Float64, "glm_relativity": pl.Float64, "glm_lower": pl.Float64,
                                     "glm_upper": pl.Float64, "is_reference": pl.Boolean})
    ref_rate = out.filter(pl.col("is_reference"))["crude_rate"][0]
    if ref_rate:  # the level's claims against its exposure at the reference rate: an A/E, one interval formula
        d, e_ref = out["claims"].to_numpy(), out["exposure_years"].to_numpy() * ref_rate
        lo, hi = garwood_interval(d, e_ref, level)
        crude = [pl.col("crude_rate") / ref_rate, pl.Series("crude_lower", lo), pl.Series("crude_upper", hi)]
    else:
        crude = [pl.lit(None, pl.Float64).alias(c) for c in ("crude_relativity", "crude_lower", "crude_upper")]
    return out.with_columns(crude[0].alias("crude_relativity"), *crude[1:]).select(
        "level", "exposure_years", "claims", "crude_rate", "crude_relativity", "crude_lower", "crude_upper",
        "glm_relativity", "glm_lower", "glm_upper", "is_reference")


def relativity_table(rel: pl.DataFrame, factor: str) -> pl.DataFrame:
    """The relativities of one factor as a report table (headers translated, the factor's name as written)."""
    return pl.DataFrame({
        factor: rel["level"], "reference level": [t("yes") if r else "" for r in rel["is_reference"].to_list()],
        "exposure (exposure-years)": rel["exposure_years"], "claims": rel["claims"].round(0).cast(pl.Int64),
        "one-way relativity": rel["crude_relativity"], "lower (95%)": rel["crude_lower"],
        "upper (95%)": rel["crude_upper"], "GLM relativity": rel["glm_relativity"],
        "lower, GLM (95%)": rel["glm_lower"], "upper, GLM (95%)": rel["glm_upper"]})


def relativity_chart(rel: pl.DataFrame, factor: str) -> Chart:
    """One-way relativities of ``factor``: GLM with intervals, crude one-way, exposure bars (y2)."""
    ref = rel.filter(pl.col("is_reference"))["level"][0]
    lv = rel["level"].to_list()
    glm = rel["glm_relativity"].to_list()
    return Chart(
        t("{factor}: relativity against the reference level {ref}", factor=factor, ref=ref),
        t(factor) if factor in ("age", "sex") else factor,  # the contract's columns translated, the user's factors as written
        t("relativity (reference level = 1)"),
        (Series(t("exposure-years"), lv, rel["exposure_years"].to_list(), kind="bar", axis="y2"),
         Series(t("GLM relativity (95% interval)"), lv, glm, kind="errorbars",
                lower=[g if v is None else v for v, g in zip(rel["glm_lower"].to_list(), glm, strict=True)],
                upper=[g if v is None else v for v, g in zip(rel["glm_upper"].to_list(), glm, strict=True)]),
         Series(t("one-way (crude) relativity"), lv, rel["crude_relativity"].to_list(), kind="markers"),
         Series(t("reference = 1"), lv, [1.0] * len(lv), kind="line", dash=True)),
        y2_label=t("exposure-years"), x_categorical=True, facet="relativities",
        caption=t("GLM: exp(coefficient), other factors held fixed, Wald interval; one-way: crude rate of the "
                  "level / crude rate of the reference level {ref} (its Garwood interval, with the reference rate "
                  "treated as known, is in the table).", ref=ref),
        meta={"reference": ref, "factor": factor})


# ----------------------------------------------------------------------------- age curve
def age_curve(cells: pl.DataFrame, glm: Any, incidence: pl.DataFrame, sex: str, level_factor: float | None = None,
              level: float = 0.95) -> pl.DataFrame:
    """The fitted age curve of one sex against the basis, evaluated by age (not spline coefficients).

    Returns
    -------
    DataFrame by ``age``: ``exposure_years``, ``claims``, ``crude_rate``, ``glm_rate_reference`` with
    ``glm_lower``/``glm_upper``, ``glm_rate_mix``, ``basis_rate``, ``basis_rate_scaled`` (annual rates).

    Notes
    -----
    glm_rate_reference: the GLM's rate at age x for ``sex`` with every other factor at its
    reference level, Wald interval exp(eta -/+ z se(eta)); glm_rate_mix = sum E mu / sum E over the
    study's cells of that age and sex (the fitted curve at the observed mix of the other
    factors); basis_rate_scaled = level factor x basis rate.
    """
    from engine.cells.sums import group_sums

    c = cells.filter(pl.col("sex") == sex)
    mu = np.asarray(glm.predict(c), dtype=float)
    c = c.with_columns(pl.Series("_em", mu * c["exposure_years"].to_numpy()))
    by_age = group_sums(c, ["age"], ["exposure_years", "claims", "_em"]).filter(pl.col("exposure_years") > 0)
    grid = {"age": by_age["age"].cast(pl.Int32)}
    for f in glm.spec_["factors"]:
        grid[f["name"]] = [sex if f["name"] == "sex" else str(f["reference"])] * by_age.height
    with np.errstate(invalid="ignore"):  # a singular covariance (few claims) gives no interval, not a warning
        rate, lo, hi = glm.predict_interval(pl.DataFrame(grid), level)
    inc = incidence.filter(pl.col("sex") == sex).select(
        pl.col("age").cast(pl.Int32), (pl.col("expected_rate") if "expected_rate" in incidence.columns
                                       else pl.lit(None, pl.Float64)).alias("basis_rate"))
    k = float("nan") if level_factor is None else float(level_factor)
    return (by_age.with_columns(pl.col("age").cast(pl.Int32), (pl.col("claims") / pl.col("exposure_years")).alias("crude_rate"),
                                pl.Series("glm_rate_reference", rate), pl.Series("glm_lower", lo),
                                pl.Series("glm_upper", hi), (pl.col("_em") / pl.col("exposure_years")).alias("glm_rate_mix"))
            .join(inc, on="age", how="left").with_columns((pl.col("basis_rate") * k).alias("basis_rate_scaled"))
            .select("age", "exposure_years", "claims", "crude_rate", "glm_rate_reference", "glm_lower", "glm_upper",
                    "glm_rate_mix", "basis_rate", "basis_rate_scaled").sort("age"))


def age_curve_chart(curve: pl.DataFrame, sex: str, basis_name: str, reference: str) -> Chart:
    """The fitted age curve against the basis, per 1,000 exposure-years, exposure bars on y2."""
    a = curve["age"].to_list()

    def per(col: str) -> list[float]:
        return (curve[col] * PER).to_list()

    return Chart(
        t("Age curve, sex {sex}: fitted GLM against {basis}", sex=sex, basis=basis_name), t("attained age (years)"),
        _rate_label(),
        (Series(t("exposure-years"), a, curve["exposure_years"].to_list(), kind="bar", axis="y2"),
         Series(t("GLM at the reference levels ({ref}), 95% interval", ref=reference), a, per("glm_rate_reference"),
                kind="band", lower=per("glm_lower"), upper=per("glm_upper")),
         Series(t("GLM at the study's mix"), a, per("glm_rate_mix"), kind="line"),
         Series(t("observed (crude)"), a, per("crude_rate"), kind="markers"),
         Series(basis_name, a, per("basis_rate"), kind="line", dash=True),
         Series(t("{basis} x fitted level factor", basis=basis_name), a, per("basis_rate_scaled"), kind="line",
                dash=True)),
        y2_label=t("exposure-years"), y_log=True, facet="age",
        caption=t("The fitted curve evaluated by age: at the reference levels of the other factors (with its Wald "
                  "interval) and averaged over the study's mix; the basis unscaled and scaled by the fitted level."))


# ----------------------------------------------------------------------------- actual / expected
def calendar_label(cells: pl.DataFrame, max_periods: int = 16) -> pl.Expr:
    """The calendar period of a cell: its study period, or quarter or year when there are more than ``max_periods``."""
    n = cells["period"].n_unique()
    q = cells.select((pl.col("period").dt.year() * 10 + pl.col("period").dt.quarter()).n_unique()).item()
    if n <= max_periods:
        return pl.col("period").cast(pl.String)
    if q <= max_periods:
        return pl.format("{}Q{}", pl.col("period").dt.year(), pl.col("period").dt.quarter())
    return pl.col("period").dt.year().cast(pl.String)


def with_expected(cells: pl.DataFrame, glm: Any | None, basis: str | None, table: str = "CI4") -> pl.DataFrame:
    """``cells`` with the expected claims of each cell: ``expected_basis`` (E x basis rate at the cell's age
    and sex) and ``expected_model`` (E x the model's predicted rate), each when its source is given.

    Computed once per run and grouped by every key of :func:`actual_expected`.
    """
    from engine.estimators.crude import expected_claims

    out = cells
    if basis is not None and "expected_basis" not in cells.columns:
        out = out.with_columns(expected_claims(cells, basis, table).alias("expected_basis"))
    if glm is not None and "expected_model" not in cells.columns:
        out = out.with_columns(pl.Series("expected_model", np.asarray(glm.predict(cells), dtype=float)
                                         * cells["exposure_years"].to_numpy()))
    return out


def actual_expected(cells: pl.DataFrame, by: pl.Expr | str, glm: Any | None = None, basis: str | None = None,
                    table: str = "CI4", level: float = 0.95) -> pl.DataFrame:
    """Actual / expected claims by one key against the basis and against the fitted model.

    Parameters
    ----------
    cells : exposure cells (``exposure_years``, ``claims``, ``age``, ``sex`` and the key's columns), or
        the output of :func:`with_expected` (its expected columns are used as they are).
    by : a column name or a polars expression (e.g. :func:`calendar_label`).
    glm, basis, table : the model and the basis the claims are compared with (either may be None).
    level : confidence level of the intervals.

    Returns
    -------
    DataFrame sorted by ``key`` (keys with exposure only): ``exposure_years``, ``claims``, and for each of
    ``basis`` and ``model`` ``expected_<x>``, ``ae_<x>``, ``ae_<x>_lower``, ``ae_<x>_upper``.

    Notes
    -----
    expected = sum over the key's cells of E_cell x rate_cell (the basis rate at the cell's age and
    sex, or the model's predicted rate), A/E = D / expected, interval Garwood(D, expected) with the
    expected count treated as known (:func:`engine.estimators.crude.garwood_interval`).
    """
    from engine.cells.sums import group_sums
    from engine.estimators.crude import garwood_interval

    key = pl.col(by) if isinstance(by, str) else by
    w = with_expected(cells, glm, basis, table).with_columns(key.cast(pl.String).alias("key"))
    cols = ["exposure_years", "claims", *[c for c in ("expected_basis", "expected_model") if c in w.columns]]
    out = group_sums(w, ["key"], cols).filter(pl.col("exposure_years") > 0)
    d = out["claims"].to_numpy()
    for x in ("basis", "model"):
        if f"expected_{x}" not in out.columns:
            continue
        ex = out[f"expected_{x}"].to_numpy()
        lo, hi = garwood_interval(d, ex, level)
        with np.errstate(divide="ignore", invalid="ignore"):
            ae = np.where(ex > 0, d / np.where(ex > 0, ex, 1.0), np.nan)
        out = out.with_columns(pl.Series(f"ae_{x}", ae), pl.Series(f"ae_{x}_lower", lo), pl.Series(f"ae_{x}_upper", hi))
    return out


def ae_chart(ae: pl.DataFrame, what: str, basis_name: str | None) -> Chart:
    """A/E by one key with intervals, against the basis and the model, exposure bars on y2."""
    k = ae["key"].to_list()
    series = [Series(t("exposure-years"), k, ae["exposure_years"].to_list(), kind="bar", axis="y2")]
    for x, name in (("basis", t("A/E against {basis} (95% interval)", basis=basis_name)),
                    ("model", t("A/E against the fitted GLM (95% interval)"))):
        if f"ae_{x}" in ae.columns:
            series.append(Series(name, k, ae[f"ae_{x}"].to_list(), kind="errorbars",
                                 lower=ae[f"ae_{x}_lower"].to_list(), upper=ae[f"ae_{x}_upper"].to_list()))
    series.append(Series(t("A/E = 1"), k, [1.0] * len(k), kind="line", dash=True))
    return Chart(t("Actual / expected claims by {what}", what=what), what, t("actual / expected claims (ratio)"),
                 tuple(series), y2_label=t("exposure-years"), x_categorical=True, facet="ae",
                 caption=t("A/E = claims / expected claims; exact Poisson (Garwood) interval, expected treated as known."))


def _ae_table(ae: pl.DataFrame, what: str) -> pl.DataFrame:
    names = {"key": what, "exposure_years": t("exposure (exposure-years)"), "claims": t("claims"),
             "expected_basis": t("expected, basis"), "ae_basis": t("A/E, basis"), "ae_basis_lower": t("lower (95%)"),
             "ae_basis_upper": t("upper (95%)"), "expected_model": t("expected, GLM"), "ae_model": t("A/E, GLM"),
             "ae_model_lower": t("lower, GLM (95%)"), "ae_model_upper": t("upper, GLM (95%)")}
    if "ae_basis" not in ae.columns:
        names.update(ae_model_lower=t("lower (95%)"), ae_model_upper=t("upper (95%)"))
    return ae.with_columns(pl.col("claims").round(0).cast(pl.Int64)).rename({c: names[c] for c in ae.columns if c in names})


# ----------------------------------------------------------------------------- the sections
def add_pricing(rep: Report, ctx: Any) -> None:
    """Add the pricing views (groups, relativities and age curve, A/E) to ``rep`` from a finished run."""
    from engine.report._assumptions import level_factor

    cfg, tb, cells, glm = ctx.cfg, ctx.tables, ctx.cells, ctx.glm
    ic = cfg.incidence
    basis = None if ic.basis.lower() in ("", "none") else ic.basis.lower()
    basis_name = f"{basis.upper()} {ic.table.upper()}" if basis else None
    s = rep.section("groups", t("Risk groups and their rules"))
    table, chart = groups_view(tb["segments"])
    Report.table(s, table)
    Report.chart(s, chart)
    s = rep.section("relativities", t("One-way relativities and the age curve"))
    for f in glm.spec_["factors"]:
        if f["name"] in cells.columns:
            rel = factor_relativities(cells, glm, f["name"], ic.level)
            Report.chart(s, relativity_chart(rel, f["name"]))
            keep = () if f["name"] in ("age", "sex") else (f["name"],)  # the contract's columns are translated
            Report.table(s, relativity_table(rel, f["name"]), keep=keep)
    inc = tb.get("incidence")
    if glm.spec_.get("age") is not None and inc is not None and basis is not None:
        k = level_factor(float(inc["claims"].sum()), float(inc["expected"].sum()), ic.level)[0]
        ref = ", ".join(f"{f['name']} = {f['reference']}" for f in glm.spec_["factors"] if f["name"] != "sex")
        for sex in sorted(cells["sex"].unique().to_list()):
            curve = age_curve(cells, glm, inc, sex, k, ic.level)
            Report.chart(s, age_curve_chart(curve, sex, basis_name, ref or t("none")))
    factors = [f for f in cfg.study.factors if f in cells.columns and f not in ("age", "sex")]
    s = rep.section("actual-expected", t("Actual / expected by calendar period and by {factors}",
                                         factors=", ".join(factors)) if factors else t("Actual / expected by calendar period"))
    keys: list[tuple[str, Any]] = [(t("calendar period"), calendar_label(cells)), *[(f, f) for f in factors]]
    expected = with_expected(cells, glm, basis, ic.table)
    for what, key in keys:
        ae = actual_expected(expected, key, level=ic.level)
        Report.chart(s, ae_chart(ae, what, basis_name))
        Report.table(s, _ae_table(ae, what), keep=(what,))


__all__ = ["PER", "actual_expected", "add_pricing", "ae_chart", "age_curve", "age_curve_chart", "calendar_label",
           "factor_relativities", "groups_view", "relativity_chart", "relativity_table",
           "with_expected"]
