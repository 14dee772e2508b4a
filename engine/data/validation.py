"""Validation of members and claims against the data contract, with a row account (``engine.validate``).

Every input row ends either in the clean frame or in a set-aside frame with a
``reason``; ``rows read = rows used + rows set aside`` is checked, not assumed. The rules
and their reasons are listed in :mod:`engine.data._validation_rules`.

Two passes give the same account and the same set-aside rows: the in-memory pass (one frame,
every member held) and the streaming pass of :mod:`engine.data._validation_stream` (file by
file, duplicate ids found by a hash-bucket pass; a list of frames, ``stream=True`` or an
``executor``).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor
from typing import Any

import polars as pl

from engine.data._coerce import api_input
from engine.data._validation_rules import (AMOUNT_BENEFIT_FACTOR, DEFAULT_MAX_AMOUNT, MAX_AGE_AT_JOIN, MAX_DATE,
                                           MIN_DATE, RESERVED, ValidationResult, _codes, _collect, _duplicated,
                                           _member_rule_list, _rename_reserved, _sources, check_claims,
                                           claim_rules, make_account, member_codes_table, read_claims_frame)
from engine.data._validation_stream import member_parts, validate_parts

__all__ = ["AMOUNT_BENEFIT_FACTOR", "DEFAULT_MAX_AMOUNT", "MAX_AGE_AT_JOIN", "MAX_DATE", "MIN_DATE", "RESERVED",
           "ValidationResult", "claim_rules", "validate"]

def _member_codes(
    m: pl.LazyFrame, as_of: dt.date, min_date: dt.date, max_date: dt.date, sources: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """Members collected once with the UInt8 rule code ``_code`` (0 = clean), the code -> reason table, id hashes."""
    schema = m.collect_schema()
    rules = _member_rule_list(schema, as_of, min_date, max_date)
    dup_code = len(rules) + 1
    df = _collect(m.with_columns(_codes(rules).alias("__fentan_code")), sources, "members")
    ids = df.get_column("member_id")
    hashes = ids.hash(seed=0)
    dup = _duplicated(ids, hashes)
    if dup.any():
        df = df.with_columns(
            pl.when((pl.col("__fentan_code") == 0) & dup).then(pl.lit(dup_code, dtype=pl.UInt8)).otherwise(pl.col("__fentan_code")).alias("__fentan_code")
        )
    codes = member_codes_table(rules)
    return df, codes, hashes



@api_input(frames=("members", "claims"), dates=("as_of", "min_date", "max_date"))
def validate(
    members: pl.LazyFrame | pl.DataFrame | list[pl.LazyFrame | pl.DataFrame],
    claims: pl.LazyFrame | pl.DataFrame,
    *,
    as_of: dt.date | None = None,
    min_date: dt.date = MIN_DATE,
    max_date: dt.date = MAX_DATE,
    as_of_source: str = "as_of",
    max_amount: float = DEFAULT_MAX_AMOUNT,
    stream: bool | None = None,
    executor: Executor | None = None,
    fingerprint: bool = False,
    scratch: str | None = None,
    scratch_options: dict[str, Any] | None = None,
) -> ValidationResult:
    """Apply the data-contract rules and account for every row.

    Parameters
    ----------
    members : frames already in the contract dtypes (see :func:`engine.read_members`), or a
        list of frames (partitions, e.g. one per file).
    claims : claims in the contract dtypes (held in memory: they are few).
    as_of : the data's as-of date: a birth, join, exit, event or approval after it is set aside
        (default: derived from the claims, :func:`engine.data.window.derive_as_of`).
    min_date, max_date : plausible date range; dates outside are set aside.
    as_of_source : what defined an ``as_of`` given here (recorded in the account).
    max_amount : largest plausible claim amount; a larger one is set aside (``implausible_amount``).
    stream : validate partition by partition, never holding every member (default: when
        ``members`` is a list or an ``executor`` or ``scratch`` is given). A frame read by
        :func:`engine.read_members` from several files is split into its files.
    executor : a ``concurrent.futures.Executor`` (threads or a spawned process pool, see
        :func:`engine.cells.process_pool`) running the streaming pass's tasks (one per
        partition, then one per id bucket). The result does not depend on it. Without ``scratch``,
        its workers must share this machine's disk (a thread or process pool of it).
    fingerprint : also give ``member_fingerprint``, the multiset fingerprint of the clean members
        (:func:`engine.data.row_hash.multiset_fingerprint`); streaming, it is taken in the
        validation's own read of each partition.
    scratch : a location every worker of ``executor`` reaches (``s3://bucket/prefix``, or a shared
        directory) for the streaming pass's id buckets, in a unique sub-directory removed at the end
        (:mod:`engine.data._scratch`); then the executor may be any, a remote Dask cluster's
        included. Default: a local temporary directory. An unwritable one is a ConfigError.
    scratch_options : storage options of a remote ``scratch`` (endpoint, credentials; the
        environment's ``AWS_*`` are read too), as in :func:`engine.read_members`.

    Returns
    -------
    ValidationResult
        With ``stream``, ``members`` is lazy (each partition's clean rows, read again when
        collected) and ``member_parts`` lists them partition by partition.

    Notes
    -----
    Account identity, checked: ``read = used + sum(set_aside)`` for members and claims. The
    account also holds ``as_of``: ``{"date", "source"}`` (what defined the as-of date).

    In memory, the members are read once: every row rule is one integer-coded expression
    evaluated in that pass, duplicate ids are found on 64-bit hashes of the ids
    (confirmed exactly on the few candidate rows), and claimants' ids are looked up
    the same way. Streaming, see :mod:`engine.data._validation_stream`. Both give the same
    account, the same set-aside rows and the same clean rows, in input order.
    """
    c_schema, craw = read_claims_frame(claims)  # decoding errors name the file
    if as_of is None:
        from engine.data.window import derive_as_of

        as_of, as_of_source = derive_as_of(craw.lazy())
    rule = claim_rules(c_schema, min_date, max_date, as_of, max_amount)
    if stream is None:
        stream = executor is not None or scratch is not None or isinstance(members, (list, tuple))
    if stream:
        return validate_parts(member_parts(members), members, claims, craw, c_schema, rule, as_of=as_of,
                              as_of_source=as_of_source, min_date=min_date, max_date=max_date, executor=executor,
                              fingerprint=fingerprint, scratch=scratch, scratch_options=scratch_options)
    if isinstance(members, (list, tuple)):
        members = pl.concat([m.lazy() for m in members], how="diagonal_relaxed")

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

    # claimants' ids among the members: known ids, and those with a clean row (an id with a
    # clean row has exactly one row, so "known and not clean" means set aside)
    claimant_ids = craw.get_column("member_id").drop_nulls().unique()
    ids = mdf.get_column("member_id")
    hit = hashes.is_in(claimant_ids.hash(seed=0).implode()) & ids.is_not_null()
    sub = mdf.filter(hit).select("member_id", "__fentan_code")
    sub = sub.filter(pl.col("member_id").is_in(claimant_ids.implode()))
    all_ids = sub.get_column("member_id").unique()
    clean_ids = sub.filter(pl.col("__fentan_code") == 0).get_column("member_id").unique()
    del mdf, bad, ids, hit, hashes

    clean_claims, rejected_claims, c_read = check_claims(craw, c_schema, rule, all_ids, clean_ids)
    account = make_account(m_read, m_used, rejected_members, c_read, clean_claims, rejected_claims, as_of,
                           as_of_source, members, claims)
    member_fp = None
    if fingerprint:
        from engine.data.row_hash import multiset_fingerprint

        member_fp = multiset_fingerprint([clean_df])
    return ValidationResult(clean_df.lazy(), clean_claims.lazy(), rejected_members, rejected_claims, account,
                            member_fingerprint=member_fp)
