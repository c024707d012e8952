"""What every metric shares: its result type and how a label holds several references."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class MetricResult:
    """Value of one metric over a prediction set (a fraction in [0, 1] for all but the CIDEr-D family)."""

    value: float
    n: int
    unparsable: int = 0
    extra: dict[str, float] = field(default_factory=dict)


Metric = Callable[[Sequence[str], Sequence[str]], MetricResult]


def references(label: str) -> list[str]:
    """The reference answers in a label: a JSON list of strings gives several, anything else one.

    ``'["two", "2"]'`` → ``["two", "2"]`` (VQA's ten answers, several captions); ``"[0.1, 0.2, 0.3, 0.4]"`` (a box)
    and any other text are one reference, returned unchanged.
    """
    text = label.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [label]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return [label]


def all_references(labels: Sequence[str]) -> list[list[str]]:
    """:func:`references` of every label."""
    return [references(label) for label in labels]
