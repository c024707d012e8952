"""The ``cotbal`` companion CLI: ``plan → run → eval → weights → report`` (+ ``summary``, ``convert``).

Sub-commands live in :mod:`cotbal_plugin.commands`, one module each with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. User errors exit with code 2 and one message on stderr;
a failed job of ``cotbal run`` exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

COMMANDS = ["plan", "run", "eval", "weights", "report", "summary", "convert"]
OPTIONAL_COMMANDS = {"convert"}  # skipped when its module is not installed


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

    parser = argparse.ArgumentParser(
        prog="cotbal",
        description="CoTBal task balancing for LLaMA-Factory: probe planning, scoring and task weights.",
        epilog="Typical path: cotbal plan → cotbal run → cotbal eval → cotbal weights → cotbal report.",
    )
    parser.add_argument("--version", action="version", version=f"cotbal_plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules if modules is not None else load_commands():
        child = sub.add_parser(module.NAME, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.add_arguments(child)
        child.set_defaults(_run=module.run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from cotbal_plugin.probe.errors import ProbeError

    errors: list[type[BaseException]] = [ProbeError]
    try:
        from cotbal_plugin.weights_file import CotbalConfigError

        errors.append(CotbalConfigError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"cotbal: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cotbal`` CLI; returns the exit code (0 ok, 1 failed job, 2 user error)."""
    from cotbal_plugin.probe.errors import ProbeWarning
    from cotbal_plugin.probe.runner import JobFailed

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    with warnings.catch_warnings():
        warnings.simplefilter("always", ProbeWarning)
        warnings.showwarning = _show_warning
        try:
            return int(args._run(args) or 0)
        except _user_errors() as err:
            print(f"cotbal {args.command}: error: {err}", file=sys.stderr)
            return 2
        except JobFailed as err:
            print(f"cotbal {args.command}: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"cotbal {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
