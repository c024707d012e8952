"""``ew``: equal weighting, λ_i = 1 — the plain token average, i.e. stock LLaMA-Factory (paper eq. 1)."""

from __future__ import annotations

import numpy as np

from .base import TaskWeighting


class EqualWeighting(TaskWeighting):
    """λ_i = 1 for every task: VITW reduces to the mean NLL over all valid tokens of the step."""

    name = "ew"

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        return np.ones(self.num_tasks, dtype=np.float64)
