"""The plain-HF front end: ``CotbalTrainer`` and ``make_cotbal_trainer`` for ``transformers.Trainer``, TRL and LLaVA.

The loss, the step counting, the weighting, the per-task logging and the checkpointed state are those of
:class:`cotbal_plugin.core.trainer.CotbalTrainerMixin` (shared with the LLaMA-Factory front end). This module only
does what is specific to users outside LLaMA-Factory:

* reads the settings from ``cotbal_*`` keyword arguments (validated by the same functions as the YAML keys);
* finds the task list (``cotbal_tasks``, the static weights, or the task column of a ``datasets.Dataset``);
* wraps the data collator (:class:`~cotbal_plugin.hf.collator.TaskLabelCollator`) so each example's task field
  becomes task ids inside the collated labels, and keeps that field through ``remove_unused_columns``;
* runs the LLaVA codebase's image splicing before the forward pass (:mod:`cotbal_plugin.hf.llava`);
* refuses what the loss cannot serve (TRL packing, a ``compute_loss_func``, encoder-decoder models).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from ..core.config import (
    CotbalSettings,
    resolve_chunk_tokens,
    resolve_hparams,
    resolve_tla_variant,
    resolve_weighting,
)
from ..core.trainer import CotbalTrainerMixin
from ..weights_file import CotbalConfigError
from . import llava
from .collator import TaskLabelCollator
from .tasks import TaskColumn, resolve_tasks, scan_task_column

OPTIONS = (
    "cotbal_weights",
    "cotbal_weighting",
    "cotbal_task_key",
    "cotbal_tasks",
    "cotbal_eval_tasks",
    "cotbal_dwa_temperature",
    "cotbal_dwa_window",
    "cotbal_igb_window",
    "cotbal_tla_variant",
    "cotbal_fused_ce",
    "cotbal_ce_chunk_tokens",
)
# Trainer methods the mixin replaces without calling the parent's: a user override of these is bypassed.
_REPLACED = ("compute_loss", "get_batch_samples", "_get_num_items_in_batch")
_TRUSTED_PACKAGES = ("transformers", "trl")  # their overrides of _REPLACED only add what the VITW loss replaces


class CotbalHFMixin(CotbalTrainerMixin):
    """Front end of the VITW loss for any ``transformers.Trainer`` subclass (see :func:`make_cotbal_trainer`)."""

    _cb_untagged_hint = (
        "The batch did not pass through the trainer's data collator (cotbal_plugin.hf.TaskLabelCollator), which "
        "puts the task ids into the labels: build every DataLoader with collate_fn=trainer.data_collator (e.g. in "
        "a get_train_dataloader override)."
    )

    def __init__(
        self,
        *args: Any,
        cotbal_weights: str | Path | Mapping[str, float] | None = None,
        cotbal_weighting: str | None = None,
        cotbal_task_key: str = "task",
        cotbal_tasks: Sequence[str] | None = None,
        cotbal_eval_tasks: Sequence[str] | None = None,
        cotbal_dwa_temperature: float | None = None,
        cotbal_dwa_window: int | None = None,
        cotbal_igb_window: int | None = None,
        cotbal_tla_variant: str | None = None,
        cotbal_fused_ce: bool | None = None,
        cotbal_ce_chunk_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the trainer; every argument but the ``cotbal_*`` ones goes to the wrapped trainer class.

        Args:
            cotbal_weights: task → weight mapping, or the path of a ``weights.json`` (``{"weights": {...}}``).
            cotbal_weighting: ``static`` (default when weights are given), ``ew``, ``tla``, ``rlw``, ``dwa``, ``igb``.
            cotbal_task_key: the per-example field holding the task name (default ``"task"``).
            cotbal_tasks: the training tasks, in order (default: the static weights' tasks found in the data, or
                the sorted task names of a ``datasets.Dataset``'s task column). Needed for a dynamic weighting
                when the training dataset is not a ``datasets.Dataset``; with it, integer task fields index it.
            cotbal_eval_tasks: tasks that appear only in evaluation data (weight 1), when the evaluation dataset
                is not a ``datasets.Dataset`` (otherwise they are found in its task column).
            cotbal_dwa_temperature, cotbal_dwa_window, cotbal_igb_window: hyper-parameters of ``dwa`` / ``igb``.
            cotbal_tla_variant: ``step`` (default) or ``micro_batch`` (the authors' TLA), with ``tla`` only.
            cotbal_fused_ce: chunked cross-entropy without full logits (default True, where the model allows).
            cotbal_ce_chunk_tokens: tokens per chunk of the fused cross-entropy (default automatic).
        """
        stray = [k for k in kwargs if isinstance(k, str) and k.startswith("cotbal")]
        if stray:
            hint = difflib.get_close_matches(stray[0], OPTIONS, n=1)
            raise CotbalConfigError(
                f"unknown keyword argument {stray[0]!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; cotbal_plugin's arguments: {', '.join(OPTIONS)}."
            )
        if kwargs.get("compute_loss_func") is not None:
            raise CotbalConfigError(
                "compute_loss_func cannot be combined with cotbal_plugin: the VITW loss replaces the trainer's loss. "
                "Remove compute_loss_func."
            )
        # validated before the wrapped trainer's __init__, which may spend minutes preparing data (TRL)
        weighting, weights, source = resolve_weighting(cotbal_weighting, cotbal_weights)
        hparams = resolve_hparams(
            weighting,
            {
                "cotbal_dwa_temperature": cotbal_dwa_temperature,
                "cotbal_dwa_window": cotbal_dwa_window,
                "cotbal_igb_window": cotbal_igb_window,
            },
        )
        tla_variant = resolve_tla_variant(weighting, cotbal_tla_variant)
        chunk_tokens = resolve_chunk_tokens(cotbal_ce_chunk_tokens)
        if not isinstance(cotbal_task_key, str) or not cotbal_task_key.strip():
            raise CotbalConfigError(
                f"cotbal_task_key must name the per-example field holding the task, got {cotbal_task_key!r}."
            )
        if cotbal_fused_ce is not None and not isinstance(cotbal_fused_ce, bool):
            raise CotbalConfigError(f"cotbal_fused_ce must be True or False, got {cotbal_fused_ce!r}.")
        self._cb_task_key = cotbal_task_key  # read by _set_signature_columns_if_needed, possibly during __init__
        self._cb_mm_lost: torch.Tensor | None = None
        self._cb_mm_warned = False

        super().__init__(*args, **kwargs)

        self._cb_refuse_unsupported()
        train = scan_task_column(self.train_dataset, cotbal_task_key, "training")
        evals = self._cb_scan_eval(cotbal_task_key)
        tasks, eval_tasks = resolve_tasks(
            key=cotbal_task_key,
            weighting=weighting,
            weights=weights,
            weights_source=source,
            tasks=cotbal_tasks,
            eval_tasks=cotbal_eval_tasks,
            train=train,
            evals=evals,
            train_kind=type(self.train_dataset).__name__,
        )
        settings = CotbalSettings(
            tasks=tasks,
            weighting=weighting,
            weights=weights,
            hparams=hparams,
            eval_tasks=eval_tasks,
            tla_variant=tla_variant,
            fused_ce=True if cotbal_fused_ce is None else cotbal_fused_ce,
            ce_chunk_tokens=chunk_tokens,
            weights_source=source,
        )
        self._cotbal_setup(settings)
        self._cb_wrap = {
            "task_key": cotbal_task_key,
            "tasks": settings.all_tasks,
            "num_train_tasks": len(tasks),
            "allow_index": cotbal_tasks is not None,
        }
        self.data_collator = self.data_collator  # wrapped by __setattr__

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning ``trainer.data_collator`` (in ``__init__`` or later) installs the task-label wrapper around it."""
        if name == "data_collator" and value is not None and "_cb_wrap" in self.__dict__:
            if isinstance(value, TaskLabelCollator):  # already wrapped (e.g. the same collator given twice)
                value = value.collator
            value = TaskLabelCollator(value, **self._cb_wrap)
        super().__setattr__(name, value)

    def get_train_dataloader(self) -> Any:
        """The wrapped trainer's training DataLoader, whose collator refuses examples of evaluation-only tasks."""
        wrapper = self.data_collator
        if not isinstance(wrapper, TaskLabelCollator):
            return super().get_train_dataloader()
        object.__setattr__(self, "data_collator", wrapper.for_training())
        try:
            return super().get_train_dataloader()
        finally:
            object.__setattr__(self, "data_collator", wrapper)

    # ------------------------------------------------------------------------------------------------ setup
    def _cb_refuse_unsupported(self) -> None:
        """One clear line for each option the VITW loss or the task field cannot work with."""
        args = self.args
        if self.compute_loss_func is not None:
            where = " (TRL: SFTConfig(loss_type='dft'))" if getattr(args, "loss_type", None) == "dft" else ""
            raise CotbalConfigError(
                f"the trainer has a compute_loss_func{where}; the VITW loss of cotbal_plugin replaces the trainer's "
                "loss. Remove it."
            )
        if getattr(args, "packing", False) or (getattr(args, "eval_packing", None) and self.eval_dataset is not None):
            raise CotbalConfigError(
                "SFTConfig(packing=True) is not supported with cotbal_plugin: TRL packs examples of several tasks "
                "into one row and drops the task column before the collator. Use packing=False (padding_free=True "
                "keeps most of the speed)."
            )
        if hasattr(args, "packing") and getattr(args, "use_liger_kernel", False):
            raise CotbalConfigError(
                "SFTConfig(use_liger_kernel=True) is not supported with cotbal_plugin: TRL then drops every dataset "
                "column but the token ids, the task column included. Set use_liger_kernel=False (cotbal_fused_ce "
                "computes the loss without full logits)."
            )
        config = getattr(self.accelerator.unwrap_model(self.model), "config", None)
        if getattr(config, "is_encoder_decoder", False):
            raise CotbalConfigError(
                f"cotbal_plugin supports decoder-only (causal) language models; {type(self.model).__name__} is an "
                "encoder-decoder model."
            )

    def _cb_scan_eval(self, key: str) -> list[TaskColumn]:
        data = self.eval_dataset
        if data is None:
            return []
        if isinstance(data, Mapping):
            found = [scan_task_column(d, key, f"evaluation ({name!r})") for name, d in data.items()]
        else:
            found = [scan_task_column(data, key, "evaluation")]
        return [c for c in found if c is not None]

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the task field through ``remove_unused_columns`` (dataset columns and ``RemoveColumnsCollator``)."""
        super()._set_signature_columns_if_needed()
        key = getattr(self, "_cb_task_key", None)
        if key is not None and self._signature_columns is not None and key not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, key]

    # ------------------------------------------------------------------------------------------------ forward
    def _cb_forward(
        self, model: Any, inputs: dict[str, Any], labels: torch.Tensor, weights: torch.Tensor
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The core's forward, after the LLaVA codebase's image splicing when the model does it in ``forward``."""
        prepare = llava.splices_images(self.accelerator.unwrap_model(model), inputs)
        if prepare is not None:
            before = llava.valid_targets(labels)
            inputs, labels = llava.splice_inputs(prepare, inputs, labels)
            lost = (before - llava.valid_targets(labels)).abs()
            self._cb_mm_lost = lost if self._cb_mm_lost is None else self._cb_mm_lost + lost.to(self._cb_mm_lost)
        return super()._cb_forward(model, inputs, labels, weights)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """The core's per-task logging; warns once if the LLaVA codebase truncated supervised tokens."""
        if self._cb_mm_lost is not None and not self._cb_mm_warned:
            lost = int(self._cb_mm_lost.item())  # log() synchronises anyway
            if lost:
                self._cb_mm_warned = True
                config = getattr(self.accelerator.unwrap_model(self.model), "config", None)
                limit = getattr(config, "tokenizer_model_max_length", None)
                warnings.warn(
                    f"cotbal_plugin: {lost} supervised token(s) were cut by the model's image splicing "
                    f"(prepare_inputs_labels_for_multimodal truncates to tokenizer_model_max_length={limit}) after "
                    "the step's tokens were counted: those steps' eq. 2 denominator includes them. Raise "
                    "model_max_length, or truncate the text so that text + image features fit.",
                    stacklevel=2,
                )
            self._cb_mm_lost = None
        super().log(logs, *args, **kwargs)


class CotbalTrainer(CotbalHFMixin, Trainer):
    """``transformers.Trainer`` with the exact VITW loss of CoTBal (paper eq. 2 over each optimizer step).

    Takes every ``Trainer`` argument plus the ``cotbal_*`` keyword arguments of :class:`CotbalHFMixin`. Each
    example carries its task as a plain field (``{"input_ids": ..., "labels": ..., "task": "vqa"}``).
    """


_CLASSES: dict[type, type] = {}


def make_cotbal_trainer(trainer_class: type) -> type:
    """Return a subclass of ``trainer_class`` (any ``transformers.Trainer`` subclass) with the VITW loss.

    ``make_cotbal_trainer(SFTTrainer)`` (TRL), ``make_cotbal_trainer(LLaVATrainer)`` (LLaVA): the new class takes
    the same arguments plus the ``cotbal_*`` keyword arguments of :class:`CotbalHFMixin`, and keeps every method of
    ``trainer_class`` except the loss (``compute_loss``) and the step's token counting (``get_batch_samples``,
    ``_get_num_items_in_batch``). Calling it twice with the same class returns the same subclass.
    """
    if not isinstance(trainer_class, type) or not issubclass(trainer_class, Trainer):
        raise TypeError(f"make_cotbal_trainer needs a transformers.Trainer subclass, got {trainer_class!r}.")
    if issubclass(trainer_class, CotbalTrainerMixin):
        return trainer_class
    if trainer_class in _CLASSES:
        return _CLASSES[trainer_class]
    for name in _REPLACED:
        owner = next(c for c in trainer_class.__mro__ if name in vars(c))
        package = owner.__module__.split(".")[0]
        if package not in _TRUSTED_PACKAGES:
            warnings.warn(
                f"make_cotbal_trainer: {owner.__qualname__}.{name} (module {owner.__module__}) is bypassed: the "
                "VITW loss of cotbal_plugin replaces it. Move what it does elsewhere if you still need it.",
                stacklevel=2,
            )
    name = f"Cotbal{trainer_class.__name__}"
    cls = type(
        name,
        (CotbalHFMixin, trainer_class),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"``{trainer_class.__qualname__}`` with the exact VITW loss of CoTBal (cotbal_plugin).",
        },
    )
    _CLASSES[trainer_class] = cls
    return cls
