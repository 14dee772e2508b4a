"""Entry point of the ``fentan`` console command.

Subcommands are discovered from modules ``engine/cli/cmd_*.py``. Each defines
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and keeps
heavy imports inside ``run`` so ``fentan --help`` stays fast; ``BLAS = False`` marks a command
without linear algebra (no BLAS thread limit, so scipy is not loaded).

Exit codes: 0 ok, 2 bad input/config/data (one line on stderr naming the file,
key or column), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

import engine.cli as _cli_pkg


def _commands(only: str | None = None) -> list[ModuleType]:
    """The command modules; with ``only``, just the module of that command when its file exists
    (``cmd_<only>.py`` with ``NAME == only``: a command's start-up loads no other command module)."""
    if only and only.isidentifier() and os.path.isfile(os.path.join(_cli_pkg.__path__[0], f"cmd_{only}.py")):
        mod = importlib.import_module(f"engine.cli.cmd_{only}")
        if getattr(mod, "NAME", None) == only:
            return [mod]
    import pkgutil

    mods = []
    for info in sorted(pkgutil.iter_modules(_cli_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"engine.cli.{info.name}"))
    return mods


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"fentan: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``fentan`` argument parser with every discovered subcommand (with ``command``: that one only,
    when it exists; its help, usage and errors are the same)."""
    from engine._version import __version__
    from engine.cli._flags import add_format

    parser = _Parser(prog="fentan", description="Pricing and segmentation engine for ex-post cost-sharing pools.")
    parser.add_argument("--version", action="version", version=f"fentan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _commands(command):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        add_format(p)
        p.set_defaults(_run=mod.run, _blas=getattr(mod, "BLAS", True))
    return parser


def _run_with_format(args: argparse.Namespace) -> int:
    """Run the command with its ``--format``: with csv/json, stdout holds only the tables."""
    import contextlib

    from engine._display import set_output_format

    fmt = getattr(args, "output_format", "table")
    try:
        if fmt == "table":
            set_output_format("table")
            return int(args._run(args) or 0)
        set_output_format(fmt, sys.stdout)
        with contextlib.redirect_stdout(sys.stderr):
            return int(args._run(args) or 0)
    finally:
        set_output_format("table")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit code (also used as the console-script entry)."""
    from engine.errors import EngineError

    args_list = list(sys.argv[1:] if argv is None else argv)
    first = args_list[0] if args_list and not args_list[0].startswith("-") else None
    parser = build_parser(first)  # the command named first: only its module is imported
    args = parser.parse_args(args_list)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        import contextlib

        from engine._threads import one_blas_thread

        # same bytes whatever OPENBLAS_NUM_THREADS (engine._threads); a command without linear
        # algebra (BLAS = False) skips it and the import of scipy it needs
        with one_blas_thread() if getattr(args, "_blas", True) else contextlib.nullcontext():
            code = _run_with_format(args)
    except EngineError as exc:
        print(f"fentan {args.command}: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print(f"fentan {args.command}: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # internal error: one line, traceback on demand
        if os.environ.get("FENTAN_DEBUG"):
            traceback.print_exc()
        print(
            f"fentan {args.command}: internal error: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            " (set FENTAN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        code = 1
    finally:
        from engine.pipeline.outguard import release_locks

        release_locks()
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
