"""A tiny Qwen2-VL with real image files (``template: qwen2_vl``, multimodal RoPE, dynamic-resolution patches):
the data hook tags every supervised token with its task, and ``loss: cotbal`` is exact under gradient
accumulation (real ``llamafactory-cli``)."""

from __future__ import annotations

import json

import pytest

from cotbal_plugin.task_labels import IGNORE_INDEX, decode_label_list
from cotbal_plugin.testing.workspace import load_params, max_abs_diff, sft_config

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

VLM = {
    "template": "qwen2_vl",
    "cutoff_len": 512,
    "dataset": "color,describe",
    "mix_strategy": "interleave_under",
    "max_steps": 3,
    "learning_rate": 0.2,
    # LLaMA-Factory freezes both by default; training them checks exactness through the image features too
    "freeze_vision_tower": False,
    "freeze_multi_modal_projector": False,
}
TOL = 1e-5  # float32 SGD, lr 0.2, 3 steps: observed ~1e-7
TASKS = ("color", "describe")
END = "<|im_end|>\n"  # qwen2_vl template: the assistant turn ends with <|im_end|> and a newline, both supervised


def test_data_hook_tags_every_supervised_token(qwen2_vl_workspace):
    """Each row: 4 image tokens inside ``<|vision_start|> … <|vision_end|>``, none supervised; every supervised
    token carries a task id; the supervised span decodes to an answer of that task in the source files, followed
    by the template's end of turn."""
    from cotbal_plugin.llamafactory import state

    from ._inproc import load_data

    ws = qwen2_vl_workspace
    answers: dict[str, set[str]] = {}
    for task in TASKS:
        for row in json.loads((ws / "data" / f"{task}.json").read_text()):
            answers.setdefault(row["conversations"][1]["value"], set()).add(task)
    config = sft_config(
        ws / "model",
        ws / "data",
        ws / "runs" / "unused",
        loss="cotbal",
        cotbal_weights=str(ws / "weights.json"),
        **VLM,
    )
    module, tokenizer_module, _ = load_data(config)
    tokenizer = tokenizer_module["tokenizer"]
    assert state.active().tasks == list(TASKS)
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    seen = {task: 0 for task in TASKS}
    for row in module["train_dataset"]:
        ids, (plain, task_ids) = row["input_ids"], decode_label_list(row["labels"])
        assert ids.count(image_pad) == 4
        assert all(plain[i] == IGNORE_INDEX for i, t in enumerate(ids) if t == image_pad)
        supervised = [i for i, y in enumerate(plain) if y != IGNORE_INDEX]
        assert supervised and supervised == list(range(supervised[0], supervised[-1] + 1))  # one answer span
        span_tasks = {task_ids[i] for i in supervised}
        assert len(span_tasks) == 1 and -1 not in span_tasks, f"span task ids {span_tasks}"
        task = TASKS[span_tasks.pop()]
        text = tokenizer.decode([plain[i] for i in supervised])
        assert text.endswith(END), f"supervised span {text!r} does not end the assistant turn"
        answer = text[: -len(END)]
        assert task in answers.get(answer, set()), f"{answer!r} is not an answer of task {task}"
        seen[task] += 1
    assert seen == {"color": 8, "describe": 8}


@pytest.fixture(scope="module")
def qwen2_vl_runs(qwen2_vl_workspace):
    ws = qwen2_vl_workspace
    cb = {"loss": "cotbal", "cotbal_weights": str(ws / "weights.json")}
    return {
        "init": load_params(ws / "model"),
        "cb_b4": train(ws, "cb_b4", per_device_train_batch_size=4, **VLM, **cb),
        "cb_ga": train(ws, "cb_ga", per_device_train_batch_size=2, gradient_accumulation_steps=2, **VLM, **cb),
        "stock_b4": train(ws, "stock_b4", per_device_train_batch_size=4, **VLM),
    }


def test_qwen2_vl_trains_vision_and_text(qwen2_vl_runs):
    init, trained = qwen2_vl_runs["init"], qwen2_vl_runs["cb_b4"]
    assert max_abs_diff(trained, init) > 0.05
    vision = [k for k in init if k.startswith("model.visual.")]
    assert vision and max(float((trained[k] - init[k]).abs().max()) for k in vision) > 0


def test_qwen2_vl_cotbal_exact_under_gradient_accumulation(qwen2_vl_runs):
    assert max_abs_diff(qwen2_vl_runs["cb_ga"], qwen2_vl_runs["cb_b4"]) < TOL


def test_qwen2_vl_cotbal_differs_from_stock(qwen2_vl_runs):
    assert max_abs_diff(qwen2_vl_runs["cb_b4"], qwen2_vl_runs["stock_b4"]) > 100 * TOL


def test_qwen2_vl_logs_both_tasks(qwen2_vl_workspace, qwen2_vl_runs):
    logs = trainer_logs(qwen2_vl_workspace, "cb_b4")
    assert len(logs) == 3 and all({"task_loss/color", "task_loss/describe"} <= set(h) for h in logs)
    assert logs[0]["task_weight/color"] == 2.0 and logs[0]["task_weight/describe"] == 0.5
