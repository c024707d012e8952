"""Task-weighting strategies for the VITW loss: ``static`` (CoTBal), and the baselines ``ew``, ``tla``, ``rlw``,
``dwa``, ``igb`` (paper §4.1.2). Pure numpy; no torch or LLaMA-Factory import. See ``docs/weighting.md``."""

from __future__ import annotations

from .base import TaskWeighting
from .dwa import DynamicWeightAverage
from .ew import EqualWeighting
from .igb import ImprovableGapBalancing
from .registry import WEIGHTINGS, build_weighting
from .rlw import RandomLossWeighting
from .static import StaticWeighting
from .tla import TaskLevelAggregation

__all__ = [
    "WEIGHTINGS",
    "DynamicWeightAverage",
    "EqualWeighting",
    "ImprovableGapBalancing",
    "RandomLossWeighting",
    "StaticWeighting",
    "TaskLevelAggregation",
    "TaskWeighting",
    "build_weighting",
]
