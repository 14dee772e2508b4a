"""CLI output (issue 18, item 8): one meaning per flag name, readable numbers, --format, configs/demo.toml."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from engine._display import emit_table, format_number, format_value, print_table, set_output_format
from engine._results import print_frame
from engine.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "text"), [
    (56_810_000.0, "56,810,000"), (5.681e7, "56,810,000"), (12_345.6, "12,346"), (1234.5, "1,234"),
    (8.79, "8.79"), (0.001234, "0.001234"), (1.2e-05, "0.000012"), (0.5, "0.5"), (-3_000_000.0, "-3,000,000"),
    (0.0, "0"), (float("nan"), "nan"), (3.1357e-16, "3.136e-16"),
])
def test_numbers_never_in_scientific_notation(value: float, text: str) -> None:
    assert format_number(value) == text


def test_integers_and_years() -> None:
    assert format_value(56_810_000, "members") == "56,810,000"
    assert format_value(2021, "year") == "2021" and format_value(2021, "claims") == "2,021"
    assert format_value(True, "cap_binding") == "True"


def test_piped_table_is_not_truncated() -> None:
    cols = [f"a_rather_long_column_name_{i}" for i in range(25)]
    buf = io.StringIO()  # not a terminal
    set_output_format("table", buf)
    try:
        emit_table("wide", cols, [[56_810_000.0 + i for i in range(25)]])
    finally:
        set_output_format("table")
    text = buf.getvalue()
    assert all(c in text for c in cols) and "…" not in text and "e+07" not in text
    assert "56,810,000" in text and "\x1b[" not in text


def test_print_frame_uses_the_same_printer() -> None:
    buf = io.StringIO()
    set_output_format("csv", buf)
    try:
        print_frame(pl.DataFrame({"plan": ["a"], "members": [56_810_000], "share": [8.79]}), title="t")
    finally:
        set_output_format("table")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "# t" and lines[1] == "plan,members,share" and lines[2] == "a,56810000,8.79"


def test_every_command_takes_format() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        assert "--format" in p.format_help(), name
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", "x", "--format", "xml"])
    assert exc.value.code == 2


def test_synth_json_and_csv_on_stdout_only(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--n-members", "2000", "--out", str(tmp_path / "a"), "--format", "json"]) == 0
    out = capsys.readouterr().out
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs[0]["table"] == "synthetic platform"
    items = {r["item"]: r["value"] for r in docs[0]["rows"]}
    assert isinstance(items["members rows"], int) and items["members rows"] >= 2000
    assert main(["synth", "--n-members", "2000", "--out", str(tmp_path / "b"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# synthetic platform"
    rows = list(csv.DictReader(lines[1:]))
    assert rows[0]["item"] == "members rows" and "," not in rows[0]["value"]


def test_synth_level_is_a_deprecated_alias(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--n-members", "2000", "--incidence-level", "0.4", "--out", str(tmp_path / "new"),
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["synth", "--n-members", "2000", "--level", "0.4", "--out", str(tmp_path / "old"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--level is deprecated" in err[0] and "--incidence-level" in err[0]
    assert (tmp_path / "new" / "claims.parquet").read_bytes() == (tmp_path / "old" / "claims.parquet").read_bytes()


@pytest.mark.parametrize(("command", "new", "old", "value"), [
    (["synth", "--out", "x"], "incidence_level", "--level", "0.3"),
    (["synth", "--out", "x"], "n_members", "--members", "300"),
    (["demo"], "n_members", "--members", "300"),
    (["segment", "--out", "x"], "n_groups", "--groups", "3"),
    (["segment", "--out", "x"], "rate_model", "--model", "cell"),
    (["plans", "c.toml", "--cells", "c", "--out", "x"], "sharing_rules", "--rules", None),
    (["credibility", "--cells", "c", "--group", "g", "--out", "x"], "period_col", "--period", "p"),
    (["credibility", "--cells", "c", "--group", "g", "--out", "x"], "claims_col", "--claims", "n"),
    (["credibility", "--cells", "c", "--group", "g", "--out", "x"], "exposure_col", "--exposure", "e"),
])
def test_renamed_flags_keep_their_old_spelling(command: list[str], new: str, old: str, value: str | None,
                                               capsys) -> None:
    args = build_parser().parse_args(command + [old] + ([value] if value else []))
    assert getattr(args, new) == (True if value is None else type(getattr(args, new))(value))
    assert "deprecated" in capsys.readouterr().err


def test_one_meaning_per_flag_name() -> None:
    """Flags spelt alike in two commands take the same kind of value (hidden deprecated aliases aside)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    seen: dict[str, dict[str, str]] = {}
    for name, p in sub.choices.items():  # type: ignore[union-attr]
        for a in p._actions:
            if a.help == "==SUPPRESS==" or not a.option_strings:
                continue
            kind = "flag" if a.nargs == 0 else (getattr(a.type, "__name__", "str") if a.choices is None else "choice")
            kind = "number" if kind in ("int", "float") or a.dest == "waiting_days" else kind  # exposure parses it
            for opt in a.option_strings:
                seen.setdefault(opt, {})[name] = kind
    mixed = {opt: kinds for opt, kinds in seen.items() if len(set(kinds.values())) > 1}
    assert mixed == {}, mixed


def test_demo_toml_runs_after_the_readme_demo(small_demo, tmp_path: Path) -> None:
    """`fentan demo --out out/demo` then `fentan run configs/demo.toml`, in a copy of the repository layout."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(small_demo.out / "data", tmp_path / "out" / "demo" / "data")  # what the demo wrote (5,000 members)
    assert main(["run", str(tmp_path / "configs" / "demo.toml"), "--out", str(tmp_path / "out" / "run"),
                 "--quiet"]) == 0
    assert (tmp_path / "out" / "run" / "summary.json").exists()


def test_print_table_quiet_and_empty(capsys) -> None:
    print_table("t", [], quiet=False)
    print_table("t", [{"a": 1}], quiet=True)
    assert capsys.readouterr().out == ""
