"""``static``: fixed per-task weights, e.g. the CoTBal weights from ``weights.json`` (paper eqs. 4–11)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .base import TaskWeighting


class StaticWeighting(TaskWeighting):
    """λ_i = the given weight of task i, every step.

    Every task must have a weight, finite and > 0 (a weight of 0 would give a 0/0 loss in a step where that task
    is the only one present). Names in ``static_weights`` that are not training tasks are ignored, so one
    ``weights.json`` can serve a run on a subset of the tasks.
    """

    name = "static"
    needs_static_weights = True

    def __init__(
        self,
        tasks: list[str],
        *,
        static_weights: dict[str, float] | None = None,
        seed: int = 0,
        **hparams: Any,
    ) -> None:
        super().__init__(tasks, static_weights=static_weights, seed=seed, **hparams)
        if static_weights is None:
            raise ValueError(
                "static: task weights are required (YAML key 'cotbal_weights: path/to/weights.json'); "
                f"tasks: {self.tasks}"
            )
        if not hasattr(static_weights, "keys"):
            raise ValueError(f"static: static_weights must map task name -> weight, got {type(static_weights)}")
        missing = [t for t in self.tasks if t not in static_weights]
        if missing:
            raise ValueError(
                f"static: no weight for task(s) {missing}; weights are given for {sorted(map(str, static_weights))}"
            )
        bad = {}
        for task in self.tasks:
            value = static_weights[task]
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not ok or not math.isfinite(float(value)) or float(value) <= 0:
                bad[task] = value
        if bad:
            raise ValueError(f"static: weights must be finite numbers > 0; bad weight(s): {bad}")
        self._weights = np.array([float(static_weights[t]) for t in self.tasks], dtype=np.float64)

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        return self._weights.copy()
