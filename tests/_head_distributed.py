"""Run by tests/test_head.py in a subprocess: the fused head under real DeepSpeed ZeRO-3 and DDP (gloo, 1 rank).

Prints one JSON line: for each wrapper, the relative difference between the fused and the full-logits path in
the loss and in the full gradient of every parameter (ZeRO-3: gathered with ``safe_get_full_grad``).
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
os.environ.update(MASTER_ADDR="127.0.0.1", RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
os.environ.setdefault("MASTER_PORT", sys.argv[1] if len(sys.argv) > 1 else "29531")

import deepspeed  # noqa: E402
from deepspeed.utils import safe_get_full_grad  # noqa: E402

from cotbal_plugin.head import fused_output_head  # noqa: E402
from cotbal_plugin.loss import weighted_nll_sum  # noqa: E402
from cotbal_plugin.task_labels import IGNORE_INDEX, TASK_STRIDE  # noqa: E402
from cotbal_plugin.testing.tiny import tiny_llama_model  # noqa: E402

WEIGHTS = torch.tensor([2.0, 0.5])


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 96, (2, 12), generator=g)
    encoded = ids + torch.tensor([[1], [2]]) * TASK_STRIDE
    encoded[:, :4] = IGNORE_INDEX
    return ids, encoded


def loss_of(model: torch.nn.Module, fused: bool) -> torch.Tensor:
    ids, encoded = batch()
    if fused:
        with fused_output_head(model, encoded, WEIGHTS, 2, chunk_tokens=5) as head:
            outputs = model(input_ids=ids)
        return head.result(outputs, validate=True)[0]
    return weighted_nll_sum(model(input_ids=ids).logits, encoded, WEIGHTS, 2)[0]


def zero3_grads(tied: bool, fused: bool) -> tuple[float, dict[str, torch.Tensor], bool]:
    model = tiny_llama_model(tie_word_embeddings=tied)
    config = {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
        "optimizer": {"type": "SGD", "params": {"lr": 0.1}},
        "zero_allow_untested_optimizer": True,
    }
    engine, _, _, _ = deepspeed.initialize(model=model, config=config, model_parameters=model.parameters())
    partitioned = engine.module.lm_head.weight.numel() == 0  # outside forward the weight is a ZeRO-3 shard
    loss = loss_of(engine, fused)
    engine.backward(loss)
    grads = {n: safe_get_full_grad(p).clone() for n, p in engine.module.named_parameters()}
    return float(loss), grads, partitioned


def ddp_grads(fused: bool) -> tuple[float, dict[str, torch.Tensor]]:
    model = tiny_llama_model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    loss = loss_of(ddp, fused)
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters()}


def compare(a: tuple, b: tuple) -> dict[str, float]:
    worst = max(
        float((a[1][n] - b[1][n]).abs().max() / b[1][n].abs().max().clamp_min(1e-30)) for n in b[1] if b[1][n].any()
    )
    return {"loss_rel": abs(a[0] / b[0] - 1), "max_grad_rel": worst, "params": len(b[1])}


def main() -> None:
    deepspeed.init_distributed(dist_backend="gloo")
    out = {}
    for tied in (False, True):
        full, fused = zero3_grads(tied, fused=False), zero3_grads(tied, fused=True)
        out[f"zero3_{'tied' if tied else 'untied'}"] = {**compare(fused, full), "partitioned": fused[2]}
    out["ddp"] = compare(ddp_grads(True), ddp_grads(False))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
