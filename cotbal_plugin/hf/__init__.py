"""The exact VITW loss of CoTBal outside LLaMA-Factory: plain ``transformers.Trainer``, TRL, LLaVA-style scripts.

- :class:`CotbalTrainer` — a ``transformers.Trainer`` with the VITW loss (paper eq. 2 over each optimizer step).
- :func:`make_cotbal_trainer` — the same for any ``Trainer`` subclass: ``make_cotbal_trainer(SFTTrainer)``,
  ``make_cotbal_trainer(LLaVATrainer)``.
- :class:`TaskLabelCollator` — the collator wrapper the trainers install (task field → task ids in the labels).

Each example carries its task as a plain field (``{"input_ids": ..., "labels": ..., "task": "vqa"}``); see
``docs/hf.md`` for recipes. The loss, counting, weighting, logging and checkpointed state are shared with the
LLaMA-Factory front end (:mod:`cotbal_plugin.core`).
"""

from __future__ import annotations

from .collator import TaskLabelCollator
from .trainer import CotbalTrainer, make_cotbal_trainer

__all__ = ["CotbalTrainer", "TaskLabelCollator", "make_cotbal_trainer"]
