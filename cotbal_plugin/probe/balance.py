"""From ``scores.json`` to the content of ``weights.json`` (every intermediate quantity included for audit)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ProbeError, ProbeWarning
from .scores import BASE_RUN, MINI_RUN, Scores, check_task_names
from .weights import (
    DIFFICULTY_VARIANTS,
    contribution_in,
    contribution_matrix,
    contribution_out,
    difficulty,
    lambdas_from_summaries,
)

STRATEGIES = {"out": "out", "in": "in", "c": "C", "d": "D", "cotbal": "CoTBal"}
RECOMMENDED_RANGE = (0.5, 2.0)


def strategy_key(strategy: str) -> str:
    """Map a CLI strategy name (``out|in|C|D|cotbal``, any case) to its λ key."""
    key = STRATEGIES.get(strategy.lower())
    if key is None:
        raise ProbeError(f"unknown strategy {strategy!r}; valid: out, in, C, D, cotbal.")
    return key


def infer_tasks(scores: Scores, variant: str, fixed: Mapping[str, float]) -> list[str]:
    """Balanced tasks: those scored by the reference run (``mini``, ``base`` for the chat form) minus fixed ones."""
    ref = BASE_RUN if variant == "chat" else MINI_RUN
    if ref not in scores:
        raise ProbeError(
            f"scores.json has no run {ref!r} (runs present: {sorted(scores)}); it is needed to find the tasks and "
            f"for eq. {'15' if variant == 'chat' else '3'}. Produce it with `cotbal run` + `cotbal eval`, "
            "or pass --tasks."
        )
    return [t for t in scores[ref] if t not in fixed]


def compute_weights(
    scores: Scores,
    temperature: float = 0.5,
    strategy: str = "cotbal",
    variant: str = "real",
    tasks: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    clip: bool = False,
) -> dict[str, Any]:
    """Compute the ``weights.json`` content from probe scores.

    Args:
        scores: ``{run: {task: score}}`` (see :mod:`cotbal_plugin.probe.scores` for run names).
        temperature: T of eqs. 5, 7, 10.
        strategy: which λ becomes ``"weights"``: ``out``, ``in``, ``C``, ``D`` or ``cotbal``.
        variant: difficulty form: ``real`` (eq. 9), ``precise`` (eq. 17) or ``chat`` (eqs. 15-16).
        tasks: balanced tasks, in output order; default: the tasks of run ``mini`` (``base`` for chat).
        fixed: tasks with a fixed weight, excluded from balancing (paper: ShareGPT = 1.0).
        clip: clip balanced weights to [0.5, 2.0] (otherwise only warn).

    Returns:
        A JSON-ready dict with ``weights``, ``method``, ``temperature``, ``tasks``, ``C``, ``C_out``, ``C_in``,
        ``D``, ``lambda`` and ``scores``.
    """
    if variant not in DIFFICULTY_VARIANTS:
        raise ProbeError(f"unknown difficulty variant {variant!r}; valid: {', '.join(DIFFICULTY_VARIANTS)}.")
    key = strategy_key(strategy)
    fixed = dict(fixed or {})
    for task, value in fixed.items():
        if not math.isfinite(value) or value < 0:
            raise ProbeError(f"fixed weight of task {task!r} must be a finite number >= 0, got {value}.")
    tasks = list(tasks) if tasks is not None else infer_tasks(scores, variant, fixed)
    overlap = [t for t in tasks if t in fixed]
    if overlap:
        raise ProbeError(f"task(s) {overlap} are both balanced (--tasks) and fixed (--fixed); choose one.")
    if len(set(tasks)) != len(tasks):
        raise ProbeError(f"duplicate task names in {tasks}.")
    check_task_names(tasks)
    if len(tasks) < 2:
        raise ProbeError(f"CoTBal needs at least 2 balanced tasks, got {tasks}.")

    c = contribution_matrix(scores, tasks, form="chat" if variant == "chat" else "standard")
    d = difficulty(scores, tasks, variant)
    c_out, c_in = contribution_out(c), contribution_in(c)
    lambdas = lambdas_from_summaries(c_out, c_in, d, temperature)
    chosen = lambdas[key].copy()

    low, high = RECOMMENDED_RANGE
    outside = {t: float(w) for t, w in zip(tasks, chosen) if not low <= w <= high}
    if outside:
        action = "clipped to" if clip else "outside"
        warnings.warn(
            f"weight(s) {outside} {action} the recommended range [{low}, {high}] (paper §4.5)"
            + ("." if clip else "; raise the temperature or pass --clip."),
            ProbeWarning,
            stacklevel=2,
        )
        if clip:
            chosen = np.clip(chosen, low, high)

    weights = {t: float(w) for t, w in zip(tasks, chosen)}
    weights.update({t: float(v) for t, v in fixed.items()})
    return {
        "weights": weights,
        "method": key,
        "temperature": float(temperature),
        "difficulty": variant,
        "clipped": bool(clip and outside),
        "tasks": tasks,
        "fixed": {t: float(v) for t, v in fixed.items()},
        "C": c.tolist(),
        "C_out": dict(zip(tasks, c_out.tolist())),
        "C_in": dict(zip(tasks, c_in.tolist())),
        "D": dict(zip(tasks, d.tolist())),
        "lambda": {k: dict(zip(tasks, v.tolist())) for k, v in lambdas.items()},
        "scores": scores,
    }
