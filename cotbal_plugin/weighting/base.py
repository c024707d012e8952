"""Base class and shared helpers of the task-weighting strategies (pure numpy float64, no torch).

A strategy turns the history of per-task losses into the weights λ_i of the VITW loss (paper eq. 2):

    L = Σ_tokens λ_task(token) · nll(token)  /  Σ_tokens λ_task(token)      (valid tokens of one optimizer step)

Call protocol (the trainer does this identically on every rank, so every rank holds the same object state):

    w = strategy.step_weights(token_counts)      # before the optimizer step's forward passes
    ...forward/backward of every micro-batch...
    strategy.observe(loss_sums, token_counts)    # after the step, with the step's aggregated numbers

Because of the normalisation in eq. 2 only the *ratios* of the weights of the tasks present in a step matter;
the scale of the weights changes nothing in the loss (it is kept near 1 so the logged weights read naturally).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

STATE_VERSION = 1

# Smallest weight a softmax-based strategy hands out. exp() of a very negative logit underflows to 0, and a task
# with weight 0 that is alone in a step would make the VITW denominator 0; the floor never binds in practice
# (it needs logit gaps of ~18 and more).
MIN_WEIGHT = 1e-8


def n_softmax(logits: np.ndarray) -> np.ndarray:
    """``len(logits) · softmax(logits)`` in float64, numerically stable, floored at :data:`MIN_WEIGHT`.

    The result has mean 1 (sum = number of entries) unless the floor binds.
    """
    # Clipping keeps z - max finite when a ratio overflowed to inf (a base loss of ~1e-320); never binds otherwise.
    z = np.clip(np.asarray(logits, dtype=np.float64), -1e300, 1e300)
    e = np.exp(z - z.max())
    return np.maximum(z.size * e / e.sum(), MIN_WEIGHT)


def pooled_mean(observations: Sequence[Sequence[float]]) -> float:
    """Per-token mean loss of a list of ``(loss_sum, token_count)`` observations: Σ loss_sum / Σ token_count."""
    total = math.fsum(o[0] for o in observations)
    count = math.fsum(o[1] for o in observations)
    return total / count


def safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or the neutral 1.0 when that is undefined (a loss of exactly 0, or inf/inf)."""
    if not denominator > 0:
        return 1.0
    ratio = float(numerator) / float(denominator)  # Python floats: overflow gives inf, silently
    return 1.0 if math.isnan(ratio) else ratio


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(method: str, key: str, yaml_key: str | None, value: Any) -> int:
    """Validate an integer hyper-parameter ≥ 1 (integral floats such as ``25.0`` are accepted)."""
    where = f"{key!r}" + (f" (YAML key {yaml_key!r})" if yaml_key else "")
    if _is_real(value) and math.isfinite(float(value)) and float(value) == int(value) and int(value) >= 1:
        return int(value)
    raise ValueError(f"{method}: {where} must be an integer >= 1, got {value!r}")


def check_positive_float(method: str, key: str, yaml_key: str | None, value: Any) -> float:
    """Validate a finite real hyper-parameter > 0."""
    where = f"{key!r}" + (f" (YAML key {yaml_key!r})" if yaml_key else "")
    if _is_real(value) and math.isfinite(float(value)) and float(value) > 0:
        return float(value)
    raise ValueError(f"{method}: {where} must be a finite number > 0, got {value!r}")


class TaskWeighting:
    """A task-weighting strategy: per-step task weights λ for the VITW loss.

    Subclasses set :attr:`name`, declare their hyper-parameters in :attr:`hparam_defaults` (and the YAML key each
    one comes from in :attr:`hparam_yaml_keys`, for error messages), and override the ``_``-prefixed hooks.

    Args:
        tasks: the task names, in the order of the arrays passed to :meth:`step_weights` / :meth:`observe`.
        static_weights: ``{task: weight}``; used only by strategies with :attr:`needs_static_weights`, ignored by
            the others.
        seed: seed of the strategy's own random generator (the training seed); only random strategies use it.
        **hparams: the strategy's hyper-parameters. ``None`` means "the method's default", so a caller may pass
            every optional key it knows; a key the strategy does not have is an error unless its value is None.
    """

    name: ClassVar[str] = ""
    needs_static_weights: ClassVar[bool] = False
    hparam_defaults: ClassVar[dict[str, Any]] = {}
    hparam_yaml_keys: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        tasks: list[str],
        *,
        static_weights: dict[str, float] | None = None,
        seed: int = 0,
        **hparams: Any,
    ) -> None:
        self.tasks: list[str] = _check_tasks(self.name, tasks)
        self.num_tasks: int = len(self.tasks)
        if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and int(seed) >= 0):
            raise ValueError(f"{self.name}: seed must be an integer >= 0, got {seed!r}")
        self.seed: int = int(seed)
        self.hparams: dict[str, Any] = self._resolve_hparams(hparams)
        self.num_steps: int = 0  # calls of step_weights
        self.num_observed: int = 0  # calls of observe

    # ------------------------------------------------------------------ hyper-parameters
    def _resolve_hparams(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.hparam_defaults)
        if unknown:
            valid = sorted(self.hparam_defaults) or "none"
            raise ValueError(f"{self.name}: unknown hyper-parameter(s) {unknown}; valid for {self.name!r}: {valid}")
        resolved = dict(self.hparam_defaults)
        resolved.update({k: v for k, v in given.items() if v is not None and k in self.hparam_defaults})
        return self._validate_hparams(resolved)

    def _validate_hparams(self, hparams: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the resolved hyper-parameters (override in subclasses that have some)."""
        return hparams

    # ------------------------------------------------------------------ public protocol
    def step_weights(self, token_counts: np.ndarray) -> np.ndarray:
        """Weights λ (float64[N]) for the coming optimizer step.

        Called once per optimizer step, before its forward passes, identically on every rank, with the float64[N]
        count of valid tokens of each task in the whole step (all micro-batches, all ranks). Present tasks get a
        weight > 0; absent tasks get a finite value (it does not enter the loss). Uses only earlier steps'
        observations and the strategy's own random generator, so it is deterministic given the call sequence.
        """
        counts = self._check_array("token_counts", token_counts)
        if (counts < 0).any():
            raise ValueError(f"{self.name}: token_counts must be >= 0, got {counts.tolist()}")
        weights = np.asarray(self._step_weights(counts), dtype=np.float64).copy()
        self.num_steps += 1
        if weights.shape != (self.num_tasks,) or not np.isfinite(weights).all() or (weights <= 0).any():
            raise AssertionError(f"{self.name}: produced invalid weights {weights.tolist()}")  # a bug, never input
        return weights

    def observe(self, loss_sums: np.ndarray, token_counts: np.ndarray) -> None:
        """Record one finished optimizer step: float64[N] per-task sums of token NLL (unweighted) and token counts.

        A task with count 0 was absent from the step and leaves the history untouched (no zero is recorded). A task
        whose loss sum is not finite (an overflowed step) is treated as absent, so one bad step cannot turn every
        later weight into NaN.
        """
        sums = self._check_array("loss_sums", loss_sums, allow_nonfinite=True)
        counts = self._check_array("token_counts", token_counts)
        if (counts < 0).any():
            raise ValueError(f"{self.name}: token_counts must be >= 0, got {counts.tolist()}")
        if (sums < 0).any():  # NaN compares False: only real negative sums land here
            raise ValueError(f"{self.name}: loss_sums are sums of NLL and must be >= 0, got {sums.tolist()}")
        present = (counts > 0) & np.isfinite(sums)
        self._observe(sums, counts, present)
        self.num_observed += 1

    def state_dict(self) -> dict:
        """JSON-serialisable state (histories, RNG state, counters) to resume a run exactly."""
        return {
            "version": STATE_VERSION,
            "name": self.name,
            "tasks": list(self.tasks),
            "hparams": dict(self.hparams),
            "seed": self.seed,
            "num_steps": self.num_steps,
            "num_observed": self.num_observed,
            "per_task": {task: self._task_state(i) for i, task in enumerate(self.tasks)},
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (possibly after a JSON round trip).

        The method name, the set of tasks and the hyper-parameters must match this object's; the task order may
        differ (per-task state is keyed by task name).
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.name}: state must be a mapping, got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{self.name}: unsupported state version {state.get('version')!r}")
        if state.get("name") != self.name:
            raise ValueError(f"{self.name}: state was saved by weighting {state.get('name')!r}, not {self.name!r}")
        saved_tasks = list(state.get("tasks", []))
        if sorted(saved_tasks) != sorted(self.tasks):
            raise ValueError(f"{self.name}: state was saved for tasks {saved_tasks}, this run has {self.tasks}")
        if dict(state.get("hparams", {})) != self.hparams:
            raise ValueError(
                f"{self.name}: state was saved with hyper-parameters {state.get('hparams')}, this run has "
                f"{self.hparams}; resume with the same settings"
            )
        per_task = state["per_task"]
        for i, task in enumerate(self.tasks):
            self._load_task_state(i, per_task[task])
        self._load_extra_state(state.get("extra", {}))
        self.seed = int(state["seed"])
        self.num_steps = int(state["num_steps"])
        self.num_observed = int(state["num_observed"])

    # ------------------------------------------------------------------ hooks for subclasses
    def _step_weights(self, counts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _observe(self, loss_sums: np.ndarray, counts: np.ndarray, present: np.ndarray) -> None:
        """Update histories; ``present[i]`` is True where task i has a usable observation this step."""

    def _task_state(self, index: int) -> dict:
        return {}

    def _load_task_state(self, index: int, state: dict) -> None:
        pass

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    # ------------------------------------------------------------------ helpers
    def _check_array(self, what: str, values: Any, *, allow_nonfinite: bool = False) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (self.num_tasks,):
            raise ValueError(
                f"{self.name}: {what} must have shape ({self.num_tasks},) (one per task), got {arr.shape}"
            )
        if not allow_nonfinite and not np.isfinite(arr).all():
            raise ValueError(f"{self.name}: {what} must be finite, got {arr.tolist()}")
        return arr

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}(tasks={self.tasks!r}{', ' + hp if hp else ''})"


def _check_tasks(method: str, tasks: Any) -> list[str]:
    if isinstance(tasks, str) or not isinstance(tasks, Sequence):
        raise TypeError(f"{method}: tasks must be a list of task names, got {tasks!r}")
    names = list(tasks)
    if not names:
        raise ValueError(f"{method}: tasks must not be empty")
    bad = [t for t in names if not isinstance(t, str) or not t]
    if bad:
        raise ValueError(f"{method}: task names must be non-empty strings, got {bad!r}")
    dupes = sorted({t for t in names if names.count(t) > 1})
    if dupes:
        raise ValueError(f"{method}: duplicate task names {dupes}")
    return names
