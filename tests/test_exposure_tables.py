"""Several cell tables from one pass over the members (engine.cells._exposure.exposure_tables).

``fentan run`` takes its cells and its select cells from one read of the members: each table
must be bit-identical to its own ``engine.exposure`` call, in one process, on a thread pool
and on a spawned process pool, with the claimants found in the same read.
"""

from __future__ import annotations

import datetime as dt
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine
from engine.cells import process_pool
from engine.cells._accumulate import Space
from engine.cells._batch import batches
from engine.cells._exposure import exposure_tables
from engine.cells.calendar import Calendar, KeySpec
from engine.cells.dates import completed_months, day_number
from engine.errors import ConfigError, DataError
from tests.kits.partitions import scan_parts
from tests.kits.random_members import KW, _random_members

N = 2000
# the two tables of fentan run, and tables that share no day-varying key
BYS = [["age", "sex", "tier", "channel"], ["age", "sex", "duration_band"], ["duration", "channel"], []]


@functools.cache
def _data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(members, claims), built on first use, not at import: a mutation run forks each mutant from a
    process that has imported this file, and polars work there would hold its thread pool."""
    return _random_members(N, seed=15)


def _members() -> pl.DataFrame:
    return _data()[0]


def _claims() -> pl.DataFrame:
    return _data()[1]


@functools.cache
def _want() -> tuple[list[pl.DataFrame], pl.DataFrame]:
    out = [engine.exposure(_members(), _claims(), by=by, return_rejected=True, **KW) for by in BYS]
    for _, rejected in out[1:]:
        assert rejected.equals(out[0][1])
    return [cells for cells, _ in out], out[0][1]


def _check(parts, executor=None, batch_size=None) -> None:
    tables, rejected = exposure_tables(parts, _claims(), bys=BYS, executor=executor, batch_size=batch_size, **KW)
    want_tables, want_rejected = _want()
    assert len(tables) == len(BYS)
    for got, want in zip(tables, want_tables):
        assert_frame_equal(got, want, check_exact=True)
        assert got.equals(want)
    assert_frame_equal(rejected, want_rejected, check_exact=True)


def test_one_frame_and_small_batches() -> None:
    members = _members()
    _check(members)
    _check(members, batch_size=97)
    _check([members.slice(0, 700), members.slice(700, 0), members.slice(700, N)], batch_size=300)


def test_batches_split_in_two_parts_share_days_per_part(monkeypatch) -> None:
    # each batch of 300 members is counted in two threaded parts; the second table reuses the
    # interval days and birthdays of the first part by part, which must give the same cells
    import engine.cells._batch as batch_mod

    _want()  # the expected tables, before the patch
    monkeypatch.setattr(batch_mod, "PARALLEL_MIN", 50)
    monkeypatch.setattr(batch_mod.os, "cpu_count", lambda: 2)
    _check(_members(), batch_size=300)
    _check(_members(), batch_size=101)  # odd batch: parts of unequal size


def test_batches_split_in_three_parts(monkeypatch) -> None:
    # more members than two parts of MAX_MEMBERS hold: every batch is cut into three parts, each
    # counted once (overlapping or missing parts would change the day counts)
    import engine.cells._batch as batch_mod

    _want()
    monkeypatch.setattr(batch_mod, "MAX_MEMBERS", 400)
    monkeypatch.setattr(batch_mod.os, "cpu_count", lambda: 2)
    _check(_members(), batch_size=1100)  # 1,100 members a batch: parts of 366 or 367


def test_missing_columns_name_the_key_or_the_member_column() -> None:
    m = _members()
    with pytest.raises(DataError, match="^by: members have no column 'occupation'$"):
        exposure_tables([m.lazy()], _claims(), bys=[["age", "occupation"]], **KW)
    with pytest.raises(DataError, match="^members: members have no column 'exit_date'$"):
        exposure_tables([m.drop("exit_date").lazy()], _claims(), bys=[["age", "sex"]], **KW)


def test_files_in_this_process_and_on_pools(tmp_path) -> None:
    parts = scan_parts(tmp_path, _members(), [0, 0, 13, 900, 1500, N])  # an empty file, claimants in every file
    _check(parts)
    _check(parts, batch_size=211)
    with ThreadPoolExecutor(max_workers=3) as ex:
        _check(parts, ex, batch_size=211)
    with process_pool(2) as ex:
        _check(parts, ex)


def test_a_duplicated_claimant_across_files_is_refused(tmp_path) -> None:
    who = _claims().get_column("member_id")[0]
    twice = pl.concat([_members(), _members().filter(pl.col("member_id") == who)])
    parts = scan_parts(tmp_path, twice, [0, N, N + 1])
    with pytest.raises(DataError, match="more than one batch or partition"):
        exposure_tables(parts, _claims(), bys=BYS[:2], **KW)


def test_bys_must_be_a_list_of_key_lists() -> None:
    for bad in ([], "age"):
        with pytest.raises(ConfigError, match="bys"):
            exposure_tables(_members(), _claims(), bys=bad, **KW)
    with pytest.raises(ConfigError, match="repeated"):
        exposure_tables(_members(), _claims(), bys=[["age"], ["sex", "sex"]], **KW)


def test_lazy_batches_stream_every_row_once_in_order(tmp_path) -> None:
    """LazyFrames are streamed without a row count: every row once, in order, no batch above the size."""
    parts = scan_parts(tmp_path, _members(), [0, 0, 1001, N])
    parts = [p.filter(pl.col("member_id") != "m5") for p in parts]  # as validation's set-aside filter
    got = list(batches(parts, ["member_id"], 250, lambda f: f))
    assert all(0 < f.height <= 250 for f in got)
    want = _members().filter(pl.col("member_id") != "m5").get_column("member_id")
    assert pl.concat(got).get_column("member_id").equals(want)


def test_packed_duration_equals_completed_months() -> None:
    """Space.dur (packed codes) is completed_months, the one duration formula, on every (join, day) pair
    of three years: month ends, 29 February and joins on the 29th to the 31st included."""
    start, end = day_number(dt.date(2019, 1, 1)), day_number(dt.date(2021, 12, 31))
    cal = Calendar(start, end, "month")
    days = np.arange(start - 1, end + 2, dtype=np.int32)
    join = np.arange(day_number(dt.date(2018, 11, 1)), day_number(dt.date(2020, 4, 1)), dtype=np.int32)
    jj, tt = (a.ravel() for a in np.meshgrid(join, days, indexing="ij"))
    n = jj.size
    spec = KeySpec(age=False, dim="duration", edges=np.array([0, 3, 6, 12, 24]))
    s0 = np.maximum(jj, start).astype(np.int32)
    space = Space(cal, spec, np.zeros(n, dtype=np.int32), jj, np.zeros(n, dtype=np.int64), 1, s0,
                  np.full(n, end, dtype=np.int32))
    got = space.dur(None, tt)
    want = completed_months(jj.astype(np.int64), tt.astype(np.int64))
    assert np.array_equal(got, want)
