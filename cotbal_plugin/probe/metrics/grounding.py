"""Box metrics: ``iou_acc`` (the authors' grounding accuracy) and ``miou``.

The authors' ``eval/grounding_bbox.py`` (VisATB), reproduced:

* the box of a text is the content of its **first** ``[...]`` on one line (``re.search(r"\\[(.*?)\\]", text)``),
  with any ``[`` / ``]`` inside removed, split on ``,``, each part parsed by ``float()``; a text without ``[...]``
  gets the box ``[0, 0, 0, 0]`` (a miss);
* IoU is torchvision's ``box_iou`` in float32 (``torch.tensor`` of Python floats): areas ``(x2-x1)*(y2-y1)``
  without clamping, intersection clamped at 0, ``inter / (area1 + area2 - inter)``; 0/0 gives NaN;
* a prediction is a hit when IoU **> 0.5** (NaN is not).

The same arithmetic is done here in numpy float32 (the same IEEE operations in the same order, so the same bits; a
test compares with torchvision). Where the authors' script would stop with an exception — a first ``[...]`` that is
not 4 comma-separated numbers, like ``[the man]`` or ``[1, 2, 3]`` — the prediction counts as a miss (IoU 0). Both
kinds of predictions without a box are counted in ``unparsable`` (the box ``[0, 0, 0, 0]`` never hits and has
IoU 0, so the count changes no score). A label without a parsable box is an error (a wrong metric or broken data),
not a miss.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import ProbeError
from .base import MetricResult

_FIRST_BRACKETS = re.compile(r"\[(.*?)\]")
NO_BOX = (0.0, 0.0, 0.0, 0.0)


def find_box(text: str) -> tuple[float, float, float, float] | None:
    """The box of ``text`` as the authors parse it: first ``[...]``; ``NO_BOX`` without one; ``None`` if unparsable."""
    match = _FIRST_BRACKETS.search(text)
    if match is None:
        return NO_BOX
    parts = match.group(1).replace("[", "").replace("]", "").split(",")
    if len(parts) != 4:
        return None
    try:
        return tuple(float(p.strip()) for p in parts)  # type: ignore[return-value]
    except ValueError:
        return None


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first ``[x1, y1, x2, y2]`` of ``text``, or ``None`` when there is none or it is not 4 numbers."""
    if _FIRST_BRACKETS.search(text) is None:
        return None
    return find_box(text)


def box_ious(truths: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``(n, 4)`` arrays of ``[x1, y1, x2, y2]``, in float32 as torchvision's ``box_iou``.

    May hold NaN (empty union) or a negative zero; callers decide (NaN is never a hit).
    """
    with np.errstate(all="ignore"):  # overflow to inf in the cast, NaN from 0/0 or inf - inf: as torch, silently
        t = np.asarray(truths, dtype=np.float32).reshape(-1, 4)
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        lt = np.maximum(t[:, :2], b[:, :2])
        rb = np.minimum(t[:, 2:], b[:, 2:])
        wh = np.maximum(rb - lt, np.float32(0))  # clamp(min=0); NaN stays NaN as in torch
        inter = wh[:, 0] * wh[:, 1]
        union = area_t + area_b - inter
        return inter / union


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes as the authors compute it (float32); an undefined IoU (NaN) is returned as 0."""
    value = float(box_ious(np.asarray([a]), np.asarray([b]))[0])
    return 0.0 if np.isnan(value) else value


def _ious(predictions: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, int]:
    truths, boxes, unparsable = [], [], 0
    for k, (pred, label) in enumerate(zip(predictions, labels, strict=True)):
        truth = parse_box(label)
        if truth is None:
            raise ProbeError(
                f"label #{k + 1} is not a box [x1, y1, x2, y2]: {label[:80]!r}; is the metric right (iou_acc / miou "
                "are for grounding tasks)?"
            )
        box = parse_box(pred)
        if box is None:  # no "[...]" (the authors' [0, 0, 0, 0]) or not 4 numbers: a miss either way
            unparsable += 1
            box = NO_BOX
        truths.append(truth)
        boxes.append(box)
    return box_ious(np.asarray(truths, dtype=np.float64), np.asarray(boxes, dtype=np.float64)), unparsable


def iou_accuracy(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Share of predictions whose box has IoU > 0.5 with the label's (authors' protocol); mean IoU in ``extra``."""
    ious, bad = _ious(predictions, labels)
    hits = int(np.count_nonzero(ious > 0.5))
    return MetricResult(hits / ious.size, int(ious.size), bad, {"miou": _mean_iou(ious)})


def _mean_iou(ious: np.ndarray) -> float:
    return float(np.mean(np.nan_to_num(np.maximum(ious, 0), nan=0.0).astype(np.float64)))


def mean_iou(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Mean IoU (same parsing and arithmetic as ``iou_acc``; an undefined IoU counts 0)."""
    ious, bad = _ious(predictions, labels)
    return MetricResult(_mean_iou(ious), int(ious.size), bad)
