"""``fentan run`` streams end to end (issue 22): validation file by file, members never collected.

The default run (``[run] stream = true``) validates the members file by file and hands every later
pass the per-file clean rows; ``[run] stream = false`` keeps the in-memory path (every clean member
collected, then cut into slices). On 10^5 members split into 1, 3 and 8 files (uneven, one empty,
duplicate ids and a claim's member in another file, an integer factor ``risk_band`` with nulls in one
file only), and on 10^6 members in 10 uneven files, every output file of the two paths is
byte-identical (``run.json`` records wall times: exempt) and the row account balances, identically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

import engine
from tests.kits.runconfig import small_run_config

N_MEMBERS = 100_000
#: cut points (fractions of the rows) of each split; equal consecutive cuts make an empty file
SPLITS = {1: [], 3: [0.05, 0.05], 8: [0.01, 0.2, 0.2, 0.35, 0.5, 0.52, 0.9]}
FACTORS = '[study]\nfactors = ["city_tier", "channel", "risk_band"]\n'


def _digests(root: Path) -> dict[str, str]:
    """SHA-256 of every output file; ``config.toml`` without the two lines that must differ (the
    configuration file it came from and its ``stream`` key)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "run.json":
            data = p.read_bytes()
            if p.name == "config.toml":
                lines = data.decode().splitlines()
                kept = [x for x in lines if not x.startswith(("# resolved configuration (from", "stream = "))]
                assert len(lines) - len(kept) == 2
                data = "\n".join(kept).encode()
            out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("run_stream")
    plat = generate(N_MEMBERS, 11, dirty=0.01, level=6.0)
    plat.write(root / "data")
    members = pl.read_parquet(root / "data" / "members.parquet")
    assert members.get_column("member_id").is_duplicated().any()  # duplicates, found across files
    return root, members


def _write_split(root: Path, members: pl.DataFrame, n_files: int) -> Path:
    h = members.height
    cuts = [0, *[int(f * h) for f in SPLITS[n_files]], h]
    d = root / f"members-{n_files}"
    d.mkdir()
    members = members.with_columns((pl.int_range(pl.len()) % 3).alias("risk_band"))  # an integer factor
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        part = members.slice(a, b - a)
        if i == len(cuts) - 2 and n_files > 1:  # its nulls in one file only
            part = part.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None)
                                     .otherwise(pl.col("risk_band")).alias("risk_band"))
        part.write_parquet(d / f"part-{i:02d}.parquet")
    return d


def _assert_both_paths_identical(root: Path, d: Path, tag: str, n_read: int) -> None:
    """``fentan run`` on the member files in ``d``, streamed and in memory: every output byte-identical, the
    same row account, balanced, with ``n_read`` members read and duplicate ids set aside across files."""
    outs = {}
    for stream in (True, False):
        cfg = root / f"run-{tag}-{stream}.toml"
        cfg.write_text(small_run_config(d.name, "data/claims.parquet", seed=5,
                                        extra=f"[run]\nstream = {str(stream).lower()}\n{FACTORS}"))
        res = engine.run(cfg, root / f"out-{tag}-{stream}", quiet=True)
        acc = res.account
        for what in ("members", "claims"):
            assert acc[what]["read"] == acc[what]["used"] + acc[what]["set_aside_total"]
        assert acc["members"]["read"] == n_read
        assert acc["members"]["set_aside"].get("duplicate_member_id", 0) > 0
        outs[stream] = (_digests(root / f"out-{tag}-{stream}"), acc)
    (streamed, acc_s), (in_memory, acc_m) = outs[True], outs[False]
    assert set(streamed) == set(in_memory)
    assert "cells.parquet" in streamed and "history.parquet" in streamed and "account.json" in streamed
    assert [k for k in in_memory if in_memory[k] != streamed[k]] == []
    assert json.dumps(acc_s, sort_keys=True) == json.dumps(acc_m, sort_keys=True)


def test_streamed_run_is_byte_identical_at_a_million_members(tmp_path: Path) -> None:
    """The same at 10^6 members (1% dirty rows of every kind) in 10 uneven files: the size where the streamed
    path's batches, buckets and id tasks are those of real data (several batches a file, one bucket task)."""
    from engine.synth import generate

    plat = generate(1_000_000, 12, dirty=0.01, level=6.0)
    plat.write(tmp_path / "data")
    members = pl.read_parquet(tmp_path / "data" / "members.parquet").with_columns(
        (pl.int_range(pl.len()) % 3).alias("risk_band"))
    d = tmp_path / "members-10"
    d.mkdir()
    cuts = [0, *[int(f * members.height) for f in (0.02, 0.1, 0.25, 0.3, 0.45, 0.6, 0.61, 0.8, 0.95)], members.height]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        members.slice(a, b - a).write_parquet(d / f"part-{i:02d}.parquet")
    assert len(list(d.glob("*.parquet"))) == 10
    _assert_both_paths_identical(tmp_path, d, "1e6", members.height)


@pytest.mark.parametrize("n_files", [1, 3, 8])
def test_streamed_run_is_byte_identical_to_the_in_memory_path(data: tuple[Path, pl.DataFrame], n_files: int) -> None:
    root, members = data
    d = _write_split(root, members, n_files)
    assert len(list(d.glob("*.parquet"))) == n_files
    if n_files == 3:
        assert pl.read_parquet(d / "part-01.parquet").height == 0
    _assert_both_paths_identical(root, d, f"{n_files}", members.height)
    if n_files > 1:  # the factor with nulls in one file is text levels in every output, as in memory
        cells = pl.read_parquet(root / f"out-{n_files}-True" / "cells.parquet")
        assert cells.schema["risk_band"] == pl.String and "missing" in cells.get_column("risk_band").to_list()
    else:
        cells = pl.read_parquet(root / f"out-{n_files}-True" / "cells.parquet")
        assert cells.schema["risk_band"] == pl.Int64


def test_streamed_run_holds_lazy_partitions(data: tuple[Path, pl.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    """The stages after validation get one lazy frame per file, never a collected frame of all members."""
    import engine.pipeline._stages as stages

    root, members = data
    seen = {}
    real = stages.stage_exposure

    def spy(ctx):  # the members as the exposure stage receives them
        seen["members"] = ctx.members
        raise RuntimeError("stop after validation")

    monkeypatch.setattr(stages, "stage_exposure", spy)
    d = root / "members-3"
    if not d.exists():
        _write_split(root, members, 3)
    cfg = root / "run-spy.toml"
    cfg.write_text(small_run_config(d.name, "data/claims.parquet", seed=5))
    with pytest.raises(RuntimeError, match="stop after validation"):
        engine.run(cfg, root / "out-spy", quiet=True)
    assert real is not spy
    parts = seen["members"]
    assert len(parts) == 3 and all(isinstance(p, pl.LazyFrame) for p in parts)



@pytest.mark.parametrize("n_files", [1, 3])
def test_report_fingerprint_from_the_validation_read(data: tuple[Path, pl.DataFrame], n_files: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a factor to fill, the report's data fingerprint is the one streaming validation took in its
    own read (the members are not read again for it); with a factor filled (``risk_band``, nulls in one
    file of 3) the report reads them. Either way it is the fingerprint of the members the stages read."""
    import engine.data.row_hash as rh
    import engine.pipeline._stages as stages
    from engine.report._assumptions import data_fingerprint

    root, members = data
    d = root / f"members-{n_files}"
    if not d.exists():
        _write_split(root, members, n_files)
    seen: dict = {"lazy_reads": 0}
    real_fp, real_history = rh.multiset_fingerprint, stages.stage_history

    def counting(parts, *a, **k):
        seen["lazy_reads"] += sum(isinstance(p, pl.LazyFrame) for p in parts)
        return real_fp(parts, *a, **k)

    def spy(ctx):  # the reference, from the members as the stages read them (not counted)
        seen["fp"], seen["members"] = ctx.members_fingerprint, real_fp(ctx.members)
        seen["want"] = data_fingerprint(ctx.members, ctx.claims, seen["members"])
        return real_history(ctx)

    monkeypatch.setattr(rh, "multiset_fingerprint", counting)
    monkeypatch.setattr(stages, "stage_history", spy)
    cfg = root / f"run-fp-{n_files}.toml"
    cfg.write_text(small_run_config(d.name, "data/claims.parquet", seed=5, extra=FACTORS))
    engine.run(cfg, root / f"out-fp-{n_files}", quiet=True)
    assert seen["want"] in (root / f"out-fp-{n_files}" / "report.html").read_text()
    if n_files == 1:  # nothing filled: validation's value, the members not read again
        assert seen["fp"] == seen["members"] and seen["lazy_reads"] == 0
    else:  # risk_band filled in every file: the report reads the members
        assert seen["fp"] is None and seen["lazy_reads"] == n_files
