"""The loss head that bench_loss.py and bench_memory.py both time: stock, cotbal on full logits, cotbal fused."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers.loss.loss_utils import ForCausalLMLoss

from cotbal_plugin.fused_ce import fused_weighted_nll_sum
from cotbal_plugin.loss import task_token_counts, vitw_denominator, weighted_nll_sum
from cotbal_plugin.task_labels import IGNORE_INDEX

HEAD_KINDS = ("stock", "cotbal-full", "cotbal-fused")


def loss_head_step(kind: str, inp: dict[str, Any], num_tasks: int, chunk_tokens: int | None = None) -> torch.Tensor:
    """One forward+backward of the loss head from ``inp`` (hidden, weight, labels, encoded, weights); the loss.

    ``stock``: ``F.linear`` then transformers' ``ForCausalLMLoss`` with the valid-token count, as the Trainer does.
    ``cotbal-full``: the same logits through :func:`weighted_nll_sum`. ``cotbal-fused``:
    :func:`fused_weighted_nll_sum` (no full logits), chunked by ``chunk_tokens`` (``None``: its own choice).
    """
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown loss head {kind!r}; known: {', '.join(HEAD_KINDS)}")
    hidden, weight, encoded, weights = inp["hidden"], inp["weight"], inp["encoded"], inp["weights"]
    if kind == "stock":
        labels = inp["labels"]
        num_items = (labels[..., 1:] != IGNORE_INDEX).sum()
        logits = F.linear(hidden, weight)
        loss = ForCausalLMLoss(logits, labels, vocab_size=logits.size(-1), num_items_in_batch=num_items)
        del logits
    else:
        denom = vitw_denominator(task_token_counts(encoded, num_tasks), weights)
        if kind == "cotbal-full":
            logits = F.linear(hidden, weight)
            weighted_sum, _, _ = weighted_nll_sum(logits, encoded, weights, num_tasks)
            del logits
        else:
            weighted_sum, _, _ = fused_weighted_nll_sum(
                hidden, weight, encoded, weights, num_tasks, chunk_tokens=chunk_tokens
            )
        loss = (weighted_sum / denom).to(torch.float32)
    loss.backward()
    return loss.detach()
