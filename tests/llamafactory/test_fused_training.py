"""The fused chunked cross-entropy in real `llamafactory-cli` trainings: used by default, the same parameters as the
full-logits path, and a clear fallback where a model cannot use it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cotbal_plugin.testing.workspace import max_abs_diff

from ._runs import train

pytestmark = pytest.mark.integration

MIX = {"dataset": "short,long", "mix_strategy": "interleave_under", "max_steps": 3, "loss": "cotbal"}


def _paths(ws: Path, name: str) -> list[dict]:
    lines = (ws / "trace" / name / "rank0.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["event"] == "loss_path"]


def _run(ws: Path, name: str, **kw):
    os.environ["COTBAL_TRACE_DIR"] = str(ws / "trace" / name)
    try:
        return train(ws, name, **kw)
    finally:
        del os.environ["COTBAL_TRACE_DIR"]


def test_fused_by_default_and_equal_to_full_logits(text_workspace):
    ws = text_workspace
    weights = {"cotbal_weights": str(ws / "weights.json")}
    ga = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
    fused = _run(ws, "fused_default", **MIX, **weights, **ga, cotbal_ce_chunk_tokens=7)  # several chunks per row
    full = _run(ws, "fused_off", **MIX, **weights, **ga, cotbal_fused_ce=False)
    assert [p["fused"] for p in _paths(ws, "fused_default")] == [True]
    assert [p["fused"] for p in _paths(ws, "fused_off")] == [False]
    assert max_abs_diff(fused, full) < 1e-5


def test_lm_head_wrapped_by_peft_falls_back_with_a_reason(text_workspace):
    """LoRA with `additional_target: lm_head` (PEFT modules_to_save wraps the output layer): full logits, said so."""
    ws = text_workspace
    lora = {"finetuning_type": "lora", "lora_target": "all", "lora_rank": 4, "additional_target": "lm_head"}
    os.environ["COTBAL_TRACE_DIR"] = str(ws / "trace" / "fused_peft_head")
    try:
        proc = train(ws, "fused_peft_head", expect_ok=False, cotbal_weighting="ew", **MIX, **lora)
    finally:
        del os.environ["COTBAL_TRACE_DIR"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "the fused cross-entropy cannot serve this model" in proc.stdout
    assert "PEFT wraps it" in proc.stdout
    (path,) = _paths(ws, "fused_peft_head")
    assert path["fused"] is False and "modules_to_save" in path["reason"]
