"""The exact VITW loss as a mixin for any ``transformers.Trainer`` (no LLaMA-Factory import).

Both front ends use it: ``cotbal_plugin.llamafactory.trainer.CotbalSeq2SeqTrainer`` (``loss: cotbal`` in a
LLaMA-Factory YAML) and ``cotbal_plugin.hf.CotbalTrainer`` / ``make_cotbal_trainer`` (plain HF, TRL, LLaVA-style
scripts). The labels of every batch carry the task of each supervised token (``cotbal_plugin.task_labels``); how
they got there is the front end's business.

Exactness (paper eq. 2 over the whole optimizer step). Once per optimizer step, :meth:`get_batch_samples` (which
the HF trainer calls to prefetch the step's micro-batches) counts the valid tokens of each task in all of them,
sums the counts over ranks (one all-reduce) and moves them to the host (the step's one host-device sync). The
weighting turns the counts into λ and the denominator Σ_i λ_i n_i is fixed. Each micro-batch then contributes
Σ λ·nll / denominator × world size (DDP and DeepSpeed average gradients over ranks), so the accumulated gradient is
the gradient of eq. 2 whatever the split into micro-batches and ranks. Nothing in the per-micro-batch path
synchronises host and device.

Dynamic weightings that learn from past losses (dwa, igb) need each step's per-task loss sums. They are
accumulated on the device and folded into the next step's all-reduce, so observing costs no extra sync; they are
flushed early (own all-reduce) before a checkpoint is saved or a log line written, so a checkpoint always holds
the state of every finished step.

Checkpoints. The weighting's state (histories, RNG) is an :class:`~transformers.trainer_callback.ExportableState`
callback state: the HF trainer writes it inside ``trainer_state.json`` of every checkpoint, from the process that
saves, in the same file write that makes the checkpoint resumable. A checkpoint that HF considers complete
therefore always holds it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..loss import task_token_counts, untasked_token_count, vitw_denominator, weighted_nll_sum
from ..task_labels import TASK_STRIDE, strip_task_ids
from ..weighting import build_weighting
from ..weights_file import CotbalConfigError
from .config import OBSERVING_WEIGHTINGS, CotbalSettings, check_training_args

STATE_KEY = "CotbalWeightingState"  # name of the callback state in trainer_state.json
LEGACY_STATE_FILE = "cotbal_weighting.json"  # written beside trainer_state.json by cotbal_plugin 0.1.0
STATE_FORMAT = 2
logger = logging.getLogger("cotbal_plugin")  # run-time notices: shown even where Python warnings are filtered
TRACE_ENV = "COTBAL_TRACE_DIR"  # diagnostics: every rank appends its per-step counts, weights and losses here


def _vitw_marker(*_: Any, **__: Any) -> None:  # pragma: no cover - never called
    """Placeholder ``compute_loss_func``: its presence tells the HF trainer not to divide by the GA steps."""
    raise RuntimeError("cotbal_plugin computes the loss in CotbalTrainerMixin.compute_loss")


def _on(buffer: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``buffer`` on ``device``; a buffer on another device is replaced by zeros created there.

    Buffers are reset to zeros on the CPU after each use; creating the replacement directly on the accelerator
    avoids a host-to-device copy (which would synchronise) in the per-micro-batch path.
    """
    if buffer.device == device:
        return buffer
    if bool(buffer.any()):  # only reached when the device changes while values are pending (not in practice)
        return buffer.to(device)
    return torch.zeros(buffer.shape, dtype=buffer.dtype, device=device)


def _check_complete(checkpoint: str) -> None:
    """Refuse a checkpoint whose ``trainer_state.json`` is missing or truncated (a save that was interrupted).

    HF would fail on it too (FileNotFoundError / JSONDecodeError); this says which folder and what to do.
    """
    state_file = os.path.join(checkpoint, "trainer_state.json")
    problem = None
    if not os.path.isfile(state_file):
        problem = "no trainer_state.json"
    else:
        try:
            with open(state_file, encoding="utf-8") as f:
                json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            problem = "trainer_state.json is truncated"
    if problem:
        raise CotbalConfigError(
            f"resume: checkpoint {checkpoint!r} is incomplete ({problem}): the run was stopped while saving it. "
            "Delete that folder to resume from the previous checkpoint (or start over with overwrite_output_dir: "
            "true)."
        )


class CotbalWeightingState(TrainerCallback, ExportableState):
    """Carries the task-weighting state into ``trainer_state.json`` (``stateful_callbacks``) at every checkpoint."""

    def __init__(self, trainer: Any = None) -> None:
        self._trainer = trainer

    def state(self) -> dict:
        """The state HF writes into the checkpoint's ``trainer_state.json``."""
        payload = self._trainer._cotbal_state_payload() if self._trainer is not None else {}
        return {"args": {}, "attributes": {"payload": payload}}


class CotbalTrainerMixin:
    """Mixin for a ``transformers.Trainer`` subclass: exact VITW loss, per-task logging, checkpointed weighting.

    A front end mixes it in before the trainer class and calls :meth:`_cotbal_setup` at the end of ``__init__``.
    """

    cotbal: CotbalSettings
    # the end of the error raised when a step holds labels without task ids: how that happens with this front end
    _cb_untagged_hint = (
        "The data was prepared without the plugin (a tokenized_path cache, a custom data path, or a collator that "
        "rebuilt the labels); rebuild it with loss: cotbal."
    )

    # ------------------------------------------------------------------------------------------------ setup
    def _cotbal_setup(self, settings: CotbalSettings) -> None:
        """Check the trainer's arguments against what the VITW loss supports and build the weighting."""
        args = self.args
        if not settings.tasks:
            raise CotbalConfigError("loss: cotbal found no training task (is the training data empty?).")
        if getattr(args, "n_gpu", 1) > 1:
            raise CotbalConfigError(
                "loss: cotbal needs one device per process (torchrun / accelerate / deepspeed), not DataParallel "
                f"over {args.n_gpu} GPUs; launch with torchrun (LLaMA-Factory: FORCE_TORCHRUN=1)."
            )
        check_training_args(args)
        model = self.model
        vocab = getattr(getattr(model, "config", None), "vocab_size", 0) or 0
        if vocab >= TASK_STRIDE:
            raise CotbalConfigError(f"loss: cotbal supports vocabularies below {TASK_STRIDE} tokens (got {vocab}).")
        self.cotbal = settings
        self.cotbal_tasks = list(settings.tasks)
        self.cotbal_weighting = build_weighting(
            settings.weighting,
            self.cotbal_tasks,
            static_weights=settings.weights,
            seed=int(args.seed),
            **settings.hparams,
        )
        self.compute_loss_func = _vitw_marker
        n, m = len(settings.tasks), len(settings.all_tasks)
        self._cb_n, self._cb_m = n, m
        self._cb_weights_np = np.ones(n, dtype=np.float64)
        if settings.weights is not None:
            self._cb_weights_np = np.array([settings.weights[t] for t in self.cotbal_tasks], dtype=np.float64)
        self._cb_eval_weights_np = settings.eval_weights()
        self._cb_eval_weights: torch.Tensor | None = None
        self._cb_step_weights: torch.Tensor | None = None  # float32[m] on the device, λ of the current step
        self._cb_denom: torch.Tensor | None = None
        self._cb_loss_lambda: torch.Tensor | None = None  # float32[m]: λ · world / Σλn of the current step
        self._cb_num_micro = 1
        self._cb_log = torch.zeros(2 * m, dtype=torch.float64)  # (nll sums, counts) of the logging window
        self._cb_pending = torch.zeros(2 * n, dtype=torch.float64)  # the last step(s) not yet observed
        self._cb_eval = torch.zeros(2 * m, dtype=torch.float64)  # (nll sums, counts) of the current evaluation
        self._cb_resume_path: str | None = None
        self._cb_restored = True
        self._cb_fused: bool | None = None  # decided at the first training forward
        self._cb_fused_checked = False  # the first fused step also checks the carrier's value (one sync)
        self.add_callback(CotbalWeightingState(self))

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def _cb_world(self) -> int:
        return int(self.accelerator.num_processes)

    def _cb_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._cb_world > 1:
            return self.accelerator.reduce(tensor, reduction="sum")
        return tensor

    def _cb_trace(self, record: dict[str, Any]) -> None:
        """Append a diagnostic record to ``$COTBAL_TRACE_DIR/rank<r>.jsonl`` when that variable is set."""
        folder = os.environ.get(TRACE_ENV)
        if not folder:
            return
        os.makedirs(folder, exist_ok=True)
        record = {"rank": self.args.process_index, "global_step": self.state.global_step, **record}
        with open(os.path.join(folder, f"rank{self.args.process_index}.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------------- one optimizer step: counts → λ
    def train(self, resume_from_checkpoint: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; remembers the checkpoint a resumed run starts from (its weighting state is read
        at the first step)."""
        path = resume_from_checkpoint
        if isinstance(path, bool):
            path = get_last_checkpoint(self.args.output_dir) if path else None
        self._cb_resume_path = str(path) if path else None
        if self._cb_resume_path is not None and os.path.isdir(self._cb_resume_path):
            _check_complete(self._cb_resume_path)
        self._cb_restored = self._cb_resume_path is None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any = None) -> tuple[list, Any]:
        """Prefetch the step's micro-batches and fix λ and Σλn for the step (one all-reduce, one host sync)."""
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        if not self._cb_restored:
            self._cb_restore_state()
        device = device if device is not None else self.args.device
        n, m = self._cb_n, self._cb_m
        # [0, m): tokens per task id; m: supervised tokens without a task id; then the pending observation
        vec = torch.zeros(m + 1 + 2 * n, dtype=torch.float64, device=device)
        for batch in batch_samples:
            labels = batch["labels"].to(device)
            vec[:m] += task_token_counts(labels, m)
            vec[m] += untasked_token_count(labels, m)
        vec[m + 1 :] = self._cb_pending.to(device)
        self._cb_pending = torch.zeros_like(vec[m + 1 :])
        host = self._cb_reduce(vec).cpu().numpy()  # the step's one host-device synchronisation
        counts = host[:n].copy()
        if host[m] > 0:
            raise CotbalConfigError(
                f"loss: cotbal: {int(host[m])} supervised token(s) in this step carry no task id. "
                + self._cb_untagged_hint
            )
        if host[n:m].sum() > 0:
            raise RuntimeError(
                "cotbal_plugin: tokens of evaluation-only tasks reached a training step (internal error)."
            )
        self._cb_observe(host[m + 1 : m + 1 + n], host[m + 1 + n :])
        weights = np.asarray(self.cotbal_weighting.step_weights(counts.copy()), dtype=np.float64)
        if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise RuntimeError(f"cotbal_plugin: weighting {self.cotbal.weighting!r} returned invalid λ {weights}")
        self._cb_weights_np = weights
        full = np.concatenate([weights, np.zeros(m - n)])
        self._cb_step_weights = torch.as_tensor(full, dtype=torch.float32, device=device)
        self._cb_denom = vitw_denominator(torch.as_tensor(counts, device=device), self._cb_step_weights[:n])
        scale = float(self._cb_world) / self._cb_denom  # float64 on the device: λ·W/Σλn in float64, then float32
        self._cb_loss_lambda = (self._cb_step_weights.to(torch.float64) * scale).to(torch.float32)
        self._cb_num_micro = max(1, len(batch_samples))
        self._cb_trace({"event": "step", "counts": counts.tolist(), "weights": weights.tolist()})
        return batch_samples, self._cb_denom

    def _cb_observe(self, loss_sums: np.ndarray, counts: np.ndarray) -> None:
        """Feed one or more finished steps' per-task loss sums to a weighting that learns from them."""
        if self.cotbal.weighting in OBSERVING_WEIGHTINGS and counts.sum() > 0:
            self.cotbal_weighting.observe(loss_sums.copy(), counts.copy())
            self._cb_trace({"event": "observe", "loss_sums": loss_sums.tolist(), "counts": counts.tolist()})

    def _cb_flush_pending(self) -> None:
        """Observe the pending step now (own all-reduce; every rank calls it at the same step)."""
        if self.cotbal.weighting not in OBSERVING_WEIGHTINGS:
            return
        n = self._cb_n
        host = self._cb_reduce(self._cb_pending.to(self.args.device)).cpu().numpy()
        self._cb_pending = torch.zeros_like(self._cb_pending)
        self._cb_observe(host[:n], host[n:])

    def _get_num_items_in_batch(self, batch_samples: list, device: Any) -> None:
        """Unused: the loss normalises itself (avoids the stock per-batch gather)."""
        return None

    # ------------------------------------------------------------------------------------------------ the loss
    def _cb_loss_weights(self, training: bool, labels: torch.Tensor, device: Any) -> torch.Tensor:
        """Per-task token weights (float32[m]) for this forward pass.

        In training they already hold the loss's normalisation — λ / Σλn × world size (or, for the authors' TLA
        variant, 1 / (N · n_i,mb) ÷ micro-batches) — so the weighted sum IS the micro-batch's loss: the gradients the
        fused path precomputes in its forward are then multiplied by exactly 1 in backward (no second rounding of
        bf16 gradients). In evaluation they are the fixed λ, and the batch is normalised afterwards.
        """
        if training and self.cotbal.tla_variant == "micro_batch":
            # the authors' TLA: (1/N) Σ_i mean NLL of task i in this micro-batch (absent tasks count 0), ÷ GA steps
            counts = task_token_counts(labels, self._cb_m).to(device)
            return (1.0 / (self._cb_n * self._cb_num_micro * counts.clamp_min(1.0))).to(torch.float32)
        if training and self._cb_loss_lambda is not None:
            return self._cb_loss_lambda.to(device)
        cached = self._cb_eval_weights
        if cached is None or cached.device != torch.device(device):
            cached = torch.as_tensor(self._cb_eval_weights_np, dtype=torch.float32, device=device)
            self._cb_eval_weights = cached
        return cached

    def _cb_forward(
        self, model: Any, inputs: dict[str, Any], labels: torch.Tensor, weights: torch.Tensor
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the model and return ``(outputs, Σ λ·nll, per-task nll sums, per-task counts)``.

        In training, with ``cotbal_fused_ce`` (the default), the loss comes from the last hidden states and the output
        layer in chunks (:mod:`cotbal_plugin.head`): no ``[tokens, vocab]`` logits. A model the fused head cannot
        serve falls back to the full-logits path once, with a warning that says why; evaluation always uses the full
        logits (metrics may need them).
        """
        if model.training and self._cb_use_fused(model):
            from ..head import FusedHeadUnsupported, fused_output_head

            try:
                chunk = self.cotbal.ce_chunk_tokens
                with fused_output_head(model, labels, weights, self._cb_m, chunk_tokens=chunk) as head:
                    outputs = model(**inputs)
                weighted_sum, nll_sums, counts = head.result(outputs, validate=not self._cb_fused_checked)
                self._cb_fused_checked = True
                return outputs, weighted_sum, nll_sums, counts
            except FusedHeadUnsupported as err:  # found at run time: recompute this batch with full logits
                self._cb_fused_off(str(err))
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weighted_sum, nll_sums, counts = weighted_nll_sum(logits, labels.to(logits.device), weights, self._cb_m)
        return outputs, weighted_sum, nll_sums, counts

    def _cb_use_fused(self, model: Any) -> bool:
        """Whether this run computes training losses with the fused output head (decided at the first step)."""
        if self._cb_fused is None:
            if not self.cotbal.fused_ce:
                self._cb_fused = False
            else:
                from ..head import fused_head_support

                reason = fused_head_support(model)
                self._cb_fused = reason is None
                if reason is not None:
                    self._cb_fused_off(reason)  # traces the decision with its reason
            if self._cb_fused or not self.cotbal.fused_ce:
                self._cb_trace({"event": "loss_path", "fused": bool(self._cb_fused)})
        return bool(self._cb_fused)

    def _cb_fused_off(self, reason: str) -> None:
        """Fall back to the full-logits loss for the rest of the run, saying why (once)."""
        self._cb_fused = False
        self._cb_trace({"event": "loss_path", "fused": False, "reason": reason})
        logger.warning(
            f"cotbal_plugin: the fused cross-entropy cannot serve this model ({reason}); computing the loss from full "
            "logits instead (exact, but it keeps [tokens, vocab] logits in memory). Set cotbal_fused_ce: false to "
            "silence this."
        )

    def _cb_aux_loss(self, model: Any, outputs: Any) -> torch.Tensor | None:
        """``coef × aux_loss`` of MoE models (router load balancing) as stock models add it to their loss, scaled
        for accumulation as the stock trainer scales it (:meth:`_cb_aux_scale`); None when the model returns none.

        The coefficient is the one the model's forward uses: its ``router_aux_loss_coef`` / ``aux_loss_coef``
        attribute (Mixtral, Qwen2-MoE, JetMoE …, set from the config at load time, after LLaMA-Factory's
        ``moe_aux_loss_coef`` was written into the config), else the config's or its ``text_config``'s.
        """
        aux = outputs.get("aux_loss") if isinstance(outputs, dict) else None
        if not torch.is_tensor(aux):  # None, or transformers' ``0`` when no router logits were recorded
            return None
        unwrapped = self.accelerator.unwrap_model(model)
        config = getattr(unwrapped, "config", None)
        coef = None
        for owner in (unwrapped, config, getattr(config, "text_config", None)):
            for key in ("router_aux_loss_coef", "aux_loss_coef"):
                value = getattr(owner, key, None) if owner is not None else None
                if coef is None and isinstance(value, (int, float)) and not isinstance(value, bool):
                    coef = float(value)
        if coef is None:
            raise CotbalConfigError(
                f"loss: cotbal: the model ({type(unwrapped).__name__}) returns a router aux_loss but no "
                "router_aux_loss_coef / aux_loss_coef was found on it or its config; set output_router_logits: "
                "false in its config.json to train without the aux loss, or report the model to cotbal_plugin."
            )
        if coef == 0.0:
            return None
        return coef * aux * self._cb_aux_scale()

    def _cb_aux_scale(self) -> float:
        """Factor on one micro-batch's ``coef × aux_loss`` in the loss handed to backward, as in stock training.

        A stock model adds ``coef × aux`` of the micro-batch to its loss. When the trainer passes
        ``num_items_in_batch`` to the model (``model_accepts_loss_kwargs``: text models), the HF trainer does not
        divide by the accumulation steps and multiplies by the number of processes (``average_tokens_across_devices``),
        which DDP's gradient averaging undoes: the aux terms of the step's micro-batches and ranks are summed.
        Otherwise (LLaMA-Factory sets ``model_accepts_loss_kwargs = False`` for models with a processor) the loss is
        divided by the accumulation steps and averaged over ranks: the aux terms are averaged.
        """
        if getattr(self, "model_accepts_loss_kwargs", False):
            return float(self._cb_world) if getattr(self.args, "average_tokens_across_devices", True) else 1.0
        return 1.0 / self._cb_num_micro

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """VITW loss of one micro-batch (training) or of one evaluation batch (evaluation)."""
        labels = inputs["labels"]
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        training = bool(model.training)
        device = labels.device
        weights = self._cb_loss_weights(training and self._cb_denom is not None, labels, device)
        outputs, weighted_sum, nll_sums, counts = self._cb_forward(model, model_inputs, labels, weights)
        if training and self._cb_denom is not None:
            loss = weighted_sum.to(torch.float32)  # the weights carried the normalisation (_cb_loss_weights)
            aux = self._cb_aux_loss(model, outputs)
            if aux is not None:  # already scaled like stock's: added after the VITW scale
                loss = loss + aux.to(device=loss.device, dtype=torch.float32)
            self._cb_log = _on(self._cb_log, nll_sums.device) + torch.cat([nll_sums, counts])
            if self.cotbal.weighting in OBSERVING_WEIGHTINGS:
                n = self._cb_n
                self._cb_pending = _on(self._cb_pending, nll_sums.device) + torch.cat([nll_sums[:n], counts[:n]])
        else:  # evaluation (or a forward outside the training loop): λ fixed, normalised within the batch
            denom = vitw_denominator(counts, weights.to(counts.device))
            loss = (weighted_sum / denom).to(torch.float32)
            if not training:
                self._cb_eval = _on(self._cb_eval, nll_sums.device) + torch.cat([nll_sums, counts])
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
    ) -> Any:
        """Evaluation with the weighted loss; labels handed to metrics are plain token ids."""
        loss, generated, labels = super().prediction_step(
            model, inputs, prediction_loss_only=prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs
        )
        if isinstance(labels, torch.Tensor):
            labels = strip_task_ids(labels)
        return loss, generated, labels

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """HF's loop; then ``<prefix>_loss`` becomes eq. 2 over the whole evaluation set (fixed λ, all ranks) and
        ``<prefix>_task_loss/<task>`` the token-mean NLL of each task."""
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        self._cb_eval = torch.zeros(2 * self._cb_m, dtype=torch.float64)
        output = super().evaluation_loop(*args, **kwargs)
        m = self._cb_m
        host = self._cb_reduce(self._cb_eval.to(self.args.device)).cpu().numpy()
        sums, counts = host[:m], host[m:]
        if counts.sum() > 0 and output.metrics is not None:
            w = self._cb_eval_weights_np
            output.metrics[f"{prefix}_loss"] = float((w * sums).sum() / (w * counts).sum())
            for i, task in enumerate(self.cotbal.all_tasks):
                if counts[i] > 0:
                    output.metrics[f"{prefix}_task_loss/{task}"] = float(sums[i] / counts[i])
        self._cb_eval = torch.zeros(2 * m, dtype=torch.float64)
        return output

    # ------------------------------------------------------------------------ after each optimizer step
    def _maybe_log_save_evaluate(self, *args: Any, **kwargs: Any) -> None:
        control = self.control
        if control.should_log or control.should_save or control.should_evaluate or control.should_training_stop:
            self._cb_flush_pending()
        return super()._maybe_log_save_evaluate(*args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add ``task_loss/<task>`` (token-mean NLL over the logging window, all ranks) and ``task_weight/<task>``."""
        if "loss" in logs and hasattr(self, "cotbal"):
            m = self._cb_m
            host = self._cb_reduce(self._cb_log.to(self.args.device)).cpu().numpy()
            for i, task in enumerate(self.cotbal_tasks):
                if host[m + i] > 0:
                    logs[f"task_loss/{task}"] = float(host[i] / host[m + i])
            for i, task in enumerate(self.cotbal_tasks):
                logs[f"task_weight/{task}"] = float(self._cb_weights_np[i])
            self._cb_log = torch.zeros(2 * m, dtype=torch.float64)
        super().log(logs, *args, **kwargs)

    # ------------------------------------------------------------------------------------------ checkpoints
    def _cotbal_state_payload(self) -> dict[str, Any]:
        """JSON state of the weighting, written into ``trainer_state.json`` at every checkpoint."""
        return {
            "format": STATE_FORMAT,
            "tasks": list(self.cotbal_tasks),
            "weighting": self.cotbal.weighting,
            "tla_variant": self.cotbal.tla_variant,
            "last_weights": self._cb_weights_np.tolist(),
            "state": self.cotbal_weighting.state_dict(),
        }

    def _load_callback_state(self) -> None:
        """HF restores callback states only when asked to; ours is restored by the plugin itself (always)."""
        stored = self.state.stateful_callbacks
        if not isinstance(stored, dict):
            stored = self.state.stateful_callbacks = {}
        entry = stored.pop(STATE_KEY, None)
        try:
            super()._load_callback_state()
        finally:
            # a checkpoint without our entry (written without loss: cotbal, or by 0.1.0) still needs the key: HF
            # updates stateful_callbacks[name] in place at the next save
            stored[STATE_KEY] = entry if entry is not None else {"args": {}, "attributes": {"payload": {}}}

    def _cb_find_payload(self) -> tuple[dict[str, Any] | None, str]:
        """The weighting state of the checkpoint being resumed, and where it was found (for messages)."""
        where = self._cb_resume_path or os.path.join(
            self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        entry = (self.state.stateful_callbacks or {}).get(STATE_KEY)
        if isinstance(entry, list):
            entry = entry[-1] if entry else None
        if isinstance(entry, dict):
            payload = entry.get("attributes", {}).get("payload")
            if payload:
                return payload, os.path.join(where, "trainer_state.json")
        legacy = os.path.join(where, LEGACY_STATE_FILE)
        if os.path.isfile(legacy):
            with open(legacy, encoding="utf-8") as f:
                return json.load(f), legacy
        return None, where

    def _cb_restore_state(self) -> None:
        """Restore the weighting state of the checkpoint this run resumes from (first step of a resumed run)."""
        self._cb_restored = True
        if self.state.global_step == 0:
            return
        payload, where = self._cb_find_payload()
        if payload is None:
            message = (
                f"resume: checkpoint {where!r} holds no CoTBal weighting state: it was written by a run without "
                "loss: cotbal (or by a plugin older than 0.1.0)."
            )
            if self.cotbal.stateful:
                raise CotbalConfigError(
                    f"{message} cotbal_weighting: {self.cotbal.weighting} needs its history / random state to "
                    "continue exactly. Resume from a checkpoint of a loss: cotbal run with this weighting, or start "
                    "over (overwrite_output_dir: true)."
                )
            note = f"cotbal_weighting: {self.cotbal.weighting} keeps no state; continuing."
            logger.warning(f"{message} {note}")
            return
        if payload.get("tasks") != self.cotbal_tasks:
            raise CotbalConfigError(
                f"resume: {where} was written for tasks {payload.get('tasks')}, but this run trains tasks "
                f"{self.cotbal_tasks} (order matters: it is the order of `dataset:`). Use the same datasets as the "
                "interrupted run, or start over (overwrite_output_dir: true)."
            )
        if payload.get("weighting") != self.cotbal.weighting:
            raise CotbalConfigError(
                f"resume: {where} was written with cotbal_weighting: {payload.get('weighting')}, but this run uses "
                f"cotbal_weighting: {self.cotbal.weighting}. Resume with the same weighting, or start over."
            )
        saved_variant = payload.get("tla_variant", "step")
        if saved_variant != self.cotbal.tla_variant:
            raise CotbalConfigError(
                f"resume: {where} was written with cotbal_tla_variant: {saved_variant}, but this run uses "
                f"{self.cotbal.tla_variant}."
            )
        try:
            self.cotbal_weighting.load_state_dict(payload["state"])
        except (KeyError, TypeError, ValueError) as err:
            raise CotbalConfigError(f"resume: the weighting state in {where} cannot be restored: {err}") from None
        self._cb_weights_np = np.asarray(payload["last_weights"], dtype=np.float64)
