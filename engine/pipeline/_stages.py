"""The stages of ``fentan run`` (see :mod:`engine.pipeline.runner`): each reads and extends a :class:`engine.pipeline._state.RunState`.

Every stage writes its tables into the staging directory ``ctx.out`` with the
atomic writers of :mod:`engine.data.io`; the batch driver swaps the directory in at the end.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from engine.conventions import ANNUAL_CAP_CNY, FEE, PER_CLAIMANT_CAP_CNY, SHARING_DAYS, WAITING_DAYS
from engine.data.factor_levels import check_factor_types
from engine.errors import ConfigError, DataError
from engine.pipeline._clean_members import clean_frame, clean_parts, contract_first, member_partitions
from engine.pipeline._state import RunState

MEMBER_KEYS = ("age", "sex")
#: length of the early and late windows whose shares are decomposed (calendar months)
DECOMPOSE_MONTHS = 3


#: plan used when the configuration names no plan file: Xianghubao's published main plan
DEFAULT_PLANS = {
    "planset": {"name": "pooled", "description": "one pooled plan (Xianghubao main plan rules)"},
    "plans": [{"name": "pooled", "eligibility": {"age": [0, 59]},
               "benefit": [{"age": [0, 39], "amount": 300000}, {"age": [40, 59], "amount": 100000}],
               "fee": FEE, "waiting_days": WAITING_DAYS, "sharing_days": list(SHARING_DAYS), "rule": "equal",
               "caps": {"per_claimant": PER_CLAIMANT_CAP_CNY, "annual": ANNUAL_CAP_CNY}}],
}


def plansets(ctx: RunState) -> tuple[Any, list[tuple[str, Any]]]:
    """The pooled plan set (or None) and the plan files of the configuration, ``[(file stem, plan set)]``."""
    from engine.plans.planset import load_plans, plans_from_dict

    pc = ctx.cfg.plans
    pooled = load_plans(pc.pooled) if pc.pooled else None
    files = [(Path(f).stem, load_plans(f)) for f in pc.files]
    if not files:
        files = [("default", plans_from_dict(DEFAULT_PLANS, "built-in default plan"))]
    scale = cap_scale(ctx.cfg)
    if scale != 1.0:
        pooled = _scaled(pooled, scale) if pooled is not None else None
        files = [(label, _scaled(p, scale)) for label, p in files]
    return pooled, files


def cap_scale(cfg: Any) -> float:
    """Factor of every per-claimant cap of a run: 1, or the design size over ``[plans] scale_caps_to_members``.

    Notes
    -----
    factor = PER_CLAIMANT_CAP_DESIGN_MEMBERS / scale_caps_to_members
    (:func:`engine.conventions.per_claimant_cap_scale`); the annual cap, per member, is not scaled.
    """
    from engine.conventions import per_claimant_cap_scale

    n = cfg.plans.scale_caps_to_members
    return 1.0 if n is None else per_claimant_cap_scale(n)


def _scaled(pset: Any, scale: float) -> Any:
    """The plan set with every per-claimant cap multiplied by ``scale``."""
    import dataclasses

    plans = tuple(dataclasses.replace(p, per_claimant_cap=None if p.per_claimant_cap is None
                                      else p.per_claimant_cap * scale) for p in pset)
    return dataclasses.replace(pset, plans=plans)


# --------------------------------------------------------------------------- validate
def stage_validate(ctx: RunState) -> None:
    """Read and validate members and claims; fix the study window.

    With ``[run] stream = true`` (the default) validation streams file by file and ``ctx.members``
    is the list of each file's clean rows, lazy (read again by every later pass, one task per file);
    the study window and the null factors come from per-file aggregates. ``stream = false`` keeps the
    in-memory path (every clean member collected, cut into one slice per file); both give the same bytes.
    """
    from engine.data.io import read_claims, read_members, resolve_paths
    from engine.data.validation import validate
    from engine.data.window import study_window

    cfg = ctx.cfg
    ctx.plansets = plansets(ctx)  # plan files are checked before the data is read
    mlf = read_members(cfg.data.members, storage_options=cfg.data.storage_options)
    schema = mlf.collect_schema()  # from the footers: the factors are checked before any data is read
    missing = [f for f in cfg.study.factors if f not in schema]
    if missing:
        raise ConfigError(f"{cfg.source}: study.factors: members have no column '{missing[0]}'")
    check_factor_types(schema, cfg.study.factors, f"{cfg.source}: study.factors")
    stream = cfg.run.stream
    res = validate(mlf, read_claims(cfg.data.claims, storage_options=cfg.data.storage_options), as_of=cfg.data.as_of,
                   as_of_source="data.as_of (the configuration)", max_amount=_max_amount(ctx.plansets),
                   stream=stream, executor=_validation_pool(ctx.executor, cfg.run.scratch) if stream else None,
                   fingerprint=stream and bool(cfg.output.report), scratch=cfg.run.scratch if stream else None,
                   scratch_options=cfg.data.storage_options)
    res.require_usable(str(cfg.data.members))
    # no sort of the members: every later step reduces them to integer counts (exposure days, members by
    # pool and dates, members sharing at the end) whose sums do not depend on the row order, and sums
    # claim amounts in the claims' canonical order below
    filled: list[str] = []
    if stream:
        members, joins, filled = clean_parts(res.member_parts, cfg.study.factors)
    else:
        frame = clean_frame(res.members, cfg.study.factors)
        members, joins = member_partitions(frame, len(resolve_paths(cfg.data.members))), frame.select("join_date")
    claims = res.claims.collect()
    claims = claims.drop([c for c in ("eligible", "reason") if c in claims.columns])
    claims = claims.sort([c for c in ("claim_id", "member_id", "event_date") if c in claims.columns], nulls_last=True)
    as_of = dt.date.fromisoformat(res.account["as_of"]["date"])
    win = study_window(cfg.study.start, cfg.study.end, as_of, res.account["as_of"]["source"], joins, claims,
                       where="study")
    start, end = win["study_start"], win["study_end"]
    if end < start:
        raise ConfigError(f"{cfg.source}: study.end: {end} ({win['study_end_source']}) is before the study start "
                          f"{start} ({win['study_start_source']})")
    ctx.validation, ctx.claims, ctx.start, ctx.end = res, claims, start, end
    ctx.members = members
    # the report's data fingerprint, taken in validation's read (a filled factor changes the rows: None)
    ctx.members_fingerprint = None if filled else res.member_fingerprint
    ctx.window = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in win.items()}
    ctx.facts.update(study_start=start.isoformat(), study_end=end.isoformat())
    ctx.facts.update(ctx.window)


def _validation_pool(executor: Any, scratch: str | None) -> Any:
    """The executor of validation's tasks: ``executor`` itself with a scratch location (``[run] scratch``,
    which every worker reaches), else only when its workers share this machine's disk (a thread or
    process pool): the tasks exchange member ids through a temporary directory of this machine, so on
    another executor (e.g. a remote Dask cluster) without a scratch location they run here.
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if scratch is not None:
        return executor
    return executor if isinstance(executor, (ThreadPoolExecutor, ProcessPoolExecutor)) else None


def _max_amount(plansets: tuple[Any, list[tuple[str, Any]]]) -> float:
    """Largest plausible claim amount: 10 x the largest benefit of the configured plans."""
    from engine.data.validation import AMOUNT_BENEFIT_FACTOR, DEFAULT_MAX_AMOUNT

    pooled, files = plansets
    sets = [p for p in (pooled, *(f for _, f in files)) if p is not None]
    top = max((b.amount for ps in sets for plan in ps.plans for b in plan.benefits), default=0.0)
    return AMOUNT_BENEFIT_FACTOR * top if top > 0 else DEFAULT_MAX_AMOUNT


def account(ctx: RunState) -> dict[str, Any]:
    """Row account: validation plus the claims set aside at exposure time; identity checked."""
    res = ctx.validation
    acc = {k: {"read": int(v["read"]), "used": int(v["used"]), "set_aside": dict(v["set_aside"]),
               **({"files": v["files"]} if "files" in v else {})}
           for k, v in res.account.items() if isinstance(v, dict) and "read" in v}
    rej = ctx.exposure_rejected
    if rej is not None:
        c = acc["claims"]
        for reason, n in rej.group_by("reason").len().sort("reason").iter_rows():
            c["set_aside"][str(reason)] = c["set_aside"].get(str(reason), 0) + int(n)
        c["used"] = int(ctx.cells["claims"].sum())
        c["used_amount_cny"] = float(ctx.cells["amount"].sum())
    for what, a in acc.items():
        a["set_aside"] = dict(sorted(a["set_aside"].items()))
        a["set_aside_total"] = int(sum(a["set_aside"].values()))
        a["identity_holds"] = a["read"] == a["used"] + a["set_aside_total"]
        if not a["identity_holds"]:
            raise RuntimeError(f"internal: {what}: read {a['read']} != used {a['used']} + set aside {a['set_aside_total']}")
    if ctx.window:  # what defined the as-of date and the study window
        acc["window"] = dict(ctx.window)
    return acc


# --------------------------------------------------------------------------- exposure
def stage_exposure(ctx: RunState) -> None:
    """Cells by period, age, sex and the rating factors; select cells by duration band."""
    from engine.cells._exposure import exposure_tables
    from engine.data.schema import CLAIM_OPTIONAL, CLAIM_REQUIRED, MEMBER_OPTIONAL, MEMBER_REQUIRED
    from engine.shares._stream import FoldedCounts, counts_of_batches

    cfg = ctx.cfg
    kw = dict(start=ctx.start, end=ctx.end, period=cfg.study.period, waiting_days=cfg.study.waiting_days,
              terminate_on_claim=cfg.study.terminate_on_claim, duration_bands=cfg.study.duration_bands)
    by = [*MEMBER_KEYS, *[f for f in cfg.study.factors if f not in MEMBER_KEYS]]
    # one pass over the members gives both tables (the cells and the select cells by duration band), the
    # claimants' member rows with the history's pool keys and, in this process, the history's member counts:
    # the history stage need not read the members again
    found: list[pl.DataFrame] = []
    keys, const, _ = _history_keys(ctx)
    counter = _history_counter(ctx, by, keys, const) if ctx.executor is None else None
    counted = FoldedCounts(counter) if counter is not None else None
    (cells, sel), rejected = exposure_tables(
        ctx.members, ctx.claims, bys=[by, ["age", "sex", "duration_band"]], executor=ctx.executor,
        claimant_cols=[k for k in keys if k not in const] + (counter.cols if counter is not None else []),
        claimants_out=found, extra=None if counted is None else (counter.fn, counted), **kw)
    ctx.exposure_claimants = found[0] if found else None
    if counted is not None:
        ctx.member_counts = counts_of_batches(ctx.members, counted)
    if cells.height == 0 or float(cells["exposure_years"].sum()) <= 0:
        raise DataError(f"{cfg.data.members}: no exposure in the study window {ctx.start} to {ctx.end}")
    ctx.cells, ctx.select_cells, ctx.exposure_rejected, ctx.by = cells, sel, rejected, by
    ctx.write("cells", cells)
    res = ctx.validation
    ctx.write("rejected/rejected_members", canonical_rows(res.rejected_members, [*MEMBER_REQUIRED, *MEMBER_OPTIONAL]))
    ctx.write("rejected/rejected_claims", canonical_rows(
        pl.concat([res.rejected_claims.with_columns(pl.lit("validation").alias("stage")),
                   rejected.with_columns(pl.lit("exposure").alias("stage"))], how="diagonal_relaxed"),
        [*CLAIM_REQUIRED, *CLAIM_OPTIONAL]))
    ctx.facts["claims_used"] = int(cells["claims"].sum())
    ctx.facts["exposure_years"] = float(cells["exposure_years"].sum())


def _history_keys(ctx: RunState) -> tuple[list[str], dict[str, str], str | None]:
    """The history's pool key columns, constant columns (:func:`engine.shares._stream.pool_keys`) and plan column."""
    from engine.shares._stream import column_names, pool_keys

    names = column_names(ctx.members)
    hc = ctx.cfg.history
    plan_col = hc.plan_col if hc.plan_col and hc.plan_col in names else None
    return (*pool_keys(names, plan_col, None), plan_col)


def _history_counter(ctx: RunState, by: list[str], keys: list[str], const: dict[str, str]) -> Any:
    """The history stage's per-batch member counts (:func:`engine.shares._stream.batch_counter`) by pool ``keys``
    (and ``const`` columns: :func:`_history_keys`), for the exposure pass."""
    from engine.shares._stream import batch_counter

    w = ctx.cfg.study.waiting_days
    return batch_counter(keys, const, [(a, b) for a, b, _ in _decomposition_windows(ctx)], waiting_days=w,
                         rel_cols=[], at_end=(ctx.end, w, list(by)))


def canonical_rows(df: pl.DataFrame, first: list[str], last: tuple[str, ...] = ("reason", "stage")) -> pl.DataFrame:
    """Set-aside rows in a canonical layout: the same bytes whatever the input files' layout and order.

    Columns: ``first`` (the data contract's, in its order), then every other column by name
    (hive partition columns sit wherever the files put them), then ``last``. Rows are sorted
    by every sortable column (nulls last); rows equal in all of them are indistinguishable.
    """
    df = df.select(contract_first(df.columns, first, last))
    keys = [c for c, t in df.schema.items() if not t.is_nested() and t != pl.Object]
    return df.sort(keys, nulls_last=True, maintain_order=True) if keys and df.height > 1 else df


# --------------------------------------------------------------------------- incidence
def stage_incidence(ctx: RunState) -> None:
    """Crude incidence vs the basis, GLM with held-out deviance, Lorenz/Gini, calibration, select, credibility."""
    from engine.estimators.credibility import limited_fluctuation_table
    from engine.estimators.crude import incidence
    from engine.estimators.metrics import calibration_table, gini, mean_poisson_deviance, split_cells
    from engine.estimators.select import SelectFactors

    cfg = ctx.cfg
    ic = cfg.incidence
    cells = ctx.cells
    basis = None if ic.basis.lower() in ("", "none") else ic.basis.lower()
    inc = incidence(_sums(cells, ["age", "sex"]), by=["age", "sex"], level=ic.level, basis=basis, table=ic.table)
    ctx.write("incidence", inc)
    factors = tuple(["sex", *[f for f in cfg.study.factors if f not in MEMBER_KEYS]])
    inter = tuple(tuple(p) for p in ic.interactions)
    for p in inter:
        if len(p) != 2 or any(x not in factors for x in p):
            raise ConfigError(f"{cfg.source}: incidence.interactions: {list(p)} must be a pair of study factors or sex")
    glm_kw = dict(factors=factors, age=None if ic.age == "none" else ic.age, age_df=ic.age_df,
                  interactions=inter, alpha=ic.alpha, level=ic.level)
    train, test = split_cells(cells, test_size=ic.holdout_share, random_state=ic.seed)
    # cells by risk class (periods summed, deterministically) for the GLM, Lorenz, Gini and calibration
    keys = ["age", *factors]
    # the held-out fit and its score read exposure and claims only: no other column is summed
    train, test = _sums(train, keys, ("exposure_years", "claims")), _sums(test, keys, ("exposure_years", "claims"))
    held = _fit_glm(ctx, glm_kw, train)
    mu = np.asarray(held.predict(test), dtype=float)
    y, e = test["claims"].to_numpy(), test["exposure_years"].to_numpy()
    overall = float(train["claims"].sum()) / max(float(train["exposure_years"].sum()), 1e-12)
    dev_model = mean_poisson_deviance(y, mu * e, e)
    dev_null = mean_poisson_deviance(y, np.full_like(e, overall) * e, e)
    g = gini(y, mu, e) if y.sum() > 0 else float("nan")
    calib = calibration_table(y, mu, e, n_bins=10, level=ic.level) if y.sum() > 0 else pl.DataFrame()
    glm = _fit_glm(ctx, glm_kw, _sums(cells, keys))
    ctx.write("glm_coefficients", glm.summary)
    ctx.write("calibration", calib)
    ctx.glm, ctx.lorenz = glm, (y, mu, e)
    try:
        sel = _sums(ctx.select_cells, ["age", "sex", "duration_band"])
        sf = SelectFactors(bands=tuple(cfg.study.duration_bands), level=ic.level).fit(sel).summary
    except (DataError, ConfigError, ValueError) as exc:  # too few claims in a band: reported, not fatal
        sf = pl.DataFrame({"note": [f"select factors not estimated: {str(exc).splitlines()[0]}"]})
    ctx.write("select_factors", sf)
    by = [f for f in cfg.study.factors if f not in MEMBER_KEYS] or ["sex"]
    cred = limited_fluctuation_table(_sums(cells, by), by=by, full_standard=ic.credibility_full_standard)
    ctx.write("credibility", cred)
    ctx.facts.update(heldout_deviance=dev_model, heldout_deviance_null=dev_null,
                     heldout_deviance_explained=(1 - dev_model / dev_null) if dev_null > 0 else None,
                     gini=g, overall_rate=float(cells["claims"].sum()) / float(cells["exposure_years"].sum()))
    if basis is not None and "expected" in inc.columns:
        exp_ = float(inc["expected"].sum())
        ctx.facts["ae_vs_basis"] = float(inc["claims"].sum()) / exp_ if exp_ > 0 else None


def _sums(cells: pl.DataFrame, keys: list[str], only: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Cells summed over every key not in ``keys``, bit-for-bit deterministic (sequential sums).

    ``only``: sum just these of the cell sums (default: every one present).

    Downstream functions then sum single rows per group, so reruns give the same bytes
    (polars' parallel float group sums may differ in the last bit from run to run).

    Notes
    -----
    Float columns: :func:`engine.cells.sums.group_sums` (each group's values added in sorted order).
    Integer columns (``exposure_days``, ``sharing_days``, ``claims``): Int64 sums, exact in any order,
    hence equal to the rounded float sums while every total stays below 2**53.
    """
    from engine.cells.sums import group_sums

    cols = [c for c in ("exposure_days", "exposure_years", "sharing_days", "sharing_years", "claims", "amount")
            if c in cells.columns and (only is None or c in only)]
    ints = [c for c in ("exposure_days", "sharing_days", "claims") if c in cols and cells.schema[c].is_integer()]
    out = group_sums(cells, keys, [c for c in cols if c not in ints])
    if ints:  # integer sums are exact in any order: no sort by value needed
        isums = cells.group_by(keys).agg(pl.col(ints).fill_null(0).cast(pl.Int64).sum())
        out = (out.join(isums, on=keys, how="left", nulls_equal=True, maintain_order="left")
               .with_columns(pl.col(ints).fill_null(0)))
    floats = [c for c in ("exposure_days", "sharing_days", "claims") if c in cols and c not in ints]
    return out.select(*keys, *cols).with_columns([pl.col(c).round(0).cast(pl.Int64) for c in floats])


def _fit_glm(ctx: RunState, kw: dict[str, Any], cells: pl.DataFrame) -> Any:
    """Fit the GLM; a singular design (a level without claims in small data) is retried with a small ridge."""
    import warnings

    from engine.errors import ModelError
    from engine.estimators.glm import PoissonGLM

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = PoissonGLM(**kw).fit(cells)
        except ModelError:
            alpha = max(float(kw.get("alpha") or 0.0), 1e-4)
            ctx.facts["glm_ridge_fallback"] = alpha
            model = PoissonGLM(**{**kw, "alpha": alpha}).fit(cells)
    for w in caught:
        ctx.facts.setdefault("warnings", []).append(f"GLM: {str(w.message).splitlines()[0]}")
    return model


# --------------------------------------------------------------------------- segmentation
def stage_segmentation(ctx: RunState) -> None:
    """Risk groups and the granularity frontier."""
    from engine.segmentation.segmenter import RiskSegmenter

    cfg = ctx.cfg
    sc = cfg.segmentation
    kw = dict(method=sc.method, max_groups=sc.max_groups, n_groups=sc.n_groups,
              min_claims=sc.min_claims, max_rel_width=sc.max_rel_width, min_expected_claims=sc.min_expected_claims,
              max_clauses=sc.max_clauses, search_depth=sc.search_depth, n_folds=sc.n_folds, random_state=sc.seed,
              monotone_age=sc.monotone_age,
              contiguous_age=sc.contiguous_age, features=sc.features, adjust_for=tuple(sc.adjust_for),
              rules={"groups": sc.rules} if sc.method == "rules" else None,
              fee=cfg.history.fee)  # own shares and cross-subsidy carry the management fee, like every share
    try:
        seg = RiskSegmenter(**kw).fit(ctx.cells)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: segmentation: {exc}") from None
    except DataError as exc:
        if "floor" not in str(exc):
            raise
        # the pool is too small for the floor even as one group: keep one pooled group and say so
        which = (f"min_expected_claims = {sc.min_expected_claims}" if sc.min_expected_claims is not None
                 else f"min_claims = {sc.min_claims}")
        msg = (f"segmentation.{which}: {str(exc).splitlines()[0]}; "
               "the run keeps one pooled group")
        ctx.facts.setdefault("warnings", []).append(msg)
        seg = RiskSegmenter(**{**kw, "n_groups": 1, "max_groups": 1, "min_claims": 0.0,
                               "max_rel_width": None, "min_expected_claims": None}).fit(ctx.cells)
    cols = ["group", "name", "rule", "members", "exposure_years", "claims", "rate", "rate_lower", "rate_upper",
            "relativity_to_portfolio", "predicted_rate", "expected_claims_per_period", "share_cv", "credibility",
            "own_share", "cross_subsidy", "cross_subsidy_per_period", "cross_subsidy_pct", "meets_floor", "note"]
    # a group's rate relative to the named reference, the whole portfolio's crude rate over the study
    # (engine.segmentation.metrics.relativity_to_portfolio, computed by the segmenter)
    groups = seg.groups_
    ctx.write("segments", groups.select([c for c in cols if c in groups.columns]))
    ctx.write("frontier", seg.frontier_)
    ctx.segmenter = seg
    ctx.facts.update(groups=int(seg.n_groups_), recommended_groups=int(seg.recommended_k_),
                     segmentation_choice=seg.selection_)


# --------------------------------------------------------------------------- history
def stage_history(ctx: RunState) -> None:
    """Realised shares per sharing period and the decomposition of their change.

    One pass over the members gives every count both need (members by pool, join and exit date for the
    history; eligible days, members sharing and sharing days of the two decomposition windows) and the
    members sharing at the study's end by risk class (for the plans' risk table, ``ctx.sharing_at_end``);
    one look-up gives the claimants' rows, shared by the claims' classification, the history and the
    decomposition.
    """
    from engine.cells._exposure import classify_claims
    from engine.shares._stream import DEFAULT_BATCH, claimant_rows, history_counts
    from engine.shares.history import history_from_counts, with_shares_per_month_year

    cfg = ctx.cfg
    hc = cfg.history
    members = ctx.members  # partitions: each is reduced to counts, none is joined whole
    keys, const, plan_col = _history_keys(ctx)
    claimants = claimant_rows(members, ctx.claims.get_column("member_id").unique(), [*keys, "join_date", "exit_date"],
                              const, found=ctx.exposure_claimants)
    classified = classify_claims(claimants.select("member_id", "join_date", "exit_date"), ctx.claims,
                                 waiting_days=cfg.study.waiting_days)
    classified = classified.collect() if isinstance(classified, pl.LazyFrame) else classified
    ctx.classified = classified
    windows = _decomposition_windows(ctx)
    counts = ctx.member_counts if ctx.member_counts is not None else history_counts(  # exposure pass, or read here
        members, keys, const, [(a, b) for a, b, _ in windows], waiting_days=cfg.study.waiting_days, rel_cols=[],
        at_end=(ctx.end, cfg.study.waiting_days, list(ctx.by)), batch_size=DEFAULT_BATCH, executor=ctx.executor)
    ctx.sharing_at_end = counts.at_end  # for the plans' risk table
    hist = history_from_counts(
        cast(pl.DataFrame, counts.cohorts), claimants, classified, keys, start=ctx.start, end=ctx.end, sharing_days=tuple(hc.sharing_days),
        fee=hc.fee, waiting_days=cfg.study.waiting_days, reporting_lag_days=hc.reporting_lag_days,
        per_claimant_cap=(hc.per_claimant_cap * cap_scale(cfg)) if hc.per_claimant_cap else None,
        annual_cap=hc.annual_cap or None,
    )
    ctx.write("history", with_shares_per_month_year(hist, tuple(hc.sharing_days)))
    from engine.projection._caps import caps_cost_realised

    caps = caps_cost_realised(hist, plan_col)
    ctx.write("caps_cost_history", caps)
    ctx.facts["caps_cost_history"] = caps.to_dicts()
    ctx.write("decomposition", _decomposition(ctx, windows, counts.windows, claimants))


def _month_start(d: dt.date, add: int = 0) -> dt.date:
    m = d.year * 12 + d.month - 1 + add
    return dt.date(m // 12, m % 12 + 1, 1)


def _decomposition_windows(ctx: RunState) -> list[tuple[dt.date, dt.date, str]]:
    """The early and late windows of the decomposition, ``(period_start, notice_date, label)``; none when the
    study is too short.

    Early: the first full calendar month after the first cohort's waiting period and the next two; late:
    the last :data:`DECOMPOSE_MONTHS` full months.
    """
    early0 = _month_start(ctx.start + dt.timedelta(days=ctx.cfg.study.waiting_days), 1)
    late0 = _month_start(ctx.end + dt.timedelta(days=1), -DECOMPOSE_MONTHS)
    if _month_start(early0, DECOMPOSE_MONTHS) > late0:
        return []

    def window(m0: dt.date) -> tuple[dt.date, dt.date, str]:
        return (m0, _month_start(m0, DECOMPOSE_MONTHS) - dt.timedelta(days=1),
                f"{m0:%Y-%m}..{_month_start(m0, DECOMPOSE_MONTHS - 1):%Y-%m}")

    return [window(early0), window(late0)]


def _decomposition(ctx: RunState, windows: list[tuple[dt.date, dt.date, str]], counts: list[Any],
                   claimants: pl.DataFrame) -> pl.DataFrame:
    """Shapley (or configured) attribution: early months -> last months -> stationary.

    ``counts`` are the windows' member counts (:func:`engine.shares._stream.history_counts`), ``claimants``
    the claimants' member rows. "Stationary" is the last window's experience with no dilution, no reporting
    lag and select effects worn off (:func:`engine.shares.decomposition.sustainable`) at that window's mix:
    not the sustainable share of the projection, whose mix is at its equilibrium.
    """
    from engine.shares._drivers import drivers_from_counts
    from engine.shares.decomposition import decompose, sustainable

    hc = ctx.cfg.history
    if not windows:
        return pl.DataFrame({"note": ["study too short for a decomposition (needs two 3-month windows after the waiting period)"]})
    try:  # both windows from the one pass over the members
        a, b = drivers_from_counts(counts, claimants, ctx.classified, windows, fee=hc.fee,
                                   reporting_lag_days=hc.reporting_lag_days)
        s = sustainable(b)
        parts = [decompose(a, b, method=hc.decompose).with_columns(pl.lit(f"{a.label} -> {b.label}").alias("comparison"),
                                                                    pl.lit(a.share_cny).alias("share_a_cny"),
                                                                    pl.lit(b.share_cny).alias("share_b_cny")),
                 decompose(b, s, method=hc.decompose).with_columns(pl.lit(f"{b.label} -> stationary").alias("comparison"),
                                                                    pl.lit(b.share_cny).alias("share_a_cny"),
                                                                    pl.lit(s.share_cny).alias("share_b_cny"))]
    except (DataError, ConfigError, ZeroDivisionError, ValueError) as exc:
        return pl.DataFrame({"note": [f"decomposition not computed: {str(exc).splitlines()[0]}"]})
    ctx.facts.update(share_early_cny=a.share_cny, share_late_cny=b.share_cny, share_late_stationary_cny=s.share_cny,
                     share_early_month=a.label, share_late_month=b.label)
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.select("comparison", pl.exclude("comparison"))
