"""Errors and warnings of the probe pipeline (``cotbal`` CLI and its library)."""

from __future__ import annotations

from cotbal_plugin.errors import CotbalUserError


class ProbeError(CotbalUserError):
    """A user mistake (bad input file, option or data); the message names the culprit and the fix.

    The CLI prints the message on stderr and exits with code 2, without a traceback.
    """


class ProbeWarning(UserWarning):
    """Something suspicious but not fatal (e.g. a weight outside [0.5, 2.0], a mini subset < 1000 samples)."""
