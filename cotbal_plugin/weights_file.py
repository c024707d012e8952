"""Reading and validating ``weights.json`` (DESIGN §2): ``{"weights": {"<task>": <float>, ...}, ...}``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import CotbalUserError
from .files import read_json


class CotbalConfigError(CotbalUserError):
    """A user mistake in the plugin's configuration; the message names the culprit and the fix."""


def read_weights_file(path: str | Path, what: str = "cotbal_weights") -> dict[str, Any]:
    """Read a ``weights.json`` and validate its ``"weights"`` object; return the whole JSON object.

    The ``"weights"`` values come back as floats; other top-level keys (C, D, λs ... for audit) are returned as
    they are (``cotbal report`` validates those it draws).

    Args:
        path: the file.
        what: how messages name the source: ``cotbal_weights`` (the YAML key) or a CLI option (``--weights``).

    Raises:
        CotbalConfigError: missing file, a directory, empty or invalid JSON, ``NaN``/``Infinity``, no
            ``"weights"`` object, a weight that is not a finite number or not > 0 — always naming the file and
            the task.
    """
    path = Path(path)
    shown = repr(str(path))
    hint = f'write it with `cotbal weights --out {path}` or by hand as {{"weights": {{"<task>": <weight>, ...}}}}.'
    data = read_json(path, what, hint=hint, error=CotbalConfigError, allow_nonfinite=True)
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise CotbalConfigError(
            f'{what}: {shown} has no "weights" object; expected {{"weights": {{"<task>": <weight>, ...}}}}.'
        )
    raw = data["weights"]
    if not raw:
        raise CotbalConfigError(f'{what}: the "weights" object of {shown} is empty; give every task a weight.')
    weights: dict[str, float] = {}
    for task, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CotbalConfigError(
                f"{what}: weight of task {task!r} in {shown} is {value!r}, not a number; write a number > 0."
            )
        value = float(value)
        if not math.isfinite(value):
            raise CotbalConfigError(f"{what}: weight of task {task!r} in {shown} is {value}; write a number > 0.")
        if value <= 0:
            raise CotbalConfigError(
                f"{what}: weight of task {task!r} in {shown} is {value}; weights must be > 0 "
                "(a zero weight would make a step with only that task 0/0). Drop the task from `dataset:` instead."
            )
        weights[str(task)] = value
    return {**data, "weights": weights}


def load_weights(path: str | Path, what: str = "cotbal_weights") -> dict[str, float]:
    """Load and validate the task weights of a ``weights.json`` file (see :func:`read_weights_file`)."""
    return read_weights_file(path, what)["weights"]


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
