"""Validation of members and claims against the data contract, with a row account.

Every input row ends either in the clean frame or in a set-aside frame with a
``reason``; ``rows read = rows used + rows set aside`` is checked, not assumed.

Notes
-----
Member reasons, first match wins, in this order: ``null_<column>`` for a null
required column, ``date_out_of_range`` (a date before ``min_date`` or after
``max_date``), ``unknown_sex``, ``birth_in_future`` (birth after ``as_of``),
``birth_after_join``, ``exit_before_join``, ``implausible_age`` (older than
``MAX_AGE_AT_JOIN`` = 110 at joining, i.e. more than 111 x 365.25 days between
birth and join: a placeholder birth date such as 1900-01-01), ``join_after_as_of``
and ``exit_after_as_of`` (a join or exit after the data's as-of date), then ``duplicate_member_id`` (every
row of an id that occurs more than once: which one is right is unknowable).

Claim reasons: ``null_<column>``, ``nonfinite_amount`` (NaN or inf),
``nonpositive_amount``, ``implausible_amount`` (above ``max_amount``: 10 x the largest configured
benefit in ``fentan run``, else 10^10), ``date_out_of_range``, ``event_after_as_of``,
``approval_after_as_of`` (an event or approval after the data's as-of date), ``duplicate_claim_row`` (an exact
copy of an earlier row: the first is kept), ``duplicate_claim_id`` (every row
of an id whose rows disagree), ``unknown_member`` (no member row has that id)
and ``member_set_aside`` (the member exists but was set aside).

Claims before joining, in the waiting period, after exit, and second claims are
well-formed: :func:`engine.exposure` decides them and keeps them aside.

An input column named ``reason`` is renamed ``reason_input`` (``reason`` is the
set-aside reason). Data that cannot be decoded (a corrupt Parquet page) raises
:class:`engine.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin
from engine.data._coerce import api_input
from engine.errors import DataError, EngineError, InputFileError, SchemaError
from engine.data.schema import CLAIM_REQUIRED, MEMBER_REQUIRED, NULLABLE, SEX_CODES
from engine.conventions import DAYS_PER_YEAR

#: largest plausible claim amount when no benefit is configured (CNY); ``fentan run`` uses
#: ``AMOUNT_BENEFIT_FACTOR`` x the largest benefit of its plans instead
DEFAULT_MAX_AMOUNT = 1e10
AMOUNT_BENEFIT_FACTOR = 10.0
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2100, 12, 31)
#: oldest plausible age at joining (years); older means a placeholder birth date such as 1900-01-01
MAX_AGE_AT_JOIN = 110
#: a column of these names in the input is renamed ``<name>_input`` (``reason`` is the set-aside reason)
RESERVED = ("reason",)


@dataclass
class ValidationResult(ResultMixin):
    """Clean frames, set-aside frames (with ``reason``) and the row account.

    Attributes
    ----------
    members, claims : LazyFrame
        Rows that passed every rule, contract dtypes.
    rejected_members, rejected_claims : DataFrame
        Rows set aside, with an extra String column ``reason``.
    account : dict
        ``{"members": {"read", "used", "set_aside": {reason: n}}, "claims": {...}}``.
    """

    members: pl.LazyFrame
    claims: pl.LazyFrame
    rejected_members: pl.DataFrame
    rejected_claims: pl.DataFrame
    account: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pl.DataFrame:
        """The row account as a table: ``table`` (members, claims), ``status`` (read, used,
        set aside: <reason>), ``rows``."""
        rows: list[dict[str, Any]] = []
        for what, acc in self.account.items():
            if not isinstance(acc, dict) or "read" not in acc:
                continue
            rows.append({"table": what, "status": "read", "rows": int(acc["read"])})
            rows.append({"table": what, "status": "used", "rows": int(acc["used"])})
            for reason, n in sorted(acc.get("set_aside", {}).items()):
                rows.append({"table": what, "status": f"set aside: {reason}", "rows": int(n)})
        return pl.DataFrame(rows, schema={"table": pl.String, "status": pl.String, "rows": pl.Int64})

    def _key_numbers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for what, acc in self.account.items():
            if isinstance(acc, dict) and "read" in acc:
                out[f"{what} read"] = int(acc["read"])
                out[f"{what} used"] = int(acc["used"])
        return out

    @property
    def usable(self) -> bool:
        """True when at least one member row is clean."""
        return int(self.account["members"]["used"]) > 0

    def require_usable(self, where: str) -> None:
        """Raise a one-line :class:`DataError` naming ``where`` unless a member row is clean."""
        acc = self.account["members"]
        if int(acc["used"]) > 0:
            return
        if int(acc["read"]) == 0:
            raise DataError(f"{where}: holds no member rows")
        top = ", ".join(f"{r}: {n:,}" for r, n in sorted(acc["set_aside"].items(), key=lambda kv: -kv[1])[:3])
        raise DataError(f"{where}: no usable member row: all {int(acc['read']):,} rows set aside ({top})")


def _first_reason(rules: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``when(rule1).then(reason1).when(...)...otherwise(None)`` as a String expression."""
    expr: Any = pl
    for reason, cond in rules:
        expr = expr.when(cond).then(pl.lit(reason))
    return expr.otherwise(pl.lit(None, dtype=pl.String)).alias("reason")


def _date_rule(cols: list[str], schema: pl.Schema, lo: dt.date, hi: dt.date) -> pl.Expr:
    conds = [(pl.col(c) < lo) | (pl.col(c) > hi) for c in cols if c in schema]
    return pl.any_horizontal(conds).fill_null(False) if conds else pl.lit(False)


def claim_rules(schema: pl.Schema, min_date: dt.date, max_date: dt.date, as_of: dt.date | None = None,
                max_amount: float = DEFAULT_MAX_AMOUNT) -> pl.Expr:
    """The row-local claim rules as one ``reason`` expression (see module Notes)."""
    rules = [(f"null_{c}", pl.col(c).is_null()) for c in CLAIM_REQUIRED if c not in NULLABLE]
    rules += [
        ("nonfinite_amount", ~pl.col("amount").is_finite()),
        ("nonpositive_amount", pl.col("amount") <= 0),
        ("implausible_amount", pl.col("amount") > max_amount),
        ("date_out_of_range", _date_rule(["event_date", "approved_date"], schema, min_date, max_date)),
    ]
    if as_of is not None:
        rules.append(("event_after_as_of", pl.col("event_date") > as_of))
        if "approved_date" in schema:
            rules.append(("approval_after_as_of", (pl.col("approved_date") > as_of).fill_null(False)))
    return _first_reason(rules)


def _account(read: int, used: int, rejected: pl.DataFrame, what: str) -> dict[str, Any]:
    counts = rejected.group_by("reason").len().sort("reason") if rejected.height else None
    set_aside = {} if counts is None else dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))
    if read != used + sum(set_aside.values()):
        raise EngineError(f"internal: {what} row account does not balance: {read} != {used} + {sum(set_aside.values())}")
    return {"read": read, "used": used, "set_aside": set_aside}


def _sources(frame: Any) -> list[str]:
    return list(getattr(frame, "_fentan_sources", None) or [])


def _files(frame: Any) -> dict[str, Any] | None:
    """The files found but not read behind a frame read by :mod:`engine.data.io`, with the reasons.

    (The files read are not counted here, so the account is the same for any layout of the same
    rows; ``fentan run`` records them in ``run.json``.)
    """
    if getattr(frame, "_fentan_sources", None) is None:
        return None
    return {"skipped": dict(sorted((getattr(frame, "_fentan_skipped", None) or {}).items()))}


def _collect(lf: pl.LazyFrame, sources: list[str], what: str) -> pl.DataFrame:
    """Collect ``lf``; a decoding failure becomes a one-line :class:`InputFileError` naming the file."""
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:  # noqa: B014
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for f in sources:  # error path only: find the file that cannot be decoded
            if f.lower().endswith((".csv", ".csv.gz")):
                continue  # CSV files are parsed in full when read (engine.data._csv)
            try:
                pl.read_parquet(f, glob=False)
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc1:  # noqa: B014
                one = (str(exc1).strip().splitlines() or [type(exc1).__name__])[0]
                raise InputFileError(f"{f}: the data cannot be decoded, the file is corrupt ({one})") from None
        where = ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "") if sources else what
        raise InputFileError(f"{where}: the {what} data cannot be read ({msg})") from None


def _rename_reserved(lf: pl.LazyFrame, sources: list[str] | None = None) -> pl.LazyFrame:
    names = lf.collect_schema().names()
    ren = {c: f"{c}_input" for c in RESERVED if c in names}
    clash = [v for v in ren.values() if v in names]
    if clash:
        where = ", ".join(sources[:3]) + (" ..." if len(sources) > 3 else "") + ": " if sources else ""
        raise SchemaError(f"{where}columns '{clash[0][:-6]}' and '{clash[0]}': '{clash[0][:-6]}' is reserved "
                          "for the set-aside reason; rename one")
    return lf.rename(ren) if ren else lf


def _codes(rules: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """The first matching rule as a small integer (0 = clean; ``i + 1`` = ``rules[i]``)."""
    expr: Any = pl
    for i, (_, cond) in enumerate(rules):
        expr = expr.when(cond).then(pl.lit(i + 1, dtype=pl.UInt8))
    return expr.otherwise(pl.lit(0, dtype=pl.UInt8))


def _member_rule_list(schema: pl.Schema, as_of: dt.date, min_date: dt.date, max_date: dt.date) -> list[tuple[str, pl.Expr]]:
    rules = [(f"null_{c}", pl.col(c).is_null()) for c in MEMBER_REQUIRED if c not in NULLABLE]
    rules += [
        ("date_out_of_range", _date_rule(["birth_date", "join_date", "exit_date"], schema, min_date, max_date)),
        ("unknown_sex", ~pl.col("sex").is_in(list(SEX_CODES))),
        ("birth_in_future", pl.col("birth_date") > as_of),
        ("birth_after_join", pl.col("birth_date") > pl.col("join_date")),
        ("exit_before_join", (pl.col("exit_date") < pl.col("join_date")).fill_null(False)),
        ("implausible_age", (pl.col("join_date").cast(pl.Int32) - pl.col("birth_date").cast(pl.Int32))
         > int((MAX_AGE_AT_JOIN + 1) * DAYS_PER_YEAR)),
        ("join_after_as_of", pl.col("join_date") > as_of),
        ("exit_after_as_of", (pl.col("exit_date") > as_of).fill_null(False)),
    ]
    return rules


def _duplicated(ids: pl.Series, hashes: pl.Series) -> pl.Series:
    """Boolean mask: the (non-null) id occurs more than once. Exact.

    ``hashes`` are 64-bit hashes of ``ids``. Repeated hashes are found by sorting
    the integers (a hash table over 10^7 keys is several times slower), then only
    the rows whose hash repeats are compared as strings.
    """
    s = hashes.sort()
    rep = s.filter(s == s.shift(1)).unique()
    mask = np.zeros(len(ids), dtype=bool)
    if len(rep):
        cand = (hashes.is_in(rep.implode()) & ids.is_not_null()).arg_true()
        if len(cand):
            sub = ids.gather(cand)
            mask[cand.filter(sub.is_duplicated()).to_numpy()] = True
    return pl.Series("_dup", mask)


def _member_codes(
    m: pl.LazyFrame, as_of: dt.date, min_date: dt.date, max_date: dt.date, sources: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """Members collected once with the UInt8 rule code ``_code`` (0 = clean), the code -> reason table, id hashes."""
    schema = m.collect_schema()
    rules = _member_rule_list(schema, as_of, min_date, max_date)
    dup_code = len(rules) + 1
    names = [r for r, _ in rules] + ["duplicate_member_id"]
    df = _collect(m.with_columns(_codes(rules).alias("__fentan_code")), sources, "members")
    ids = df.get_column("member_id")
    hashes = ids.hash(seed=0)
    dup = _duplicated(ids, hashes)
    if dup.any():
        df = df.with_columns(
            pl.when((pl.col("__fentan_code") == 0) & dup).then(pl.lit(dup_code, dtype=pl.UInt8)).otherwise(pl.col("__fentan_code")).alias("__fentan_code")
        )
    codes = pl.DataFrame({"__fentan_code": range(1, len(names) + 1), "reason": names},
                         schema={"__fentan_code": pl.UInt8, "reason": pl.String})
    return df, codes, hashes


@api_input(frames=("members", "claims"), dates=("as_of", "min_date", "max_date"))
def validate(
    members: pl.LazyFrame | pl.DataFrame,
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    as_of: dt.date | None = None,
    min_date: dt.date = MIN_DATE,
    max_date: dt.date = MAX_DATE,
    as_of_source: str = "as_of",
    max_amount: float = DEFAULT_MAX_AMOUNT,
) -> ValidationResult:
    """Apply the data-contract rules and account for every row.

    Parameters
    ----------
    members, claims : frames already in the contract dtypes (see :func:`engine.read_members`).
    as_of : the data's as-of date: a birth, join, exit, event or approval after it is set aside
        (default: derived from the claims, :func:`engine.data.window.derive_as_of`).
    min_date, max_date : plausible date range; dates outside are set aside.
    as_of_source : what defined an ``as_of`` given here (recorded in the account).
    max_amount : largest plausible claim amount; a larger one is set aside (``implausible_amount``).

    Returns
    -------
    ValidationResult

    Notes
    -----
    Account identity, checked: ``read = used + sum(set_aside)`` for members and claims. The
    account also holds ``as_of``: ``{"date", "source"}`` (what defined the as-of date).

    The members are read once: every row rule is one integer-coded expression
    evaluated in that pass, duplicate ids are found on 64-bit hashes of the ids
    (confirmed exactly on the few candidate rows), and claimants' ids are looked up
    the same way. Clean and set-aside rows keep the input order.
    """
    c = _rename_reserved(claims.lazy(), _sources(claims))
    c_schema = c.collect_schema()
    craw = _collect(c.with_row_index("__fentan_row"), _sources(claims), "claims")  # decoding errors name the file
    if as_of is None:
        from engine.data.window import derive_as_of

        as_of, as_of_source = derive_as_of(craw.lazy())

    mdf, codes, hashes = _member_codes(_rename_reserved(members.lazy(), _sources(members)), as_of, min_date, max_date, _sources(members))
    m_read = mdf.height
    bad = mdf.get_column("__fentan_code") != 0
    n_bad = int(bad.sum())
    if n_bad:
        rejected_members = mdf.filter(bad).join(codes, on="__fentan_code", how="left", maintain_order="left").drop("__fentan_code")
        clean_df = mdf.filter(~bad).drop("__fentan_code")
    else:
        rejected_members = mdf.clear().with_columns(pl.lit(None, dtype=pl.String).alias("reason")).drop("__fentan_code")
        clean_df = mdf.drop("__fentan_code")
    m_used = m_read - n_bad

    cdf = craw.with_columns(claim_rules(c_schema, min_date, max_date, as_of, max_amount))
    del craw
    # claimants' ids among the members: known ids, and those with a clean row (an id with a
    # clean row has exactly one row, so "known and not clean" means set aside)
    claimant_ids = cdf.get_column("member_id").drop_nulls().unique()
    ids = mdf.get_column("member_id")
    hit = hashes.is_in(claimant_ids.hash(seed=0).implode()) & ids.is_not_null()
    sub = mdf.filter(hit).select("member_id", "__fentan_code")
    sub = sub.filter(pl.col("member_id").is_in(claimant_ids.implode()))
    all_ids = sub.get_column("member_id").unique()
    clean_ids = sub.filter(pl.col("__fentan_code") == 0).get_column("member_id").unique()
    del mdf, bad, ids, hit, hashes

    content_cols = [col for col in c_schema.names()]
    # duplicates among rows that pass the row rules
    ok = cdf.filter(pl.col("reason").is_null())
    exact_dup_rows = ok.filter(pl.struct(content_cols).is_duplicated() & ~pl.struct(content_cols).is_first_distinct())
    ok_rest = ok.filter(~pl.col("__fentan_row").is_in(exact_dup_rows["__fentan_row"].implode()))
    conflict_ids = ok_rest.group_by("claim_id").len().filter(pl.col("len") > 1).select("claim_id")
    reason = (
        pl.when(pl.col("reason").is_not_null())
        .then(pl.col("reason"))
        .when(pl.col("__fentan_row").is_in(exact_dup_rows["__fentan_row"].implode()))
        .then(pl.lit("duplicate_claim_row"))
        .when(pl.col("claim_id").is_in(conflict_ids["claim_id"].implode()))
        .then(pl.lit("duplicate_claim_id"))
        .when(~pl.col("member_id").is_in(all_ids.implode()))
        .then(pl.lit("unknown_member"))
        .when(~pl.col("member_id").is_in(clean_ids.implode()))
        .then(pl.lit("member_set_aside"))
        .otherwise(None)
        .alias("reason")
    )
    cdf = cdf.with_columns(reason)
    rejected_claims = cdf.filter(pl.col("reason").is_not_null()).sort("__fentan_row").drop("__fentan_row")
    clean_claims = cdf.filter(pl.col("reason").is_null()).sort("__fentan_row").drop("__fentan_row", "reason")

    account = {
        "members": _account(m_read, m_used, rejected_members, "members"),
        "claims": _account(cdf.height, clean_claims.height, rejected_claims, "claims"),
        "as_of": {"date": as_of.isoformat(), "source": as_of_source},
    }
    for what, frame in (("members", members), ("claims", claims)):
        if (files := _files(frame)) is not None:  # every file found: read, or skipped with its reason
            account[what]["files"] = files
    return ValidationResult(clean_df.lazy(), clean_claims.lazy(), rejected_members, rejected_claims, account)
