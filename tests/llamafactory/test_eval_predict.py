"""do_eval uses the VITW weighting; predict_with_generate sees plain labels."""

from __future__ import annotations

import json

import pytest
import torch

from cotbal_plugin.task_labels import decode_labels
from cotbal_plugin.testing.workspace import sft_config

from ._runs import train

pytestmark = pytest.mark.integration

EVAL = {
    "do_train": False,
    "do_eval": True,
    "eval_dataset": "short,long",
    "dataset": None,
    "per_device_eval_batch_size": 16,
    "mix_strategy": "concat",
}


def _direct_vitw(ws, weights: dict[int, float]) -> float:
    """Eq. 2 over the whole eval set under the initial model, with plain transformers."""
    from transformers import AutoModelForCausalLM

    from ._inproc import load_data

    cfg = sft_config(
        ws / "model",
        ws / "data",
        ws / "runs" / "x",
        dataset="short,long",
        loss="cotbal",
        cotbal_weighting="ew",
        mix_strategy="concat",
    )
    module, _, _ = load_data(cfg)
    model = AutoModelForCausalLM.from_pretrained(ws / "model").eval()
    num = den = 0.0
    for row in module["train_dataset"]:
        ids = torch.tensor([row["input_ids"]])
        labels, tasks = decode_labels(torch.tensor([row["labels"]]))
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.double(), -1)
        for t in range(ids.size(1) - 1):
            k = int(tasks[0, t + 1])
            if k >= 0:
                num -= weights[k] * float(logp[0, t, int(labels[0, t + 1])])
                den += weights[k]
    return num / den


def _eval_loss(ws, name):
    return json.loads((ws / "runs" / name / "eval_results.json").read_text())["eval_loss"]


def test_eval_loss_is_weighted(text_workspace):
    ws = text_workspace
    train(ws, "eval_cb", expect_ok=True, loss="cotbal", cotbal_weights=str(ws / "weights.json"), **EVAL)
    train(ws, "eval_stock", expect_ok=True, **EVAL)
    weighted, stock = _eval_loss(ws, "eval_cb"), _eval_loss(ws, "eval_stock")
    assert weighted == pytest.approx(_direct_vitw(ws, {0: 2.0, 1: 0.5}), rel=1e-4)
    assert stock == pytest.approx(_direct_vitw(ws, {0: 1.0, 1: 1.0}), rel=1e-4)
    assert abs(weighted - stock) > 1e-3


def test_predict_with_generate_sees_plain_labels(text_workspace):
    ws = text_workspace
    train(
        ws,
        "predict_cb",
        loss="cotbal",
        cotbal_weights=str(ws / "weights.json"),
        do_train=False,
        do_predict=True,
        predict_with_generate=True,
        eval_dataset="short,long",
        dataset=None,
        per_device_eval_batch_size=4,
        max_new_tokens=4,
        do_sample=False,
    )
    rows = [json.loads(line) for line in (ws / "runs" / "predict_cb" / "generated_predictions.jsonl").open()]
    answers = {s["output"] for t in ("short", "long") for s in json.loads((ws / "data" / f"{t}.json").read_text())}
    assert len(rows) == 16
    assert all(r["label"].strip() in answers for r in rows)
