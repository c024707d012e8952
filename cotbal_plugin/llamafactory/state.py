"""Process-wide state of an active ``loss: cotbal`` run.

LLaMA-Factory's data code never sees the fine-tuning arguments, so the parsed plugin configuration and the task
vocabulary discovered while loading the data live here. Every rank parses the same YAML and loads the same data,
so every rank builds the same task list in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..weights_file import CotbalConfigError


@dataclass
class CotbalRun:
    """Configuration and task vocabulary of the active run."""

    weighting: str
    weights: dict[str, float] | None
    weights_path: str | None
    task_key: str | None
    hparams: dict[str, Any]
    data_args: Any = None
    training_args: Any = None
    tasks: list[str] = field(default_factory=list)

    def register_task(self, task: str) -> int:
        """Add ``task`` to the vocabulary (if new) and return its id."""
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)

    def task_to_id(self) -> dict[str, int]:
        """Mapping task name → integer id used inside the labels."""
        return {task: i for i, task in enumerate(self.tasks)}


_ACTIVE: CotbalRun | None = None


def activate(run: CotbalRun) -> None:
    """Mark ``run`` as the active configuration of this process."""
    global _ACTIVE
    _ACTIVE = run


def deactivate() -> None:
    """Forget the active configuration (a later parse without ``loss: cotbal``, or tests)."""
    global _ACTIVE
    _ACTIVE = None


def active() -> CotbalRun | None:
    """The active run, or None when the YAML did not say ``loss: cotbal``."""
    return _ACTIVE


def require_active() -> CotbalRun:
    """The active run; raises when the plugin was not configured by the argument parser."""
    if _ACTIVE is None:
        raise CotbalConfigError(
            "loss: cotbal is not active in this process: the arguments were not parsed through LLaMA-Factory's "
            "parser with cotbal_plugin installed (call cotbal_plugin.install() before llamafactory imports)."
        )
    return _ACTIVE
