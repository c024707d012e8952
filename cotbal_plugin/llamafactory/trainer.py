"""``CustomSeq2SeqTrainer`` with the exact VITW loss, per-task logging and checkpointed task weighting.

Exactness: once per optimizer step, :meth:`CotbalSeq2SeqTrainer.get_batch_samples` (which already prefetches the
step's micro-batches) counts the valid tokens of each task in all of them, sums the counts over ranks with one
all-reduce, asks the weighting for the step's λ and fixes the denominator Σ_i λ_i n_i. Each micro-batch then
contributes Σ λ·nll / denominator, times the number of processes because DDP / DeepSpeed average gradients over
ranks. The accumulated gradient is the gradient of eq. 2 over the whole step, whatever the split into
micro-batches and ranks. No division by the accumulation steps (``compute_loss_func`` is set, which tells the
HF trainer so).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..loss import task_token_counts, vitw_denominator, weighted_nll_sum
from ..task_labels import IGNORE_INDEX, TASK_STRIDE, strip_task_ids
from ..weighting import build_weighting
from ..weights_file import CotbalConfigError
from . import state

STATE_FILE = "cotbal_weighting.json"
TRACE_ENV = "COTBAL_TRACE_DIR"  # diagnostics: every rank appends its per-step counts, weights and losses here
_OBSERVING = {"dwa", "igb"}  # weightings that learn from the per-task losses of past steps


def _vitw_marker(*_: Any, **__: Any) -> None:  # pragma: no cover - never called
    """Placeholder ``compute_loss_func``: its presence tells the HF trainer not to divide by the GA steps."""
    raise RuntimeError("cotbal_plugin computes the loss in CotbalSeq2SeqTrainer.compute_loss")


class CotbalSeq2SeqTrainer(CustomSeq2SeqTrainer):
    """LLaMA-Factory's SFT trainer with the VITW loss of CoTBal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        run = state.require_active()
        if not run.tasks:
            raise CotbalConfigError("loss: cotbal found no task in the training data (is `dataset:` empty?).")
        if self.args.n_gpu > 1:
            raise CotbalConfigError(
                "loss: cotbal needs one device per process (torchrun / accelerate / deepspeed), not DataParallel "
                f"over {self.args.n_gpu} GPUs; launch with FORCE_TORCHRUN=1."
            )
        if getattr(self.model.config, "vocab_size", 0) and self.model.config.vocab_size >= TASK_STRIDE:
            raise CotbalConfigError(f"loss: cotbal supports vocabularies below {TASK_STRIDE} tokens.")
        if getattr(self.finetuning_args, "use_asft_loss", False):
            raise CotbalConfigError("loss: cotbal cannot be combined with use_asft_loss.")
        self.cotbal_run = run
        self.cotbal_tasks = list(run.tasks)
        self.cotbal_weighting = build_weighting(
            run.weighting, self.cotbal_tasks, static_weights=run.weights, seed=self.args.seed, **run.hparams
        )
        self.compute_loss_func = _vitw_marker
        n = len(self.cotbal_tasks)
        self._cb_weights_np = np.ones(n, dtype=np.float64)
        if run.weights is not None:
            self._cb_weights_np = np.array([run.weights[t] for t in self.cotbal_tasks], dtype=np.float64)
        self._cb_weights: torch.Tensor | None = None
        self._cb_denom: torch.Tensor | None = None
        self._cb_log_sums = torch.zeros(n, dtype=torch.float64)
        self._cb_log_counts = torch.zeros(n, dtype=torch.float64)
        self._cb_step_sums = torch.zeros(n, dtype=torch.float64)
        self._cb_step_counts = torch.zeros(n, dtype=torch.float64)

    # ---- one optimizer step: counts → weights → denominator ----
    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any = None) -> tuple[list, Any]:
        """Prefetch the step's micro-batches and fix λ and Σλn for the step (one all-reduce, one host sync)."""
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        device = device if device is not None else self.args.device
        n = len(self.cotbal_tasks)
        counts = torch.zeros(n + 1, dtype=torch.float64, device=device)
        for batch in batch_samples:
            labels = batch["labels"].to(device)
            counts[:n] += task_token_counts(labels, n)
            shifted = labels[..., 1:]
            counts[n] += ((shifted != IGNORE_INDEX) & (shifted < TASK_STRIDE)).sum()
        if self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        counts_np = counts.cpu().numpy()
        if counts_np[n] > 0:
            raise CotbalConfigError(
                f"loss: cotbal: {int(counts_np[n])} supervised token(s) in this step carry no task id. The data was "
                "prepared without the plugin (a tokenized_path cache or a custom data path); rebuild it with "
                "loss: cotbal."
            )
        weights = np.asarray(self.cotbal_weighting.step_weights(counts_np[:n].copy()), dtype=np.float64)
        if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise RuntimeError(
                f"cotbal_plugin: weighting {self.cotbal_run.weighting!r} returned invalid weights {weights}"
            )
        self._cb_weights_np = weights
        self._cb_weights = torch.as_tensor(weights, dtype=torch.float32, device=device)
        self._cb_denom = vitw_denominator(counts[:n], self._cb_weights)
        self._trace({"event": "step", "counts": counts_np[:n].tolist(), "weights": weights.tolist()})
        return batch_samples, self._cb_denom

    def _trace(self, record: dict[str, Any]) -> None:
        """Append a diagnostic record to ``$COTBAL_TRACE_DIR/rank<r>.jsonl`` when that variable is set."""
        folder = os.environ.get(TRACE_ENV)
        if not folder:
            return
        os.makedirs(folder, exist_ok=True)
        record = {"rank": self.args.process_index, "global_step": self.state.global_step, **record}
        with open(os.path.join(folder, f"rank{self.args.process_index}.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _get_num_items_in_batch(self, batch_samples: list, device: Any) -> None:
        """Unused: the loss normalises itself (avoids the stock per-eval-batch gather)."""
        return None

    # ---- the loss ----
    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ):
        """VITW loss of one micro-batch (training) or of one evaluation batch (evaluation)."""
        labels = inputs["labels"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**model_inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        n = len(self.cotbal_tasks)
        if self._cb_weights is None or self._cb_weights.device != logits.device:
            self._cb_weights = torch.as_tensor(self._cb_weights_np, dtype=torch.float32, device=logits.device)
        weighted_sum, nll_sums, counts = weighted_nll_sum(logits, labels.to(logits.device), self._cb_weights, n)
        if model.training and self._cb_denom is not None:
            loss = weighted_sum / self._cb_denom.to(weighted_sum.device) * self.accelerator.num_processes
            loss = loss.to(torch.float32)
            self._cb_log_sums = self._cb_log_sums.to(nll_sums.device) + nll_sums
            self._cb_log_counts = self._cb_log_counts.to(counts.device) + counts
            if self.cotbal_run.weighting in _OBSERVING:  # only dynamic weightings need the step's losses
                self._cb_step_sums = self._cb_step_sums.to(nll_sums.device) + nll_sums
                self._cb_step_counts = self._cb_step_counts.to(counts.device) + counts
        else:  # evaluation (or a path that skipped get_batch_samples): normalise within the batch
            denom = vitw_denominator(counts, self._cb_weights.to(counts.device))
            loss = (weighted_sum / denom).to(torch.float32)
        if isinstance(outputs, dict):
            outputs["loss"] = loss
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: Any = None,
        **gen_kwargs: Any,
    ):
        """Evaluation with the weighted loss; labels handed to metrics are plain token ids."""
        loss, generated, labels = super().prediction_step(
            model, inputs, prediction_loss_only=prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs
        )
        if isinstance(labels, torch.Tensor):
            labels = strip_task_ids(labels)
        return loss, generated, labels

    # ---- after each optimizer step: feed dynamic weightings ----
    def _maybe_log_save_evaluate(self, *args: Any, **kwargs: Any) -> None:
        if self.cotbal_run.weighting in _OBSERVING:
            step = torch.cat([self._cb_step_sums, self._cb_step_counts]).to(self.args.device)
            if self.accelerator.num_processes > 1:
                step = self.accelerator.reduce(step, reduction="sum")
            step_np = step.cpu().numpy()
            n = len(self.cotbal_tasks)
            if step_np[n:].sum() > 0:  # HF also calls this at epoch end, after the step was already observed
                self.cotbal_weighting.observe(step_np[:n].copy(), step_np[n:].copy())
                self._trace({"event": "observe", "loss_sums": step_np[:n].tolist(), "counts": step_np[n:].tolist()})
            self._cb_step_sums = torch.zeros_like(self._cb_step_sums)
            self._cb_step_counts = torch.zeros_like(self._cb_step_counts)
        return super()._maybe_log_save_evaluate(*args, **kwargs)

    # ---- logging ----
    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add ``task_loss/<task>`` (token-mean NLL over the logging window, all ranks) and ``task_weight/<task>``."""
        if "loss" in logs:
            window = torch.cat([self._cb_log_sums, self._cb_log_counts]).to(self.args.device)
            if self.accelerator.num_processes > 1:
                window = self.accelerator.reduce(window, reduction="sum")
            window_np = window.cpu().numpy()
            n = len(self.cotbal_tasks)
            for i, task in enumerate(self.cotbal_tasks):
                if window_np[n + i] > 0:
                    logs[f"task_loss/{task}"] = float(window_np[i] / window_np[n + i])
            for i, task in enumerate(self.cotbal_tasks):
                logs[f"task_weight/{task}"] = float(self._cb_weights_np[i])
            self._cb_log_sums = torch.zeros_like(self._cb_log_sums)
            self._cb_log_counts = torch.zeros_like(self._cb_log_counts)
        super().log(logs, *args, **kwargs)

    # ---- checkpoints ----
    def _save_checkpoint(self, model: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
        super()._save_checkpoint(model, trial, *args, **kwargs)
        if self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            os.makedirs(folder, exist_ok=True)
            payload = {
                "tasks": self.cotbal_tasks,
                "weighting": self.cotbal_run.weighting,
                "last_weights": self._cb_weights_np.tolist(),
                "state": self.cotbal_weighting.state_dict(),
            }
            with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)
        path = os.path.join(resume_from_checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            raise CotbalConfigError(
                f"resume_from_checkpoint: {resume_from_checkpoint!r} has no {STATE_FILE}; it was not written by a "
                "loss: cotbal run, so the task weighting state cannot be restored."
            )
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if payload.get("tasks") != self.cotbal_tasks or payload.get("weighting") != self.cotbal_run.weighting:
            raise CotbalConfigError(
                f"resume_from_checkpoint: {path} was written for tasks {payload.get('tasks')} with weighting "
                f"{payload.get('weighting')!r}, but this run has tasks {self.cotbal_tasks} with weighting "
                f"{self.cotbal_run.weighting!r}."
            )
        self.cotbal_weighting.load_state_dict(payload["state"])
        self._cb_weights_np = np.asarray(payload["last_weights"], dtype=np.float64)
