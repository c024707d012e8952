"""Evaluation sets in a `loss: cotbal` training: only `dataset:` defines training tasks; eval losses are eq. 2 over
the whole evaluation set with fixed weights; per-task and per-set eval losses are logged; the authors' TLA variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cotbal_plugin.task_labels import decode_labels
from cotbal_plugin.testing.workspace import load_params, max_abs_diff, sft_config, write_text_tasks

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

TRAIN = {"dataset": "short,long", "mix_strategy": "interleave_under", "max_steps": 2, "loss": "cotbal"}
EVAL = {"eval_dataset": "short_val,third", "do_eval": True, "per_device_eval_batch_size": 3}


@pytest.fixture(scope="module")
def ws(text_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training tasks short and long; `short_val` evaluates task short (cotbal_task), `third` is evaluation-only."""
    root = tmp_path_factory.mktemp("evalsets")
    shutil.copytree(text_workspace / "model", root / "model")
    write_text_tasks(
        root / "data",
        {"short": 1, "long": 12, "short_val": 1, "third": 4},
        n=8,
        extra_info={"short_val": {"cotbal_task": "short"}},
    )
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "long": 0.5}}))
    return root


def _rows(ws: Path, dataset: str) -> list[dict]:
    from ._inproc import load_data

    cfg = sft_config(ws / "model", ws / "data", ws / "runs" / "x", dataset=dataset, loss="cotbal")
    module, _, _ = load_data({**cfg, "cotbal_weighting": "ew"})
    return list(module["train_dataset"])


def _nll_sum_count(model, rows: list[dict]) -> tuple[float, int]:
    total, count = 0.0, 0
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        labels, tasks = decode_labels(torch.tensor([row["labels"]]))
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.double(), -1)
        for t in range(ids.size(1) - 1):
            if int(tasks[0, t + 1]) >= 0:
                total -= float(logp[0, t, int(labels[0, t + 1])])
                count += 1
    return total, count


def _direct(ws: Path, run: str, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Eq. 2 over the evaluation sets under the run's final model, and each set's token-mean NLL."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ws / "runs" / run).eval()
    num = den = 0.0
    means = {}
    for dataset, weight in weights.items():
        total, count = _nll_sum_count(model, _rows(ws, dataset))
        num, den = num + weight * total, den + weight * count
        means[dataset] = total / count
    return num / den, means


def _eval_results(ws: Path, run: str) -> dict:
    return json.loads((ws / "runs" / run / "eval_results.json").read_text())


def test_eval_sets_do_not_become_training_tasks(ws):
    train(ws, "static_eval", cotbal_weights=str(ws / "weights.json"), **TRAIN, **EVAL)
    logs = trainer_logs(ws, "static_eval")
    assert {k for k in logs[0] if k.startswith("task_weight/")} == {"task_weight/short", "task_weight/long"}
    results = _eval_results(ws, "static_eval")
    expected, means = _direct(ws, "static_eval", {"short_val": 2.0, "third": 1.0})  # short_val → task short
    assert results["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert results["eval_task_loss/short"] == pytest.approx(means["short_val"], rel=1e-5)
    assert results["eval_task_loss/third"] == pytest.approx(means["third"], rel=1e-5)


def test_dynamic_weighting_evaluates_unweighted(ws):
    """rlw draws new λ every step; the eval loss must not depend on them (λ = 1 at evaluation)."""
    train(ws, "rlw_eval", cotbal_weighting="rlw", **TRAIN, **EVAL)
    logs = trainer_logs(ws, "rlw_eval")
    assert {k for k in logs[0] if k.startswith("task_weight/")} == {"task_weight/short", "task_weight/long"}
    expected, _ = _direct(ws, "rlw_eval", {"short_val": 1.0, "third": 1.0})
    assert _eval_results(ws, "rlw_eval")["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_each_eval_set_logged(ws):
    train(
        ws,
        "each_eval",
        cotbal_weights=str(ws / "weights.json"),
        eval_on_each_dataset=True,
        **TRAIN,
        **EVAL,
    )
    results = _eval_results(ws, "each_eval")
    _, means = _direct(ws, "each_eval", {"short_val": 2.0, "third": 1.0})
    for name in ("short_val", "third"):
        assert results[f"eval_{name}_loss"] == pytest.approx(means[name], rel=1e-5)  # one task per set: its mean


def test_tla_micro_batch_variant_is_the_authors_loss(text_workspace):
    """`cotbal_tla_variant: micro_batch` = the authors' code: per micro-batch (1/N) Σ_i mean NLL of task i (absent
    tasks count 0), averaged over the accumulation steps — checked against plain-PyTorch SGD on the same batches."""
    from transformers import AutoModelForCausalLM

    ws = text_workspace
    # concat + batch 3: micro-batches hold 3 short, 3 short | 2 short + 1 long, 3 long — uneven task mixes, where
    # per-micro-batch means and per-step means differ
    kw = {**TRAIN, "mix_strategy": "concat", "per_device_train_batch_size": 3, "gradient_accumulation_steps": 2}
    got = train(ws, "tla_mb", cotbal_weighting="tla", cotbal_tla_variant="micro_batch", **kw)
    step_tla = train(ws, "tla_step", cotbal_weighting="tla", **kw)

    from ._inproc import load_data

    cfg = sft_config(ws / "model", ws / "data", ws / "runs" / "x", **{**kw, "cotbal_weighting": "tla"})
    module, _, _ = load_data(cfg)
    rows = list(module["train_dataset"])
    model = AutoModelForCausalLM.from_pretrained(ws / "model")
    model.train()
    lr, n_tasks = kw.get("learning_rate", 0.5), 2
    for step in range(2):
        model.zero_grad()
        for micro in range(2):
            batch = rows[(step * 2 + micro) * 3 : (step * 2 + micro) * 3 + 3]
            sums = [torch.zeros(()) for _ in range(n_tasks)]
            counts = [0] * n_tasks
            for row in batch:
                ids = torch.tensor([row["input_ids"]])
                labels, tasks = decode_labels(torch.tensor([row["labels"]]))
                logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)
                for t in range(ids.size(1) - 1):
                    k = int(tasks[0, t + 1])
                    if k >= 0:
                        sums[k] = sums[k] - logp[0, t, int(labels[0, t + 1])]
                        counts[k] += 1
            loss = sum(s / c for s, c in zip(sums, counts) if c) / n_tasks
            (loss / 2).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    expected = {k: v.detach() for k, v in model.state_dict().items()}
    got = {k: got[k] for k in expected if k in got}
    assert max_abs_diff(got, expected) < 1e-5
    assert max_abs_diff(got, {k: step_tla[k] for k in got}) > 1e-4, "the two TLA variants are different losses"
    assert max_abs_diff(got, load_params(ws / "model")) > 0.05
