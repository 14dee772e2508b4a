"""The data contract: required columns, their normalised dtypes, and casting.

Notes
-----
members: ``member_id`` (String), ``birth_date``, ``join_date``, ``exit_date``
(Date; ``exit_date`` null = still a member), ``sex`` (String 'M'/'F'), optional
``plan_id`` and any rating factors (kept as they are).

claims: ``claim_id`` (String), ``member_id`` (String), ``event_date`` (Date),
``amount`` (Float64), optional ``approved_date`` (Date) and ``cause`` (String).

Ids are normalised to String so that an int id in one partition and a string id
in another compare equal. A float id is refused (it silently loses digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from engine.errors import SchemaError

MEMBER_REQUIRED: dict[str, pl.DataType] = {
    "member_id": pl.String(),
    "birth_date": pl.Date(),
    "sex": pl.String(),
    "join_date": pl.Date(),
    "exit_date": pl.Date(),
}
MEMBER_OPTIONAL: dict[str, pl.DataType] = {"plan_id": pl.String()}

CLAIM_REQUIRED: dict[str, pl.DataType] = {
    "claim_id": pl.String(),
    "member_id": pl.String(),
    "event_date": pl.Date(),
    "amount": pl.Float64(),
}
CLAIM_OPTIONAL: dict[str, pl.DataType] = {"approved_date": pl.Date(), "cause": pl.String()}

#: Columns that may be null (all other required columns must be present and non-null).
NULLABLE = {"exit_date", "approved_date", "cause", "plan_id"}

SEX_CODES = ("M", "F")


def _cast_expr(name: str, src: pl.DataType, dst: pl.DataType, where: str) -> pl.Expr:
    """Return the expression casting column ``name`` from ``src`` to ``dst``.

    Raises :class:`SchemaError` naming ``where`` and the column when the cast
    would be lossy or meaningless (a float id, a string date, a number as date).
    """
    col = pl.col(name)
    if src == dst:
        return col
    if src == pl.Null:
        return col.cast(dst)
    if dst == pl.String():
        if src.is_integer() or src in (pl.String, pl.Categorical) or isinstance(src, pl.Enum):
            return col.cast(pl.String)
        raise SchemaError(
            f"{where}: column '{name}' has type {src}; expected a string or integer id"
            + (" (a float id loses digits)" if src.is_float() else "")
        )
    if dst == pl.Date():
        if isinstance(src, pl.Datetime):
            return col.dt.date()
        raise SchemaError(f"{where}: column '{name}' has type {src}; expected a date (Parquet DATE or TIMESTAMP)")
    if dst == pl.Float64():
        if src.is_numeric():
            return col.cast(pl.Float64)
        raise SchemaError(f"{where}: column '{name}' has type {src}; expected a number")
    raise SchemaError(f"{where}: column '{name}' has type {src}; expected {dst}")  # pragma: no cover


def clean_sex(expr: pl.Expr) -> pl.Expr:
    """The contract's clean-up of a ``sex`` value (String): surrounding white space removed, upper case."""
    return expr.str.strip_chars().str.to_uppercase()


def normalise(
    lf: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    required: Mapping[str, pl.DataType],
    optional: Mapping[str, pl.DataType],
    where: str,
    sex: bool = True,
) -> pl.LazyFrame:
    """Check required columns and cast contract columns to their normalised dtypes.

    Parameters
    ----------
    lf : LazyFrame to normalise.
    schema : its (already resolved) schema.
    required, optional : the contract columns and their target dtypes.
    where : the file or glob, used in error messages.
    sex : apply :func:`clean_sex` to ``sex``; False only for data whose values are known to be clean
        already (the streaming validation checks a file's clean rows, see
        :mod:`engine.data._validation_stream`).

    Returns
    -------
    LazyFrame with the contract columns cast and every other column untouched.
    """
    missing = [c for c in required if c not in schema]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {', '.join(repr(c) for c in missing)}")
    exprs = []
    for name, dst in {**required, **optional}.items():
        if name not in schema:
            continue
        expr = _cast_expr(name, schema[name], dst, where)
        if name == "sex" and sex:
            expr = clean_sex(expr)
        exprs.append(expr.alias(name))
    return lf.with_columns(exprs)


def normalise_members(lf: pl.LazyFrame, schema: Mapping[str, pl.DataType], where: str) -> pl.LazyFrame:
    """Normalise a members frame to the contract (see module Notes)."""
    return normalise(lf, schema, MEMBER_REQUIRED, MEMBER_OPTIONAL, where)


def members_raw_sex(lf: pl.LazyFrame, schema: Mapping[str, pl.DataType], where: str) -> pl.LazyFrame | None:
    """A members frame normalised without the ``sex`` clean-up (None when it has no ``sex``): what the
    streaming validation hands on instead when a file's clean rows prove the clean-up a no-op."""
    return normalise(lf, schema, MEMBER_REQUIRED, MEMBER_OPTIONAL, where, sex=False) if "sex" in schema else None


@dataclass(frozen=True)
class Partition:
    """One partition (a file) of an input as read: what the streaming validation is handed per file.

    Attributes
    ----------
    frame : the partition normalised to the contract.
    sources : the file(s) behind it, named by a decoding error.
    raw_sex : members only: the same partition without the ``sex`` clean-up (:func:`members_raw_sex`).
    """

    frame: pl.LazyFrame
    sources: tuple[str, ...] = ()
    raw_sex: pl.LazyFrame | None = None


def normalise_claims(lf: pl.LazyFrame, schema: Mapping[str, pl.DataType], where: str) -> pl.LazyFrame:
    """Normalise a claims frame to the contract (see module Notes)."""
    return normalise(lf, schema, CLAIM_REQUIRED, CLAIM_OPTIONAL, where)
