"""The one stderr line of a CLI user error (exit code 2), for tests that check what it names."""

from __future__ import annotations


def error_line(capsys, command: str, *needles: str) -> str:
    """Read stderr, require exactly one line ``fentan <command>: error: ...`` holding every needle; return it.

    Needles are what a user needs to fix the input: the file or the key / option, the column,
    and the rule that was broken.
    """
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    line = lines[0]
    assert line.startswith(f"fentan {command}: error: "), line
    assert "internal error" not in line and "Traceback" not in err, line
    missing = [n for n in needles if n not in line]
    assert not missing, f"{missing} not in {line!r}"
    return line
