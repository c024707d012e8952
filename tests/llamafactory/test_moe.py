"""MoE router load-balancing loss under ``loss: cotbal``: a tiny Mixtral through the real ``llamafactory-cli``.

What stock does (LLaMA-Factory 0.9.5, transformers 5.5.4), checked here rather than assumed:

- ``moe_aux_loss_coef: c`` makes LLaMA-Factory's ``configure_moe`` set ``output_router_logits = True`` and
  ``router_aux_loss_coef = c`` in the model config. The model then computes the Switch-Transformer
  load-balancing loss ``aux`` of each forward pass (over that micro-batch's non-padding tokens, prompt tokens
  included) and, when labels are passed, returns ``token-mean NLL + c × aux``. Without ``moe_aux_loss_coef`` the
  config keeps ``output_router_logits`` as saved (False here) and nothing is added.
- Accumulation (text models: the trainer passes ``num_items_in_batch``): the NLL part is normalised by the token
  count of the whole optimizer step, so it is exact across layouts, but the ``c × aux`` term is added to every
  micro-batch's loss and the trainer does not divide by the accumulation steps (and multiplies by the number of
  processes, which DDP's gradient averaging undoes): the aux terms of the step's micro-batches are *summed*. With
  batch 2 × GA 2 the effective coefficient is 2c on per-micro-batch aux losses, so stock batch 4 and batch 2 × GA 2
  end at different parameters. ``loss: cotbal`` reproduces that, layout by layout.
- Models with a processor (VLMs): LLaMA-Factory sets ``model_accepts_loss_kwargs = False``, the trainer divides the
  whole loss by the accumulation steps and does not scale by the processes: the aux terms are *averaged* over the
  step's micro-batches (and ranks). ``loss: cotbal`` follows whichever convention the trainer uses (in-process
  check below). In this version ``moe_aux_loss_coef`` turns on the aux loss of no MoE VLM (GLM-4.5V and
  Qwen3-VL-MoE compute it only when ``output_router_logits`` is passed to forward, which LLaMA-Factory does not;
  Ernie-4.5-VL-MoE and Qwen3-Omni's thinker do when their saved text config has ``output_router_logits: true``).
- Gradient checkpointing: with LLaMA-Factory's default (enabled, ``use_reentrant_gc: true``) the router logits
  are recorded by transformers 5 inside the reentrant checkpoint's no-grad forward, so the aux loss is logged but
  has no gradient — stock and cotbal alike. These runs set ``disable_gradient_checkpointing: true`` so that the
  aux loss moves the parameters (``use_reentrant_gc: false`` works too).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from cotbal_plugin.testing.workspace import load_params, max_abs_diff
from cotbal_plugin.weights_file import CotbalConfigError

from ._runs import train, trainer_logs

pytestmark = pytest.mark.integration

MIX = {
    "dataset": "short,long",
    "mix_strategy": "interleave_under",
    "max_steps": 3,
    "disable_gradient_checkpointing": True,
}
COEF = {"moe_aux_loss_coef": 0.5}
GA = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
TOL = 1e-5  # float32 SGD, lr 0.5, 3 steps: observed 0 (bitwise equal)


@pytest.fixture(scope="module")
def moe_runs(moe_workspace):
    ws = moe_workspace
    equal = ws / "equal.json"
    equal.write_text(json.dumps({"weights": {"short": 1.0, "long": 1.0}}))
    ew = {"loss": "cotbal", "cotbal_weighting": "ew"}
    static = {"loss": "cotbal", "cotbal_weights": str(equal)}
    return {
        "init": load_params(ws / "model"),
        "stock": train(ws, "stock", **MIX, **COEF),
        "stock_off": train(ws, "stock_off", **MIX),
        "stock_ga": train(ws, "stock_ga", **GA, **MIX, **COEF),
        "ew": train(ws, "ew", **MIX, **COEF, **ew),
        "static_ga": train(ws, "static_ga", **GA, **MIX, **COEF, **static),
        "static_off": train(ws, "static_off", **MIX, **static),
    }


def test_aux_loss_changes_stock_training(moe_runs):
    """(a) Without this the other tests prove nothing: the aux term moves the parameters in stock training."""
    assert max_abs_diff(moe_runs["stock"], moe_runs["init"]) > 0.1
    assert max_abs_diff(moe_runs["stock"], moe_runs["stock_off"]) > 100 * TOL


def test_uniform_cotbal_reproduces_stock_with_aux_loss(moe_workspace, moe_runs):
    """(b) ``cotbal_weighting: ew`` with ``moe_aux_loss_coef`` ends at stock's parameters; the logged loss (which
    includes ``c × aux`` in stock) is the same, so the aux term is added once, not twice and not dropped."""
    assert max_abs_diff(moe_runs["ew"], moe_runs["stock"]) < TOL
    stock, ew = trainer_logs(moe_workspace, "stock"), trainer_logs(moe_workspace, "ew")
    off = trainer_logs(moe_workspace, "stock_off")
    assert len(ew) == len(stock) == 3
    assert ew[0]["loss"] - off[0]["loss"] > 0.1  # the logged loss holds the aux term (same weights at step 1)
    for a, b in zip(ew, stock):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["task_weight/short"] == a["task_weight/long"] == 1.0


def test_uniform_cotbal_reproduces_stock_under_gradient_accumulation(moe_runs):
    """(c) Stock text training sums the per-micro-batch aux terms of a step (module docstring): batch 2 × GA 2
    ends elsewhere than batch 4. Static all-equal weights reproduce stock batch 2 × GA 2 exactly."""
    assert max_abs_diff(moe_runs["stock_ga"], moe_runs["stock"]) > 100 * TOL
    assert max_abs_diff(moe_runs["static_ga"], moe_runs["stock_ga"]) < TOL


def test_no_aux_loss_without_coefficient(moe_workspace, moe_runs):
    """(d) Without ``moe_aux_loss_coef`` stock adds nothing (``output_router_logits`` stays False as saved), and
    neither does cotbal."""
    config = json.loads((moe_workspace / "runs" / "stock_off" / "config.json").read_text())
    assert config["output_router_logits"] is False
    config = json.loads((moe_workspace / "runs" / "stock" / "config.json").read_text())
    assert config["output_router_logits"] is True and config["router_aux_loss_coef"] == 0.5
    assert max_abs_diff(moe_runs["static_off"], moe_runs["stock_off"]) < TOL


# ------------------------------------------------------------------------------------------------ in-process
def _hf_runs(model_dir, out_dir, accepts_loss_kwargs: bool) -> tuple[dict, dict]:
    """Stock ``transformers.Trainer`` and a ``CotbalTrainerMixin`` trainer (``ew``), batch 2 × GA 2, on a tiny
    Mixtral with aux coefficient 0.5; ``model_accepts_loss_kwargs`` forced as LLaMA-Factory sets it for text
    models (True) or for models with a processor (False). Every sample has the same number of supervised tokens,
    so the stock per-micro-batch mean (False) equals the step's token mean and only the aux term can differ."""
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from cotbal_plugin.core.config import CotbalSettings
    from cotbal_plugin.core.trainer import CotbalTrainerMixin
    from cotbal_plugin.task_labels import IGNORE_INDEX, encode_labels

    gen = torch.Generator().manual_seed(0)
    rows = []
    for i in range(8):
        ids = torch.randint(10, 300, (12,), generator=gen).tolist()
        labels = [IGNORE_INDEX] * 6 + ids[6:]
        rows.append({"input_ids": ids, "attention_mask": [1] * 12, "labels": labels, "task": i % 2})

    def dataset(encoded: bool) -> list[dict]:
        out = []
        for r in rows:
            labels = encode_labels(r["labels"], r["task"]) if encoded else r["labels"]
            out.append({k: torch.tensor(v) for k, v in (("input_ids", r["input_ids"]), ("labels", labels))})
            out[-1]["attention_mask"] = torch.tensor(r["attention_mask"])
        return out

    class Sequential:
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class Stock(Sequential, Trainer):
        pass

    class Cotbal(CotbalTrainerMixin, Sequential, Trainer):
        pass

    results = {}
    for name, cls in (("stock", Stock), ("cotbal", Cotbal)):
        model = AutoModelForCausalLM.from_pretrained(model_dir, output_router_logits=True, router_aux_loss_coef=0.5)
        args = TrainingArguments(
            output_dir=str(out_dir / name),
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            max_steps=2,
            learning_rate=0.5,
            lr_scheduler_type="constant",
            optim="sgd",
            max_grad_norm=0.0,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            seed=0,
            remove_unused_columns=False,
            disable_tqdm=True,
        )
        trainer = cls(model=model, args=args, train_dataset=dataset(name == "cotbal"))
        trainer.model_accepts_loss_kwargs = accepts_loss_kwargs
        if name == "cotbal":
            trainer._cotbal_setup(CotbalSettings(tasks=["a", "b"], weighting="ew"))
        trainer.train()
        results[name] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return results["stock"], results["cotbal"]


def test_aux_accumulation_follows_the_trainer_convention(moe_workspace, tmp_path):
    """Summed over micro-batches when the trainer passes ``num_items_in_batch`` (text models), averaged when it
    does not (LLaMA-Factory with a processor): cotbal matches stock in both, and the two conventions differ."""
    stock_sum, cotbal_sum = _hf_runs(moe_workspace / "model", tmp_path / "sum", True)
    stock_mean, cotbal_mean = _hf_runs(moe_workspace / "model", tmp_path / "mean", False)
    assert max_abs_diff(stock_sum, stock_mean) > 100 * TOL
    assert max_abs_diff(cotbal_sum, stock_sum) < TOL
    assert max_abs_diff(cotbal_mean, stock_mean) < TOL


def _aux_of(model, outputs):
    """``CotbalTrainerMixin._cb_aux_loss`` on a bare trainer stand-in (single process, no accumulation)."""
    from cotbal_plugin.core.trainer import CotbalTrainerMixin

    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(unwrap_model=lambda m: m, num_processes=1),
        args=SimpleNamespace(average_tokens_across_devices=True),
        model_accepts_loss_kwargs=True,
        _cb_world=1,
        _cb_num_micro=1,
    )
    trainer._cb_aux_scale = lambda: CotbalTrainerMixin._cb_aux_scale(trainer)
    return CotbalTrainerMixin._cb_aux_loss(trainer, model, outputs)


def test_aux_coefficient_is_the_one_the_model_uses():
    aux = torch.tensor(2.0)
    config = SimpleNamespace(router_aux_loss_coef=0.001)
    model = SimpleNamespace(config=config, router_aux_loss_coef=0.25)  # what forward multiplies by
    assert float(_aux_of(model, {"aux_loss": aux})) == 0.5
    nested = SimpleNamespace(config=SimpleNamespace(text_config=SimpleNamespace(router_aux_loss_coef=0.1)))
    assert float(_aux_of(nested, {"aux_loss": aux})) == pytest.approx(0.2)
    assert _aux_of(model, {"aux_loss": None}) is None
    assert _aux_of(model, {"aux_loss": 0}) is None  # transformers returns int 0 when no router logits were kept
    assert _aux_of(SimpleNamespace(config=None, aux_loss_coef=0.0), {"aux_loss": aux}) is None


def test_aux_loss_without_a_known_coefficient_is_refused():
    with pytest.raises(CotbalConfigError, match="router_aux_loss_coef.*output_router_logits: false"):
        _aux_of(SimpleNamespace(config=SimpleNamespace()), {"aux_loss": torch.tensor(1.0)})
