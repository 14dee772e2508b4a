"""Bad-input matrix (issue 16, item 1): output locations that could destroy user files.

Each kind exits 2 with ONE stderr line naming the target and the rule, before any work,
and every input file is byte-for-byte untouched afterwards; nothing is left beside the target.
"""


from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.kits.badinput import Case, Ctx, _one_error_line, _run, base, big  # noqa: F401  (base, big: fixtures)
from engine.pipeline.outguard import MARKER, target_lock


def _out(argv: list[str], target: Path | str) -> list[str]:
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(target)
    return argv


def s_run_out_is_the_data_directory(x: Ctx) -> Case:
    d = x.parts([x.m.head(1500), x.m.slice(1500)], "data/members", "members")
    return Case(_out(x.run(x.config(members=d), "--force"), x.tmp / "data"), error=("--out", "contains the input"))


def s_run_out_is_the_project_directory(x: Ctx) -> Case:
    return Case(_out(x.run(x.config(), "--force"), x.tmp), error=("--out", "contains the input", "members.parquet"))


def s_run_out_inside_an_input_directory(x: Ctx) -> Case:
    d = x.parts([x.m.head(1500), x.m.slice(1500)], "mdir", "members")
    return Case(_out(x.run(x.config(members=d), "--force"), Path(d) / "out"), error=("--out", "lies inside the input directory", "mdir"))


def s_run_out_is_the_config_file(x: Ctx) -> Case:
    cfg = x.config()
    return Case(_out(x.run(cfg, "--force"), cfg), error=("--out", "is the input", "run.toml"))


def s_run_out_contains_a_plan_file(x: Ctx) -> Case:
    (x.tmp / "plans").mkdir()
    (x.tmp / "plans" / "p.toml").write_text('[planset]\nname = "p"\n[[plans]]\nname = "a"\nbenefit = 100000\n')
    cfg = x.config(f'[plans]\nfiles = ["{x.tmp / "plans" / "p.toml"}"]\n')
    return Case(_out(x.run(cfg, "--force"), x.tmp / "plans"), error=("--out", "contains the input", "p.toml"))


def s_run_force_on_a_directory_fentan_did_not_create(x: Ctx) -> Case:
    (x.tmp / "run-out").mkdir()
    (x.tmp / "run-out" / "thesis.docx").write_text("years of work")
    return Case(x.run(x.config(), "--force"), error=("run-out", "not created by fentan", MARKER))


def s_run_out_is_the_filesystem_root(x: Ctx) -> Case:
    return Case(_out(x.run(x.config(), "--force"), "/"), error=("--out /", "filesystem root"))


def s_run_out_is_a_mount_point(x: Ctx) -> Case:
    mounts = [m for m in ("/dev/shm", "/proc", "/sys", "/dev") if os.path.ismount(m)]
    if not mounts:  # pragma: no cover
        pytest.skip("no mount point to try")
    return Case(_out(x.run(x.config(), "--force"), mounts[0]), error=(mounts[0], "mount point"))


def s_validate_out_is_the_data_directory(x: Ctx) -> Case:
    return Case(_out(x.validate(), x.tmp), error=("--out", "contains the input", "members.parquet"))


def s_validate_out_existing_user_directory(x: Ctx) -> Case:
    (x.tmp / "mine").mkdir()
    (x.tmp / "mine" / "notes.txt").write_text("mine")
    return Case(_out(x.validate(), x.tmp / "mine"), error=("mine", "not created by fentan"))


def s_demo_out_existing_user_directory(x: Ctx) -> Case:
    (x.tmp / "proj").mkdir()
    (x.tmp / "proj" / "data.csv").write_text("a,b\n")
    return Case(["demo", "--out", str(x.tmp / "proj"), "--n-members", "2000", "--quiet"], error=("proj", "not created by fentan"))


def s_demo_out_contains_its_config(x: Ctx) -> Case:
    (x.tmp / "proj").mkdir()
    (x.tmp / "proj" / "my.toml").write_text("[data]\n")
    return Case(["demo", "--out", str(x.tmp / "proj"), "--config", str(x.tmp / "proj" / "my.toml"), "--n-members", "2000",
                 "--quiet"], error=("proj", "contains the input", "my.toml"))



def s_exposure_out_is_the_members_file(x: Ctx) -> Case:
    argv = x.exposure()
    return Case(_out(argv, argv[argv.index("--members") + 1]), error=("--out", "is the input", "members.parquet"))


def s_exposure_out_inside_the_members_directory(x: Ctx) -> Case:
    d = x.parts([x.m.head(1500), x.m.slice(1500)], "mdir", "members")
    return Case(_out(x.exposure(d), Path(d) / "cells.parquet"), error=("--out", "lies inside the input directory", "mdir"))


def s_incidence_model_out_is_the_cells_directory(x: Ctx) -> Case:
    d = x.tmp / "cells"
    d.mkdir()
    x.c.head(0).write_parquet(d / "cells.parquet")
    return Case(["incidence", "--cells", str(d), "--out", str(x.tmp / "inc.parquet"), "--model-out", str(d), "--quiet"],
                error=("--out", "cells", "is the input"))


SAFETY_KINDS = [v for k, v in dict(globals()).items() if k.startswith("s_")]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", SAFETY_KINDS, ids=[f.__name__[2:] for f in SAFETY_KINDS])
def test_unsafe_output_refused_and_inputs_untouched(kind, tmp_path, base, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import engine.pipeline._stages as bs

    def no_work(ctx):  # noqa: ANN001  the refusal comes before any work
        raise AssertionError("the run started working")

    monkeypatch.setattr(bs, "stage_validate", no_work)
    case = kind(Ctx(tmp_path, *base))
    before = _snapshot(tmp_path)
    code, out, err = _run(case.argv, capsys)
    assert code == 2, (code, err)
    line = _one_error_line(err, case.argv[0])
    for needle in case.error:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert _snapshot(tmp_path) == before  # every input and user file byte-for-byte as it was
    assert [p.name for p in tmp_path.rglob(".*partial*")] == []


def test_home_directory_refused(tmp_path, base, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path / "proj", *base)
    x.tmp.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    code, _, err = _run(_out(x.run(x.config(), "--force"), home), capsys)
    assert code == 2 and "home directory" in _one_error_line(err, "run")


def test_concurrent_run_to_the_same_target_refuses(tmp_path, base, capsys) -> None:  # type: ignore[no-untyped-def]
    x = Ctx(tmp_path, *base)
    argv = x.run(x.config())
    with target_lock(tmp_path / "run-out"):  # a first run is writing there
        code, _, err = _run(argv, capsys)
    assert code == 2 and "another fentan run is writing" in _one_error_line(err, "run")
    assert not (tmp_path / "run-out").exists()


def test_too_little_free_space_refused_before_work(tmp_path, base, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import engine.pipeline.outguard as og

    real = shutil.disk_usage
    monkeypatch.setattr(og.shutil, "disk_usage", lambda p: real(p)._replace(free=1024 * 1024))
    x = Ctx(tmp_path, *base)
    code, _, err = _run(x.run(x.config()), capsys)
    assert code == 2
    line = _one_error_line(err, "run")
    assert "run-out" in line and "1 MiB free" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.parquet", "members.parquet", "run.toml"]


@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EROFS], ids=["disk_full", "read_only"])
def test_write_failure_is_one_line_and_leaves_nothing(err_no, tmp_path, base, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import engine.data.io as eio

    def failing(df, path):  # noqa: ANN001
        raise OSError(err_no, os.strerror(err_no), str(path))

    monkeypatch.setattr(eio, "write_parquet", failing)
    x = Ctx(tmp_path, *base)
    code, out, err = _run(x.run(x.config()), capsys)
    assert code == 2, err
    line = _one_error_line(err, "run")
    assert os.strerror(err_no) in line and ".parquet" in line and "nothing was changed" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.parquet", "members.parquet", "run.toml"]


def test_force_replaces_a_directory_fentan_created(tmp_path) -> None:
    from engine.pipeline.outdir import staged_output
    from engine.pipeline.outguard import write_marker

    out = tmp_path / "out"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("1")
    assert (out / MARKER).is_file()  # written at creation
    with staged_output(out, force=True) as stage:
        (stage / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.txt"]
    (out / MARKER).unlink()  # no longer recognisably fentan's: refused even with force
    from engine.errors import OutputError

    with pytest.raises(OutputError, match="not created by fentan"), staged_output(out, force=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    write_marker(out)


@pytest.fixture
def small_fs(tmp_path):  # type: ignore[no-untyped-def]
    """A real tmpfs of ``size`` mounted for the test (root with CAP_SYS_ADMIN, as in CI); ``ro=True`` read-only."""
    import subprocess

    mounted: list[Path] = []

    def make(ro: bool = False, size: str = "2m") -> Path:
        mnt = tmp_path / f"fs{len(mounted)}"
        mnt.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root")
        mounted.append(mnt)
        return mnt

    yield make
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=False)


def test_a_real_full_disk_is_one_line_and_leaves_nothing(tmp_path, base, capsys, monkeypatch, small_fs) -> None:  # type: ignore[no-untyped-def]
    """The kernel's ENOSPC (a 64 KiB filesystem, too small for the run's outputs): one line, nothing left there."""
    import engine.pipeline.outguard as og

    monkeypatch.setattr(og, "MIN_FREE_BYTES", 1024)  # let the run start, so the disk fills while it writes
    mnt = small_fs(size="64k")
    x = Ctx(tmp_path, *base)
    code, _, err = _run(_out(x.run(x.config()), mnt / "out"), capsys)
    assert code == 2, err
    line = _one_error_line(err, "run")
    assert os.strerror(errno.ENOSPC) in line and str(mnt) in line
    assert list(mnt.iterdir()) == []  # no staging directory, no partial output
    assert {p.name for p in tmp_path.iterdir()} >= {"claims.parquet", "members.parquet", "run.toml"}


def test_a_real_read_only_filesystem_is_refused_before_work(tmp_path, base, capsys, small_fs) -> None:  # type: ignore[no-untyped-def]
    mnt = small_fs(ro=True)
    x = Ctx(tmp_path, *base)
    code, _, err = _run(_out(x.run(x.config()), mnt / "out"), capsys)
    assert code == 2, err
    line = _one_error_line(err, "run")
    assert str(mnt) in line and "not writable" in line
    assert list(mnt.iterdir()) == []
