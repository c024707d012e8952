"""Settings of a VITW training run, shared by the LLaMA-Factory and the plain-HF front ends (no LLaMA-Factory import).

The front ends read their own inputs (YAML keys, ``Trainer`` keyword arguments) and hand a validated
:class:`CotbalSettings` to :class:`cotbal_plugin.core.trainer.CotbalTrainerMixin`. Every message names the YAML key /
keyword argument at fault; the two front ends use the same names (``cotbal_weights``, ``cotbal_weighting``, …).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..weights_file import CotbalConfigError, load_weights

WEIGHTING_NAMES = ("static", "ew", "tla", "rlw", "dwa", "igb")
STATEFUL_WEIGHTINGS = frozenset({"rlw", "dwa", "igb"})  # their state must survive a resume
OBSERVING_WEIGHTINGS = frozenset({"dwa", "igb"})  # they learn from the per-task losses of past steps
TLA_VARIANTS = ("step", "micro_batch")
# option name → (weighting it belongs to, hyper-parameter name of that weighting)
HPARAM_OPTIONS = {
    "cotbal_dwa_temperature": ("dwa", "temperature"),
    "cotbal_dwa_window": ("dwa", "window"),
    "cotbal_igb_window": ("igb", "window"),
}


@dataclass
class CotbalSettings:
    """What the VITW trainer needs to know.

    Attributes:
        tasks: the training tasks; task id ``k`` in the labels is ``tasks[k]``.
        weighting: one of :data:`WEIGHTING_NAMES`.
        weights: static weights (task → λ) for ``static``; None otherwise.
        hparams: hyper-parameters of the weighting (``{"window": 25}``, …).
        eval_tasks: tasks that appear only in evaluation data (ids ``len(tasks)`` onwards); scored with weight 1.
        tla_variant: ``step`` (TLA over the whole optimizer step) or ``micro_batch`` (the authors' code: per
            micro-batch task means averaged over N tasks, absent tasks counted 0).
        fused_ce: compute the loss from the last hidden states and the output layer in chunks (no full logits).
        ce_chunk_tokens: tokens per chunk of the fused cross-entropy (None: automatic).
        weights_source: where the static weights came from (for messages).
    """

    tasks: list[str]
    weighting: str = "static"
    weights: dict[str, float] | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    eval_tasks: list[str] = field(default_factory=list)
    tla_variant: str = "step"
    fused_ce: bool = True
    ce_chunk_tokens: int | None = None
    weights_source: str = "cotbal_weights"

    @property
    def all_tasks(self) -> list[str]:
        """Training tasks followed by evaluation-only tasks (the order of the task ids in the labels)."""
        return [*self.tasks, *self.eval_tasks]

    @property
    def stateful(self) -> bool:
        """Whether the weighting carries state that a resumed run must restore."""
        return self.weighting in STATEFUL_WEIGHTINGS

    def eval_weights(self) -> np.ndarray:
        """Fixed λ used for evaluation losses: the static weights, or 1 for every task of a dynamic weighting.

        Evaluation-only tasks get 1. Dynamic weightings change λ every step (randomly for ``rlw``); weighting the
        evaluation loss with the last step's λ would make ``eval_loss`` noise, so it is unweighted for them.
        """
        values = [1.0] * len(self.all_tasks)
        if self.weighting == "static" and self.weights is not None:
            for i, task in enumerate(self.tasks):
                values[i] = float(self.weights[task])
        return np.asarray(values, dtype=np.float64)


def resolve_weighting(
    weighting: str | None, weights: str | Path | Mapping[str, float] | None
) -> tuple[str, dict[str, float] | None, str]:
    """Validate ``cotbal_weighting`` / ``cotbal_weights``; return (method, weights or None, weights source).

    ``weights`` is a path to ``weights.json`` or a mapping task → weight.
    """
    method = weighting
    if method is None:
        if weights is None:
            raise CotbalConfigError(
                "loss: cotbal needs `cotbal_weights: path/to/weights.json` (from `cotbal weights`), or a "
                f"weighting that needs none: `cotbal_weighting: {' | '.join(WEIGHTING_NAMES[1:])}`."
            )
        method = "static"
    if not isinstance(method, str):
        raise CotbalConfigError(f"cotbal_weighting must be a method name, got {method!r}.")
    method = method.strip().lower()
    if method not in WEIGHTING_NAMES:
        hint = difflib.get_close_matches(method, WEIGHTING_NAMES, n=1)
        raise CotbalConfigError(
            f"cotbal_weighting: unknown method {weighting!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; valid methods: {', '.join(WEIGHTING_NAMES)}."
        )
    if method == "static":
        if weights is None:
            raise CotbalConfigError(
                "cotbal_weighting: static needs `cotbal_weights: path/to/weights.json` (from `cotbal weights`)."
            )
        if isinstance(weights, Mapping):
            return method, check_weight_mapping(weights, "cotbal_weights"), "cotbal_weights"
        return method, load_weights(weights), str(weights)
    if weights is not None:
        raise CotbalConfigError(
            f"cotbal_weights is set but cotbal_weighting: {method} ignores static weights; remove one of them."
        )
    return method, None, "cotbal_weights"


def check_weight_mapping(weights: Mapping[Any, Any], source: str) -> dict[str, float]:
    """Validate an in-memory task → weight mapping like :func:`cotbal_plugin.weights_file.load_weights` does."""
    if not weights:
        raise CotbalConfigError(f"{source}: no task weights given (empty mapping).")
    out: dict[str, float] = {}
    for task, value in weights.items():
        if not isinstance(task, str) or not task.strip():
            raise CotbalConfigError(f"{source}: task names must be non-empty strings, got {task!r}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise CotbalConfigError(f"{source}: weight of task {task!r} is {value!r}, not a number.")
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise CotbalConfigError(f"{source}: weight of task {task!r} is {value}; weights must be finite and > 0.")
        out[task] = value
    return out


def resolve_hparams(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Map the ``cotbal_<method>_<name>`` options that are set to the weighting's hyper-parameters."""
    hparams: dict[str, Any] = {}
    for key, (owner, name) in HPARAM_OPTIONS.items():
        value = options.get(key)
        if value is None:
            continue
        if owner != method:
            raise CotbalConfigError(f"{key} only applies to cotbal_weighting: {owner} (got {method}).")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise CotbalConfigError(f"{key} must be > 0 (got {value!r}).")
        hparams[name] = value
    return hparams


def resolve_tla_variant(method: str, variant: str | None) -> str:
    """Validate ``cotbal_tla_variant`` (only meaningful with ``cotbal_weighting: tla``)."""
    if variant is None:
        return "step"
    value = str(variant).strip().lower()
    if value not in TLA_VARIANTS:
        raise CotbalConfigError(f"cotbal_tla_variant: {variant!r} is not one of {', '.join(TLA_VARIANTS)}.")
    if method != "tla":
        raise CotbalConfigError(f"cotbal_tla_variant only applies to cotbal_weighting: tla (got {method}).")
    return value


def resolve_chunk_tokens(value: Any) -> int | None:
    """Validate ``cotbal_ce_chunk_tokens`` (None = automatic)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise CotbalConfigError(f"cotbal_ce_chunk_tokens must be an integer >= 1 (got {value!r}).")
    return int(value)


def check_tasks(tasks: Sequence[str], where: str) -> list[str]:
    """Task names: non-empty strings, no duplicates."""
    names = list(tasks)
    bad = [t for t in names if not isinstance(t, str) or not t.strip()]
    if bad:
        raise CotbalConfigError(f"{where}: task names must be non-empty strings, got {bad!r}.")
    dupes = sorted({t for t in names if names.count(t) > 1})
    if dupes:
        raise CotbalConfigError(f"{where}: duplicate task names {dupes}.")
    return names


def check_training_args(training_args: Any) -> None:
    """Refuse ``transformers.TrainingArguments`` options the VITW loss cannot serve (one clear line each)."""
    smoothing = getattr(training_args, "label_smoothing_factor", 0.0) or 0.0
    if smoothing > 0:
        raise CotbalConfigError(
            f"label_smoothing_factor: {smoothing} is not supported with loss: cotbal (the VITW loss is the plain "
            "token NLL of eq. 2); remove label_smoothing_factor."
        )
    parallelism = getattr(training_args, "parallelism_config", None)
    if parallelism is not None:
        used = {k: getattr(parallelism, k, 1) for k in ("cp_size", "tp_size", "sp_size")}
        used = {k: v for k, v in used.items() if (v or 1) > 1}
        if used:
            raise CotbalConfigError(
                f"parallelism_config with {used} is not supported with loss: cotbal (one sequence's tokens are "
                "split over ranks); use data parallelism (DDP, DeepSpeed ZeRO, FSDP) only."
            )
