"""LoRA (PEFT has its own `task_ids` argument) and packing / neat packing train through llamafactory-cli."""

from __future__ import annotations

import pytest

from cotbal_plugin.testing.workspace import max_abs_diff

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

MIX = {"dataset": "short,long", "mix_strategy": "interleave_under", "max_steps": 3, "loss": "cotbal"}


def test_lora_exact_under_gradient_accumulation(text_workspace):
    ws = text_workspace
    lora = {
        "finetuning_type": "lora",
        "lora_target": "all",
        "lora_rank": 4,
        "cotbal_weights": str(ws / "weights.json"),
    }
    a = train(ws, "lora_b4", per_device_train_batch_size=4, **MIX, **lora)
    b = train(ws, "lora_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **MIX, **lora)
    assert any("lora_B" in k for k in a), "an adapter was saved"
    assert max(float(a[k].abs().max()) for k in a if "lora_B" in k) > 0, "adapters were trained"
    assert max_abs_diff(a, b) < 1e-5
    assert "task_loss/long" in trainer_logs(ws, "lora_b4")[0]


@pytest.mark.parametrize("neat", [False, True])
def test_packing_trains_with_mixed_rows(text_workspace, neat):
    ws = text_workspace
    name = f"pack_{int(neat)}"
    params = train(
        ws,
        name,
        per_device_train_batch_size=2,
        packing=True,
        neat_packing=neat,
        cutoff_len=96,
        cotbal_weights=str(ws / "weights.json"),
        **MIX,
    )
    logs = trainer_logs(ws, name)
    assert params and logs
    seen = set().union(*(set(h) for h in logs))
    assert {"task_loss/short", "task_loss/long"} <= seen
