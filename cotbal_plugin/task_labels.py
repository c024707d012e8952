"""Per-token task ids carried inside the label ids.

The task of every supervised token travels *inside* its label: a valid label ``y`` of task ``k`` is stored as
``y + (k + 1) * TASK_STRIDE``; ignored positions stay ``IGNORE_INDEX``. Everything LLaMA-Factory does to labels —
packing and neat packing (labels are concatenated with their tokens), padding on either side, ``pad_to_multiple_of``,
fake image tokens (ignored labels) — therefore keeps the task id aligned with its token by construction, and no
extra batch key reaches the model (no clash with PEFT's ``task_ids`` argument).

``TASK_STRIDE`` (2**24) is far above any vocabulary size, so ``label % TASK_STRIDE`` is the token id and
``label // TASK_STRIDE - 1`` the task id. A valid label below the stride was not encoded: that is how a
``tokenized_path`` cache written without the plugin is detected.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100
TASK_STRIDE = 1 << 24
MAX_VOCAB = TASK_STRIDE


def encode_labels(labels: Sequence[int], task_id: int) -> list[int]:
    """Return ``labels`` with ``task_id`` folded into every valid (non-ignored) label."""
    if task_id < 0:
        raise ValueError(f"task id must be >= 0, got {task_id}")
    offset = (task_id + 1) * TASK_STRIDE
    out = []
    for label in labels:
        if label == IGNORE_INDEX:
            out.append(IGNORE_INDEX)
        elif 0 <= label < TASK_STRIDE:
            out.append(label + offset)
        else:
            raise ValueError(
                f"label id {label} is already task-encoded or outside the vocabulary range [0, {TASK_STRIDE})"
            )
    return out


def decode_label_list(labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split encoded labels into (token labels, task ids); ignored positions get task id -1."""
    token_labels, task_ids = [], []
    for label in labels:
        if label >= TASK_STRIDE:
            token_labels.append(label % TASK_STRIDE)
            task_ids.append(label // TASK_STRIDE - 1)
        else:
            token_labels.append(label)
            task_ids.append(-1)
    return token_labels, task_ids


def decode_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an encoded label tensor into (token labels, task ids).

    Positions that carry no task (ignored labels, or labels that were never encoded) keep their label and get
    task id -1. Elementwise integer ops only: no host-device synchronisation.
    """
    encoded = labels >= TASK_STRIDE
    token_labels = torch.where(encoded, labels % TASK_STRIDE, labels)
    task_ids = torch.where(encoded, labels // TASK_STRIDE - 1, torch.full_like(labels, -1))
    return token_labels, task_ids


def strip_task_ids(labels: torch.Tensor) -> torch.Tensor:
    """Return plain token labels (task ids removed); unencoded labels are returned unchanged."""
    return torch.where(labels >= TASK_STRIDE, labels % TASK_STRIDE, labels)
