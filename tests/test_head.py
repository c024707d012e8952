"""The fused output head inside real HF models: equal loss and gradients, hooks, wrappers, and every refusal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cotbal_plugin.head import (
    FusedHeadUnsupported,
    find_output_layer,
    fused_head_support,
    fused_output_head,
    unwrap_model,
)
from cotbal_plugin.loss import weighted_nll_sum
from cotbal_plugin.task_labels import IGNORE_INDEX, TASK_STRIDE
from cotbal_plugin.testing.syncs import HostSyncDetector
from cotbal_plugin.testing.tiny import tiny_llama_model, tiny_llava_model

VOCAB, N = 96, 2
WEIGHTS = torch.tensor([2.0, 0.5])


def _inputs(kind: str, batch: int = 3, length: int = 20, seed: int = 0) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB - 1, (batch, length), generator=g)
    inputs = {"input_ids": ids}
    if kind == "llava":
        ids[:, 1:5] = VOCAB - 1  # 4 image tokens per 28×28 image
        inputs["pixel_values"] = torch.randn(batch, 3, 28, 28, generator=g)
    tasks = torch.randint(0, N, (batch, 1), generator=g)
    encoded = ids + (tasks + 1) * TASK_STRIDE
    encoded[:, :6] = IGNORE_INDEX  # prompt (and image tokens)
    encoded[0, -3:] = IGNORE_INDEX  # padding
    return inputs, encoded


def _model(kind: str, dtype: torch.dtype = torch.float32):
    if kind == "llava":
        model = tiny_llava_model(vocab_size=VOCAB)
    else:
        model = tiny_llama_model(vocab_size=VOCAB, tie_word_embeddings=kind == "llama-tied")
    return model.to(dtype)


def _full_path(model, inputs, encoded):
    model.zero_grad(set_to_none=True)
    outputs = model(**inputs)
    s, sums, counts = weighted_nll_sum(outputs.logits, encoded, WEIGHTS, N)
    (s * 0.25).backward()
    return s.detach(), sums, counts, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _fused_path(model, inputs, encoded, chunk=16):
    model.zero_grad(set_to_none=True)
    with fused_output_head(model, encoded, WEIGHTS, N, chunk_tokens=chunk) as head:
        outputs = model(**inputs)
    s, sums, counts = head.result(outputs, validate=True)
    (s * 0.25).backward()
    return s.detach(), sums, counts, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _rel(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-30) -> float:
    """Max abs difference relative to max |b|, or to ``floor`` when b is smaller (gradients that are zero in exact
    arithmetic, such as CLIP's key bias, hold only rounding noise)."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(floor))


def _floor(grads: dict[str, torch.Tensor]) -> float:
    return 1e-3 * max(float(g.double().abs().max()) for g in grads.values())


@pytest.mark.parametrize("kind", ["llama", "llama-tied", "llava"])
def test_fp32_loss_and_every_gradient_equal_the_full_logits_path(kind):
    model = _model(kind)
    inputs, encoded = _inputs(kind)
    assert fused_head_support(model) is None
    ref = _full_path(model, inputs, encoded)
    got = _fused_path(model, inputs, encoded)
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-6)
    assert torch.allclose(got[1], ref[1], rtol=1e-6) and torch.equal(got[2], ref[2])
    assert got[3].keys() == ref[3].keys() and "lm_head.weight" in ref[3] or kind == "llama-tied"
    assert len(ref[3]) >= sum(1 for _ in model.parameters()) - 2  # llava: the unused CLIP post-layernorm
    for name in ref[3]:
        assert _rel(got[3][name], ref[3][name], _floor(ref[3])) < 1e-5, name
    # the model is restored: a plain forward gives real logits again
    assert model(**inputs).logits.shape[-1] == VOCAB and "forward" not in find_output_layer(model).__dict__


@pytest.mark.parametrize("kind", ["llama", "llava"])
def test_bf16_loss_and_gradients_close_to_the_full_logits_path(kind):
    """bf16 weights: both paths compute bf16 logits and round the logits' gradient to bf16, so they agree to a few
    bf16 units (2^-8 ≈ 4e-3 relative; bit-identical at these sizes on CPU); the fused path accumulates lm_head's
    gradient in float32 over chunks and rounds once, where the unfused bf16 GEMM rounds once too."""
    model = _model(kind, torch.bfloat16)
    inputs, encoded = _inputs(kind)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    ref = _full_path(model, inputs, encoded)
    got = _fused_path(model, inputs, encoded)
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=2e-3)
    assert torch.equal(got[2], ref[2])
    for name in ref[3]:
        assert got[3][name].dtype == torch.bfloat16
        assert _rel(got[3][name], ref[3][name], _floor(ref[3])) < 1e-2, name


def test_fp32_weights_under_bf16_autocast_match_the_full_logits_path():
    """LLaMA-Factory's full fine-tuning: float32 trainable weights, bf16 autocast. The fused head computes its
    logits in the autocast dtype, as F.linear does under autocast, and returns float32 gradients."""
    model = _model("llama")
    inputs, encoded = _inputs("llama")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _full_path(model, inputs, encoded)
        got = _fused_path(model, inputs, encoded)
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=2e-3)
    for name in ref[3]:
        assert got[3][name].dtype == torch.float32
        assert _rel(got[3][name], ref[3][name], _floor(ref[3])) < 1e-2, name


def test_peft_lora_frozen_head_gets_no_weight_gradient():
    from peft import LoraConfig, get_peft_model

    inputs, encoded = _inputs("llama")
    results = []
    for _ in range(2):
        model = get_peft_model(_model("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0))
        assert fused_head_support(model) is None
        assert find_output_layer(model) is unwrap_model(model).lm_head
        for p in model.parameters():  # non-zero LoRA B, so every LoRA parameter gets a gradient
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(p.numel()))
        results.append(model)
    ref = _full_path(results[0], inputs, encoded)
    got = _fused_path(results[1], inputs, encoded)
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-6)
    assert got[3].keys() == ref[3].keys() and all("lora_" in n for n in got[3]) and len(got[3]) == 8
    assert unwrap_model(results[1]).lm_head.weight.grad is None
    for name in ref[3]:
        assert _rel(got[3][name], ref[3][name]) < 1e-5, name


@pytest.mark.parametrize(
    ("peft_kwargs", "expected"),
    [
        ({"target_modules": ["q_proj", "lm_head"]}, r"peft\.tuners\.lora\.layer\.Linear \(PEFT wraps it"),
        ({"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}, r"ModulesToSaveWrapper \(PEFT wraps it"),
    ],
)
def test_peft_on_the_output_layer_is_refused(peft_kwargs, expected):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_model("llama"), LoraConfig(r=4, **peft_kwargs))
    reason = fused_head_support(model)
    assert reason is not None and "\n" not in reason
    assert reason.startswith("LlamaForCausalLM's output layer is a ")
    import re

    assert re.search(expected, reason), reason
    inputs, encoded = _inputs("llama")
    with pytest.raises(FusedHeadUnsupported, match=re.escape(reason)):
        with fused_output_head(model, encoded, WEIGHTS, N):
            pass


def _tiny_config_model(cls_name: str, **overrides):
    import transformers

    config_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    config = config_cls(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        **overrides,
    )
    return getattr(transformers, cls_name)(config)


@pytest.mark.parametrize(
    ("cls_name", "overrides", "expected"),
    [
        ("Gemma2ForCausalLM", {"final_logit_softcapping": 30.0}, "final_logit_softcapping=30.0"),
        ("CohereForCausalLM", {"logit_scale": 0.0625}, "logit_scale=0.0625"),
        ("GraniteForCausalLM", {"logits_scaling": 8.0}, "logits_scaling=8.0"),
    ],
)
def test_logit_transforms_are_refused(cls_name, overrides, expected):
    model = _tiny_config_model(cls_name, **overrides)
    reason = fused_head_support(model)
    assert reason == (
        f"{cls_name} transforms its logits after the output layer ({expected}); the fused loss would skip that"
    )


def test_models_without_a_plain_output_layer_are_refused():
    from transformers import LlamaModel

    base = tiny_llama_model(vocab_size=VOCAB).model
    assert isinstance(base, LlamaModel)
    assert fused_head_support(base) == (
        "LlamaModel has no accessible output layer (get_output_embeddings() returned None)"
    )
    model = _model("llama")
    assert "DataParallel" in fused_head_support(torch.nn.DataParallel(model))
    model.lm_head.forward = lambda x: x  # someone else's instance patch
    assert fused_head_support(model) == (
        "LlamaForCausalLM's output layer forward is already replaced on the instance by another patch"
    )


class _NoHeadCall(torch.nn.Module):
    """A model whose forward never calls its output layer (e.g. returns hidden states only)."""

    def __init__(self):
        super().__init__()
        self.inner = _model("llama")

    def get_output_embeddings(self):
        return self.inner.lm_head

    def forward(self, input_ids):
        hidden = self.inner.model(input_ids=input_ids).last_hidden_state
        return {"logits": hidden[..., :1]}


class _ScalesLogits(torch.nn.Module):
    """A model that rescales its logits after the output layer without saying so in its config."""

    def __init__(self, double_call: bool = False):
        super().__init__()
        self.inner = _model("llama")
        self.double_call = double_call

    def get_output_embeddings(self):
        return self.inner.lm_head

    def forward(self, input_ids):
        hidden = self.inner.model(input_ids=input_ids).last_hidden_state
        logits = self.inner.lm_head(hidden)
        if self.double_call:
            logits = logits + self.inner.lm_head(hidden)
        return {"logits": logits * 2.0}


def test_run_time_refusals_never_give_a_silent_loss():
    inputs, encoded = _inputs("llama")
    model = _NoHeadCall()
    assert fused_head_support(model) is None  # cannot be known before running it
    with fused_output_head(model, encoded, WEIGHTS, N) as head:
        outputs = model(**inputs)
    with pytest.raises(FusedHeadUnsupported, match="never called its output layer, so the fused loss was not"):
        head.result(outputs)

    scaled = _ScalesLogits()
    with fused_output_head(scaled, encoded, WEIGHTS, N) as head:
        outputs = scaled(**inputs)
    with pytest.raises(FusedHeadUnsupported, match="transformed its logits after the output layer"):
        head.result(outputs, validate=True)

    twice = _ScalesLogits(double_call=True)
    with pytest.raises(FusedHeadUnsupported, match="called its output layer more than once"):
        with fused_output_head(twice, encoded, WEIGHTS, N):
            twice(**inputs)
    assert "forward" not in twice.inner.lm_head.__dict__  # restored after the exception

    llama = _model("llama")
    with pytest.raises(FusedHeadUnsupported, match=r"hidden states \(3, 1, 32\) that do not line up"):
        with fused_output_head(llama, encoded, WEIGHTS, N):
            llama(**inputs, logits_to_keep=1)

    with fused_output_head(llama, encoded, WEIGHTS, N) as head:
        outputs = llama(**inputs)
    with pytest.raises(FusedHeadUnsupported, match=r"cast its logits to torch.bfloat16"):
        head.result({"logits": outputs.logits.to(torch.bfloat16)})
    with pytest.raises(FusedHeadUnsupported, match="detached its logits"):
        head.result({"logits": outputs.logits.detach()})
    with pytest.raises(FusedHeadUnsupported, match=r"expected \(3, 20, 1\), got \(3, 20, 2\)"):
        head.result({"logits": outputs.logits.expand(3, 20, 2)})


def test_hooks_on_the_output_layer_fire_and_the_gradient_flows_through_its_output():
    """What ZeRO-3 relies on: forward pre-hooks (parameter gathering), forward hooks that wrap the output in an
    autograd function (its pre-backward hook), and a gradient that reaches the layer's output."""
    model = _model("llama")
    layer = model.lm_head
    seen = []

    class PreBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            seen.append("pre-backward")
            return g

    layer.register_forward_pre_hook(lambda m, args: seen.append("pre-forward"))
    layer.register_forward_hook(lambda m, args, out: PreBackward.apply(out))
    layer.register_full_backward_hook(lambda m, gin, gout: seen.append("backward"))
    inputs, encoded = _inputs("llama")
    with fused_output_head(model, encoded, WEIGHTS, N) as head:
        outputs = model(**inputs)
    s, _, _ = head.result(outputs)
    s.backward()
    assert seen == ["pre-forward", "pre-backward", "backward"]
    assert model.lm_head.weight.grad is not None and model.model.layers[0].mlp.up_proj.weight.grad is not None


def test_accelerate_hooked_layer_keeps_its_hook():
    from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module

    calls = []

    class Recorder(ModelHook):
        def pre_forward(self, module, *args, **kwargs):
            calls.append("accelerate pre_forward")
            return args, kwargs

    model = _model("llama")
    add_hook_to_module(model.lm_head, Recorder())
    hooked_forward = model.lm_head.__dict__["forward"]
    original = model.lm_head._old_forward
    inputs, encoded = _inputs("llama")
    assert fused_head_support(model) is None
    ref = _full_path(model, inputs, encoded)
    got = _fused_path(model, inputs, encoded)
    assert calls == ["accelerate pre_forward"] * 2
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-6)
    assert model.lm_head.__dict__["forward"] is hooked_forward and model.lm_head._old_forward == original
    remove_hook_from_module(model.lm_head)


def test_head_computation_has_no_host_sync():
    model = _model("llama")
    inputs, encoded = _inputs("llama")
    hidden = model.model(**inputs).last_hidden_state.detach().requires_grad_(True)
    with fused_output_head(model, encoded, WEIGHTS, N) as head:
        with HostSyncDetector() as syncs:
            carrier = model.lm_head(hidden)
            s, _, _ = head.result({"logits": carrier})
            s.backward()
    assert syncs.events == [] and hidden.grad is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deepspeed_zero3_and_ddp_gradients_equal_the_full_logits_path():
    """Real DeepSpeed ZeRO-3 (weights partitioned outside forward, gathered by its hooks) and DDP, one gloo rank,
    in a subprocess: fused vs full-logits loss and the full gradient of every parameter, tied and untied."""
    script = Path(__file__).with_name("_head_distributed.py")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port())], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"zero3_untied", "zero3_tied", "ddp"}
    for name, r in result.items():
        assert r["loss_rel"] < 1e-6 and r["max_grad_rel"] < 1e-5, (name, r)
        assert r["params"] >= 20
    assert result["zero3_untied"]["partitioned"] and result["zero3_tied"]["partitioned"]
