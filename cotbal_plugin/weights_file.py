"""Reading and validating ``weights.json`` (DESIGN §2): ``{"weights": {"<task>": <float>, ...}, ...}``."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path


class CotbalConfigError(ValueError):
    """A user mistake in the plugin's configuration; the message names the culprit and the fix."""


def load_weights(path: str | Path) -> dict[str, float]:
    """Load and validate the task weights of a ``weights.json`` file.

    Raises:
        CotbalConfigError: missing file, invalid JSON, no ``"weights"`` object, a weight that is not a finite
            number or not > 0 — always naming the file and the task.
    """
    path = Path(path)
    if not path.is_file():
        raise CotbalConfigError(
            f"cotbal_weights: file {str(path)!r} does not exist. Write it with `cotbal weights --out {path}` "
            'or by hand as {"weights": {"<task>": <weight>, ...}}.'
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CotbalConfigError(f"cotbal_weights: {str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise CotbalConfigError(
            f'cotbal_weights: {str(path)!r} has no "weights" object; expected {{"weights": {{"<task>": <weight>}}}}.'
        )
    raw = data["weights"]
    if not raw:
        raise CotbalConfigError(f'cotbal_weights: the "weights" object of {str(path)!r} is empty.')
    weights: dict[str, float] = {}
    for task, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CotbalConfigError(
                f"cotbal_weights: weight of task {task!r} in {str(path)!r} is {value!r}, not a number."
            )
        value = float(value)
        if not math.isfinite(value):
            raise CotbalConfigError(f"cotbal_weights: weight of task {task!r} in {str(path)!r} is {value}.")
        if value <= 0:
            raise CotbalConfigError(
                f"cotbal_weights: weight of task {task!r} in {str(path)!r} is {value}; weights must be > 0 "
                "(a zero weight would make a step with only that task 0/0). Drop the task from `dataset:` instead."
            )
        weights[str(task)] = value
    return weights


def check_weights_cover(weights: dict[str, float], tasks: Iterable[str], source: str) -> None:
    """Fail if a training task has no weight; warn about weights of tasks that are not trained.

    Args:
        weights: task → weight, from :func:`load_weights`.
        tasks: the tasks found in the training data.
        source: the weights file, for the messages.
    """
    tasks = list(tasks)
    missing = [t for t in tasks if t not in weights]
    if missing:
        raise CotbalConfigError(
            f"cotbal_weights: {source!r} has no weight for task(s) {missing}. Tasks in training: {tasks}; "
            f"tasks with a weight: {sorted(weights)}. Add the missing tasks to the file (or map datasets to a "
            "weighted task with a `cotbal_task` entry in dataset_info.json)."
        )
    unused = sorted(set(weights) - set(tasks))
    if unused:
        warnings.warn(
            f"cotbal_weights: {source!r} gives weights for tasks that are not in training: {unused} (ignored).",
            stacklevel=2,
        )
