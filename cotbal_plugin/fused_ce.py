"""Fused, chunked, per-token weighted linear cross-entropy: the VITW numerator without ``[tokens, vocab]`` logits.

:func:`fused_weighted_nll_sum` returns exactly what :func:`cotbal_plugin.loss.weighted_nll_sum` returns —
``(weighted_sum, nll_sums, counts)`` — but from the last hidden states and the output layer's weight instead of
the logits. Tokens are processed in fixed-size chunks; for each chunk it computes the logits (in the matmul's
compute dtype, as the model would), a float32 log-sum-exp, the per-token NLL, and — already in the forward — the
gradients with respect to the hidden states and the weight, each token's row of ``softmax - onehot`` scaled by
its weight λ_task. Only one chunk's logits exist at a time and none are kept for the backward, which only
multiplies the stored gradients by the scalar upstream gradient (Liger-Kernel's design, written here for
per-token weights; see ``docs/loss.md`` for why no library is called).

Numerics follow the unfused model + :func:`~cotbal_plugin.loss.weighted_nll_sum` path step for step: logits in
the compute dtype (the weight's dtype, or the autocast dtype when autocast is on), float32 soft-max, the logits'
gradient rounded to the compute dtype before the two matmuls. The weight's gradient is accumulated over the
chunks in float32 and cast to the weight's dtype once at the end (bf16 accumulation over chunks would round once
per chunk). With float32 weights the result equals the unfused path to ~1e-6 relative.

No host-device synchronisation: every chunk has a fixed size (the last one is shorter, fixed by the shapes), all
positions are processed (ignored ones get weight 0 — compacting the valid tokens would need a sync to learn their
number), per-task sums use ``index_add_``.

Memory: a chunk's float32 logits are bounded by ``budget_bytes`` (256 MiB by default, see
:func:`auto_chunk_tokens`); log-sum-exp, soft-max and its gradient are computed in place in that buffer, so the
peak extra memory in the loss is that buffer plus, for bf16/fp16, the chunk's logits and gradient in the compute
dtype (1.5 × in all), plus the stored gradients (hidden-sized, and the weight-sized float32 accumulator when the
weight requires a gradient — skipped for a frozen output layer, as with LoRA).
"""

from __future__ import annotations

import torch

from .loss import per_task_sums, prepare_targets
from .task_labels import IGNORE_INDEX

DEFAULT_CHUNK_BYTES = 256 * 2**20
MIN_CHUNK_TOKENS = 256
_CHUNK_MULTIPLE = 64


def auto_chunk_tokens(
    vocab_size: int, budget_bytes: int = DEFAULT_CHUNK_BYTES, min_tokens: int = MIN_CHUNK_TOKENS
) -> int:
    """Tokens per chunk so that one chunk's float32 logits ``[chunk, vocab]`` stay within ``budget_bytes``.

    Rounded down to a multiple of 64 (matmul-friendly) and never below ``min_tokens`` (a few hundred tokens keep
    the matmuls efficient; with a 256k vocabulary that is 256 MiB). E.g. 2,048 tokens for a 32k vocabulary,
    512 for 128k, 384 for 152k.
    """
    if vocab_size < 1:
        raise ValueError(f"auto_chunk_tokens: vocabulary size must be positive, got {vocab_size}")
    tokens = budget_bytes // (4 * vocab_size)
    if tokens >= _CHUNK_MULTIPLE:
        tokens -= tokens % _CHUNK_MULTIPLE
    return max(int(min_tokens), int(tokens))


def compute_dtype_for(weight: torch.Tensor) -> torch.dtype:
    """The dtype the output layer's matmul runs in: the autocast dtype when autocast is on, else the weight's."""
    device_type = weight.device.type
    if torch.is_autocast_enabled(device_type) and weight.dtype.is_floating_point:
        return torch.get_autocast_dtype(device_type)
    return weight.dtype


def _accumulate_weight_grad(
    acc: torch.Tensor, grad_logits: torch.Tensor, hidden: torch.Tensor, scratch: torch.Tensor
) -> None:
    """``acc += grad_logits.T @ hidden``: products of the compute-dtype operands, accumulated in float32.

    ``scratch`` is the chunk's float32 ``[chunk, vocab]`` buffer (free at this point): on the CPU the rounded
    low-precision gradient is copied into it rather than into a new float32 tensor.
    """
    if grad_logits.dtype == torch.float32:
        acc.addmm_(grad_logits.t(), hidden.float())
    elif acc.is_cuda and torch.cuda.get_device_capability(acc.device)[0] >= 8:
        # bf16/fp16 tensor cores with a float32 output (the same products as the unfused path's GEMM)
        torch.addmm(acc, grad_logits.t(), hidden, out_dtype=torch.float32, out=acc)
    else:  # CPU and older GPUs: the exact float32 product of the (already rounded) low-precision operands
        scratch.copy_(grad_logits)
        acc.addmm_(scratch.t(), hidden.float())


class _FusedLinearWeightedNLL(torch.autograd.Function):
    """Σ_t w_t · nll_t of ``hidden @ weight.T (+ bias)``, gradients computed chunk by chunk in the forward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        token_weights: torch.Tensor,
        chunk_tokens: int,
        compute_dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_bias = bias is not None and ctx.needs_input_grad[2]
        need_any = need_hidden or need_weight or need_bias
        tokens = hidden.shape[0]
        valid = targets != IGNORE_INDEX
        safe_targets = targets.clamp_min(0)
        nll = torch.empty(tokens, dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_bias else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            b = bias.to(compute_dtype) if bias is not None else None
            for start in range(0, tokens, chunk_tokens):
                end = min(start + chunk_tokens, tokens)
                h = hidden[start:end].to(compute_dtype)
                logits = torch.nn.functional.linear(h, w, b)
                z = logits.float()  # the logits themselves when the compute dtype is float32
                del logits
                # log-sum-exp and soft-max in place: no second [chunk, vocab] float32 tensor
                z.sub_(z.amax(dim=-1, keepdim=True))
                tgt = safe_targets[start:end, None]
                target_logit = z.gather(1, tgt)
                z.exp_()
                sum_exp = z.sum(dim=-1, keepdim=True)
                nll[start:end] = (sum_exp.log() - target_logit).squeeze(1)
                if not need_any:
                    continue
                z.div_(sum_exp)  # soft-max
                z.scatter_add_(1, tgt, torch.full_like(tgt, -1, dtype=z.dtype))  # - onehot(target)
                z.mul_(token_weights[start:end, None])  # × λ of the token (0 for ignored positions)
                g = z.to(compute_dtype) if compute_dtype != torch.float32 else z
                if need_hidden:
                    grad_hidden[start:end] = g @ w
                if need_weight:
                    _accumulate_weight_grad(grad_weight, g, h, z)
                if need_bias:
                    grad_bias.add_(g.sum(dim=0, dtype=torch.float32))
                del z, g
        nll = torch.where(valid, nll, 0.0)
        weighted_sum = (nll * token_weights).sum()
        ctx.grads = (
            grad_hidden,
            grad_weight.to(weight.dtype) if grad_weight is not None else None,
            grad_bias.to(bias.dtype) if grad_bias is not None else None,
        )
        ctx.mark_non_differentiable(nll)
        return weighted_sum, nll

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_sum: torch.Tensor, _grad_nll: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        grads = ctx.grads
        if grads is None:
            raise RuntimeError(
                "fused weighted cross-entropy: backward ran twice through the same forward (retain_graph=True); "
                "its gradients are computed in the forward and handed out once — run the forward again."
            )
        ctx.grads = None
        # in place: no second weight-sized buffer; exact when grad_sum is 1 or a power of two (loss scaling)
        grad_hidden, grad_weight, grad_bias = (g.mul_(grad_sum) if g is not None else None for g in grads)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None


def fused_weighted_linear_ce(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    token_weights: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_t w_t · nll_t of the logits ``hidden @ weight.T + bias``, chunked, with gradients to hidden / weight / bias.

    Args:
        hidden: ``[..., H]`` hidden states (position-aligned with ``targets``: no shift is applied here).
        weight: ``[V, H]`` output-layer weight; its gradient is skipped when it does not require grad.
        targets: int64 ``[...]`` target ids in ``[0, V)``, ``IGNORE_INDEX`` (-100) where not supervised.
        token_weights: float32 ``[...]`` per-position weights (0 where ignored); they receive no gradient.
        bias: optional ``[V]`` bias.
        chunk_tokens: tokens per chunk; default :func:`auto_chunk_tokens` of the vocabulary size.

    Returns:
        ``(weighted_sum, nll)``: a float32 scalar with autograd to ``hidden``, ``weight`` and ``bias``, and the
        detached float32 per-position NLL shaped like ``targets`` (0 at ignored positions).
    """
    if hidden.shape[:-1] != targets.shape or targets.shape != token_weights.shape:
        raise ValueError(
            f"fused_weighted_linear_ce: hidden {tuple(hidden.shape)}, targets {tuple(targets.shape)} and "
            f"token_weights {tuple(token_weights.shape)} must agree on every dimension but the last of hidden."
        )
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"fused_weighted_linear_ce: weight {tuple(weight.shape)} must be [vocab, {hidden.shape[-1]}] for hidden "
            f"size {hidden.shape[-1]}."
        )
    chunk = int(chunk_tokens) if chunk_tokens is not None else auto_chunk_tokens(weight.shape[0])
    if chunk < 1:
        raise ValueError(f"fused_weighted_linear_ce: chunk_tokens must be >= 1, got {chunk_tokens}")
    hidden2d = hidden.reshape(-1, hidden.shape[-1])
    weighted_sum, nll = _FusedLinearWeightedNLL.apply(
        hidden2d,
        weight,
        bias,
        targets.reshape(-1),
        token_weights.reshape(-1).to(torch.float32),
        chunk,
        compute_dtype_for(weight),
    )
    return weighted_sum, nll.view(targets.shape)


def fused_weighted_nll_sum(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    encoded_labels: torch.Tensor,
    task_weights: torch.Tensor,
    num_tasks: int,
    bias: torch.Tensor | None = None,
    chunk_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`~cotbal_plugin.loss.weighted_nll_sum` computed from hidden states and the output layer, fused.

    Args:
        hidden: ``[batch, length, H]`` last hidden states, the input of the output layer; position t predicts
            label t+1 (the same shift as ``weighted_nll_sum``).
        weight: ``[V, H]`` output-layer weight (tied or not; frozen → no weight gradient is computed).
        encoded_labels: ``[batch, length]`` labels carrying task ids (see :mod:`cotbal_plugin.task_labels`).
        task_weights: ``float32[num_tasks]`` weights λ on the hidden states' device.
        num_tasks: number of tasks N.
        bias: optional ``[V]`` output-layer bias.
        chunk_tokens: tokens per chunk (default: :func:`auto_chunk_tokens`).

    Returns:
        ``(weighted_sum, nll_sums, counts)``: a float32 scalar with autograd to ``hidden``, ``weight`` and
        ``bias``, and detached float64[N] per-task NLL sums and valid-token counts. No host-device sync.
        Tip: passing ``task_weights`` already divided by the step's denominator (and times the number of
        processes) makes ``weighted_sum`` the loss itself, so the backward multiplies by exactly 1.
    """
    if task_weights.numel() != num_tasks:
        raise ValueError(
            f"fused_weighted_nll_sum: task_weights has {task_weights.numel()} entries for {num_tasks} tasks."
        )
    targets, task_ids, token_weights, valid = prepare_targets(encoded_labels, task_weights)
    weighted_sum, nll = fused_weighted_linear_ce(hidden, weight, targets, token_weights, bias, chunk_tokens)
    nll_sums, counts = per_task_sums(task_ids, valid, nll, num_tasks)
    return weighted_sum, nll_sums, counts
