"""The trainer's per-micro-batch path (the core mixin's compute_loss, forward and backward, fused or full logits,
every weighting) makes no host-device synchronisation; only the once-per-step decision of λ does.

A GPU would show such syncs with ``torch.cuda.set_sync_debug_mode``; on this CPU machine
:class:`cotbal_plugin.testing.syncs.HostSyncDetector` records the operations that would synchronise.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cotbal_plugin.testing.syncs import HostSyncDetector

VOCAB, LENGTH = 96, 12


def _rows(n: int = 8) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(0, VOCAB, (LENGTH,), generator=g).tolist()
        labels = [-100] * 4 + ids[4 : 4 + (2 if i % 2 else 7)]
        labels += [-100] * (LENGTH - len(labels))
        rows.append({"input_ids": ids, "attention_mask": [1] * LENGTH, "labels": labels, "task": ["a", "b"][i % 2]})
    return rows


def _trainer(tmp_path, **cotbal: Any):
    from transformers import TrainingArguments, default_data_collator

    from cotbal_plugin.hf import CotbalTrainer
    from cotbal_plugin.testing.tiny import tiny_llama_model

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        use_cpu=True,
        report_to=[],
        optim="sgd",
        learning_rate=0.1,
        max_steps=1,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    return CotbalTrainer(
        model=tiny_llama_model(vocab_size=VOCAB),
        args=args,
        train_dataset=_rows(),
        data_collator=default_data_collator,
        cotbal_tasks=["a", "b"],
        **cotbal,
    )


CASES = {
    "static-fused": {"cotbal_weights": {"a": 2.0, "b": 0.5}},
    "static-full-logits": {"cotbal_weights": {"a": 2.0, "b": 0.5}, "cotbal_fused_ce": False},
    "dwa": {"cotbal_weighting": "dwa"},  # accumulates the step's loss sums for the next step, on the device
    "tla-micro-batch": {"cotbal_weighting": "tla", "cotbal_tla_variant": "micro_batch"},
}


def _stock_events(model: Any, batch: dict[str, Any]) -> list[str]:
    """Syncs of the model itself (stock forward with its own loss + backward): e.g. transformers' causal-mask
    creation reads ``attention_mask.all()``. They are not the plugin's to remove; the plugin must add none."""
    inputs = {k: v for k, v in batch.items()}
    inputs["labels"] = torch.where(inputs["labels"] >= 1 << 24, inputs["labels"] % (1 << 24), inputs["labels"])
    with HostSyncDetector() as syncs:
        model(**inputs).loss.backward()
    model.zero_grad()
    return sorted(syncs.events)


@pytest.mark.parametrize("case", list(CASES))
def test_micro_batch_path_adds_no_synchronisation(tmp_path, case):
    trainer = _trainer(tmp_path, **CASES[case])
    model = trainer.model
    model.train()
    batches, _ = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 2, trainer.args.device)
    batches = [trainer._prepare_inputs(b) for b in batches]
    trainer.compute_loss(model, batches[0]).backward()  # first fused step: the documented one-off carrier check
    stock = _stock_events(model, batches[1])
    with HostSyncDetector() as syncs:
        trainer.compute_loss(model, batches[1]).backward()
    assert sorted(syncs.events) == stock, f"the plugin added {sorted(syncs.events)} to the model's own {stock}"
    assert trainer._cb_fused is (case != "static-full-logits")  # the fused head really ran where expected
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_first_fused_step_checks_the_carrier_once(tmp_path):
    trainer = _trainer(tmp_path, cotbal_weights={"a": 2.0, "b": 0.5})
    model = trainer.model
    model.train()
    batches, _ = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 2, trainer.args.device)
    batch = trainer._prepare_inputs(batches[0])
    stock = _stock_events(model, batch)
    with HostSyncDetector() as syncs:
        trainer.compute_loss(model, batch).backward()
    assert sorted(syncs.events) == sorted([*stock, "aten.allclose.default"])


def test_the_detector_sees_the_once_per_step_sync(tmp_path):
    """Negative control: the step-level decision of λ (and a log line) do synchronise — and are caught."""
    trainer = _trainer(tmp_path, cotbal_weights={"a": 2.0, "b": 0.5})
    with HostSyncDetector() as syncs:
        trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 2, trainer.args.device)
    assert syncs.events
