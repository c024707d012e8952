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
    """Configuration and task vocabulary of the active run.

    ``tasks`` are the training tasks (from ``dataset:``), in order; ``eval_tasks`` the tasks that only evaluation
    datasets (``eval_dataset:``) bring — they are scored with weight 1 and never weighted in training. Task ids in
    the labels index ``tasks + eval_tasks``.
    """

    weighting: str
    weights: dict[str, float] | None
    weights_path: str | None
    task_key: str | None
    hparams: dict[str, Any]
    tla_variant: str = "step"
    fused_ce: bool = True
    ce_chunk_tokens: int | None = None
    data_args: Any = None
    training_args: Any = None
    tasks: list[str] = field(default_factory=list)
    eval_tasks: list[str] = field(default_factory=list)

    def register_task(self, task: str, eval_only: bool = False) -> int:
        """Add ``task`` to the vocabulary (if new) and return its id.

        A training task registered after evaluation-only tasks would shift their ids; LLaMA-Factory loads every
        training dataset before the evaluation datasets, so this cannot happen (it raises if it does).
        """
        if task in self.tasks:
            return self.tasks.index(task)
        if eval_only:
            if task not in self.eval_tasks:
                self.eval_tasks.append(task)
            return len(self.tasks) + self.eval_tasks.index(task)
        if self.eval_tasks:
            raise RuntimeError(f"cotbal_plugin: training task {task!r} registered after evaluation tasks.")
        self.tasks.append(task)
        return len(self.tasks) - 1

    def task_to_id(self) -> dict[str, int]:
        """Mapping task name → integer id used inside the labels."""
        return {task: i for i, task in enumerate([*self.tasks, *self.eval_tasks])}

    def settings(self) -> Any:
        """The trainer-side settings (:class:`cotbal_plugin.core.config.CotbalSettings`) of this run."""
        from ..core.config import CotbalSettings

        return CotbalSettings(
            tasks=list(self.tasks),
            weighting=self.weighting,
            weights=self.weights,
            hparams=dict(self.hparams),
            eval_tasks=list(self.eval_tasks),
            tla_variant=self.tla_variant,
            fused_ce=self.fused_ce,
            ce_chunk_tokens=self.ce_chunk_tokens,
            weights_source=self.weights_path or "cotbal_weights",
        )


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
