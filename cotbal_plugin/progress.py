"""Progress bars of the ``cotbal`` commands, one convention everywhere.

tqdm's own convention: ``disable=None`` shows a bar only when its stream (stderr) is a terminal, so CI logs and
SLURM output files never fill with bar redraws. The commands' ``--progress`` forces bars on, ``--no-progress`` and
``-q/--quiet`` turn them off; without a flag, ``TQDM_DISABLE=1`` (tqdm's environment variable) turns them off too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tqdm import tqdm

Progress = bool | None
"""``True`` always, ``False`` never, ``None`` only when stderr is a terminal (the default)."""


def resolve(progress: Progress, quiet: bool = False) -> Progress:
    """The effective setting of the command-line flags: an explicit ``--progress/--no-progress`` wins, else
    ``--quiet`` means no bars, else ``None`` (automatic)."""
    if progress is not None:
        return progress
    return False if quiet else None


def bar(iterable: Iterable | None = None, *, progress: Progress = None, **kwargs) -> tqdm:  # noqa: ANN003
    """A tqdm bar on stderr that follows :data:`Progress` (extra keyword arguments go to tqdm)."""
    if progress is None and os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on"):
        progress = False  # tqdm applies its variable only to arguments not passed; `disable` always is
    return tqdm(iterable, disable=None if progress is None else not progress, **kwargs)
