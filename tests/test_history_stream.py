"""History and decomposition from additive member counts (issue 22, part B, item 1).

``share_history`` and ``share_drivers`` reduce the members, partition by partition and batch by
batch, to integer counts (members by pool, join date and exit date; eligible days by cell) summed
in the driver. The result must be bit-identical to the in-memory path (one frame of all members)
on 10^5 members, whatever the split into files (1, 3, 8 files, uneven and empty ones, a
hypothesis-chosen split of shuffled rows), the batch size and the executor (threads, spawned
processes). The sharing base is also checked against a direct count per notice day (the formula).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.cells import process_pool
from engine.shares.decomposition import share_drivers
from engine.shares.history import share_history
from tests.kits.random_members import _random_members
from tests.kits.partitions import scan_parts

N = 100_000
HKW = dict(start=dt.date(2018, 3, 15), end=dt.date(2020, 11, 20), sharing_days=(14, 28), fee=0.1,
           waiting_days=90, per_claimant_cap=0.5, annual_cap=100.0, by=["channel"])
WINDOWS = [(dt.date(2018, 6, 1), dt.date(2018, 8, 31)), (dt.date(2020, 6, 1), dt.date(2020, 8, 31))]


@functools.cache
def _data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(members with a plan, claims), built on first use, not at import: a mutation run forks each mutant
    from a process that has imported this file, and polars work there would hold its thread pool."""
    members, claims = _random_members(N, seed=2022)
    plan = pl.Series("plan_id", np.random.default_rng(7).choice(["young", "old", "mid"], N))
    return members.with_columns(plan), claims


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


@pytest.fixture(scope="module")
def want() -> tuple[pl.DataFrame, list]:
    hist = share_history(_members(), _claims(), **HKW)
    drivers = [share_drivers(_members(), _claims(), period_start=a, notice_date=b, waiting_days=90) for a, b in WINDOWS]
    return hist, drivers


def _check(parts, want, executor=None, batch_size=None) -> None:
    hist, drivers = want
    got = share_history(parts, _claims(), executor=executor, batch_size=batch_size, **HKW)
    assert_frame_equal(got, hist, check_exact=True)
    assert got.equals(hist)
    for (a, b), d in zip(WINDOWS, drivers):
        g = share_drivers(parts, _claims(), period_start=a, notice_date=b, waiting_days=90, executor=executor,
                          batch_size=batch_size)
        assert g.factors() == d.factors()  # exact floats
        assert dict(g.details) == dict(d.details)


def _files(tmp_path, frame: pl.DataFrame, cuts: list[int]) -> list[pl.LazyFrame]:
    return scan_parts(tmp_path, frame, cuts)


SPLITS = {
    "1 file": [0, N],
    "3 files": [0, 30_000, 70_000, N],
    "8 files": list(np.linspace(0, N, 9).astype(int)),
    "uneven and empty": [0, 0, 7, 7, 99_000, N, N],
}


def test_sharing_base_is_the_direct_count(want) -> None:
    """N_t and the eligible base against a count of ``join <= d < exit`` (and ``d >= join + 90``) per notice day."""
    hist = want[0]
    days = hist.select("plan_id", "channel", "notice_date").unique()
    direct = days.join(_members().select("plan_id", "channel", "join_date", "exit_date"), on=["plan_id", "channel"])
    sharing = (pl.col("join_date") <= pl.col("notice_date")) & (
        pl.col("exit_date").is_null() | (pl.col("notice_date") < pl.col("exit_date")))
    elig = sharing & (pl.col("notice_date") >= pl.col("join_date") + pl.duration(days=90))
    direct = direct.group_by("plan_id", "channel", "notice_date").agg(
        sharing.sum().cast(pl.Int64).alias("n"), elig.sum().cast(pl.Int64).alias("ne"))
    both = hist.join(direct, on=["plan_id", "channel", "notice_date"], how="left")
    assert both.height == hist.height
    assert (both["sharing_members"] == both["n"]).all()
    assert (both["eligible_members"] == both["ne"]).all()
    assert int(hist["sharing_members"].max()) > 1000


@pytest.mark.parametrize("split", list(SPLITS))
def test_files_in_process(split, want, tmp_path) -> None:
    _check(_files(tmp_path, _members(), SPLITS[split]), want)


@pytest.mark.parametrize("pool", ["threads", "spawned"])
@pytest.mark.parametrize("split", ["3 files", "uneven and empty"])
def test_files_on_executor(pool, split, want, request, tmp_path) -> None:
    _check(_files(tmp_path, _members(), SPLITS[split]), want, executor=request.getfixturevalue(pool))


def test_small_batches_and_frames(want, spawned, threads) -> None:
    members = _members()
    _check(members, want, batch_size=7_777)
    _check([members.slice(0, 40_000), members.slice(40_000, 0), members.slice(40_000, N)], want, executor=spawned)
    _check(members, want, executor=threads, batch_size=30_000)  # one frame cut into tasks


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, N), min_size=0, max_size=6), use_threads=st.booleans())
def test_any_split(want, threads, cuts, use_threads) -> None:
    bounds = [0, *sorted(cuts), N]
    shuffled = _members()[np.random.default_rng(len(cuts)).permutation(N)]  # files need not hold members in order
    parts = [shuffled.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    _check(parts, want, executor=threads if use_threads else None)


def test_plan_filter_and_missing_plan_column(want) -> None:
    """A plan's drivers from partitions equal those of its members alone; no plan column = one pool ``all``."""
    a, b = WINDOWS[1]
    members, claims = _data()
    one = share_drivers(members.filter(pl.col("plan_id") == "old"), claims, period_start=a, notice_date=b)
    split = share_drivers([members.slice(0, 500), members.slice(500, N)], claims, period_start=a, notice_date=b,
                          plan="old")
    assert split.factors() == one.factors()
    no_plan = members.drop("plan_id")
    h1 = share_history(no_plan, claims, **{**HKW, "by": None})
    h3 = share_history([no_plan.slice(0, 10), no_plan.slice(10, N)], claims, **{**HKW, "by": None})
    assert h1.equals(h3) and h1["plan_id"].unique().to_list() == ["all"]


@pytest.mark.skipif(os.environ.get("FENTAN_LARGE_TESTS") != "1", reason="10^6 members: opt-in (FENTAN_LARGE_TESTS=1)")
def test_one_million_members_in_8_files(tmp_path, spawned) -> None:
    """10^6 members: 8 files on a spawned pool against one in-memory frame, history and both windows."""
    m, c = _random_members(1_000_000, seed=6)
    m = m.with_columns(pl.Series("plan_id", np.random.default_rng(8).choice(["a", "b"], m.height)))
    want = share_history(m, c, **HKW)
    parts = _files(tmp_path, m, list(np.linspace(0, m.height, 9).astype(int)))
    assert share_history(parts, c, executor=spawned, **HKW).equals(want)
    for a, b in WINDOWS:
        one = share_drivers(m, c, period_start=a, notice_date=b)
        assert share_drivers(parts, c, period_start=a, notice_date=b, executor=spawned).factors() == one.factors()


def test_window_counts_numpy_equal_the_polars_formula() -> None:
    """The window's day counts (numpy, day numbers) equal the same formula written as polars date expressions."""
    from engine.shares._window_days import _window_batch, _window_batch_polars

    keys = ["age", "sex", "duration", "channel"]
    got = _window_batch(_members(), WINDOWS, 90, ["channel"], None)
    want = _window_batch_polars(_members(), WINDOWS, 90, ["channel"])
    for (gc, gn, gy), (wc, wn, wy) in zip(got, want):
        assert (gn, gy) == (wn, wy) and gn > 10_000
        gc = gc.with_columns(pl.col("age", "duration").cast(pl.Int32)).sort(keys)
        assert_frame_equal(gc, wc.select(gc.columns).sort(keys), check_exact=True)


def test_window_counts_with_a_far_birth_date_equal_the_polars_formula() -> None:
    """A birth date centuries before the others (a span far longer than the batch) takes the per-member civil
    parts instead of the span's day table; the counts still equal the polars formula."""
    from engine.shares._window_days import _Civil, _RowTable, _window_batch, _window_batch_polars

    keys = ["age", "sex", "duration", "channel"]
    m = _members().head(2_000).with_columns(
        pl.when(pl.int_range(pl.len()) % 100 == 0).then(pl.lit(dt.date(1601, 2, 28))).otherwise(pl.col("birth_date"))
        .alias("birth_date"))
    birth = m.get_column("birth_date").to_physical().cast(pl.Int32).to_numpy()  # every 100th born in 1601
    assert isinstance(_Civil(birth, birth).birth.table, _RowTable)  # the fallback is exercised
    got = _window_batch(m, WINDOWS, 90, ["channel"], None)
    want = _window_batch_polars(m, WINDOWS, 90, ["channel"])
    for (gc, gn, gy), (wc, wn, wy) in zip(got, want):
        assert (gn, gy) == (wn, wy) and gn > 100
        gc = gc.with_columns(pl.col("age", "duration").cast(pl.Int32)).sort(keys)
        assert_frame_equal(gc, wc.select(gc.columns).sort(keys), check_exact=True)
        assert int(gc.get_column("age").max()) > 400  # the far birth is counted, with its own age


@pytest.mark.parametrize("split", ["3 files", "uneven and empty"])
def test_one_pass_counts_equal_the_separate_passes(split, spawned, tmp_path) -> None:
    """``history_counts`` (cohorts and windows from one read of each batch, as ``fentan run`` asks) over files
    on a spawned process pool, in small batches, equals the cohorts and the window counts of all members at once."""
    from engine.shares._stream import history_counts, history_cohorts, pool_keys, window_counts

    keys, const = pool_keys(_members().columns, "plan_id", ["channel"])
    parts = _files(tmp_path, _members(), SPLITS[split])
    end, ek = dt.date(2020, 8, 31), ["age", "sex", "channel"]
    cohorts, counts, at_end = history_counts(parts, keys, const, WINDOWS, waiting_days=90, rel_cols=["channel"],
                                             at_end=(end, 90, ek), batch_size=12_345, executor=spawned)
    from engine.cells.dates import attained_age
    m = _members().filter((pl.col("join_date") <= end) & (pl.col("exit_date").is_null() | (pl.col("exit_date") > end)))
    age = attained_age(m.get_column("birth_date").to_physical().cast(pl.Int64).to_numpy(),
                       np.full(m.height, (end - dt.date(1970, 1, 1)).days, dtype=np.int64))
    direct = (m.with_columns(pl.Series("age", age).cast(at_end.schema["age"]),
                             (pl.col("join_date") > end - dt.timedelta(days=90)).cast(pl.Float64).alias("w"))
              .group_by(ek).agg(pl.len().cast(pl.Float64).alias("members"), pl.col("w").sum().alias("waiting_members"))
              .sort(ek))
    assert_frame_equal(at_end, direct, check_exact=True)
    assert 0 < at_end.get_column("waiting_members").sum() < at_end.get_column("members").sum()
    order = [*keys, "join_date", "exit_date"]
    want = history_cohorts([_members()], keys, const).sort(order)
    assert_frame_equal(cohorts.sort(order), want, check_exact=True, check_dtypes=False)
    assert int(cohorts.get_column("_n").sum()) == _members().height
    for (gc, gn, gy), (wc, wn, wy) in zip(counts, window_counts([_members()], WINDOWS, waiting_days=90,
                                                                  rel_cols=["channel"]), strict=True):
        assert (gn, gy) == (wn, wy) and gn > 10_000
        assert_frame_equal(gc, wc, check_exact=True, check_dtypes=False)


@pytest.mark.parametrize("every", [1, 2, 3, 1000])
def test_counts_folded_as_batches_come_equal_history_counts(every, tmp_path) -> None:
    """The exposure pass's history counts (:class:`FoldedCounts`: every ``every`` batches summed into a running
    total, partitions interleaved and one left without a batch) equal :func:`history_counts` of the same files."""
    from engine.cells._batch import batches
    from engine.shares._stream import FoldedCounts, batch_counter, counts_of_batches, history_counts, pool_keys

    keys, const = pool_keys(_members().columns, "plan_id", ["channel"])
    parts = _files(tmp_path, _members(), SPLITS["uneven and empty"])
    kw = dict(waiting_days=90, rel_cols=["channel"], at_end=(dt.date(2020, 8, 31), 90, ["age", "sex", "channel"]))
    counter = batch_counter(keys, const, WINDOWS, **kw)
    per_part = [list(batches([p], counter.cols, 7_000, lambda b: counter.fn(b))) for p in parts]
    assert [] in per_part and max(map(len, per_part)) > 3  # an empty file, and files of several batches
    folded = FoldedCounts(counter, every=every)
    for k in range(max(map(len, per_part))):  # partitions interleaved: the fold does not group them
        for i, got in enumerate(per_part):
            if k < len(got):
                folded.append((i, got[k]))
    assert len(folded.pending) < every
    cohorts, counts, at_end = counts_of_batches(parts, folded)
    w_cohorts, w_counts, w_end = history_counts(parts, keys, const, WINDOWS, **kw)
    order = [*keys, "join_date", "exit_date"]
    assert_frame_equal(cohorts.sort(order), w_cohorts.sort(order), check_exact=True, check_dtypes=False)
    assert int(cohorts.get_column("_n").sum()) == _members().height
    assert_frame_equal(at_end, w_end, check_exact=True)
    for (gc, gn, gy), (wc, wn, wy) in zip(counts, w_counts, strict=True):
        assert (gn, gy) == (wn, wy) and gn > 10_000
        assert_frame_equal(gc, wc, check_exact=True)


def test_end_counts_numpy_equal_the_polars_formula() -> None:
    """The members sharing at the end (numpy, day numbers and a dense grid) equal the polars date expressions,
    with and without the age key."""
    from engine.shares._stream import _end_counts_polars, end_counts

    for keys in (["age", "sex", "channel"], ["channel", "age"], ["sex"]):
        got = end_counts(_members(), dt.date(2020, 2, 29), 90, keys)
        want = _end_counts_polars(_members(), dt.date(2020, 2, 29), 90, keys)
        assert got.columns == want.columns and got.height >= 2
        assert_frame_equal(got.sort(keys), want.sort(keys), check_exact=True)


def test_member_counts_equal_a_group_by() -> None:
    """The packed count of members by (pool keys, join, exit) equals a plain group-by: on a dense grid
    (joins within a few days), by hashing (joins over years) and with no exit at all."""
    from engine.shares._stream import member_counts

    keys = ["plan_id", "channel"]
    members = _members()
    few_days = members.filter(pl.col("join_date") <= pl.col("join_date").min() + dt.timedelta(days=20))
    for m in (few_days, members, members.head(5_000).with_columns(pl.lit(None, dtype=pl.Date).alias("exit_date"))):
        got = member_counts(m.select(*keys, "join_date", "exit_date"), keys)
        want = m.group_by(*keys, "join_date", "exit_date").agg(pl.len().cast(pl.UInt32).alias("_n"))
        order = [*keys, "join_date", "exit_date"]
        assert m.height > 1_000 and int(got.get_column("_n").sum()) == m.height
        assert_frame_equal(got.sort(order, nulls_last=True), want.sort(order, nulls_last=True), check_exact=True)


def test_member_counts_with_null_join_dates_equal_a_group_by() -> None:
    """A null join date (or exit date) has its own code on the packed grid: the count still equals a group-by."""
    from engine.shares._stream import member_counts

    keys = ["plan_id"]
    rng = np.random.default_rng(3)
    m = _members().select(*keys, "join_date", "exit_date").with_columns(
        pl.when(pl.Series(rng.random(N) < 0.05)).then(None).otherwise(pl.col("join_date")).alias("join_date"))
    for frame in (m, m.with_columns(pl.lit(None, dtype=pl.Date).alias("join_date")).head(3_000)):
        got = member_counts(frame, keys)
        want = frame.group_by(*keys, "join_date", "exit_date").agg(pl.len().cast(pl.UInt32).alias("_n"))
        order = [*keys, "join_date", "exit_date"]
        assert got.get_column("join_date").null_count() > 0
        assert_frame_equal(got.sort(order, nulls_last=True), want.sort(order, nulls_last=True), check_exact=True)


def test_merged_cohorts_equal_a_group_by_sum() -> None:
    """Cohort counts of several partitions added on the packed grid equal the group-by sum of their counts,
    with null join and exit dates, on a dense grid and by hashing, in any order of the partitions."""
    from engine.shares._stream import member_counts, merge_cohorts

    keys = ["plan_id", "channel"]
    rng = np.random.default_rng(5)
    m = _members().select(*keys, "join_date", "exit_date").with_columns(
        pl.when(pl.Series(rng.random(N) < 0.02)).then(None).otherwise(pl.col("join_date")).alias("join_date"))
    few_days = m.filter(pl.col("join_date") <= pl.col("join_date").min() + dt.timedelta(days=20))
    order = [*keys, "join_date", "exit_date"]
    for frame in (m, few_days):
        cuts = sorted(rng.choice(frame.height, 4, replace=False))
        parts = [member_counts(frame.slice(a, b - a), keys) for a, b in zip([0, *cuts], [*cuts, frame.height])]
        want = (pl.concat(parts).group_by(order).agg(pl.col("_n").cast(pl.Int64).sum())
                .sort(order, nulls_last=True))
        for ps in (parts, parts[::-1]):
            got = merge_cohorts(ps, keys)
            assert got.get_column("_n").dtype == pl.Int64 and int(got.get_column("_n").sum()) == frame.height
            assert_frame_equal(got.sort(order, nulls_last=True), want, check_exact=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5_000, 30_000), min_size=0, max_size=40, unique=True),
       st.lists(st.one_of(st.integers(-10_000, 40_000), st.just(10**9)), min_size=0, max_size=200))
def test_notice_index_is_searchsorted(notice, days) -> None:
    """The tabulated notice index equals ``searchsorted(T, day, 'left')``: days before, on, between and after
    the notices, a far-future day (a null exit) and an empty calendar."""
    from engine.shares._counts import notice_index

    T = np.array(sorted(notice), dtype=np.int64)
    d = np.array(days, dtype=np.int64)
    np.testing.assert_array_equal(notice_index(T, d), np.searchsorted(T, d, side="left"))


def test_weighted_counts_exact_beyond_two_to_the_53() -> None:
    """Cohort counts (weights) are added in int64, on the dense grid and by hashing: 2 + 1 = 3, and past
    2^53 (where a float ``bincount`` is no longer exact) 2^53 + 1 stays 2^53 + 1."""
    from engine.shares._cohorts import COUNT, member_counts

    for big in (2, 2**53):
        for join in ([dt.date(2020, 1, 1)] * 3, [dt.date(2020, 1, 1), dt.date(2020, 1, 1), dt.date(2400, 1, 1)]):
            m = pl.DataFrame({"plan_id": ["a", "a", "a"], "join_date": join, "exit_date": [None, None, None],
                              COUNT: [big, 1, 5]}, schema_overrides={"exit_date": pl.Date})
            got = member_counts(m, ["plan_id"], weight=COUNT).sort("join_date")
            assert got.get_column(COUNT).dtype == pl.Int64
            assert got.get_column(COUNT).to_list() == ([big + 6] if join[2] == join[0] else [big + 1, 5])


def test_member_counts_too_wide_to_pack_equal_a_group_by() -> None:
    """Join and exit dates some 6 million years apart make the packed grid exceed 2^62 codes: the members
    are counted by a plain group-by, the same counts."""
    from engine.shares._cohorts import COUNT, member_counts

    far = pl.Series([-1_100_000_000, 1_100_000_000, 0, 0], dtype=pl.Int32).cast(pl.Date)
    m = pl.DataFrame({"plan_id": ["a", "a", "b", "b"], "join_date": far, "exit_date": far.reverse()})
    got = member_counts(m, ["plan_id"])
    want = m.group_by("plan_id", "join_date", "exit_date").agg(pl.len().cast(pl.UInt32).alias(COUNT))
    order = ["plan_id", "join_date", "exit_date"]
    assert_frame_equal(got.sort(order), want.sort(order), check_exact=True)
    assert int(got.get_column(COUNT).sum()) == 4
