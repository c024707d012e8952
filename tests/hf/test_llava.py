"""LLaVA-style training scripts through ``make_cotbal_trainer(LLaVATrainer)``: a ``torch.utils.data.Dataset`` that
returns tensors plus a task field, LLaVA's collator (which drops unknown keys), LLaVA's trainer hooks — with HF's
``LlavaForConditionalGeneration`` (image tokens expanded by the processor) and with a model that splices the
images in inside ``forward`` like the LLaVA codebase's ``LlavaLlamaForCausalLM``. Real PNG images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cotbal_plugin.testing.workspace import max_abs_diff

from . import _llava_mimic as mimic
from ._common import TOL, args_dict, losses, params
from .conftest import LLAVA_ARGS

WEIGHTS = {"color": 2.0, "describe": 0.5}
NAMES = ["color", "describe"]


@pytest.fixture(scope="module")
def lws(vlm_workspace: Path, llava_json: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from transformers import AutoProcessor

    return {
        "root": vlm_workspace,
        "processor": AutoProcessor.from_pretrained(vlm_workspace / "model"),
        "json": llava_json,
        "tmp": tmp_path_factory.mktemp("llava"),
    }


def llava_trainer(lws: dict[str, Any], codebase: bool, cotbal: dict[str, Any] | None, **overrides: Any) -> Any:
    """LLaVA's train.py, shrunk: dataset, collator, trainer — ``cotbal`` None = the stock ``LLaVATrainer``."""
    from transformers import LlavaForConditionalGeneration

    from cotbal_plugin.hf import make_cotbal_trainer

    processor = lws["processor"]
    if codebase:
        model = mimic.tiny_llava_llama(lws["root"] / "model")
        if "tokenizer_model_max_length" in overrides:
            model.config.tokenizer_model_max_length = overrides.pop("tokenizer_model_max_length")
    else:
        torch.manual_seed(0)
        model = LlavaForConditionalGeneration.from_pretrained(lws["root"] / "model")
    dataset = mimic.LazySupervisedDataset(lws["json"], lws["root"] / "data", processor, expand=not codebase)
    collator = mimic.DataCollatorForSupervisedDataset(processor.tokenizer, "images" if codebase else "pixel_values")
    args = mimic.LlavaTrainingArguments(**args_dict(lws["tmp"] / "out", **{**LLAVA_ARGS, **overrides}))
    trainer_class = mimic.LLaVATrainer if cotbal is None else make_cotbal_trainer(mimic.LLaVATrainer)
    return trainer_class(
        model=model,
        processing_class=processor.tokenizer,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        **(cotbal or {}),
    )


def run(lws: dict[str, Any], codebase: bool, cotbal: dict[str, Any] | None, **overrides: Any) -> tuple:
    trainer = llava_trainer(lws, codebase, cotbal, **overrides)
    trainer.train()
    return params(trainer.model), losses(trainer), trainer


GA = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
STATIC = {"cotbal_weights": WEIGHTS}
EW = {"cotbal_weighting": "ew", "cotbal_tasks": NAMES}


@pytest.fixture(scope="module")
def llava_runs(lws):
    out = {}
    for codebase in (False, True):
        key = "codebase" if codebase else "hf"
        out[key] = {
            "b4": run(lws, codebase, STATIC),
            "ga": run(lws, codebase, STATIC, **GA),
            "stock": run(lws, codebase, None),
            "ew_ga": run(lws, codebase, EW, **GA),
        }
    return out


@pytest.mark.parametrize("model", ["hf", "codebase"])
def test_llava_training_is_exact_over_gradient_accumulation(llava_runs, model):
    runs = llava_runs[model]
    assert max_abs_diff(runs["ga"][0], runs["b4"][0]) < TOL
    assert max_abs_diff(runs["b4"][0], runs["stock"][0]) > 100 * TOL  # the weights matter


@pytest.mark.parametrize("launch", ["ddp", "ds"])
def test_codebase_model_is_exact_across_processes(llava_runs, launched, launch):
    """The image splicing runs outside the DDP / DeepSpeed wrapper's forward (the trainer calls the model's
    prepare_inputs_labels_for_multimodal itself); gradients still reach every parameter and are reduced."""
    ours, logs = launched[launch]["codebase"]
    b4, b4_logs = llava_runs["codebase"]["b4"][:2]
    assert max_abs_diff(ours, b4) < TOL
    assert logs[0]["task_loss/color"] == pytest.approx(b4_logs[0]["task_loss/color"], rel=1e-5)


@pytest.mark.parametrize("model", ["hf", "codebase"])
def test_uniform_weights_reproduce_the_stock_llava_trainer(llava_runs, model):
    runs = llava_runs[model]
    assert max_abs_diff(runs["ew_ga"][0], runs["stock"][0]) < TOL
    for ours, stock in zip(runs["ew_ga"][1], runs["stock"][1]):
        assert ours["loss"] == pytest.approx(stock["loss"], rel=1e-5)


def test_llava_trainer_hooks_are_kept(llava_runs):
    trainer = llava_runs["hf"]["b4"][2]
    assert trainer.used_own_sampler and trainer.used_own_optimizer
    assert type(trainer).__name__ == "CotbalLLaVATrainer" and isinstance(trainer, mimic.LLaVATrainer)
    assert trainer.cotbal_tasks == NAMES  # from the weights: the dataset is not a datasets.Dataset


@pytest.mark.parametrize("model", ["hf", "codebase"])
def test_logged_loss_is_eq2_with_images(lws, llava_runs, model):
    """Step 1 = records 0–3: eq. 2 under the initial model, on the sequence the language model sees (for the
    codebase model: after splicing the image patches in)."""
    from cotbal_plugin.loss import vitw_loss_reference

    codebase = model == "codebase"
    trainer = llava_trainer(lws, codebase, None)
    model_ = trainer.model.eval()
    items = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(items)
    labels = batch.pop("labels")
    with torch.no_grad():
        if codebase:
            _, pos, mask, _, embeds, labels = model_.prepare_inputs_labels_for_multimodal(
                batch["input_ids"], None, batch["attention_mask"], None, labels, batch["images"]
            )
            logits = model_(inputs_embeds=embeds, attention_mask=mask).logits
        else:
            logits = model_(**batch).logits
    task_ids = torch.tensor([NAMES.index(item["task"]) for item in items]).view(-1, 1).expand_as(labels)
    expected = float(vitw_loss_reference(logits, labels, task_ids, torch.tensor([2.0, 0.5])))
    log = llava_runs[model]["b4"][1][0]
    assert log["loss"] == pytest.approx(expected, rel=1e-5)
    for i, task in enumerate(NAMES):
        direct = float(vitw_loss_reference(logits, labels, task_ids, (torch.arange(2) == i).double()))
        assert log[f"task_loss/{task}"] == pytest.approx(direct, rel=1e-5)
        assert log[f"task_weight/{task}"] == WEIGHTS[task]


def test_codebase_truncation_after_splicing_warns(lws):
    """The LLaVA codebase truncates to tokenizer_model_max_length *after* splicing the images in, i.e. after the
    step's tokens were counted: the trainer says so (once) instead of normalising silently by a wrong count."""
    trainer = llava_trainer(lws, True, STATIC, max_steps=1, tokenizer_model_max_length=24)
    with pytest.warns(UserWarning, match=r"supervised token\(s\) were cut .* tokenizer_model_max_length=24"):
        trainer.train()
