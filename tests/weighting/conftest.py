"""Shared helpers of the weighting tests: direct formulas written out independently of the code under test."""

from __future__ import annotations

import math

import numpy as np


def vitw(weights_by_task: dict[str, float], tokens: list[tuple[str, float]]) -> float:
    """Paper eq. 2 token by token: Σ λ_task · nll / Σ λ_task over the tokens ``(task, nll)`` of one step."""
    num = math.fsum(weights_by_task[t] * nll for t, nll in tokens)
    den = math.fsum(weights_by_task[t] for t, _ in tokens)
    return num / den


def n_softmax_ref(values: list[float]) -> list[float]:
    """len(values) · softmax(values), the textbook way."""
    exps = [math.exp(v) for v in values]
    total = sum(exps)
    return [len(values) * e / total for e in exps]


def random_steps(rng: np.random.Generator, num_tasks: int, num_steps: int, p_absent: float = 0.3):
    """Random per-step (loss_sums, counts) with some tasks absent (count 0, loss sum 0) in some steps."""
    steps = []
    for _ in range(num_steps):
        counts = rng.integers(1, 60, size=num_tasks).astype(np.float64)
        counts[rng.random(num_tasks) < p_absent] = 0.0
        per_token = rng.uniform(0.2, 3.0, size=num_tasks)
        steps.append((per_token * counts, counts))
    return steps
