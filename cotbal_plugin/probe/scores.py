"""Run names and ``scores.json`` (DESIGN §2): ``{"<run>": {"<task>": <score>, ...}, ...}``; higher is better.

Run names (the probe models; V_j(run) is the score of run ``run`` on task j's validation set):

=================  ===========================================================  ==========================
run name           model trained on                                             used by
=================  ===========================================================  ==========================
``mini``           mini subsets of all tasks                                    eqs. 3, 9 (standard form)
``<task>+mini``    large-enough subset of ``<task>`` + mini subsets of others   eqs. 3, 9 (standard form)
``<task>``         large-enough subset (or all) of ``<task>`` alone             eq. 17 (precise D), eqs. 15-16 (chat)
``mini_<task>``    mini subset of ``<task>`` alone                              eq. 17 (precise D), eq. 16 (chat)
``base``           nothing: the base model, evaluated as is                     eq. 15 (chat form)
=================  ===========================================================  ==========================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..files import read_json
from .errors import ProbeError

MINI_RUN = "mini"
BASE_RUN = "base"
RESERVED_TASK_NAMES = frozenset({MINI_RUN, BASE_RUN})

Scores = dict[str, dict[str, float]]


def plus_mini_run(task: str) -> str:
    """Name of the run trained on ``task``'s large-enough subset plus the mini subsets of all other tasks."""
    return f"{task}+{MINI_RUN}"


def alone_run(task: str) -> str:
    """Name of the run trained on ``task`` alone (precise difficulty, chat form)."""
    return task


def mini_alone_run(task: str) -> str:
    """Name of the run trained on the mini subset of ``task`` alone (precise difficulty, chat form)."""
    return f"{MINI_RUN}_{task}"


def check_task_names(tasks: Iterable[str]) -> None:
    """Reject task names that would make run names ambiguous (``mini``, ``base``, ``+``, ``/``, whitespace)."""
    tasks = list(tasks)
    for task in tasks:
        if not task or task in RESERVED_TASK_NAMES or any(c in task for c in "+/\\") or task != task.strip():
            raise ProbeError(
                f"task name {task!r} is not allowed: task names must be non-empty, must not be 'mini' or 'base' and "
                "must not contain '+', '/', '\\' or surrounding spaces. Rename the dataset or map it to another task "
                'name with "cotbal_task" in dataset_info.json.'
            )
    names = set(tasks)
    for task in tasks:
        if mini_alone_run(task) in names:
            raise ProbeError(
                f"tasks {task!r} and {mini_alone_run(task)!r} give the same run name {mini_alone_run(task)!r} "
                "(mini-only run of the first, task-alone run of the second); rename one of them."
            )


def validate_scores(data: object, source: str = "scores.json") -> Scores:
    """Check the structure of a scores mapping and return it with float values.

    Raises:
        ProbeError: not an object of objects, or a score that is not a finite number (names run and task).
    """
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ProbeError(f'{source}: expected a JSON object {{"<run>": {{"<task>": <score>}}}}, got {kind}.')
    if not data:
        raise ProbeError(f"{source}: has no runs; run `cotbal eval` on the probe predictions first.")
    scores: Scores = {}
    for run, per_task in data.items():
        if not isinstance(per_task, Mapping):
            raise ProbeError(
                f'{source}: run {run!r} must map task names to scores ({{"<task>": <score>}}), '
                f"got {type(per_task).__name__}."
            )
        scores[str(run)] = {}
        for task, value in per_task.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProbeError(f"{source}: score of run {run!r} on task {task!r} is {value!r}, not a number.")
            if not math.isfinite(value):
                raise ProbeError(
                    f"{source}: score of run {run!r} on task {task!r} is {value}; scores must be finite numbers. "
                    "Re-run `cotbal eval` for that run, or fix the value by hand."
                )
            scores[str(run)][str(task)] = float(value)
    return scores


def load_scores(path: str | Path, what: str = "--scores") -> Scores:
    """Load and validate ``scores.json``.

    Raises:
        ProbeError: missing file, a directory, empty or invalid JSON (NaN/Infinity literals included), or bad
            structure — naming ``what`` (the option) and the file.
    """
    hint = (
        f"produce it with `cotbal eval --manifest <plan>/manifest.json --out {path}` or write it by hand as "
        '{"<run>": {"<task>": <score>}}.'
    )
    data = read_json(path, what, hint=hint, error=ProbeError)
    return validate_scores(data, source=f"{what} {str(path)!r}")


def get_score(scores: Scores, run: str, task: str, source: str = "scores.json") -> float:
    """Return V_task(run), or raise a ProbeError saying which run/task is missing and how to produce it."""
    if run not in scores:
        raise ProbeError(
            f"{source}: run {run!r} is missing (needed for task {task!r}); runs present: {sorted(scores)}. "
            f"Train and evaluate it (`cotbal run` job 'train:{run}', then `cotbal eval`), or add it by hand."
        )
    if task not in scores[run]:
        raise ProbeError(
            f"{source}: run {run!r} has no score for task {task!r}; tasks present in that run: "
            f"{sorted(scores[run])}. Evaluate run {run!r} on {task!r}'s validation set (`cotbal eval`)."
        )
    return scores[run][task]
