"""``igb``: improvable gap balancing v1 (Dai, Fei & Lu, "Improvable Gap Balancing for Multi-Task Learning", 2023).

IGBv1 estimates the improvable gap of task i by L_i(t) / L_i^base and sets λ = N · softmax(L(t) / L^base): a task
whose loss is still high relative to its early level gets more weight. Here:

* L_i(t) = the task's per-token mean loss (loss_sum / token_count) in its most recent observed step. The reference
  code uses the loss of the batch being weighted; before the forward pass that is not known, so this is a
  one-step lag.
* L_i^base = the task's per-token mean loss pooled over an early window: observations window+1 … 2·window of that
  task (its first ``window`` observations are skipped as warm-up, when the loss falls fastest). This follows both
  reference implementations: IGB4MTL sets the base from epoch ``base_epoch = 1`` of a 0-indexed loop — the
  *second* epoch — and the CoTBal authors' baseline (YanqiDai/VisATB, weight_method.py) averages iterations
  [window, 2·window) with window = 100.
* Observations count per task (a step without the task adds nothing). A task is ready once its base is known;
  tasks not ready get λ = 1 and the ready tasks R share λ_R = |R| · softmax(L_R(t) / L_R^base). So all weights are
  1 for the first 2·window steps (longer for tasks missing from some steps).
* No temperature (IGBv1 has none). A base of exactly 0 gives the neutral ratio 1.

Default window = 100 optimizer steps, as in the CoTBal authors' IGB baseline (gradient accumulation 1 there, so
100 iterations = 100 optimizer steps); "an epoch" of the original is too long for one-epoch instruction tuning.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import TaskWeighting, check_positive_int, n_softmax, safe_ratio


class ImprovableGapBalancing(TaskWeighting):
    """λ_R = |R| · softmax(L_R(t) / L_R^base) over tasks R whose base loss is known, 1 for the others."""

    name = "igb"
    hparam_defaults: ClassVar[dict[str, Any]] = {"window": 100}
    hparam_yaml_keys: ClassVar[dict[str, str]] = {"window": "cotbal_igb_window"}

    def __init__(
        self,
        tasks: list[str],
        *,
        static_weights: dict[str, float] | None = None,
        seed: int = 0,
        **hparams: Any,
    ) -> None:
        super().__init__(tasks, static_weights=static_weights, seed=seed, **hparams)
        self.window: int = self.hparams["window"]
        n = self.num_tasks
        self._count = [0] * n  # observations of each task so far
        self._base_sum = [0.0] * n  # Σ loss_sum over observations window+1 … 2·window
        self._base_tokens = [0.0] * n  # Σ token_count over the same observations
        self._last: list[float | None] = [None] * n  # per-token mean loss of the latest observation

    def _validate_hparams(self, hparams: dict) -> dict:
        return {"window": check_positive_int(self.name, "window", self.hparam_yaml_keys["window"], hparams["window"])}

    def base_losses(self) -> np.ndarray:
        """L_i^base for tasks whose base window is complete, NaN for the others."""
        base = np.full(self.num_tasks, np.nan)
        for i in range(self.num_tasks):
            if self._count[i] >= 2 * self.window:
                base[i] = self._base_sum[i] / self._base_tokens[i]
        return base

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        weights = np.ones(self.num_tasks, dtype=np.float64)
        base = self.base_losses()
        ready = np.flatnonzero(~np.isnan(base))
        if ready.size:
            gaps = np.array([safe_ratio(self._last[i], base[i]) for i in ready])
            weights[ready] = n_softmax(gaps)
        return weights

    def _observe(self, loss_sums: np.ndarray, counts: np.ndarray, present: np.ndarray) -> None:
        for i in np.flatnonzero(present):
            s, n = float(loss_sums[i]), float(counts[i])
            if self.window <= self._count[i] < 2 * self.window:
                self._base_sum[i] += s
                self._base_tokens[i] += n
            self._count[i] += 1
            self._last[i] = s / n

    def _task_state(self, index: int) -> dict:
        return {
            "count": self._count[index],
            "base_sum": self._base_sum[index],
            "base_tokens": self._base_tokens[index],
            "last": self._last[index],
        }

    def _load_task_state(self, index: int, state: dict) -> None:
        self._count[index] = int(state["count"])
        self._base_sum[index] = float(state["base_sum"])
        self._base_tokens[index] = float(state["base_tokens"])
        self._last[index] = None if state["last"] is None else float(state["last"])
