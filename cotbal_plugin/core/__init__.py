"""Trainer-agnostic core of the VITW loss: settings and the ``transformers.Trainer`` mixin (no LLaMA-Factory import).

The LLaMA-Factory front end (``cotbal_plugin.llamafactory``) and the plain-HF front end (``cotbal_plugin.hf``)
both build on :class:`~cotbal_plugin.core.trainer.CotbalTrainerMixin`; they differ only in how the task of each
token gets into the labels and where the settings come from.
"""

from __future__ import annotations

from .config import WEIGHTING_NAMES, CotbalSettings

__all__ = ["WEIGHTING_NAMES", "CotbalSettings"]
