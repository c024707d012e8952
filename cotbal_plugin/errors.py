"""The one base class of user mistakes (bad file, option or data), shared by the trainer hook and the CLI.

``cotbal`` prints a :class:`CotbalUserError` as one line ``cotbal <command>: error: <message>`` and exits with code 2;
any other exception is a bug and keeps its traceback (exit code 1). Messages name the culprit (file, task, key,
option) and the fix, on one line.
"""

from __future__ import annotations


class CotbalUserError(ValueError):
    """A user mistake; the message names the culprit and the fix."""
