"""Flag helpers shared by the CLI commands: renamed flags kept as deprecated aliases, ``--format``.

One flag name has one meaning across every ``fentan`` command (docs/batch.md, "Flag names").
When a flag is renamed, the old spelling stays for one release as a hidden alias that prints a
one-line deprecation notice on stderr and sets the new flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from engine._display import FORMATS


class _DeprecatedAlias(argparse.Action):
    """Store into the new flag's ``dest`` and print a one-line notice on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release;"
              f" use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_renamed(p: argparse.ArgumentParser, new: str, old: str, **kw: Any) -> None:
    """Add flag ``new`` with ``kw`` and the deprecated alias ``old`` (hidden from ``--help``)."""
    action = p.add_argument(new, **kw)
    alias_kw = {k: v for k, v in kw.items() if k in ("type", "choices", "nargs", "metavar")}
    if kw.get("action") == "store_true":
        alias_kw = {"nargs": 0, "const": True}
    p.add_argument(old, dest=action.dest, action=_DeprecatedAlias, new=new, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS, **alias_kw)


def add_format(p: argparse.ArgumentParser) -> None:
    """``--format table|csv|json`` for the tables a command prints (see :mod:`engine._display`)."""
    p.add_argument("--format", choices=FORMATS, default="table", dest="output_format",
                   help="how printed tables look: table (rich; full width when piped), csv or json "
                        "(one object per line); with csv/json other messages go to stderr (default table)")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """``--static`` and ``--lang``: the report's figures and language, over ``[output] static`` / ``language``."""
    p.add_argument("--static", action="store_true", default=None,
                   help="static PNG figures in report.html (for print and PDF) instead of interactive plots")
    p.add_argument("--lang", choices=("en", "zh"), default=None,
                   help="language of report.html (default: [output] language, else en)")
