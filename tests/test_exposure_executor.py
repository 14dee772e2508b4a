"""The executor seam of engine.exposure (issue 22, item 2).

One task per member file counts its members' days; the driver sums them (integers) and keeps
the claimants pass. The cells must be bit-identical to the run without an executor, with a
thread pool and with a spawned process pool (one pool per module: it costs ~1-2 s to start).
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import engine
from engine.cells import process_pool
from engine.errors import ConfigError
from tests.kits.random_members import KW, _random_members
from tests.kits.partitions import scan_parts

N = 3000
BYS = [("age", "sex"), ("age", "duration_band", "tier", "channel"), ("duration", "channel"), ("age",)]


@functools.cache
def _data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(members, claims), built on first use, not at import: a mutation run forks each mutant from a
    process that has imported this file, and polars work there would hold its thread pool."""
    return _random_members(N, seed=22)


def _members() -> pl.DataFrame:
    return _data()[0]


def _claims() -> pl.DataFrame:
    return _data()[1]


@pytest.fixture(scope="module")
def spawned():
    with process_pool(2) as ex:
        yield ex


@pytest.fixture(scope="module")
def threads():
    with ThreadPoolExecutor(max_workers=3) as ex:
        yield ex


def _want(by) -> tuple[pl.DataFrame, pl.DataFrame]:
    return engine.exposure(_members(), _claims(), by=by, return_rejected=True, **KW)


WANT = {}


def _check(parts, executor, by, batch_size=None) -> None:
    if by not in WANT:
        WANT[by] = _want(by)
    cells, rejected = engine.exposure(parts, _claims(), by=by, return_rejected=True, executor=executor,
                                      batch_size=batch_size, **KW)
    want_cells, want_rejected = WANT[by]
    assert_frame_equal(cells, want_cells, check_exact=True)  # every column, exact
    assert cells.equals(want_cells)
    assert_frame_equal(rejected, want_rejected, check_exact=True)


def _files(tmp_path, cuts) -> list[pl.LazyFrame]:
    """Members cut at ``cuts`` into Parquet files (empty ones included), scanned lazily."""
    return scan_parts(tmp_path, _members(), cuts)


SPLITS = {
    "1 file": [0, N],
    "3 files": [0, 1000, 2000, N],
    "8 files": list(np.linspace(0, N, 9).astype(int)),
    "uneven and empty": [0, 0, 7, 7, 2950, N, N],
}


@pytest.mark.parametrize("pool", ["threads", "spawned"])
@pytest.mark.parametrize("split", list(SPLITS))
def test_files_bit_identical(pool, split, request, tmp_path) -> None:
    ex = request.getfixturevalue(pool)
    parts = _files(tmp_path, SPLITS[split])
    for by in BYS:
        _check(parts, ex, by)


def test_small_batches_in_tasks(spawned, threads, tmp_path) -> None:
    parts = _files(tmp_path, SPLITS["3 files"])
    for ex in (spawned, threads):
        _check(parts, ex, ("age", "duration_band", "tier", "channel"), batch_size=257)


def test_claims_of_members_in_other_files(spawned, tmp_path) -> None:
    """The claims are one frame; the members with claims sit in every file, not the first."""
    cuts = SPLITS["8 files"]
    part_of = {f"m{i}": k for k in range(8) for i in range(cuts[k], cuts[k + 1])}
    files = {part_of[m] for m in _claims().get_column("member_id").to_list()}
    assert len(files) == 8
    _check(_files(tmp_path, cuts), spawned, ("age", "sex"))


def test_in_memory_frames(spawned, threads) -> None:
    members = _members()
    parts = [members.slice(0, 1200), members.slice(1200, 0), members.slice(1200, N)]
    _check(parts, spawned, ("age", "sex"))
    for ex in (spawned, threads):  # one frame cut into tasks of 700 rows
        _check(members, ex, ("age", "sex"), batch_size=700)


SPLIT_SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SPLIT_SETTINGS
@given(cuts=st.lists(st.integers(0, N), min_size=0, max_size=6), use_threads=st.booleans())
def test_any_split(spawned, threads, cuts, use_threads) -> None:
    bounds = [0, *sorted(cuts), N]
    perm = np.random.default_rng(len(cuts)).permutation(N)  # files need not hold members in order
    shuffled = _members()[perm]
    parts = [shuffled.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    _check(parts, threads if use_threads else spawned, ("age", "duration_band", "tier", "channel"))


def test_no_member_rows(threads) -> None:
    with pytest.raises(engine.errors.DataError, match="no member rows"):
        empty = _members().head(0)
        engine.exposure([empty, empty], _claims(), executor=threads, **KW)


def test_forked_pool_refused() -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as ex:
        with pytest.raises(ConfigError, match="spawn"):
            engine.exposure(_members(), _claims(), executor=ex, **KW)


def test_not_an_executor() -> None:
    with pytest.raises(ConfigError, match="executor"):
        engine.exposure(_members(), _claims(), executor=4, **KW)
    with pytest.raises(ConfigError, match="n_workers"):
        process_pool(0)
    with pytest.raises(ConfigError, match="threads_per_worker"):
        process_pool(1, threads_per_worker=0)


def test_task_error_reaches_the_caller(threads, tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    _members().head(10).with_columns(pl.col("birth_date").cast(pl.String)).write_parquet(bad)
    parts = [*_files(tmp_path, SPLITS["3 files"]), pl.scan_parquet(bad)]
    errors = []
    for ex in (None, threads):  # the task's error reaches the caller as it does without an executor
        with pytest.raises(pl.exceptions.InvalidOperationError, match="birth_date") as err:
            engine.exposure(parts, _claims(), executor=ex, **KW)
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_polars_threads_per_worker(spawned) -> None:
    assert spawned._mp_context.get_start_method() == "spawn"
    sizes = {spawned.submit(pl.thread_pool_size).result() for _ in range(4)}
    assert sizes == {1}


@pytest.mark.parametrize("pool", ["threads", "spawned"])
def test_sink_fallback_to_frames(pool, request, monkeypatch, tmp_path) -> None:
    """A driver sink too large for a dense array takes the tasks' cells as frames: the same cells.

    With threads every sink falls back; with spawned workers only the driver does (the workers'
    dense arrays are turned into frames on arrival)."""
    import engine.cells._sink as sink_mod

    by = ("age", "duration_band", "tier", "channel")
    WANT.setdefault(by, _want(by))
    monkeypatch.setattr(sink_mod, "MAX_DENSE", 0)
    _check(_files(tmp_path, SPLITS["3 files"]), request.getfixturevalue(pool), by)


def test_pool_threads_per_worker_default(monkeypatch) -> None:
    """The default polars threads per worker: cores // workers, at least 1, and 1 when the cores are unknown
    (no worker is started: the pool starts its processes on the first task)."""
    import engine.cells._executor as ex_mod

    for cores, workers, want in [(8, 3, 2), (2, 4, 1), (None, 1, 1)]:
        monkeypatch.setattr(ex_mod.os, "cpu_count", lambda cores=cores: cores)
        pool = process_pool(workers)
        try:
            assert pool._initargs == (want,) and pool._max_workers == workers
        finally:
            pool.shutdown()


def test_dense_sink_gives_the_final_cells(threads, monkeypatch) -> None:
    """A dense sink turns its arrays into the final cells itself: the group-by of batch frames
    (``_combine``, the fallback) is not called, in this process or with an executor."""
    import engine.cells._exposure as exposure_mod

    def refuse(*args, **kwargs):
        raise AssertionError("the dense sink fell back to _combine")

    monkeypatch.setattr(exposure_mod, "_combine", refuse)
    for ex in (None, threads):
        cells = engine.exposure(_members(), _claims(), by=("age", "duration_band", "tier", "channel"), executor=ex,
                                batch_size=700, **KW)
        assert cells.height > 0
