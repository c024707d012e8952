"""``cotbal_plugin.hf.CotbalTrainer`` on a plain HF ``Trainer``: exact eq. 2 over the optimizer step whatever the
layout (batch 4 = batch 2 × GA 2 = 2 processes × batch 2 = DeepSpeed ZeRO-2), uniform weights = stock ``Trainer``,
logged losses = a direct eq. 2, evaluation, checkpointed weighting state."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from cotbal_plugin.testing.workspace import load_params, max_abs_diff

from ._common import TOL, WEIGHTS, build, losses, params


def train(ws: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train in this process; return (final parameters, loss logs)."""
    trainer = build(ws, **kw)
    trainer.train()
    return params(trainer.model), losses(trainer)


@pytest.fixture(scope="module")
def runs(ws: dict[str, Any], launched: dict[str, Any]) -> dict[str, Any]:
    from transformers import Trainer

    static = {"cotbal_weights": WEIGHTS}
    out: dict[str, Any] = {}
    out["b4"] = train(ws, **static)
    out["ga"] = train(ws, per_device_train_batch_size=2, gradient_accumulation_steps=2, **static)
    out["ddp"] = launched["ddp"]["text"]  # 2 processes × batch 2 (conftest.py)
    out["ds"] = launched["ds"]["text"]  # the same under DeepSpeed ZeRO-2
    out["stock"] = train(ws, trainer_class=Trainer)
    out["stock_ga"] = train(ws, trainer_class=Trainer, per_device_train_batch_size=2, gradient_accumulation_steps=2)
    out["equal"] = train(ws, cotbal_weights={"short": 3.0, "long": 3.0})
    out["ew_ga"] = train(ws, cotbal_weighting="ew", per_device_train_batch_size=2, gradient_accumulation_steps=2)
    return out


def test_training_moves_parameters(ws, runs):
    assert max_abs_diff(runs["b4"][0], load_params(ws["model"])) > 0.1


@pytest.mark.parametrize("layout", ["ga", "ddp", "ds"])
def test_same_parameters_across_layouts(runs, layout):
    assert max_abs_diff(runs[layout][0], runs["b4"][0]) < TOL


def test_weights_change_the_training(runs):
    assert max_abs_diff(runs["b4"][0], runs["stock"][0]) > 100 * TOL


def test_uniform_weights_reproduce_the_stock_trainer(runs):
    assert max_abs_diff(runs["stock_ga"][0], runs["stock"][0]) < TOL  # stock HF is exact for causal LMs too
    assert max_abs_diff(runs["equal"][0], runs["stock"][0]) < TOL
    assert max_abs_diff(runs["ew_ga"][0], runs["stock"][0]) < TOL
    for ours, stock in zip(runs["ew_ga"][1], runs["stock"][1]):
        assert ours["loss"] == pytest.approx(stock["loss"], rel=1e-4)


def test_logged_losses_equal_a_direct_eq2(ws, runs):
    """Step 1 of run b4 (rows 0–3, sequential order): the logged loss is eq. 2 under the initial model
    (``vitw_loss_reference``), task_loss/<t> the token-mean NLL of task t; the same on every layout."""
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    from cotbal_plugin.loss import vitw_loss_reference

    rows = ws["rows"][:4]
    batch = DataCollatorForSeq2Seq(ws["tokenizer"], label_pad_token_id=-100)(
        [{k: r[k] for k in ("input_ids", "labels")} for r in rows]
    )
    names = ["short", "long"]
    task_ids = torch.tensor([names.index(r["task"]) for r in rows]).view(-1, 1).expand_as(batch["labels"])
    model = AutoModelForCausalLM.from_pretrained(ws["model"]).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lam = torch.tensor([WEIGHTS["short"], WEIGHTS["long"]])
    expected = float(vitw_loss_reference(logits, batch["labels"], task_ids, lam))
    per_task = {
        t: float(vitw_loss_reference(logits, batch["labels"], task_ids, (torch.arange(2) == i).double()))
        for i, t in enumerate(names)
    }
    token_mean = float(vitw_loss_reference(logits, batch["labels"], task_ids, torch.ones(2)))
    assert abs(expected - token_mean) > 20 * 1e-5 * expected  # the weights matter on this batch, beyond the tolerance
    for layout in ("b4", "ga", "ddp", "ds"):
        log = runs[layout][1][0]
        assert log["loss"] == pytest.approx(expected, rel=1e-5), layout
        for task in names:
            assert log[f"task_loss/{task}"] == pytest.approx(per_task[task], rel=1e-4), layout
            assert log[f"task_weight/{task}"] == WEIGHTS[task]


def test_evaluation_loss_is_eq2_over_the_set_with_eval_only_tasks(ws):
    """``evaluate()``: eval_loss is eq. 2 over the whole set (λ = static weights, 1 for an evaluation-only task)
    and eval_task_loss/<t> each task's token-mean NLL, whatever the evaluation batch size."""
    import datasets
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

    from cotbal_plugin.loss import vitw_loss_reference

    third = [dict(r, task="third") for r in ws["rows"][1:3]]
    rows = ws["rows"][:5] + third
    trainer = build(
        ws, cotbal_weights=WEIGHTS, eval_dataset=datasets.Dataset.from_list(rows), per_device_eval_batch_size=3
    )
    assert trainer.cotbal.eval_tasks == ["third"]
    metrics = trainer.evaluate()
    names = ["short", "long", "third"]
    lam = torch.tensor([2.0, 0.5, 1.0])
    model = AutoModelForCausalLM.from_pretrained(ws["model"]).eval()
    collate = DataCollatorForSeq2Seq(ws["tokenizer"], label_pad_token_id=-100)
    batch = collate([{k: r[k] for k in ("input_ids", "labels")} for r in rows])
    task_ids = torch.tensor([names.index(r["task"]) for r in rows]).view(-1, 1).expand_as(batch["labels"])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert metrics["eval_loss"] == pytest.approx(float(vitw_loss_reference(logits, batch["labels"], task_ids, lam)))
    for i, task in enumerate(names):
        only = (torch.arange(3) == i).double()
        direct = float(vitw_loss_reference(logits, batch["labels"], task_ids, only))
        assert metrics[f"eval_task_loss/{task}"] == pytest.approx(direct, rel=1e-5)


def test_resume_restores_the_weighting_state(ws, tmp_path):
    """rlw draws λ from its own generator: a run resumed from checkpoint-2 ends where the uninterrupted run ends
    only if the generator's state came back from the checkpoint (``trainer_state.json``)."""
    kw = {"cotbal_weighting": "rlw", "save_strategy": "steps", "save_steps": 2, "output_dir": str(tmp_path)}
    full = build(ws, **kw)
    full.train()
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert "CotbalWeightingState" in state["stateful_callbacks"]
    resumed = build(ws, **kw)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert max_abs_diff(params(resumed.model), params(full.model)) < TOL
    assert losses(resumed)[-1]["task_weight/short"] == losses(full)[-1]["task_weight/short"]
    assert losses(full)[-1]["task_weight/short"] != losses(full)[0]["task_weight/short"]  # λ does change


def test_task_field_survives_remove_unused_columns_on_any_dataset(ws, runs):
    """A plain list of rows goes through HF's ``RemoveColumnsCollator`` (a ``datasets.Dataset`` has its columns
    dropped instead); both keep the task field and train the same."""
    trainer = build(ws, rows=list(ws["rows"]), cotbal_weights=WEIGHTS)
    assert trainer.args.remove_unused_columns
    trainer.train()
    assert max_abs_diff(params(trainer.model), runs["b4"][0]) < TOL


def test_several_evaluation_datasets(ws):
    """A dict of evaluation datasets: the tasks of each are found; one metric set per dataset."""
    import datasets

    third = datasets.Dataset.from_list([dict(r, task="third") for r in ws["rows"][:2]])
    trainer = build(
        ws, cotbal_weights=WEIGHTS, eval_dataset={"seen": datasets.Dataset.from_list(ws["rows"][:4]), "new": third}
    )
    assert trainer.cotbal.all_tasks == ["short", "long", "third"]
    metrics = trainer.evaluate()
    assert {"eval_seen_task_loss/short", "eval_seen_task_loss/long", "eval_new_task_loss/third"} <= set(metrics)
    assert metrics["eval_new_loss"] == pytest.approx(metrics["eval_new_task_loss/third"])  # one task: eq. 2 = its mean
