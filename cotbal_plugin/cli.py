"""The ``cotbal`` companion CLI: ``plan → run → eval → weights → report`` (+ ``summary``, ``convert``).

Sub-commands live in :mod:`cotbal_plugin.commands`, one module each with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; every sub-command also gets ``-q/--quiet`` and
``--progress/--no-progress`` (:mod:`cotbal_plugin.commands._common`).

Exit codes and messages (the contract of ``docs/cli.md``):

* 0 — success.
* 2 — a user error: a bad option (argparse), or a :class:`~cotbal_plugin.errors.CotbalUserError` raised by a
  loader or a command (missing / invalid / empty file, wrong types, NaN, unknown task ...), or a file-system error
  on a path the user gave (no such file, a directory, permission denied). Exactly one line on stderr,
  ``cotbal <command>: error: <message>``, no traceback.
* 1 — a failed job of ``cotbal run`` (the message shows the tail of the job's log), or a bug: any other exception
  keeps its traceback so that it can be reported.
* 130 — interrupted (Ctrl-C); 141 — standard output closed early (``cotbal summary ... | head -1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

COMMANDS = ["plan", "run", "eval", "weights", "report", "summary", "convert"]
OPTIONAL_COMMANDS = {"convert"}  # skipped when its module is not installed
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


class UsageError(Exception):
    """A command-line usage error found by argparse (exit code 2)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class CotbalArgumentParser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: a usage error is ONE line, ``<prog>: error: <message>``, pointing
    to ``--help`` (instead of argparse's usage block followed by the message)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(self.prog, f"{message} (see `{self.prog} --help`)")


def load_commands(names: Sequence[str] = COMMANDS) -> list[ModuleType]:
    """Import the command modules; an optional one whose module does not exist is skipped."""
    modules = []
    for name in names:
        module_name = f"cotbal_plugin.commands.{name}"
        try:
            modules.append(importlib.import_module(module_name))
        except ModuleNotFoundError as err:
            if name in OPTIONAL_COMMANDS and err.name == module_name:
                continue
            raise
    return modules


def build_parser(modules: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command module."""
    from cotbal_plugin import __version__
    from cotbal_plugin.commands._common import add_common_options

    parser = CotbalArgumentParser(
        prog="cotbal",
        description="CoTBal task balancing for LLaMA-Factory: probe planning, scoring and task weights.",
        epilog="Typical path: cotbal plan → cotbal run → cotbal eval → cotbal weights → cotbal report; then "
        "`llamafactory-cli train final.yaml` with `loss: cotbal`. `cotbal COMMAND --help` shows examples. "
        "Exit codes: 0 ok, 2 user error (one line on stderr), 1 failed job or bug.",
    )
    parser.add_argument("--version", action="version", version=f"cotbal_plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules if modules is not None else load_commands():
        child = sub.add_parser(
            module.NAME,
            help=module.HELP.replace("%", "%%"),
            description=module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        add_common_options(child)
        child.set_defaults(_run=module.run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from cotbal_plugin.errors import CotbalUserError

    errors: list[type[BaseException]] = [CotbalUserError]
    try:  # convert's errors predate the common base class
        from cotbal_plugin.convert import ConvertError

        errors.append(ConvertError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _os_error_message(err: OSError) -> str:
    paths = [repr(str(p)) for p in (err.filename, err.filename2) if p is not None]
    return f"{err.strerror or err}: {' → '.join(paths)}" if paths else str(err.strerror or err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cotbal`` CLI; returns the exit code (0 ok, 2 user error, 1 failed job; bugs raise)."""
    from cotbal_plugin.commands._common import one_line
    from cotbal_plugin.probe.errors import ProbeWarning
    from cotbal_plugin.probe.runner import JobFailed

    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the sub-command that was being parsed, not by the top-level parser
            prog = f"cotbal {args.command}"
            raise UsageError(prog, f"unrecognized arguments: {' '.join(extra)} (see `{prog} --help`)")
    except UsageError as err:
        print(f"{err.prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help / --version (0)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    prog = f"cotbal {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ProbeWarning)
        warnings.showwarning = show_warning
        try:
            return int(args._run(args) or 0)
        except _user_errors() as err:
            print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
            return 2
        except USER_OS_ERRORS as err:  # a path the user gave; the loaders catch most of these with more context
            print(f"{prog}: error: {one_line(_os_error_message(err))}", file=sys.stderr)
            return 2
        except JobFailed as err:
            print(f"{prog}: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `cotbal ... | head`: the reader left; stay silent like other Unix tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
