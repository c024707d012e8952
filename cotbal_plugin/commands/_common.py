"""What every ``cotbal`` sub-command shares: ``-q/--quiet``, ``--progress/--no-progress``, output options that
accept ``-`` (standard output) or refuse it, and status messages that never mix with a document on stdout."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from cotbal_plugin.files import STDOUT, is_stdout
from cotbal_plugin.progress import Progress, resolve


def one_line(message: object) -> str:
    """A message on one line (the contract: exactly one ``error:`` line, whatever the message holds)."""
    return " ".join(str(message).split())


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``--progress/--no-progress``, the same in every sub-command."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "-q", "--quiet", action="store_true",
        help="print only errors, warnings and the requested output (no status lines, no progress bars)",
    )  # fmt: skip
    group.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bars on stderr (default: only when stderr is a terminal, as tqdm does)",
    )  # fmt: skip


def progress_of(args: argparse.Namespace) -> Progress:
    """The progress-bar setting of the parsed flags (see :func:`cotbal_plugin.progress.resolve`)."""
    return resolve(getattr(args, "progress", None), getattr(args, "quiet", False))


def stdout_is_taken(args: argparse.Namespace) -> bool:
    """Whether an output option of this command is ``-``: standard output then carries only that document."""
    return any(is_stdout(value) for value in vars(args).values())


def say(args: argparse.Namespace, text: str) -> None:
    """A status line: on stdout, or on stderr when stdout carries a document (``--out -``); none with --quiet."""
    if getattr(args, "quiet", False):
        return
    print(text, file=sys.stderr if stdout_is_taken(args) else sys.stdout, flush=True)


def output_file(text: str) -> Path | object:
    """argparse ``type=`` of an option naming one output document: a path, or ``-`` for standard output."""
    if text == "-":
        return STDOUT
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


def output_dir(text: str) -> Path:
    """argparse ``type=`` of an output folder: ``-`` is refused (several files cannot go to standard output)."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            "'-' (standard output) is not supported: this command writes several files; give a folder"
        )
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


def positive_float(text: str) -> float:
    """argparse ``type=`` of a finite number > 0 (a temperature)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def examples(*lines: str) -> str:
    """An ``Examples:`` epilog for ``--help``."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in lines)
