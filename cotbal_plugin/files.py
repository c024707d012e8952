"""Reading input JSON files and writing outputs, with one-line errors that name the file and the option.

Every loader of the project (``weights.json``, ``scores.json``, manifests, metric tables) reads through
:func:`read_json`, so a missing file, a directory, an empty or unreadable file, invalid JSON and ``NaN`` /
``Infinity`` literals give the same kind of message everywhere. Outputs go through :func:`write_text`, which also
understands ``-`` (standard output, :data:`STDOUT`) and turns ``OSError`` into a message naming the option.

Standard library only: the trainer imports this module (via ``weights_file``) in every training process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import CotbalUserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Stdout:
    """Sentinel of ``--out -``: the output goes to standard output (never a file named ``-``)."""

    def __repr__(self) -> str:
        return "'-' (standard output)"

    def __str__(self) -> str:
        return "-"


STDOUT = _Stdout()


def read_json(
    path: str | Path,
    what: str,
    hint: str = "",
    error: type[CotbalUserError] = CotbalUserError,
    allow_nonfinite: bool = False,
) -> Any:
    """Read a JSON file; every problem becomes one ``error`` naming ``what`` and the file.

    Args:
        path: the file.
        what: how the messages call it, e.g. ``"--scores"`` or ``"cotbal_weights"``.
        hint: ends the "does not exist" / "is empty" messages after a semicolon: how to produce the file
            (lower-case, e.g. ``"write it with `cotbal weights`."``).
        error: the exception class to raise (a :class:`CotbalUserError` subclass).
        allow_nonfinite: parse ``NaN`` / ``Infinity`` as floats, for a caller that rejects them itself with a
            message naming the key (weights.json names the task).

    Raises:
        error: missing file, a directory, unreadable, empty, not UTF-8, invalid JSON, or a ``NaN`` / ``Infinity``
            literal (scores and weights must be finite numbers).
    """
    path = Path(path)
    shown = repr(str(path))
    hint = f"; {hint.strip()}" if hint else "."
    if path.is_dir():
        raise error(f"{what}: {shown} is a directory; expected a JSON file.")
    if not path.exists():
        raise error(f"{what}: file {shown} does not exist{hint}")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{what}: cannot read {shown}: {err.strerror or err}.") from None
    if not raw.strip():
        raise error(f"{what}: {shown} is empty{hint}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{what}: {shown} is not UTF-8 text (is it a JSON file?).") from None

    def _reject(name: str) -> Any:
        raise error(f"{what}: {shown} contains {name}; every number must be finite (write null or fix the value).")

    try:
        return json.loads(text) if allow_nonfinite else json.loads(text, parse_constant=_reject)
    except json.JSONDecodeError as err:
        raise error(
            f"{what}: {shown} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}."
        ) from None


def is_stdout(path: object) -> bool:
    """Whether an output path is ``-`` (standard output)."""
    return path is STDOUT or (isinstance(path, str) and path == "-")


def check_output_file(path: Path | _Stdout, option: str) -> None:
    """Fail early (before any work) when ``path`` cannot be a file we may write.

    Raises:
        CotbalUserError: ``path`` is a directory, or a parent is an existing non-directory.
    """
    if is_stdout(path):
        return
    path = Path(path)
    if path.is_dir():
        raise CotbalUserError(f"{option}: {str(path)!r} is a directory; give a file path (or - for standard output).")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CotbalUserError(f"{option}: cannot write {str(path)!r}: {str(parent)!r} is not a directory.")
            break


def check_output_dir(path: Path, option: str) -> None:
    """Fail early when ``path`` exists and is not a directory (or has a non-directory parent)."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise CotbalUserError(f"{option}: {str(candidate)!r} exists and is not a directory; give a folder.")
            break


def write_text(path: Path | _Stdout, text: str, option: str) -> None:
    """Write ``text`` to ``path`` (parent folders created) or to standard output for ``-``.

    Raises:
        CotbalUserError: the file cannot be written (permission, a directory, a read-only file system ...),
            naming ``option`` and the path.
    """
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(path)
    check_output_file(path, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        reason = err.strerror or str(err)
        raise CotbalUserError(f"{option}: cannot write {str(path)!r}: {reason}.") from None


def write_json(path: Path | _Stdout, data: Any, option: str) -> None:
    """Write ``data`` as indented JSON (``NaN`` refused) to a file or to standard output (``-``)."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as err:  # a non-finite float: a bug upstream, never written as NaN
        raise ValueError(f"refusing to write non-finite numbers to {path}: {err}") from err
    write_text(path, text, option)


def make_dir(path: Path, option: str) -> Path:
    """Create the output folder ``path`` (and parents); errors name ``option``."""
    path = Path(path)
    check_output_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CotbalUserError(f"{option}: cannot create folder {str(path)!r}: {err.strerror or err}.") from None
    if not os.access(path, os.W_OK):
        raise CotbalUserError(f"{option}: folder {str(path)!r} is not writable.")
    return path
