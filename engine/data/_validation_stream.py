"""Streaming validation: members checked partition by partition, never all in memory.

Four steps; the first three are each a set of independent tasks an executor may run:

1. **one task per partition** (a file) reads its member ids only and writes their 64-bit
   hashes, with their row numbers, into ``B`` hash buckets (``hash(member_id) mod B``: NumPy
   arrays in a temporary directory, or below a scratch location every worker reaches,
   :mod:`engine.data._scratch`; grouped by bucket, ``B`` = 256);
2. **one task per group of buckets**: an id's rows all land in one bucket, so the rows whose
   hash occurs more than once across all partitions are found bucket by bucket. The buckets
   are grouped, in order, into tasks of about 10^6 ids (one task for 10^6 members, about 100
   for 10^8), so a task holds a bounded number of hashes whatever the size of the data;
3. **one task per partition**: its rows are read once, every row rule is evaluated (the same
   integer-coded expression as the in-memory pass), and the task returns the rows set aside
   (with their row number in the partition), the claimants' ids with their rule code, the
   row count, and the clean rows whose hash repeats (few);
4. **the driver** compares the ids of the rows whose hash repeats exactly: the clean rows of
   an id that occurs more than once become ``duplicate_member_id`` (a hash collision of
   distinct ids sets nothing aside); claims are checked against the claimants' clean member
   ids.

Notes
-----
The account, the set-aside rows (input order: partition, then row) and the clean rows are
identical to the in-memory pass of :func:`engine.validate`. Memory is bounded by one
partition plus one bucket group; the clean members stay on disk, each partition's clean rows
being its rows minus the (few) rows set aside (:func:`_clean`).

The same read of step 3 serves two later savings. A partition is read without the ``sex``
clean-up (strip, upper case), which the task applies itself; when it changes no row passing
every rule, every later pass reads that file's clean rows without it. With ``fingerprint``, the
task also sums the row hashes of its rows passing every rule (:func:`engine.data.row_hash.lane_sums`)
and keeps those of its clean candidate duplicates; the driver subtracts the ones set aside as
duplicated ids, which gives the multiset fingerprint of the clean members without reading them again.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import polars as pl

from engine._executor_check import check_executor
from engine.data._compact import compact
from engine.data._validation_rules import (ValidationResult, _codes, _collect, _member_rule_list, _rename_reserved,
                                           _repeated, _sources, check_claims, make_account, member_codes_table)
from engine.data._scratch import BucketDir, bucket_dir
from engine.data.schema import Partition
from engine.errors import DataError

#: hash buckets each partition's id hashes are written into (``hash(member_id) mod N_BUCKETS``)
N_BUCKETS = 256
#: ids checked by one task of the duplicate-id pass (consecutive buckets are grouped up to about this many)
IDS_PER_TASK = 1_000_000
_ROW = "__fentan_row"
_CODE = "__fentan_code"
_HASH = "__fentan_hash"
_KEEP = "__fentan_keep"
_RAW_SEX = "__fentan_raw_sex"


def member_parts(members: Any) -> list[Partition]:
    """The partitions of ``members``: a list as given, a frame read from several files split into its files
    (the :class:`engine.data.schema.Partition` list :func:`engine.data.io.read_members` gives)."""
    if isinstance(members, (list, tuple)):
        parts = list(members)
    else:
        parts = list(getattr(members, "_fentan_parts", None) or [members])
    if not parts:
        raise DataError("members: no partition given (an empty list)")
    out = []
    for p in parts:
        if isinstance(p, Partition):
            out.append(p)
            continue
        if not isinstance(p, (pl.DataFrame, pl.LazyFrame)):
            raise DataError(f"members: expected polars frames, got {type(p).__name__}")
        own = getattr(p, "_fentan_parts", None) or []
        if len(own) == 1 and own[0].frame is p:  # one file read by engine.data.io.read_members
            out.append(own[0])
            continue
        out.append(Partition(p.lazy(), tuple(_sources(p))))
    return out


def _run(executor: Executor | None, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``[fn(*job) for job in jobs]``, in this process or on ``executor`` (results in job order)."""
    if executor is None:
        return [fn(*job) for job in jobs]
    futures = [executor.submit(fn, *job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def hash_task(i: int, lf: pl.LazyFrame, sources: list[str], store: BucketDir, n_buckets: int) -> list[int]:
    """Step 1 on partition ``i``: its ids only are read; their 64-bit hashes and row numbers are written to the
    buckets (:func:`write_buckets`). Returns the number of ids per bucket."""
    ids = pl.col("member_id")
    keyed = _collect(_rename_reserved(lf, sources).select(ids.hash(seed=0).alias(_HASH), ids.is_null().alias("__null")),
                     sources, "members")
    hashes, rows = keyed.get_column(_HASH).to_numpy(), None
    if keyed.get_column("__null").any():  # the rows of a null id are left out (no row number column otherwise)
        rows = np.flatnonzero(~keyed.get_column("__null").to_numpy()).astype(np.uint32)
        hashes = hashes[rows]
    return write_buckets(hashes, rows, store, i, n_buckets)


def partition_task(lf: pl.LazyFrame, sources: list[str], as_of: dt.date, min_date: dt.date, max_date: dt.date,
                   claimant_ids: pl.Series, cand_rows: pl.Series, schema: pl.Schema | None = None,
                   raw_sex: pl.LazyFrame | None = None) -> dict[str, Any]:
    """Step 3 on a partition: one read gives the row count, the rows set aside by a rule (with their row
    number), the claimants, and the clean rows among ``cand_rows`` (rows whose id hash repeats, step 2).

    With ``schema`` (the clean members' columns and dtypes), the same read also gives ``fp``: the number
    of rows passing every rule and the lane sums of their row hashes (:func:`engine.data.row_hash.lane_sums`,
    on the columns of ``schema``), and ``cand_hashes``: the (2, k) row hashes of the clean candidates.

    With ``raw_sex`` (the partition read without the ``sex`` clean-up, :func:`engine.data.schema.normalise`),
    it is read instead and cleaned here, and ``sex_raw_ok`` tells whether the clean-up changes no row that
    passes every rule (then the clean rows may be read from ``raw_sex``, the clean-up skipped).
    """
    lf = _rename_reserved(lf, sources)
    rules = _member_rule_list(lf.collect_schema(), as_of, min_date, max_date)
    if raw_sex is not None:  # the clean-up in this read (:func:`_clean_sex`), the value as read kept
        lf = _rename_reserved(raw_sex, sources).with_columns(pl.col("sex").alias(_RAW_SEX)).with_columns(
            pl.col("sex").map_batches(_clean_sex, return_dtype=pl.String, is_elementwise=True))
    df = _collect(lf.with_row_index(_ROW).with_columns(_codes(rules).alias(_CODE)), sources, "members")
    sex_raw_ok = False
    if raw_sex is not None:
        sex_raw_ok = bool(((df.get_column(_CODE) != 0) | df.get_column(_RAW_SEX).eq_missing(df.get_column("sex"))).all())
        df = df.drop(_RAW_SEX)
    claimants = _claimants(df, claimant_ids)
    # the candidates gathered by row number (an is_in over every row took about 10 ms per 10^6 rows)
    cands = df[np.unique(cand_rows.to_numpy())].filter(pl.col(_CODE) == 0) if len(cand_rows) else df.clear()
    # the few rows kept hold their own bytes, not the partition's (engine.data._compact)
    out = {"rows": df.height, "rejected": compact(df.filter(pl.col(_CODE) != 0)), "claimants": compact(claimants),
           "cands": compact(cands), "sex_raw_ok": sex_raw_ok}
    if schema is not None:
        from engine.data.row_hash import lane_sums, row_hashes

        keep = (df.get_column(_CODE) == 0).to_numpy()
        out["fp"] = (int(keep.sum()), lane_sums(_hash_frame(df, schema), keep))
        out["cand_hashes"] = np.stack(row_hashes(_hash_frame(cands, schema)))
    return out


def _claimants(df: pl.DataFrame, claimant_ids: pl.Series) -> pl.DataFrame:
    """``member_id``, row number and rule code of the rows of ``df`` whose id is one of ``claimant_ids``
    (row order).

    Notes
    -----
    A string ``is_in`` over every row took about 45 ms of CPU per file of 10^6 members. The ids' 64-bit
    hashes are first looked up in a table of bits of at least 32 per claimant (a vectorised gather:
    every claimant's row passes, about 1 other row in 32 too), then the few rows passing are compared
    exactly: about 10 ms.
    """
    cols = df.select("member_id", _ROW, _CODE)
    exact = pl.col("member_id").is_in(claimant_ids.implode())
    if not len(claimant_ids) or not df.height or not df.schema["member_id"] == claimant_ids.dtype == pl.String:
        return cols.filter(exact)
    size = 1 << max(10, min(26, (32 * len(claimant_ids) - 1).bit_length()))
    table = np.zeros(size, dtype=bool)
    table[claimant_ids.hash(seed=0).to_numpy().view(np.int64) & (size - 1)] = True
    maybe = np.flatnonzero(table[df.get_column("member_id").hash(seed=0).to_numpy().view(np.int64) & (size - 1)])
    return cols[maybe].filter(exact)


def _clean_sex(sex: pl.Series) -> pl.Series:
    """``sex`` with the contract's clean-up (:func:`engine.data.schema.clean_sex`): the same values, computed
    on the rows holding no code of the contract only (a code is its own clean-up; nulls stay null).

    Cleaning every row of a file of 10^6 members took about 80 ms of CPU, this about 15.
    """
    from engine.data.schema import SEX_CODES, clean_sex

    idx = functools.reduce(operator.and_, [sex != c for c in SEX_CODES]).fill_null(False).arg_true()
    if not len(idx):
        return sex
    return sex.clone().scatter(idx, sex.gather(idx).to_frame().select(clean_sex(pl.col(sex.name))).to_series())


def _hash_frame(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """The columns of ``schema`` of ``df`` in name order, with their dtypes (:func:`_conform`, which a clean
    partition goes through): the rows as every later pass and the report's data fingerprint read them."""
    have = df.schema
    return df.select([pl.col(c) if have.get(c) == schema[c] else
                      pl.col(c).cast(schema[c]) if c in have else pl.lit(None, dtype=schema[c]).alias(c)
                      for c in sorted(schema)])


def _fingerprint(results: list[dict[str, Any]], dups: pl.DataFrame, schema: pl.Schema) -> str:
    """The multiset fingerprint of the clean members (:func:`engine.data.row_hash.multiset_fingerprint`) from
    each partition's sums over the rows passing every rule, less its clean rows of a duplicated id."""
    from engine.data.row_hash import fingerprint_from_sums

    sums, rows = [0, 0], 0
    for i, r in enumerate(results):
        n, part = r["fp"]
        dup = r["cands"].get_column(_ROW).is_in(dups.filter(pl.col("__file") == i).get_column(_ROW).implode())
        off = r["cand_hashes"][:, dup.to_numpy()].sum(axis=1, dtype=np.uint64)
        rows += n - int(dup.sum())
        sums = [(a + b - int(c)) % 2**64 for a, b, c in zip(sums, part, off, strict=True)]
    return fingerprint_from_sums(schema, rows, sums)


def write_buckets(hashes: np.ndarray, rows: np.ndarray | None, store: BucketDir, i: int, n_buckets: int) -> list[int]:
    """Partition ``i``'s id hashes and row numbers, grouped by bucket ``hash mod n_buckets``; the ids per bucket.

    Writes ``{i}.hash.npy`` (uint64) and ``{i}.row.npy`` (uint32), bucket after bucket (row order
    within a bucket), and ``{i}.ends.npy``: where each bucket ends in them. ``rows`` None: hash ``k``
    is row ``k``.
    """
    if n_buckets == 256:  # the low byte: a truncating cast, cheaper than the remainder
        bucket = hashes.astype(np.uint8)
    else:
        bucket = (hashes % np.uint64(n_buckets)).astype(np.uint8 if n_buckets <= 256 else np.uint32)
    order = np.argsort(bucket, kind="stable")  # a radix sort on the small bucket numbers
    ends = np.cumsum(np.bincount(bucket, minlength=n_buckets), dtype=np.int64)
    store.save(f"{i}.hash.npy", hashes[order])
    store.save(f"{i}.row.npy", (order if rows is None else rows[order]).astype(np.uint32))
    store.save(f"{i}.ends.npy", ends)
    return np.diff(ends, prepend=0).tolist()


def read_buckets(store: BucketDir, i: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``i``'s (hashes, row numbers) in buckets ``lo .. hi - 1`` (only they are read)."""
    ends = store.load(f"{i}.ends.npy")
    a, b = (int(ends[lo - 1]) if lo else 0), int(ends[hi - 1])
    return store.load(f"{i}.hash.npy", a, b), store.load(f"{i}.row.npy", a, b)


def bucket_task(store: BucketDir, lo: int, hi: int, n_parts: int) -> pl.DataFrame:
    """Step 2 on buckets ``lo .. hi - 1``: ``(__file, __fentan_row)`` of every row whose id hash occurs more
    than once: every row of a duplicated id, and (rarely) rows of distinct ids whose hashes collide."""
    got = [read_buckets(store, i, lo, hi) for i in range(n_parts)]
    rep = _repeated(pl.Series(_HASH, np.concatenate([h for h, _ in got]), dtype=pl.UInt64))
    files = np.repeat(np.arange(n_parts, dtype=np.uint32), [len(h) for h, _ in got])
    rows = np.concatenate([r for _, r in got])
    return pl.DataFrame({"__file": files[rep], _ROW: rows[rep]}, schema={"__file": pl.UInt32, _ROW: pl.UInt32})


def _bucket_ranges(counts: list[int]) -> list[tuple[int, int]]:
    """Consecutive buckets grouped into tasks of about :data:`IDS_PER_TASK` ids (one task at least)."""
    out, lo, n = [], 0, 0
    for b, k in enumerate(counts):
        if n and n + k > IDS_PER_TASK:
            out.append((lo, b))
            lo, n = b, 0
        n += k
    out.append((lo, len(counts)))
    return out


def _template(parts: list[Partition]) -> pl.DataFrame:
    """An empty frame with the columns and dtypes of all partitions concatenated (reserved names renamed)."""
    frames = [_rename_reserved(p.frame, list(p.sources)).clear() for p in parts]
    return (frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")).collect()


def _conform(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``lf`` with the columns, order and dtypes of ``schema`` (a column it lacks is null)."""
    have = lf.collect_schema()
    if have == schema:
        return lf
    return lf.select([pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()])


def _set_aside(results: list[dict[str, Any]], cands: pl.DataFrame, dup_code: int) -> tuple[list[pl.DataFrame],
                                                                                           pl.DataFrame]:
    """Per partition: its rows set aside (rule failures, then duplicated ids that passed the rules), by row;
    and ``(__file, __fentan_row)`` of every row of a duplicated id.

    ``cands`` are the rows whose id hash repeats (every row of a duplicated id, and rare collisions):
    their ids are compared exactly, from the rows set aside by a rule and the clean candidate rows
    that each partition task kept (few).
    """
    keyed = []
    for i, r in enumerate(results):
        c = cands.filter(pl.col("__file") == i).get_column(_ROW)
        for frame in (r["rejected"].filter(pl.col(_ROW).is_in(c.implode())), r["cands"]):
            keyed.append(frame.select(pl.lit(i, dtype=pl.UInt32).alias("__file"), _ROW, "member_id"))
    ids = pl.concat(keyed, how="vertical_relaxed")
    dups = ids.filter(pl.col("member_id").is_duplicated()).select("__file", _ROW)
    out = []
    for i, r in enumerate(results):
        rej, more = r["rejected"], r["cands"]
        more = more.filter(pl.col(_ROW).is_in(dups.filter(pl.col("__file") == i).get_column(_ROW).implode()))
        if more.height:
            rej = pl.concat([rej, more.with_columns(pl.lit(dup_code, dtype=pl.UInt8).alias(_CODE))]).sort(_ROW)
        out.append(rej)
    return out, dups


def _clean(lf: pl.LazyFrame, rejected: pl.DataFrame, rows: int, sources: list[str]) -> pl.LazyFrame:
    """A partition's clean rows, lazy: the partition itself when no row is set aside, else filtered by a
    precomputed boolean mask of its ``rows`` rows (cheaper to apply on every later read than a row index
    tested against the rows set aside: 49 against 57 ms of CPU per read of 10^6 rows, the plain read 39)."""
    lf = _rename_reserved(lf, sources)
    if not rejected.height:
        return lf
    keep = np.ones(rows, dtype=bool)
    keep[rejected.get_column(_ROW).to_numpy()] = False
    return lf.filter(pl.lit(pl.Series(_KEEP, keep)))


def validate_parts(parts: list[Partition], members: Any, claims: Any, craw: pl.DataFrame, c_schema: pl.Schema,
                   rule: pl.Expr, *, as_of: dt.date, as_of_source: str, min_date: dt.date, max_date: dt.date,
                   executor: Executor | None = None, fingerprint: bool = False, scratch: str | None = None,
                   scratch_options: dict[str, Any] | None = None) -> ValidationResult:
    """The streaming pass of :func:`engine.validate` over ``parts`` (claims ``craw`` already read); with
    ``fingerprint``, the clean members' multiset fingerprint is taken in the same read; with ``scratch``,
    the id buckets live below it (:func:`engine.data._scratch.bucket_dir`)."""
    check_executor(executor)
    template = _template(parts)
    rules = _member_rule_list(template.schema, as_of, min_date, max_date)
    codes = member_codes_table(rules)
    claimant_ids = craw.get_column("member_id").drop_nulls().unique()
    with bucket_dir(scratch, scratch_options) as store:
        per_part = _run(executor, hash_task, [(i, p.frame, list(p.sources), store, N_BUCKETS)
                                             for i, p in enumerate(parts)])
        counts = [sum(c[b] for c in per_part) for b in range(N_BUCKETS)]
        cands = pl.concat(_run(executor, bucket_task, [(store, lo, hi, len(parts)) for lo, hi in _bucket_ranges(counts)]))
    results = _run(executor, partition_task, [(p.frame, list(p.sources), as_of, min_date, max_date, claimant_ids,
                                               cands.filter(pl.col("__file") == i).get_column(_ROW),
                                               template.schema if fingerprint else None, p.raw_sex)
                                              for i, p in enumerate(parts)])
    rejected, dups = _set_aside(results, cands, len(rules) + 1)
    member_fp = _fingerprint(results, dups, template.schema) if fingerprint else None
    m_read = sum(int(r["rows"]) for r in results)
    rejected_members = (pl.concat([template, *rejected], how="diagonal_relaxed")
                        .join(codes, on=_CODE, how="left", maintain_order="left")
                        .select([*template.columns, "reason"]))
    # a file whose clean rows the sex clean-up leaves as they are is read without it by every later pass
    clean_parts = [_conform(_clean(p.raw_sex if r["sex_raw_ok"] else p.frame, rej, int(r["rows"]), list(p.sources)),
                            template.schema) for p, rej, r in zip(parts, rejected, results, strict=True)]

    cl = pl.concat([r["claimants"].with_columns(pl.lit(i, dtype=pl.UInt32).alias("__file"))
                    for i, r in enumerate(results)])
    cl = cl.join(dups.with_columns(pl.lit(True).alias("__dup")), on=["__file", _ROW], how="left")
    all_ids = cl.get_column("member_id").unique()
    clean_ids = cl.filter((pl.col(_CODE) == 0) & pl.col("__dup").is_null()).get_column("member_id").unique()
    clean_claims, rejected_claims, c_read = check_claims(craw, c_schema, rule, all_ids, clean_ids)
    account = make_account(m_read, m_read - rejected_members.height, rejected_members, c_read, clean_claims,
                           rejected_claims, as_of, as_of_source, members, claims)
    clean = clean_parts[0] if len(clean_parts) == 1 else pl.concat(clean_parts, how="vertical")
    return ValidationResult(clean, clean_claims.lazy(), rejected_members, rejected_claims, account,
                            member_parts=clean_parts, member_fingerprint=member_fp)
