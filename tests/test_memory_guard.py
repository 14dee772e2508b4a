"""Memory guard of ``fentan run`` (issue 10, item 5): refuse early from Parquet footers, or run.

No test builds large data: a tiny limit forces the refusal on a small partitioned input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import main
from engine.errors import ConfigError
from engine.pipeline.memguard import (BASE_BYTES, PER_ROW_FACTOR, STREAM_BATCHES, available_memory, check_memory,
                                     default_limit, estimate_inputs, parse_size)

from tests.kits.runconfig import small_run_config
from tests.kits.cli_error import error_line


def _config(run: str = "") -> str:
    return small_run_config("members", "claims.parquet", max_groups=2, horizon=6, scenarios=8, plans=False, extra=run)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.synth import generate

    root = tmp_path_factory.mktemp("memguard")
    plat = generate(5_000, 3, level=6.0)
    m = plat.members
    for tier in sorted(m["city_tier"].unique().to_list()):  # hive partitions
        d = root / "members" / f"city_tier={tier}"
        d.mkdir(parents=True)
        m.filter(pl.col("city_tier") == tier).drop("city_tier").write_parquet(d / "part-0.parquet")
    plat.claims.write_parquet(root / "claims.parquet")
    (root / "run.toml").write_text(_config())
    return root


def _no_read(*args, **kwargs):  # the guard must decide before any data is read
    raise AssertionError("the data was read before the memory check")


def test_tiny_limit_refused_before_reading(platform: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    import engine.data.io

    monkeypatch.setattr(engine.data.io, "read_members", _no_read)
    monkeypatch.setattr(engine.data.io, "read_claims", _no_read)
    out = platform / "out-tiny"
    code = main(["run", str(platform / "run.toml"), "--out", str(out), "--memory-limit", "1MB"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    line = err[0]
    assert "5,000 member rows" in line and "memory limit of 1.0 MB" in line
    assert "--memory-limit" in line and "[run] memory_limit" in line and "claims cannot stream" in line
    assert not out.exists()


def test_config_key_limit_and_bad_value(platform: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = platform / "small-limit.toml"
    cfg.write_text(_config('[run]\nmemory_limit = "2 MiB"\n'))
    assert main(["run", str(cfg), "--dry-run"]) == 2
    error_line(capsys, "run", "5,000 member rows", "memory limit of 2.1 MB", f"{cfg}: run.memory_limit")
    # the command line wins over the configuration
    assert main(["run", str(cfg), "--dry-run", "--quiet", "--memory-limit", "64GB"]) == 0
    # the in-memory path holds the members: the guard counts them and names them
    mem = platform / "in-memory.toml"
    mem.write_text(_config('[run]\nmemory_limit = "2 MiB"\nstream = false\n'))
    assert main(["run", str(mem), "--dry-run"]) == 2
    error_line(capsys, "run", "5,000 member rows (held whole: [run] stream = false)", "drop [run] stream = false")
    bad = platform / "bad-limit.toml"
    bad.write_text(_config('[run]\nmemory_limit = "lots"\n'))
    assert main(["run", str(bad), "--dry-run"]) == 2
    error_line(capsys, "run", f"{bad}: run.memory_limit", "'lots'", "is not a size")


def test_estimate_from_footers_against_a_hand_count(tmp_path: Path) -> None:
    """Fixed-width columns: width = bytes + 1/8 validity bit; strings: 16 + mean uncompressed length."""
    import datetime as dt

    n = 1000
    pl.DataFrame({"a": pl.Series(range(n), dtype=pl.Int64), "d": [dt.date(2020, 1, 1)] * n,
                  "x": [0.5] * n}).write_parquet(tmp_path / "m.parquet")
    pl.DataFrame({"i": pl.Series(range(10), dtype=pl.Int32)}).write_parquet(tmp_path / "c.parquet")
    rm, wm, rc, wc, need = estimate_inputs(tmp_path / "m.parquet", tmp_path / "c.parquet", held=True)
    assert (rm, rc) == (n, 10)
    assert wm == pytest.approx(8.125 + 4.125 + 8.125)
    assert wc == pytest.approx(4.125)
    # the members held whole by validation, the claims held whole, two streamed batches of members
    assert need == int(BASE_BYTES + PER_ROW_FACTOR * (n * wm + 10 * wc) + STREAM_BATCHES * n * wm)


def test_only_what_cannot_stream_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamed members cost two batches whatever their number; the claims (held whole) are refused, by name."""
    import engine.pipeline.memguard as mg
    import engine.shares._stream as stream
    from engine.errors import ResourceError

    for n in (1000, 5000):
        pl.DataFrame({"a": pl.Series(range(n), dtype=pl.Int64)}).write_parquet(tmp_path / f"m{n}.parquet")
    pl.DataFrame({"i": pl.Series(range(200_000), dtype=pl.Int64)}).write_parquet(tmp_path / "c.parquet")
    monkeypatch.setattr(stream, "DEFAULT_BATCH", 100)
    held = [estimate_inputs(tmp_path / f"m{n}.parquet", tmp_path / "c.parquet", held=True)[-1] for n in (1000, 5000)]
    assert held[1] - held[0] == pytest.approx(PER_ROW_FACTOR * 4000 * 8.125, abs=1)  # held: grows with the rows
    assert mg.MEMBERS_HELD is False  # a default run streams the members (validation included)
    streamed = [estimate_inputs(tmp_path / f"m{n}.parquet", tmp_path / "c.parquet")[-1] for n in (1000, 5000)]
    assert streamed[0] == streamed[1] == int(BASE_BYTES + PER_ROW_FACTOR * 200_000 * 8.125 + STREAM_BATCHES * 100 * 8.125)
    limit = BASE_BYTES + 1_000_000  # above the streamed members, below the claims held whole
    with pytest.raises(ResourceError) as err:
        check_memory(tmp_path / "m5000.parquet", tmp_path / "c.parquet", limit, source="--memory-limit")
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "c.parquet")) and "200,000 claim rows (held whole" in msg
    assert "5,000 member rows stream file by file" in msg and "claims cannot stream" in msg and "memory limit of 801.0 MB (--memory-limit)" in msg


def test_generous_limit_runs_within_the_estimate(platform: Path) -> None:
    """A generous limit runs; the estimate bounds the run's measured peak RSS (a child process)."""
    out = platform / "out-ok"
    # the child reports its own peak (VmHWM of its address space): getrusage's maxrss would also
    # count the pytest parent's pages, copied at fork before exec
    code = ("import sys\nfrom engine.cli.main import main\n"
            f"rc = main(['run', {str(platform / 'run.toml')!r}, '--out', {str(out)!r}, '--quiet', '--memory-limit', '64GB'])\n"
            "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])\n"
            "sys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    peak = int(res.stdout.split()[-1]) * 1024
    assert peak > 50e6  # a real measurement
    *_, need = estimate_inputs(platform / "members", platform / "claims.parquet")
    assert need >= peak
    rec = json.loads((out / "run.json").read_text())["memory"]
    assert rec["ok"] and rec["member_rows"] == 5_000 and rec["limit_bytes"] == 64 * 10**9
    assert rec["need_bytes"] == need and rec["limit_source"] == "--memory-limit"


@pytest.mark.parametrize(("text", "n"), [("8GB", 8 * 10**9), ("512MiB", 512 * 2**20), ("1.5G", 1_500_000_000),
                                         (2_000_000, 2_000_000), (" 64 kb ", 64_000), ("3e9", 3 * 10**9)])
def test_parse_size(text, n) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "lots", "8 GiGa", "-1GB", "0", True, "GB"])
def test_parse_size_rejects(text) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_default_limit_is_a_fraction_of_available() -> None:
    avail = available_memory()
    lim, desc = default_limit()
    assert avail is not None and avail > 0
    assert 0 < lim <= avail and "available" in desc
