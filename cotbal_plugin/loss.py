"""The VITW reduction (paper eq. 2), independent of LLaMA-Factory.

    L = Σ_tokens λ_task(token) · nll(token)  /  Σ_tokens λ_task(token)      (valid tokens only)

where both sums run over every token of the optimizer step (all gradient-accumulation micro-batches, all
data-parallel ranks). The trainer computes the denominator once per step from the per-task token counts
(:func:`task_token_counts`, summed over micro-batches and ranks) and each micro-batch contributes
:func:`weighted_nll_sum` / denominator, so the accumulated gradient is the gradient of L whatever the layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .task_labels import IGNORE_INDEX, decode_labels


def shift_targets(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets aligned with the logits (position t predicts label t+1); last position is ignored."""
    return F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def task_token_counts(encoded_labels: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Number of valid next-token targets of each task in a batch of encoded labels (float64[num_tasks])."""
    _, task_ids = decode_labels(shift_targets(encoded_labels))
    valid = task_ids >= 0
    return torch.bincount(task_ids[valid], minlength=num_tasks)[:num_tasks].to(torch.float64)


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood in float32 (0 at ignored positions), shaped like ``targets``."""
    vocab = logits.size(-1)
    nll = F.cross_entropy(
        logits.reshape(-1, vocab).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return nll.view(targets.shape)


def weighted_nll_sum(
    logits: torch.Tensor, encoded_labels: torch.Tensor, task_weights: torch.Tensor, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Σ λ_task · nll over the valid tokens of one micro-batch, plus per-task NLL sums and counts.

    Args:
        logits: ``[batch, length, vocab]`` model outputs (any float dtype).
        encoded_labels: ``[batch, length]`` labels carrying task ids (see :mod:`cotbal_plugin.task_labels`).
        task_weights: ``float32[num_tasks]`` weights λ on the logits' device.
        num_tasks: number of tasks N.

    Returns:
        ``(weighted_sum, nll_sums, counts)``: a scalar with gradient, and detached float64[N] per-task sums of
        the (unweighted) NLL and the numbers of valid tokens — for logging and dynamic weightings.
        No host-device synchronisation and no loop over tasks.
    """
    targets, task_ids = decode_labels(shift_targets(encoded_labels))
    valid = task_ids >= 0
    targets = torch.where(valid, targets, torch.full_like(targets, IGNORE_INDEX))
    nll = token_nll(logits, targets)
    safe_ids = task_ids.clamp_min(0)
    token_weights = task_weights.to(nll.dtype)[safe_ids] * valid
    weighted_sum = (token_weights * nll).sum()
    with torch.no_grad():
        flat_ids = safe_ids[valid]
        nll_sums = torch.zeros(num_tasks, dtype=torch.float64, device=nll.device)
        nll_sums.index_add_(0, flat_ids, nll.detach()[valid].to(torch.float64))
        counts = torch.bincount(flat_ids, minlength=num_tasks)[:num_tasks].to(torch.float64)
    return weighted_sum, nll_sums, counts


def vitw_denominator(token_counts: torch.Tensor, task_weights: torch.Tensor) -> torch.Tensor:
    """Σ_i λ_i n_i: the weighted number of valid tokens of the step (eq. 2's denominator), clamped away from 0.

    A step without any valid token gives a zero loss rather than 0/0, so no NaN reaches the optimizer.
    """
    denom = (token_counts.to(torch.float64) * task_weights.to(torch.float64)).sum()
    return denom.clamp_min(torch.finfo(torch.float32).tiny)


def vitw_loss_reference(
    logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Direct, unoptimised eq. 2 on one batch with plain (unencoded) labels and explicit per-token task ids.

    Loops over tokens; used by tests and documentation as the executable definition.
    """
    num = logits.new_zeros((), dtype=torch.float64)
    den = logits.new_zeros((), dtype=torch.float64)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    for b in range(labels.size(0)):
        for t in range(labels.size(1) - 1):
            target = int(labels[b, t + 1])
            if target == IGNORE_INDEX:
                continue
            lam = weights[int(task_ids[b, t + 1])].double()
            num = num - lam * log_probs[b, t, target]
            den = den + lam
    return num / den if den > 0 else num
