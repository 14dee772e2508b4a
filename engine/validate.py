"""Validation of members and claims against the data contract, with a row account.

Every input row ends either in the clean frame or in a set-aside frame with a
``reason``; ``rows read = rows used + rows set aside`` is checked, not assumed.

Notes
-----
Member reasons, first match wins, in this order: ``null_<column>`` for a null
required column, ``date_out_of_range`` (a date before ``min_date`` or after
``max_date``), ``unknown_sex``, ``birth_in_future`` (birth after ``as_of``),
``birth_after_join``, ``exit_before_join``, then ``duplicate_member_id`` (every
row of an id that occurs more than once: which one is right is unknowable).

Claim reasons: ``null_<column>``, ``nonfinite_amount`` (NaN or inf),
``nonpositive_amount``, ``date_out_of_range``, ``duplicate_claim_row`` (an exact
copy of an earlier row: the first is kept), ``duplicate_claim_id`` (every row
of an id whose rows disagree), ``unknown_member`` (no member row has that id)
and ``member_set_aside`` (the member exists but was set aside).

Claims before joining, in the waiting period, after exit, and second claims are
well-formed: :func:`engine.exposure` decides them and keeps them aside.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine.errors import EngineError
from engine.schema import CLAIM_REQUIRED, MEMBER_REQUIRED, NULLABLE, SEX_CODES

MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2100, 12, 31)


@dataclass
class ValidationResult:
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
    def usable(self) -> bool:
        """True when at least one member row is clean."""
        return int(self.account["members"]["used"]) > 0


def _first_reason(rules: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``when(rule1).then(reason1).when(...)...otherwise(None)`` as a String expression."""
    expr: Any = pl
    for reason, cond in rules:
        expr = expr.when(cond).then(pl.lit(reason))
    return expr.otherwise(pl.lit(None, dtype=pl.String)).alias("reason")


def _date_rule(cols: list[str], schema: pl.Schema, lo: dt.date, hi: dt.date) -> pl.Expr:
    conds = [(pl.col(c) < lo) | (pl.col(c) > hi) for c in cols if c in schema]
    return pl.any_horizontal(conds).fill_null(False) if conds else pl.lit(False)


def member_rules(schema: pl.Schema, as_of: dt.date, min_date: dt.date, max_date: dt.date) -> pl.Expr:
    """The member rules as one ``reason`` expression (see module Notes)."""
    rules = [(f"null_{c}", pl.col(c).is_null()) for c in MEMBER_REQUIRED if c not in NULLABLE]
    rules += [
        ("date_out_of_range", _date_rule(["birth_date", "join_date", "exit_date"], schema, min_date, max_date)),
        ("unknown_sex", ~pl.col("sex").is_in(list(SEX_CODES))),
        ("birth_in_future", pl.col("birth_date") > as_of),
        ("birth_after_join", pl.col("birth_date") > pl.col("join_date")),
        ("exit_before_join", (pl.col("exit_date") < pl.col("join_date")).fill_null(False)),
    ]
    return _first_reason(rules)


def claim_rules(schema: pl.Schema, min_date: dt.date, max_date: dt.date) -> pl.Expr:
    """The row-local claim rules as one ``reason`` expression (see module Notes)."""
    rules = [(f"null_{c}", pl.col(c).is_null()) for c in CLAIM_REQUIRED if c not in NULLABLE]
    rules += [
        ("nonfinite_amount", ~pl.col("amount").is_finite()),
        ("nonpositive_amount", pl.col("amount") <= 0),
        ("date_out_of_range", _date_rule(["event_date", "approved_date"], schema, min_date, max_date)),
    ]
    return _first_reason(rules)


def _account(read: int, used: int, rejected: pl.DataFrame, what: str) -> dict[str, Any]:
    counts = rejected.group_by("reason").len().sort("reason") if rejected.height else None
    set_aside = {} if counts is None else dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))
    if read != used + sum(set_aside.values()):
        raise EngineError(f"internal: {what} row account does not balance: {read} != {used} + {sum(set_aside.values())}")
    return {"read": read, "used": used, "set_aside": set_aside}


def validate(
    members: pl.LazyFrame | pl.DataFrame,
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    as_of: dt.date | None = None,
    min_date: dt.date = MIN_DATE,
    max_date: dt.date = MAX_DATE,
) -> ValidationResult:
    """Apply the data-contract rules and account for every row.

    Parameters
    ----------
    members, claims : frames already in the contract dtypes (see :func:`engine.read_members`).
    as_of : date after which a birth date is "in the future" (default: today).
    min_date, max_date : plausible date range; dates outside are set aside.

    Returns
    -------
    ValidationResult

    Notes
    -----
    Account identity, checked: ``read = used + sum(set_aside)`` for members and claims.
    """
    as_of = as_of or dt.date.today()
    m = members.lazy()
    c = claims.lazy()
    m_schema = m.collect_schema()
    c_schema = c.collect_schema()

    m = m.with_columns(member_rules(m_schema, as_of, min_date, max_date))
    dup_ids = m.group_by("member_id").agg(pl.len().alias("n")).filter((pl.col("n") > 1) & pl.col("member_id").is_not_null())
    m = m.join(dup_ids.select("member_id", pl.lit(True).alias("_dup")), on="member_id", how="left", nulls_equal=False, maintain_order="left")
    m = m.with_columns(
        pl.when(pl.col("reason").is_null() & pl.col("_dup").fill_null(False))
        .then(pl.lit("duplicate_member_id"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    ).drop("_dup")
    m_flags = m.select("member_id", "reason").collect()
    m_read = m_flags.height
    rejected_members = m.filter(pl.col("reason").is_not_null()).collect()
    clean_members = m.filter(pl.col("reason").is_null()).drop("reason")
    m_used = int(m_flags["reason"].is_null().sum())

    all_ids = m_flags.select("member_id").filter(pl.col("member_id").is_not_null()).unique()
    bad_ids = m_flags.filter(pl.col("reason").is_not_null() & pl.col("member_id").is_not_null()).select("member_id").unique()

    cdf = c.with_columns(claim_rules(c_schema, min_date, max_date)).with_row_index("_row").collect()
    content_cols = [col for col in c_schema.names()]
    # duplicates among rows that pass the row rules
    ok = cdf.filter(pl.col("reason").is_null())
    exact_dup_rows = ok.filter(pl.struct(content_cols).is_duplicated() & ~pl.struct(content_cols).is_first_distinct())
    ok_rest = ok.filter(~pl.col("_row").is_in(exact_dup_rows["_row"].implode()))
    conflict_ids = ok_rest.group_by("claim_id").len().filter(pl.col("len") > 1).select("claim_id")
    reason = (
        pl.when(pl.col("reason").is_not_null())
        .then(pl.col("reason"))
        .when(pl.col("_row").is_in(exact_dup_rows["_row"].implode()))
        .then(pl.lit("duplicate_claim_row"))
        .when(pl.col("claim_id").is_in(conflict_ids["claim_id"].implode()))
        .then(pl.lit("duplicate_claim_id"))
        .when(~pl.col("member_id").is_in(all_ids["member_id"].implode()))
        .then(pl.lit("unknown_member"))
        .when(pl.col("member_id").is_in(bad_ids["member_id"].implode()))
        .then(pl.lit("member_set_aside"))
        .otherwise(None)
        .alias("reason")
    )
    cdf = cdf.with_columns(reason)
    rejected_claims = cdf.filter(pl.col("reason").is_not_null()).sort("_row").drop("_row")
    clean_claims = cdf.filter(pl.col("reason").is_null()).sort("_row").drop("_row", "reason")

    account = {
        "members": _account(m_read, m_used, rejected_members, "members"),
        "claims": _account(cdf.height, clean_claims.height, rejected_claims, "claims"),
    }
    return ValidationResult(clean_members, clean_claims.lazy(), rejected_members, rejected_claims, account)


from engine._callable import make_callable  # noqa: E402

make_callable(__name__)
