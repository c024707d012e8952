"""``dwa``: dynamic weight average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", 2019).

Original DWA: λ_i(t) = N · softmax_i(r_i(t-1) / T) with r_i(t-1) = L_i(t-1) / L_i(t-2), L the epoch losses.
Here the time unit is a *window* of ``window`` observations of the task (one observation = one optimizer step in
which the task had valid tokens):

    r_i = (per-token mean loss over the task's last ``window`` observations)
          / (per-token mean loss over the ``window`` observations before those)

where a per-token mean over a window pools the window's steps: Σ loss_sum / Σ token_count (each token counts once,
so a step in which the task had few tokens does not weigh as much as one in which it had many).

* Windows count per task: a step without the task adds nothing to its history (no zero, no gap).
* A task is *ready* once it has two full windows (2·window observations). Tasks not ready get λ = 1; the ready
  tasks R share N·softmax over themselves: λ_R = |R| · softmax(r_R / T). When every task is ready this is the
  original formula; before any is ready all weights are 1.
* Only steps already observed are used (one-step lag against the reference code, which also folds in the loss of
  the batch being weighted: that loss is not known before the forward pass here).
* A window with a per-token mean loss of exactly 0 gives the neutral ratio 1.

Defaults: temperature T = 2.0 (the DWA paper, IGB4MTL and the CoTBal authors' baseline); window = 25 optimizer
steps, the ``iteration_window`` of the CoTBal authors' DWA baseline (github YanqiDai/VisATB, weight_method.py,
run with gradient accumulation 1, so its 25 iterations are 25 optimizer steps) and of IGB4MTL's DWA.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import numpy as np

from .base import TaskWeighting, check_positive_float, check_positive_int, n_softmax, pooled_mean, safe_ratio


class DynamicWeightAverage(TaskWeighting):
    """λ_R = |R| · softmax(r_R / T) over the tasks R with two full windows of history, 1 for the others."""

    name = "dwa"
    hparam_defaults: ClassVar[dict[str, Any]] = {"temperature": 2.0, "window": 25}
    hparam_yaml_keys: ClassVar[dict[str, str]] = {
        "temperature": "cotbal_dwa_temperature",
        "window": "cotbal_dwa_window",
    }

    def __init__(
        self,
        tasks: list[str],
        *,
        static_weights: dict[str, float] | None = None,
        seed: int = 0,
        **hparams: Any,
    ) -> None:
        super().__init__(tasks, static_weights=static_weights, seed=seed, **hparams)
        self.temperature: float = self.hparams["temperature"]
        self.window: int = self.hparams["window"]
        # per task: the last 2·window observations (loss_sum, token_count), oldest first
        self._history: list[deque[tuple[float, float]]] = [deque(maxlen=2 * self.window) for _ in self.tasks]

    def _validate_hparams(self, hparams: dict) -> dict:
        keys = self.hparam_yaml_keys
        return {
            "temperature": check_positive_float(self.name, "temperature", keys["temperature"], hparams["temperature"]),
            "window": check_positive_int(self.name, "window", keys["window"], hparams["window"]),
        }

    def ratios(self) -> np.ndarray:
        """r_i for the ready tasks, NaN for tasks without two full windows yet."""
        r = np.full(self.num_tasks, np.nan)
        for i, hist in enumerate(self._history):
            if len(hist) == 2 * self.window:
                obs = list(hist)
                r[i] = safe_ratio(pooled_mean(obs[self.window :]), pooled_mean(obs[: self.window]))
        return r

    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        weights = np.ones(self.num_tasks, dtype=np.float64)
        r = self.ratios()
        ready = ~np.isnan(r)
        if ready.any():
            weights[ready] = n_softmax(r[ready] / self.temperature)
        return weights

    def _observe(self, loss_sums: np.ndarray, counts: np.ndarray, present: np.ndarray) -> None:
        for i in np.flatnonzero(present):
            self._history[i].append((float(loss_sums[i]), float(counts[i])))

    def _task_state(self, index: int) -> dict:
        return {"history": [list(o) for o in self._history[index]]}

    def _load_task_state(self, index: int, state: dict) -> None:
        hist = [(float(s), float(n)) for s, n in state["history"]]
        if len(hist) > 2 * self.window:
            raise ValueError(f"dwa: saved history of {len(hist)} observations exceeds 2·window = {2 * self.window}")
        self._history[index] = deque(hist, maxlen=2 * self.window)
