"""The validation rules, the result and the row account, shared by the in-memory and the streaming pass.

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
import functools
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine._results import ResultMixin
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
    member_parts : list of LazyFrame or None
        Streaming validation only: the clean members partition by partition (``members`` is
        their concatenation); each is read again from its file when collected.
    member_fingerprint : str or None
        Streaming validation with ``fingerprint=True`` only: the multiset fingerprint of the clean
        members (:func:`engine.data.row_hash.multiset_fingerprint` of ``member_parts``), taken in
        validation's own read.
    """

    members: pl.LazyFrame
    claims: pl.LazyFrame
    rejected_members: pl.DataFrame
    rejected_claims: pl.DataFrame
    account: dict[str, Any] = field(default_factory=dict)
    member_parts: list[pl.LazyFrame] | None = None
    member_fingerprint: str | None = None

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
        # != per code, not ~is_in: a third of the CPU of the rules at 10^6 rows (a null stays null)
        ("unknown_sex", functools.reduce(operator.and_, [pl.col("sex") != c for c in SEX_CODES])),
        ("birth_in_future", pl.col("birth_date") > as_of),
        ("birth_after_join", pl.col("birth_date") > pl.col("join_date")),
        ("exit_before_join", (pl.col("exit_date") < pl.col("join_date")).fill_null(False)),
        ("implausible_age", (pl.col("join_date").cast(pl.Int32) - pl.col("birth_date").cast(pl.Int32))
         > int((MAX_AGE_AT_JOIN + 1) * DAYS_PER_YEAR)),
        ("join_after_as_of", pl.col("join_date") > as_of),
        ("exit_after_as_of", (pl.col("exit_date") > as_of).fill_null(False)),
    ]
    return rules


def _repeated(hashes: pl.Series) -> np.ndarray:
    """Boolean mask: the 64-bit hash occurs more than once in ``hashes``.

    Repeated values are found by sorting the integers (a hash table over 10^7 keys is several
    times slower; polars' sort of 10^6 UInt64 took about 20 ms on 2 cores, NumPy's 55), then
    marked by one ``is_in`` over the (few) repeated values.
    """
    s = hashes.sort().to_numpy()
    rep = s[1:][s[1:] == s[:-1]]
    if not len(rep):
        return np.zeros(len(hashes), dtype=bool)
    return hashes.is_in(pl.Series(rep).implode()).to_numpy()


def _duplicated(ids: pl.Series, hashes: pl.Series) -> pl.Series:
    """Boolean mask: the (non-null) id occurs more than once. Exact.

    ``hashes`` are 64-bit hashes of ``ids``; only the rows whose hash repeats
    (:func:`_repeated`) are compared as strings.
    """
    mask = np.zeros(len(ids), dtype=bool)
    cand = (pl.Series(_repeated(hashes)) & ids.is_not_null()).arg_true()
    if len(cand):
        sub = ids.gather(cand)
        mask[cand.filter(sub.is_duplicated()).to_numpy()] = True
    return pl.Series("_dup", mask)


def member_codes_table(rules: list[tuple[str, pl.Expr]]) -> pl.DataFrame:
    """The rule code -> reason table: ``rules`` in order, then ``duplicate_member_id``."""
    names = [r for r, _ in rules] + ["duplicate_member_id"]
    return pl.DataFrame({"__fentan_code": range(1, len(names) + 1), "reason": names},
                        schema={"__fentan_code": pl.UInt8, "reason": pl.String})


def read_claims_frame(claims: Any) -> tuple[pl.Schema, pl.DataFrame]:
    """The claims collected once with their input row number ``__fentan_row`` (decoding errors name the file)."""
    c = _rename_reserved(claims.lazy(), _sources(claims))
    c_schema = c.collect_schema()
    return c_schema, _collect(c.with_row_index("__fentan_row"), _sources(claims), "claims")


def check_claims(craw: pl.DataFrame, c_schema: pl.Schema, rule: pl.Expr, all_ids: pl.Series,
                 clean_ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Clean and set-aside claims (input order) and the claims read.

    ``rule`` is :func:`claim_rules`; ``all_ids`` are the claimants' ids found among the members,
    ``clean_ids`` those with a clean member row.
    """
    cdf = craw.with_columns(rule)
    content_cols = list(c_schema.names())
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
    rejected = cdf.filter(pl.col("reason").is_not_null()).sort("__fentan_row").drop("__fentan_row")
    clean = cdf.filter(pl.col("reason").is_null()).sort("__fentan_row").drop("__fentan_row", "reason")
    return clean, rejected, cdf.height


def make_account(m_read: int, m_used: int, rejected_members: pl.DataFrame, c_read: int, clean_claims: pl.DataFrame,
                 rejected_claims: pl.DataFrame, as_of: dt.date, as_of_source: str, members: Any,
                 claims: Any) -> dict[str, Any]:
    """The row account of members and claims (identity checked), the as-of date and the files skipped."""
    account = {
        "members": _account(m_read, m_used, rejected_members, "members"),
        "claims": _account(c_read, clean_claims.height, rejected_claims, "claims"),
        "as_of": {"date": as_of.isoformat(), "source": as_of_source},
    }
    for what, frame in (("members", members), ("claims", claims)):
        if (files := _files(frame)) is not None:  # every file found: read, or skipped with its reason
            account[what]["files"] = files
    return account
