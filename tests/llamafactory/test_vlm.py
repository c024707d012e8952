"""A tiny LLaVA with real image files (template llava): exact VITW under gradient accumulation, where stock
LLaMA-Factory is not (it normalises VLM losses per micro-batch)."""

from __future__ import annotations

import pytest

from cotbal_plugin.testing.workspace import load_params, max_abs_diff

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

VLM = {
    "template": "llava",
    "cutoff_len": 1024,
    "dataset": "color,describe",
    "mix_strategy": "interleave_under",
    "max_steps": 3,
    "learning_rate": 0.2,
}
TOL = 1e-5


@pytest.fixture(scope="module")
def vlm_runs(vlm_workspace):
    ws = vlm_workspace
    cb = {"loss": "cotbal", "cotbal_weights": str(ws / "weights.json")}
    return {
        "init": load_params(ws / "model"),
        "cb_b4": train(ws, "cb_b4", per_device_train_batch_size=4, **VLM, **cb),
        "cb_ga": train(ws, "cb_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **VLM, **cb),
        "stock_b4": train(ws, "stock_b4", per_device_train_batch_size=4, **VLM),
        "stock_ga": train(ws, "stock_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **VLM),
    }


def test_vlm_trains(vlm_runs):
    assert max_abs_diff(vlm_runs["cb_b4"], vlm_runs["init"]) > 0.05


def test_vlm_cotbal_exact_under_gradient_accumulation(vlm_runs):
    assert max_abs_diff(vlm_runs["cb_ga"], vlm_runs["cb_b4"]) < TOL


def test_stock_vlm_is_not_exact_contrast(vlm_runs):
    # the plugin's value: stock LLaMA-Factory ends elsewhere when the same step is split into micro-batches
    assert max_abs_diff(vlm_runs["stock_ga"], vlm_runs["stock_b4"]) > 100 * TOL


def test_vlm_logs_both_tasks(vlm_workspace, vlm_runs):
    logs = trainer_logs(vlm_workspace, "cb_b4")
    assert logs and all({"task_loss/color", "task_loss/describe"} <= set(h) for h in logs)
    assert logs[0]["task_weight/color"] == 2.0 and logs[0]["task_weight/describe"] == 0.5
