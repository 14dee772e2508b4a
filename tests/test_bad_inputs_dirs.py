"""Bad-input matrix (issue 16, item 3): directories read by the Hive and Spark conventions.

Each kind runs ``fentan validate`` on a members directory laid out in an unusual way and checks
that exactly the right rows were read (no row twice, none dropped) and that every skipped file
is named in ``account.json`` with its reason. A hypothesis property test builds random layouts.
"""


from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kits.badinput import Ctx, _run, base  # noqa: F401  (base: fixture)


def _validate_dir(x: Ctx, d: Path | str, capsys) -> dict:  # type: ignore[no-untyped-def]
    code, out, err = _run(x.validate(str(d)), capsys)
    assert code == 0, err
    acc = json.loads((x.tmp / "out" / "account.json").read_text())
    m = acc["members"]
    assert m["read"] == m["used"] + sum(m["set_aside"].values())
    return acc


def _parts(x: Ctx, n: int = 3) -> tuple[Path, list[pl.DataFrame]]:
    chunks = [x.m.slice(i * 1000, 1000) for i in range(n)]
    d = Path(x.parts(chunks, "mdir", "members"))
    return d, chunks


def test_spark_temporary_and_hidden_copies_are_not_read(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    d, chunks = _parts(x)
    for junk in ("_temporary/0/part=1", ".old/part=1"):  # stale copies of partition 1
        (d / junk).mkdir(parents=True)
        chunks[0].write_parquet(d / junk / "data.parquet")
    (d / "_SUCCESS").write_text("")
    (d / "part=2" / ".data.parquet.crc").write_bytes(b"crc")
    acc = _validate_dir(x, d, capsys)
    assert acc["members"]["read"] == x.rows["members"] == 3000
    assert "duplicate_member_id" not in acc["members"]["set_aside"]
    skipped = acc["members"]["files"]["skipped"]
    assert set(skipped) == {f"{d}/_temporary/", f"{d}/.old/", f"{d}/_SUCCESS", f"{d}/part=2/.data.parquet.crc"}
    assert skipped[f"{d}/_temporary/"].startswith("metadata") and skipped[f"{d}/.old/"].startswith("hidden")


def test_symlink_to_a_partition_is_read_once(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    d, _ = _parts(x)
    os.symlink(d / "part=3" / "data.parquet", d / "latest.parquet")
    os.symlink(d / "part=2", d / "current")
    acc = _validate_dir(x, d, capsys)
    assert acc["members"]["read"] == 3000 and acc["members"]["set_aside"] == {}
    skipped = acc["members"]["files"]["skipped"]
    assert skipped[f"{d}/latest.parquet"].startswith("duplicate") and skipped[f"{d}/current/"].startswith("duplicate")


def test_upper_case_and_pq_files_are_read(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    d = tmp_path / "mdir"
    d.mkdir()
    for i, name in enumerate(["part-1.PARQUET", "part-2.pq", "part-3.Parquet"]):
        x.m.slice(i * 1000, 1000).write_parquet(d / name)
    (d / "notes.txt").write_text("not data")
    acc = _validate_dir(x, d, capsys)
    assert acc["members"]["read"] == 3000
    assert acc["members"]["files"]["skipped"] == {f"{d}/notes.txt": "not a data file name (.parquet, .pq, .csv or .csv.gz)"}


def test_hive_values_keep_zeros_null_and_url_decoding(tmp_path) -> None:
    from engine.data.io import read_members
    from engine.synth import generate

    m = generate(300, seed=2).members.drop("city_tier", "channel")
    d = tmp_path / "h"
    for i, (code, city) in enumerate([("007", "S%C3%A3o%20Paulo"), ("010", "__HIVE_DEFAULT_PARTITION__"),
                                      ("__HIVE_DEFAULT_PARTITION__", "a%2Fb")]):
        p = d / f"region={code}" / f"city={city}"
        p.mkdir(parents=True)
        m.slice(i * 100, 100).write_parquet(p / "data.parquet")
    got = read_members(d).collect()
    assert got.schema["region"] == pl.String and got.schema["city"] == pl.String
    assert sorted(got["region"].drop_nulls().unique().to_list()) == ["007", "010"]
    assert got["region"].null_count() == 100 and got["city"].null_count() == 100
    assert sorted(got["city"].drop_nulls().unique().to_list()) == ["São Paulo", "a/b"]


def test_literal_path_with_glob_characters_is_read_as_a_path(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    d = tmp_path / "extract[2021]*"
    d.mkdir()
    x.m.write_parquet(d / "members.parquet")
    x.rows["members"] = x.m.height
    acc = _validate_dir(x, d, capsys)
    assert acc["members"]["read"] == x.m.height


# --------------------------------------------------------------------------- property: random layouts
_NAMES = st.sampled_from(["a", "b", "part=1", "part=2", "k=007", ".old", "_temporary", "_SUCCESS", ".hidden"])
_FILES = st.sampled_from(["x.parquet", "y.PARQUET", "z.pq", "w.Pq", "_meta.parquet", ".x.parquet", "r.crc", "e.parquet"])


@st.composite
def _layout(draw):  # type: ignore[no-untyped-def]
    """A list of (directory parts, file name, rows, empty) and symlinks to some of them."""
    entries = []
    for _ in range(draw(st.integers(1, 8))):
        parts = tuple(draw(st.lists(_NAMES, max_size=3)))
        entries.append((parts, draw(_FILES), draw(st.integers(1, 4)), draw(st.booleans()) and draw(st.booleans())))
    links = draw(st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=3))
    return entries, links


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=_layout())
def test_random_layouts_read_exactly_the_right_files(tmp_path_factory, layout) -> None:  # type: ignore[no-untyped-def]
    from engine.data.io import read_members

    entries, links = layout
    root = tmp_path_factory.mktemp("layout") / "root"
    root.mkdir()
    written: dict[Path, int] = {}
    next_id = 0
    for parts, name, rows, empty in entries:
        d = root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        f = d / name
        if f.exists():
            continue
        if empty:
            f.write_bytes(b"")
            written[f] = 0
            continue
        df = pl.DataFrame({"member_id": [f"M{next_id + i}" for i in range(rows)],
                           "birth_date": [pl.date(1980, 1, 1)] * rows}).select(
            pl.col("member_id"), pl.lit(pl.Series([__import__("datetime").date(1980, 1, 1)] * rows)).alias("birth_date"),
            pl.lit("M").alias("sex"), pl.lit(pl.Series([__import__("datetime").date(2020, 1, 1)] * rows)).alias("join_date"),
            pl.lit(None, dtype=pl.Date).alias("exit_date"))
        df.write_parquet(f)
        written[f] = rows
        next_id += rows
    real_files = list(written)
    made: list[tuple[Path, Path]] = []
    for i, to_dir in links:  # links to files or their directories: never read twice
        if not real_files:
            break
        target = real_files[i % len(real_files)]
        link = root / f"link{i}{'' if to_dir else '.parquet'}"
        if not link.exists() and not link.is_symlink():
            os.symlink(target.parent if to_dir else target, link)
            made.append((link, target.parent if to_dir else target))

    def visible(f: Path, below: Path) -> bool:  # the Hive/Spark rules for a file reached below ``below``
        rel = f.relative_to(below).parts
        return (not any(p.startswith((".", "_")) for p in rel) and f.name.lower().endswith((".parquet", ".pq"))
                and written[f] > 0)

    expected_real = {os.path.realpath(f) for f in written if visible(f, root)}
    for link, target in made:  # a visible link is data too (read once, at its real place when also reached there)
        if target.is_dir():
            expected_real |= {os.path.realpath(f) for f in written if target in f.parents and visible(f, target)}
        elif written[target] > 0:
            expected_real.add(os.path.realpath(target))
    expected = {f for f in written if os.path.realpath(f) in expected_real}
    if not expected_real:
        from engine.errors import InputFileError

        with pytest.raises(InputFileError):
            read_members(root)
        shutil.rmtree(root.parent)
        return
    lf = read_members(root)
    read = {os.path.realpath(s) for s in lf._fentan_sources}
    assert read == expected_real
    assert len(lf._fentan_sources) == len(read)  # each real file once
    assert lf.select(pl.len()).collect().item() == sum(written[f] for f in expected)
    # every file found under the root is either read or named as skipped with a reason
    skipped = lf._fentan_skipped
    for f in written:
        if f in expected:
            continue
        else:
            hidden_dir = next((root.joinpath(*f.relative_to(root).parts[:k + 1]) for k, p in
                               enumerate(f.relative_to(root).parts[:-1]) if p.startswith((".", "_"))), None)
            assert str(f) in skipped or (hidden_dir is not None and f"{hidden_dir}/" in skipped), f
    assert all(isinstance(r, str) and r for r in skipped.values())
    shutil.rmtree(root.parent)
