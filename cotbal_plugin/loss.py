"""The VITW reduction (paper eq. 2), independent of LLaMA-Factory.

    L = Σ_tokens λ_task(token) · nll(token)  /  Σ_tokens λ_task(token)      (valid tokens only)

where both sums run over every token of the optimizer step (all gradient-accumulation micro-batches, all
data-parallel ranks). The trainer computes the denominator once per step from the per-task token counts
(:func:`task_token_counts`, summed over micro-batches and ranks) and each micro-batch contributes
:func:`weighted_nll_sum` / denominator, so the accumulated gradient is the gradient of L whatever the layout.

Every per-micro-batch function here is free of host-device synchronisation: fixed shapes only (no boolean-mask
indexing, ``nonzero``, ``bincount``, ``unique``, ``.item()``), per-task sums with ``index_add_`` over task ids
clamped into range, invalid positions carrying a zero weight. The same functions therefore run under
``torch.compile(fullgraph=True)`` and ``torch.cuda.set_sync_debug_mode("error")``. The fused, chunked variant that
never materialises ``[tokens, vocab]`` logits is :mod:`cotbal_plugin.fused_ce`; it shares :func:`prepare_targets`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .task_labels import IGNORE_INDEX, decode_labels


def shift_targets(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets aligned with the logits (position t predicts label t+1); last position is ignored."""
    return F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def prepare_targets(
    encoded_labels: torch.Tensor, task_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode and shift task-encoded labels into per-position targets, task ids and weights (no sync).

    Args:
        encoded_labels: ``[..., length]`` labels carrying task ids (see :mod:`cotbal_plugin.task_labels`).
        task_weights: ``[num_tasks]`` weights λ (any float dtype, on the labels' device).

    Returns:
        ``(targets, task_ids, token_weights, valid)``, all shaped like ``encoded_labels`` and aligned with the
        logits (position t predicts label t+1):

        - ``targets`` (int64): the next token id, ``IGNORE_INDEX`` where the position is not valid;
        - ``task_ids`` (int64): the task of the target, clamped into ``[0, num_tasks)`` so that it can index a
          ``[num_tasks]`` tensor everywhere — meaningful only where ``valid``;
        - ``token_weights`` (float32): λ of the target's task, 0 where not valid;
        - ``valid`` (bool): the target is supervised and carries a task id in ``[0, num_tasks)``.

        A supervised label without a task id, or with a task id ≥ ``num_tasks``, is not valid here; count such
        tokens with :func:`untasked_token_count` (the trainer refuses them) rather than losing them silently.
    """
    num_tasks = task_weights.numel()
    if num_tasks < 1:
        raise ValueError("prepare_targets: task_weights is empty; there must be at least one task.")
    targets, task_ids = decode_labels(shift_targets(encoded_labels))
    valid = (task_ids >= 0) & (task_ids < num_tasks)
    targets = torch.where(valid, targets, torch.full_like(targets, IGNORE_INDEX))
    task_ids = task_ids.clamp(0, num_tasks - 1)
    weights = task_weights.to(device=encoded_labels.device, dtype=torch.float32)
    token_weights = torch.where(valid, weights[task_ids], torch.zeros((), dtype=torch.float32, device=weights.device))
    return targets, task_ids, token_weights, valid


def per_task_sums(
    task_ids: torch.Tensor, valid: torch.Tensor, values: torch.Tensor, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached float64[num_tasks] sums of ``values`` and counts of valid positions, per task (``index_add_``).

    ``task_ids`` must already be clamped into range (as :func:`prepare_targets` returns them); positions that are
    not ``valid`` add zero. No host-device synchronisation, no loop over tasks.
    """
    with torch.no_grad():
        ids = task_ids.reshape(-1)
        mask = valid.reshape(-1)
        vals = torch.where(mask, values.detach().reshape(-1).to(torch.float64), 0.0)
        sums = torch.zeros(num_tasks, dtype=torch.float64, device=ids.device).index_add_(0, ids, vals)
        counts = torch.zeros(num_tasks, dtype=torch.float64, device=ids.device).index_add_(
            0, ids, mask.to(torch.float64)
        )
    return sums, counts


def task_token_counts(encoded_labels: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Number of valid next-token targets of each task in a batch of encoded labels (float64[num_tasks])."""
    _, task_ids = decode_labels(shift_targets(encoded_labels))
    valid = (task_ids >= 0) & (task_ids < num_tasks)
    ids = task_ids.clamp(0, num_tasks - 1).reshape(-1)
    return torch.zeros(num_tasks, dtype=torch.float64, device=ids.device).index_add_(
        0, ids, valid.reshape(-1).to(torch.float64)
    )


def untasked_token_count(encoded_labels: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """Supervised next-token targets that carry no task id in ``[0, num_tasks)`` (a float64 scalar tensor).

    Such tokens are left out of the VITW sums (they have no λ), so a caller must check this is 0 — once per step,
    where the step's weights are decided anyway (it is the only place that needs a host sync).
    """
    targets, task_ids = decode_labels(shift_targets(encoded_labels))
    supervised = targets != IGNORE_INDEX
    tasked = (task_ids >= 0) & (task_ids < num_tasks)
    return (supervised & ~tasked).sum(dtype=torch.float64)


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
        logits: ``[batch, length, vocab]`` model outputs (any float dtype); position t predicts label t+1.
        encoded_labels: ``[batch, length]`` labels carrying task ids (see :mod:`cotbal_plugin.task_labels`).
        task_weights: ``float32[num_tasks]`` weights λ on the logits' device.
        num_tasks: number of tasks N.

    Returns:
        ``(weighted_sum, nll_sums, counts)``: a float32 scalar with gradient, and detached float64[N] per-task sums
        of the (unweighted) NLL and the numbers of valid tokens — for logging and dynamic weightings.
        No host-device synchronisation and no loop over tasks.
    """
    if task_weights.numel() != num_tasks:
        raise ValueError(f"weighted_nll_sum: task_weights has {task_weights.numel()} entries for {num_tasks} tasks.")
    targets, task_ids, token_weights, valid = prepare_targets(encoded_labels, task_weights)
    nll = token_nll(logits, targets)
    weighted_sum = (token_weights * nll).sum()
    nll_sums, counts = per_task_sums(task_ids, valid, nll, num_tasks)
    return weighted_sum, nll_sums, counts


def vitw_denominator(token_counts: torch.Tensor, task_weights: torch.Tensor) -> torch.Tensor:
    """Σ_i λ_i n_i: the weighted number of valid tokens of the step (eq. 2's denominator), clamped away from 0.

    A step without any valid token gives a zero loss rather than 0/0, so no NaN reaches the optimizer.
    """
    denom = (token_counts.to(torch.float64) * task_weights.to(token_counts.device, torch.float64)).sum()
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
