"""TRL's ``SFTTrainer`` through ``make_cotbal_trainer``: prompt-completion data (TRL tokenizes it and builds the
labels from input_ids with its completion mask), exact over gradient accumulation, padding-free = padded, uniform
weights = stock ``SFTTrainer``, logged loss = a direct eq. 2, and the TRL options it cannot serve refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cotbal_plugin.testing.workspace import max_abs_diff
from cotbal_plugin.weights_file import CotbalConfigError

from ._common import TOL, WEIGHTS, args_dict, losses, params, prompt_completion_rows

pytestmark = pytest.mark.filterwarnings("ignore:.*padding_free.*:UserWarning")


def sft(ws: dict[str, Any], trainer_class: Any = None, **kw: Any) -> Any:
    """An SFTTrainer (by default ``make_cotbal_trainer(SFTTrainer)``) on prompt-completion rows with a task field."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from cotbal_plugin.hf import make_cotbal_trainer

    cotbal = {k: kw.pop(k) for k in list(kw) if k.startswith("cotbal")}
    config = SFTConfig(
        **args_dict(ws["tmp"] / "trl", **kw), max_length=128, dataset_num_proc=None, gradient_checkpointing=False
    )
    return (trainer_class or make_cotbal_trainer(SFTTrainer))(
        model=AutoModelForCausalLM.from_pretrained(ws["model"]),
        args=config,
        train_dataset=datasets.Dataset.from_list(prompt_completion_rows()),
        processing_class=ws["tokenizer"],
        **cotbal,
    )


def run(ws: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    trainer = sft(ws, **kw)
    trainer.train()
    return params(trainer.model), losses(trainer), trainer


@pytest.fixture(scope="module")
def trl_runs(ws):
    from trl import SFTTrainer

    static = {"cotbal_weights": WEIGHTS}
    return {
        "b4": run(ws, **static),
        "ga": run(ws, per_device_train_batch_size=2, gradient_accumulation_steps=2, **static),
        "padding_free": run(ws, padding_free=True, **static),
        "stock": run(ws, trainer_class=SFTTrainer),
        "ew_ga": run(ws, per_device_train_batch_size=2, gradient_accumulation_steps=2, cotbal_weighting="ew"),
    }


def test_sft_trainer_is_exact_over_gradient_accumulation(trl_runs):
    assert max_abs_diff(trl_runs["ga"][0], trl_runs["b4"][0]) < TOL
    assert max_abs_diff(trl_runs["b4"][0], trl_runs["stock"][0]) > 100 * TOL  # the weights matter


def test_padding_free_equals_padded(trl_runs):
    """TRL's padding-free collator puts the examples back to back in one row: the task of each token still comes
    out right (transformers separates the sequences by their position_ids, so the training is the same)."""
    assert max_abs_diff(trl_runs["padding_free"][0], trl_runs["b4"][0]) < TOL
    for a, b in zip(trl_runs["padding_free"][1], trl_runs["b4"][1]):
        assert a["task_loss/short"] == pytest.approx(b["task_loss/short"], rel=1e-5)


def test_uniform_weights_reproduce_the_stock_sft_trainer(trl_runs):
    assert max_abs_diff(trl_runs["ew_ga"][0], trl_runs["stock"][0]) < TOL
    for ours, stock in zip(trl_runs["ew_ga"][1], trl_runs["stock"][1]):
        assert ours["loss"] == pytest.approx(stock["loss"], rel=1e-5)


def test_logged_loss_is_eq2_of_the_completion_tokens(ws, trl_runs):
    """Step 1 = the first 4 rows TRL prepared (input_ids + completion_mask): labels rebuilt here by hand."""
    from transformers import AutoModelForCausalLM

    from cotbal_plugin.loss import vitw_loss_reference

    trainer = trl_runs["b4"][2]
    rows = [trainer.train_dataset[i] for i in range(4)]
    width = max(len(r["input_ids"]) for r in rows)
    pad = ws["tokenizer"].pad_token_id
    ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in rows])
    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    labels = torch.tensor(
        [
            [t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])]
            + [-100] * (width - len(r["input_ids"]))
            for r in rows
        ]
    )
    names = ["short", "long"]
    task_ids = torch.tensor([names.index(r["task"]) for r in rows]).view(-1, 1).expand_as(labels)
    model = AutoModelForCausalLM.from_pretrained(ws["model"]).eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    expected = float(vitw_loss_reference(logits, labels, task_ids, torch.tensor([2.0, 0.5])))
    log = trl_runs["b4"][1][0]
    assert log["loss"] == pytest.approx(expected, rel=1e-5)
    assert log["task_weight/short"] == 2.0 and log["task_weight/long"] == 0.5
    for i, task in enumerate(names):
        direct = float(vitw_loss_reference(logits, labels, task_ids, (torch.arange(2) == i).double()))
        assert log[f"task_loss/{task}"] == pytest.approx(direct, rel=1e-5)


@pytest.mark.parametrize(
    "kw, pattern",
    [
        ({"packing": True}, r"SFTConfig\(packing=True\) is not supported with cotbal_plugin"),
        ({"loss_type": "dft"}, r"compute_loss_func \(TRL: SFTConfig\(loss_type='dft'\)\)"),
    ],
)
def test_trl_options_that_drop_the_task_or_replace_the_loss(ws, kw, pattern):
    with pytest.raises(CotbalConfigError, match=pattern):
        sft(ws, cotbal_weights=WEIGHTS, **kw)
