"""Streaming validation (issue 22): file by file, duplicate ids by a hash-bucket pass.

The in-memory pass of ``engine.validate`` is the oracle: on the same rows, split into files in
any way, the streaming pass must give the same account, the same set-aside rows with the same
reasons (same order), the same clean members and claims, without and with an executor.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from tests.kits.partitions import write_parts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import engine
from engine.cells import process_pool
from engine.data import _validation_stream as vs
from engine.data.io import read_claims, read_members
from engine.errors import ConfigError, InputFileError
from engine.synth import generate

PLAT = generate(3000, seed=22, level=300.0, dirty=0.03)
MEMBERS, CLAIMS = PLAT.members, PLAT.claims
N = MEMBERS.height
WANT = engine.validate(MEMBERS, CLAIMS)

SPLITS = {
    "1 file": [0, N],
    "3 files": [0, 1000, 2000, N],
    "8 files": list(np.linspace(0, N, 9).astype(int)),
    "uneven and empty": [0, 0, 7, 7, N - 40, N, N],
}


@pytest.fixture(scope="module")
def spawned():
    with process_pool(2) as ex:
        yield ex


def _no_files(acc: dict) -> dict:
    """The account without the files entry (a frame read from files has one, a frame built in memory not)."""
    return {k: {x: y for x, y in v.items() if x != "files"} if isinstance(v, dict) else v for k, v in acc.items()}


def _same(got: engine.ValidationResult, want: engine.ValidationResult = WANT) -> None:
    assert _no_files(got.account) == _no_files(want.account)
    for what in ("members", "claims"):
        if "files" in want.account[what]:
            assert got.account[what]["files"] == want.account[what]["files"]
    assert_frame_equal(got.rejected_members, want.rejected_members, check_exact=True)
    assert_frame_equal(got.rejected_claims, want.rejected_claims, check_exact=True)
    assert_frame_equal(got.members.collect(), want.members.collect(), check_exact=True)
    assert_frame_equal(got.claims.collect(), want.claims.collect(), check_exact=True)
    if got.member_parts is not None:
        parts = [p.collect() for p in got.member_parts]
        assert sum(p.height for p in parts) == got.account["members"]["used"]


def _write(tmp_path, cuts, frame=MEMBERS, name="m") -> list:
    d = tmp_path / name
    d.mkdir()
    write_parts(d, frame, cuts)
    return d


def test_the_data_has_every_case() -> None:
    """The generated data holds what the comparison must cover: duplicates, claims of set-aside members."""
    sa = WANT.account["members"]["set_aside"]
    assert sa["duplicate_member_id"] >= 2 and sa["null_member_id"] >= 1
    assert WANT.account["claims"]["set_aside"]["member_set_aside"] >= 1
    assert WANT.account["claims"]["used"] >= 50


@pytest.mark.parametrize("split", list(SPLITS))
def test_files_same_as_in_memory(split, tmp_path) -> None:
    d = _write(tmp_path, SPLITS[split])
    want = engine.validate(read_members(d), CLAIMS)  # in memory
    _same(want)  # the same rows as the frame
    got = engine.validate(read_members(d), CLAIMS, stream=True)
    _same(got, want)
    assert len(got.member_parts) == len(SPLITS[split]) - 1
    assert got.account["members"]["files"] == {"skipped": {}}


@pytest.mark.parametrize("split", ["3 files", "uneven and empty"])
def test_executors_same(split, spawned, tmp_path) -> None:
    parts = [pl.scan_parquet(p) for p in sorted(_write(tmp_path, SPLITS[split]).glob("*.parquet"))]
    with ThreadPoolExecutor(max_workers=3) as ex:
        _same(engine.validate(parts, CLAIMS, executor=ex))
    _same(engine.validate(parts, CLAIMS, executor=spawned))


def test_duplicate_id_across_files_and_claims_of_members_in_other_files() -> None:
    """Two rows of one id in two files are both set aside; a claim is checked against its member's file."""
    m = pl.DataFrame({
        "member_id": ["a", "b", "c", "b", "d"],
        "birth_date": [dt.date(1980, 1, 1)] * 5,
        "sex": ["M", "F", "M", "F", "X"],
        "join_date": [dt.date(2019, 1, 1)] * 5,
        "exit_date": [None] * 5,
    }, schema_overrides={"exit_date": pl.Date})
    c = pl.DataFrame({"claim_id": ["1", "2", "3", "4", "5"], "member_id": ["c", "b", "a", "d", "z"],
                      "event_date": [dt.date(2020, 6, 1)] * 5, "amount": [1.0] * 5,
                      "approved_date": [dt.date(2020, 7, 1)] * 5})
    parts = [m.slice(0, 2), m.slice(2, 0), m.slice(2, 3)]
    got = engine.validate(parts, c)
    want = engine.validate(m, c)
    _same(got, want)
    assert got.rejected_members.get_column("reason").to_list() == ["duplicate_member_id", "duplicate_member_id",
                                                                   "unknown_sex"]
    assert dict(zip(got.rejected_claims["claim_id"], got.rejected_claims["reason"])) == {
        "2": "member_set_aside", "4": "member_set_aside", "5": "unknown_member"}
    assert got.claims.collect().get_column("claim_id").to_list() == ["1", "3"]


def test_claims_in_several_files(tmp_path) -> None:
    d = _write(tmp_path, SPLITS["3 files"])
    cd = _write(tmp_path, [0, 40, CLAIMS.height], frame=CLAIMS, name="c")
    want = engine.validate(read_members(d), read_claims(cd))
    _same(engine.validate(read_members(d), read_claims(cd), stream=True), want)


def test_a_column_of_one_file_only_and_the_reserved_name(tmp_path) -> None:
    """Files with different columns: the set-aside and clean rows have every column, as in memory."""
    a = MEMBERS.slice(0, 1500).with_columns(pl.lit("x").alias("reason"))
    b = MEMBERS.slice(1500, N - 1500).with_columns(pl.lit(7, dtype=pl.Int64).alias("extra"))
    (tmp_path / "m").mkdir()
    a.write_parquet(tmp_path / "m" / "a.parquet")
    b.write_parquet(tmp_path / "m" / "b.parquet")
    want = engine.validate(read_members(tmp_path / "m"), CLAIMS)
    got = engine.validate(read_members(tmp_path / "m"), CLAIMS, stream=True)
    _same(got, want)
    assert {"reason_input", "extra"} <= set(got.rejected_members.columns)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, N), min_size=0, max_size=6), use_threads=st.booleans())
def test_any_split(cuts, use_threads) -> None:
    edges = [0, *sorted(cuts), N]
    parts = [MEMBERS.slice(a, b - a).lazy() for a, b in zip(edges, edges[1:])]
    if use_threads:
        with ThreadPoolExecutor(max_workers=2) as ex:
            _same(engine.validate(parts, CLAIMS, executor=ex))
    else:
        _same(engine.validate(parts, CLAIMS))


@pytest.mark.parametrize("per_task", [vs.IDS_PER_TASK, 500])
def test_buckets_hold_every_id_once(monkeypatch, per_task) -> None:
    """Every non-null id is written to exactly one bucket, the one of its hash, and the tasks cover
    every bucket once (so a duplicate cannot be missed), with one task or many."""
    seen, ranges = [], []
    real = vs.bucket_task

    def spy(bucket_dir: str, lo: int, hi: int, n_parts: int) -> pl.DataFrame:
        ranges.append((lo, hi))
        for i in range(n_parts):
            for b in range(lo, hi):
                h, r = vs.read_buckets(bucket_dir, i, b, b + 1)
                seen.append(pl.DataFrame({"file": i, "row": r, "hash": h, "bucket": b}))
        return real(bucket_dir, lo, hi, n_parts)

    monkeypatch.setattr(vs, "bucket_task", spy)
    monkeypatch.setattr(vs, "IDS_PER_TASK", per_task)
    edges = SPLITS["8 files"]
    parts = [MEMBERS.slice(a, b - a).lazy() for a, b in zip(edges, edges[1:])]
    _same(engine.validate(parts, CLAIMS))
    got = pl.concat(seen).with_columns(pl.col("row").cast(pl.Int64) + pl.col("file").replace_strict(
        range(len(edges) - 1), edges[:-1], return_dtype=pl.Int64)).sort("row")
    want = MEMBERS.with_row_index("row").filter(pl.col("member_id").is_not_null())
    assert got.get_column("row").to_list() == want.get_column("row").cast(pl.Int64).to_list()  # each once
    assert got.get_column("hash").to_list() == want.get_column("member_id").hash(seed=0).to_list()
    assert (got.get_column("hash") % vs.N_BUCKETS == got.get_column("bucket")).all()
    assert got.get_column("bucket").n_unique() > 100
    assert [b for lo, hi in sorted(ranges) for b in range(lo, hi)] == list(range(vs.N_BUCKETS))
    assert (len(ranges) == 1) == (per_task > N)


def test_hash_collisions_confirmed_exactly(monkeypatch) -> None:
    """The bucket pass only finds rows whose id hash repeats; the ids are then compared exactly, so
    colliding hashes of distinct ids set nothing aside (here every hash is made to "repeat")."""
    monkeypatch.setattr(vs, "_repeated", lambda hashes: np.ones(len(hashes), dtype=bool))
    edges = SPLITS["3 files"]
    parts = [MEMBERS.slice(a, b - a).lazy() for a, b in zip(edges, edges[1:])]
    _same(engine.validate(parts, CLAIMS))


def test_clean_parts_filter_only_files_with_rows_set_aside() -> None:
    """A file with no row set aside is handed on as read (no filter re-applied on every later pass);
    a file with rows set aside is filtered to exactly its clean rows, in order."""
    clean = WANT.members.collect()
    got = engine.validate([clean.lazy()], CLAIMS)
    assert got.account["members"]["used"] == clean.height
    assert "FILTER" not in got.member_parts[0].explain()
    assert_frame_equal(got.member_parts[0].collect(), clean, check_exact=True)
    got = engine.validate([MEMBERS.lazy()], CLAIMS)
    assert "FILTER" in got.member_parts[0].explain()
    assert_frame_equal(got.member_parts[0].collect(), clean, check_exact=True)


def test_corrupt_file_named(tmp_path) -> None:
    d = _write(tmp_path, SPLITS["3 files"])
    bad = d / "part-01.parquet"
    raw = bad.read_bytes()
    bad.write_bytes(raw[:4] + bytes(b ^ 0x5A for b in raw[4:len(raw) // 2]) + raw[len(raw) // 2:])
    with pytest.raises(InputFileError, match="part-01"):
        engine.validate(read_members(d), CLAIMS, stream=True)


def test_forked_pool_refused() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
        with pytest.raises(ConfigError, match="fork"):
            engine.validate([MEMBERS], CLAIMS, executor=ex)


@pytest.mark.parametrize("split", ["1 file", "3 files", "8 files", "uneven and empty"])
def test_fingerprint_taken_in_the_validation_read(tmp_path, split) -> None:
    """The streaming pass hashes the clean rows in its own read: its fingerprint is the one the report
    takes by reading the clean partitions again, and the in-memory pass's (duplicates set aside after
    the hashing are subtracted)."""
    from engine.data.row_hash import multiset_fingerprint

    want = multiset_fingerprint([WANT.members.collect()])
    assert engine.validate(MEMBERS, CLAIMS, fingerprint=True).member_fingerprint == want
    assert engine.validate(MEMBERS, CLAIMS).member_fingerprint is None
    got = engine.validate(read_members(_write(tmp_path, SPLITS[split])), CLAIMS, stream=True, fingerprint=True)
    _same(got)
    assert got.member_fingerprint == want == multiset_fingerprint(got.member_parts)
    assert got.account["members"]["set_aside"]["duplicate_member_id"] >= 2


def test_fingerprint_of_files_of_other_types(tmp_path) -> None:
    """Files whose columns differ (a factor absent from one file, an Int32 factor in another, a factor with
    nulls in one file only) are hashed as the conformed clean partitions are read, under one schema."""
    from engine.data.row_hash import multiset_fingerprint

    m = MEMBERS.with_columns((pl.int_range(pl.len()) % 3).alias("band"))
    cuts = SPLITS["3 files"]
    parts = [m.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
    parts[0] = parts[0].drop("band")
    parts[1] = parts[1].with_columns(pl.col("band").cast(pl.Int32))
    parts[2] = parts[2].with_columns(pl.when(pl.col("band") == 1).then(None).otherwise(pl.col("band")).alias("band"))
    for stream in (True, False):
        got = engine.validate([p.lazy() for p in parts], CLAIMS, stream=stream, fingerprint=True)
        clean = got.members.collect()
        assert clean.schema["band"] == pl.Int64 and clean.get_column("band").null_count() > 0
        assert got.member_fingerprint == multiset_fingerprint([clean])
        if stream:
            assert got.member_fingerprint == multiset_fingerprint(got.member_parts)


def test_fingerprint_with_an_executor(spawned) -> None:
    from engine.data.row_hash import multiset_fingerprint

    cuts = SPLITS["8 files"]
    parts = [MEMBERS.slice(a, b - a).lazy() for a, b in zip(cuts, cuts[1:])]
    got = engine.validate(parts, CLAIMS, executor=spawned, fingerprint=True)
    assert got.member_fingerprint == multiset_fingerprint([WANT.members.collect()])


def test_sex_clean_up_skipped_only_where_it_changes_no_clean_row(tmp_path) -> None:
    """A file whose rows passing every rule hold "M"/"F" as read is handed on without the sex clean-up
    (a value it changes in a row set aside does not matter); a file with " f" or "m " in a clean row
    keeps it. The clean rows, the account and the fingerprint are those of the in-memory pass."""
    from engine.data.row_hash import multiset_fingerprint

    i = pl.int_range(pl.len())
    sex = pl.col("sex")
    dirty = MEMBERS.with_columns(
        pl.when((i >= 1000) & (i < 2000) & (i % 5 == 0)).then(pl.lit(" u"))  # set aside as before ("U")
        .when((i >= 2000) & (sex == "F") & (i % 3 == 0)).then(pl.lit(" f"))
        .when((i >= 2000) & (sex == "M") & (i % 3 == 0)).then(pl.lit("m ")).otherwise(sex).alias("sex"))
    d = _write(tmp_path, SPLITS["3 files"], frame=dirty)
    want = engine.validate(read_members(d), CLAIMS, stream=False, fingerprint=True)
    assert want.account["members"]["set_aside"]["unknown_sex"] > WANT.account["members"]["set_aside"]["unknown_sex"]
    got = engine.validate(read_members(d), CLAIMS, stream=True, fingerprint=True)
    _same(got, want)
    assert ["to_uppercase" in p.explain() for p in got.member_parts] == [False, False, True]
    assert set(pl.concat([p.collect() for p in got.member_parts]).get_column("sex").unique()) == {"M", "F"}
    assert got.member_fingerprint == want.member_fingerprint == multiset_fingerprint(got.member_parts)


def test_rows_kept_per_file_hold_no_bytes_of_the_file() -> None:
    """The few rows a file task keeps (set aside, claimants, candidates) hold their own string bytes, not
    the buffers of the whole file they were filtered from (ids over 12 bytes live outside the string views):
    at 10^8 members in 100 files those buffers held 1.9 GB until the claims were checked."""
    n = 20_000
    frame = MEMBERS.head(1).select(pl.all().repeat_by(n).explode()).with_columns(
        (pl.lit("a-member-id-of-20-b-") + pl.int_range(n).cast(pl.String)).alias("member_id"),
        pl.when(pl.int_range(n) < 3).then(None).otherwise(pl.col("birth_date")).alias("birth_date"))
    ids = pl.Series(["a-member-id-of-20-b-7", "a-member-id-of-20-b-1"])
    out = vs.partition_task(frame.lazy(), [], dt.date(2030, 1, 1), engine.data.validation.MIN_DATE,
                            engine.data.validation.MAX_DATE, ids, pl.Series([5, 6], dtype=pl.UInt32))
    assert [out[k].height for k in ("rejected", "claimants", "cands")] == [3, 2, 2]
    for k in ("rejected", "claimants", "cands"):
        arr = out[k].get_column("member_id").to_arrow(compat_level=pl.CompatLevel.newest())
        assert sum(b.size for b in arr.buffers() if b is not None) < 2_000, k
    assert out["claimants"].get_column("member_id").to_list() == ids.reverse().to_list()


def test_sex_clean_up_of_the_rows_holding_no_code() -> None:
    """The clean-up computed on the rows holding no code only gives the values of cleaning every row (a code
    is its own clean-up)."""
    from engine.data.schema import SEX_CODES, clean_sex

    raw = pl.Series("sex", [*SEX_CODES, None, " f", "m ", "u", "", " M ", "F"] * 3)
    want = raw.to_frame().select(clean_sex(pl.col("sex"))).to_series()
    assert vs._clean_sex(raw).to_list() == want.to_list()
    assert vs._clean_sex(raw.filter(raw.is_in(list(SEX_CODES)))).to_list() == [c for c in raw.to_list() if c in SEX_CODES]
