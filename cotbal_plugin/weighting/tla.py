"""``tla``: task-level loss aggregation — mean loss of each present task, then the average over those tasks.

Under the VITW normalisation this is λ_i = c / n_i for the P tasks present in the step (n_i = valid tokens of
task i in the whole step): Σ_i λ_i n_i = c·P, so

    L = Σ_i (c/n_i) · S_i / (c·P) = (1/P) · Σ_i S_i / n_i = mean over present tasks of the task's mean loss,

with S_i the task's NLL sum — exactly TLA, whatever c. We take c = mean of n_i over present tasks, so
Σ_i λ_i n_i = Σ_i n_i: the VITW denominator equals the step's token count, as in stock LLaMA-Factory.
"""

from __future__ import annotations

import numpy as np

from .base import TaskWeighting


class TaskLevelAggregation(TaskWeighting):
    """λ_i = mean(n over present tasks) / n_i for present tasks, 1.0 for absent ones (weight irrelevant)."""

    name = "tla"

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        weights = np.ones(self.num_tasks, dtype=np.float64)
        present = counts > 0
        if present.any():
            weights[present] = counts[present].mean() / counts[present]
        return weights
