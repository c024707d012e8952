"""Registry of the task-weighting strategies and the factory the trainer calls."""

from __future__ import annotations

from typing import Any

from .base import TaskWeighting
from .dwa import DynamicWeightAverage
from .ew import EqualWeighting
from .igb import ImprovableGapBalancing
from .rlw import RandomLossWeighting
from .static import StaticWeighting
from .tla import TaskLevelAggregation

WEIGHTINGS: dict[str, type[TaskWeighting]] = {
    cls.name: cls
    for cls in (
        StaticWeighting,
        EqualWeighting,
        TaskLevelAggregation,
        RandomLossWeighting,
        DynamicWeightAverage,
        ImprovableGapBalancing,
    )
}


def build_weighting(
    name: str,
    tasks: list[str],
    *,
    static_weights: dict[str, float] | None = None,
    seed: int = 0,
    **hparams: Any,
) -> TaskWeighting:
    """Create the strategy registered as ``name`` (case-insensitive; see :data:`WEIGHTINGS`).

    ``hparams`` with value None mean "the method's default"; any other hyper-parameter the method does not have
    raises ValueError, as do an unknown name and invalid values.
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in WEIGHTINGS:
        raise ValueError(f"unknown task weighting {name!r} (YAML key 'cotbal_weighting'); valid: {sorted(WEIGHTINGS)}")
    return WEIGHTINGS[key](tasks, static_weights=static_weights, seed=seed, **hparams)
