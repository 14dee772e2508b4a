"""Streaming validation: members checked partition by partition, never all in memory.

Three steps, each a set of independent tasks an executor may run:

1. **one task per partition** (a file): its rows are read once, every row rule is evaluated
   (the same integer-coded expression as the in-memory pass), and the task returns the rows
   set aside (with their row number in the partition), the claimants' ids with their rule
   code, and the row count. It writes its non-null member ids, with their row numbers, into
   ``B`` hash buckets (``hash(member_id) mod B``, Arrow IPC files in a temporary directory);
2. **one task per bucket**: an id occurs in one bucket only, so the ids that occur more than
   once across all partitions are found bucket by bucket. Each partition writes one file
   with one record batch per bucket (``B`` = 256); the buckets are then grouped, in order,
   into tasks of about 10^6 ids (one task for 10^6 members, about 100 for 10^8), so a
   task holds a bounded number of ids whatever the size of the data;
3. **the driver**: rows of a duplicated id that passed every rule become
   ``duplicate_member_id`` (their full rows are read again from their partition: they are
   few); claims are checked against the claimants' clean member ids.

Notes
-----
The account, the set-aside rows (input order: partition, then row) and the clean rows are
identical to the in-memory pass of :func:`engine.validate`. Memory is bounded by one
partition plus one bucket; the clean members stay on disk, each partition's clean rows
being its rows minus the (few) row numbers set aside.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import polars as pl

from engine._executor_check import check_executor
from engine.data._validation_rules import (ValidationResult, _codes, _collect, _duplicated, _member_rule_list, _rename_reserved,
                                           _sources, check_claims, make_account, member_codes_table)
from engine.errors import DataError

#: hash buckets each partition's ids are written into (one Arrow record batch each)
N_BUCKETS = 256
#: ids checked by one task of the duplicate-id pass (consecutive buckets are grouped up to about this many)
IDS_PER_TASK = 1_000_000
_ROW = "__fentan_row"
_CODE = "__fentan_code"


def member_parts(members: Any) -> list[pl.LazyFrame]:
    """The partitions of ``members``: a list as given, a frame read from several files split into its files."""
    if isinstance(members, (list, tuple)):
        parts = list(members)
    else:
        parts = list(getattr(members, "_fentan_parts", None) or [members])
    if not parts:
        raise DataError("members: no partition given (an empty list)")
    out = []
    for p in parts:
        if not isinstance(p, (pl.DataFrame, pl.LazyFrame)):
            raise DataError(f"members: expected polars frames, got {type(p).__name__}")
        lf = p.lazy()
        lf._fentan_sources = _sources(p)  # type: ignore[attr-defined]
        out.append(lf)
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


def partition_task(i: int, lf: pl.LazyFrame, sources: list[str], as_of: dt.date, min_date: dt.date,
                   max_date: dt.date, claimant_ids: pl.Series, bucket_dir: str, n_buckets: int) -> dict[str, Any]:
    """Step 1 on partition ``i``: rows set aside, claimants, row count; ids written to the buckets."""
    lf = _rename_reserved(lf, sources)
    rules = _member_rule_list(lf.collect_schema(), as_of, min_date, max_date)
    df = _collect(lf.with_columns(_codes(rules).alias(_CODE)), sources, "members").with_row_index(_ROW)
    counts = write_buckets(df.select(_ROW, "member_id").filter(pl.col("member_id").is_not_null()),
                           Path(bucket_dir) / f"{i}.arrow", n_buckets)
    claimants = df.select("member_id", _ROW, _CODE).filter(pl.col("member_id").is_in(claimant_ids.implode()))
    return {"rows": df.height, "rejected": df.filter(pl.col(_CODE) != 0), "claimants": claimants, "buckets": counts}


def write_buckets(ids: pl.DataFrame, path: Path, n_buckets: int) -> list[int]:
    """``ids`` (``__fentan_row``, ``member_id``) split by ``hash(member_id) mod n_buckets`` into one Arrow IPC
    file holding one record batch per bucket, in bucket order (empty ones included); the ids per bucket."""
    import numpy as np
    import pyarrow as pa

    bucket = (ids.get_column("member_id").hash(seed=0) % n_buckets).cast(pl.UInt32)
    order = bucket.arg_sort()
    table = ids.gather(order).to_arrow().combine_chunks()
    whole = table.to_batches()
    rb = whole[0] if whole else pa.RecordBatch.from_pylist([], schema=table.schema)
    ends = np.cumsum(np.bincount(bucket.to_numpy(), minlength=n_buckets))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        start = 0
        for end in ends.tolist():
            w.write_batch(rb.slice(start, end - start))  # one batch per bucket, empty ones too
            start = end
    return np.diff(ends, prepend=0).tolist()


def bucket_task(bucket_dir: str, lo: int, hi: int, n_parts: int) -> pl.DataFrame:
    """Step 2 on buckets ``lo .. hi - 1``: ``(__file, __fentan_row)`` of every row whose id occurs more than once."""
    import pyarrow as pa

    frames = []
    for i in range(n_parts):
        with pa.memory_map(str(Path(bucket_dir) / f"{i}.arrow")) as src:
            reader = pa.ipc.open_file(src)
            batches = [reader.get_batch(b) for b in range(lo, hi)]
            if any(len(x) for x in batches):
                tab = pa.Table.from_batches(batches)
                frames.append(pl.from_arrow(tab).with_columns(pl.lit(i, dtype=pl.UInt32).alias("__file")))
    if not frames:
        return pl.DataFrame(schema={"__file": pl.UInt32, _ROW: pl.UInt32})
    df = pl.concat(frames, how="vertical_relaxed")
    ids = df.get_column("member_id")
    return df.filter(_duplicated(ids, ids.hash(seed=0))).select("__file", pl.col(_ROW).cast(pl.UInt32))


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


def _template(parts: list[pl.LazyFrame]) -> pl.DataFrame:
    """An empty frame with the columns and dtypes of all partitions concatenated (reserved names renamed)."""
    frames = [_rename_reserved(p, _sources(p)).clear() for p in parts]
    return (frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")).collect()


def _conform(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``lf`` with the columns, order and dtypes of ``schema`` (a column it lacks is null)."""
    have = lf.collect_schema()
    if have == schema:
        return lf
    return lf.select([pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c) for c, t in schema.items()])


def _set_aside(parts: list[pl.LazyFrame], results: list[dict[str, Any]], dups: pl.DataFrame,
               dup_code: int) -> list[pl.DataFrame]:
    """Per partition: its rows set aside (rule failures, then duplicated ids that passed the rules), by row."""
    out = []
    for i, (lf, r) in enumerate(zip(parts, results, strict=True)):
        rej = r["rejected"]
        d = dups.filter(pl.col("__file") == i).get_column(_ROW)
        d = d.filter(~d.is_in(rej.get_column(_ROW).implode()))
        if len(d):  # clean rows of a duplicated id: read again (few)
            src = _sources(lf)
            more = _collect(_rename_reserved(lf, src).with_row_index(_ROW).filter(pl.col(_ROW).is_in(d.implode())),
                            src, "members")
            rej = pl.concat([rej, more.with_columns(pl.lit(dup_code, dtype=pl.UInt8).alias(_CODE))],
                            how="diagonal_relaxed").sort(_ROW)
        out.append(rej)
    return out


def validate_parts(parts: list[pl.LazyFrame], members: Any, claims: Any, craw: pl.DataFrame, c_schema: pl.Schema,
                   rule: pl.Expr, *, as_of: dt.date, as_of_source: str, min_date: dt.date, max_date: dt.date,
                   executor: Executor | None = None) -> ValidationResult:
    """The streaming pass of :func:`engine.validate` over ``parts`` (claims ``craw`` already read)."""
    check_executor(executor)
    template = _template(parts)
    rules = _member_rule_list(template.schema, as_of, min_date, max_date)
    codes = member_codes_table(rules)
    claimant_ids = craw.get_column("member_id").drop_nulls().unique()
    with tempfile.TemporaryDirectory(prefix="fentan-ids-") as tmp:
        results = _run(executor, partition_task, [(i, p, _sources(p), as_of, min_date, max_date, claimant_ids, tmp,
                                                   N_BUCKETS) for i, p in enumerate(parts)])
        counts = [sum(r["buckets"][b] for r in results) for b in range(N_BUCKETS)]
        dups = pl.concat(_run(executor, bucket_task, [(tmp, lo, hi, len(parts)) for lo, hi in _bucket_ranges(counts)]))
    rejected = _set_aside(parts, results, dups, len(rules) + 1)
    m_read = sum(int(r["rows"]) for r in results)
    rejected_members = (pl.concat([template, *rejected], how="diagonal_relaxed")
                        .join(codes, on=_CODE, how="left", maintain_order="left")
                        .select([*template.columns, "reason"]))
    clean_parts = []
    for lf, rej in zip(parts, rejected, strict=True):
        lf = _rename_reserved(lf, _sources(lf))
        if rej.height:
            lf = lf.with_row_index(_ROW).filter(~pl.col(_ROW).is_in(rej.get_column(_ROW).implode())).drop(_ROW)
        clean_parts.append(_conform(lf, template.schema))

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
                            member_parts=clean_parts)
