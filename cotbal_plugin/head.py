"""Model-level interception of the output layer: the fused VITW loss inside an unmodified HF model's forward.

    support = fused_head_support(model)            # None, or one line saying why the fused path cannot serve
    if support is None:
        with fused_output_head(model, encoded_labels, task_weights, num_tasks) as head:
            outputs = model(**inputs_without_labels)
        weighted_sum, nll_sums, counts = head.result(outputs)
    else:
        ...  # full-logits path (cotbal_plugin.loss.weighted_nll_sum) and a warning carrying `support`

How: inside the ``with`` block the output layer's *instance* ``forward`` (``get_output_embeddings()``, found through
PEFT's ``get_base_model()`` and DDP / DeepSpeed ``.module`` wrappers) is replaced by one that computes
:func:`cotbal_plugin.fused_ce.fused_weighted_nll_sum` from its input hidden states and its own weight, and returns
a *carrier*: the scalar weighted sum expanded (no copy) to ``[batch, length, 1]`` — shaped like the logits with a
vocabulary of 1. The model then returns that carrier as its logits; :meth:`FusedHead.result` reads the weighted sum
back from it. Because ``nn.Module.__call__`` still runs, every hook registered on the layer fires (DeepSpeed ZeRO-3
gathers the weight before ``forward`` and wraps the output for its pre-backward hook, PEFT, LLaMA-Factory's
``upcast_lmhead_output``), and the loss's gradient flows *through the layer's output* as it does in the unfused
model. With accelerate's hooks (``_hf_hook``), the wrapped ``_old_forward`` is replaced instead, so the hook keeps
moving tensors between devices.

What cannot be served is refused up front by :func:`fused_head_support` (one line, for the trainer's warning) and
at run time by :class:`FusedHeadUnsupported`: an output layer that is not a plain ``torch.nn.Linear`` (LoRA on
``lm_head``, PEFT ``modules_to_save``, quantised layers), logit soft-capping or scaling applied after the layer,
a forward that never calls the layer (which would otherwise look like a zero loss), a layer called twice, hidden
states not aligned with the labels, logits transformed or detached by the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from .fused_ce import fused_weighted_nll_sum

_WRAPPER_CLASSES = {
    "DistributedDataParallel",
    "DeepSpeedEngine",
    "PipelineEngine",
    "FullyShardedDataParallel",
    "OptimizedModule",  # torch.compile
}
_ACTIVE_ATTR = "_cotbal_fused_head_active"


class FusedHeadUnsupported(RuntimeError):
    """The fused output head cannot serve this model (the message says why, in one line)."""


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The HF model inside DDP / DeepSpeed / FSDP / ``torch.compile`` wrappers and PEFT's ``PeftModel``."""
    current = model
    for _ in range(16):
        name = type(current).__name__
        if name in _WRAPPER_CLASSES:
            inner = getattr(current, "_orig_mod", None) if name == "OptimizedModule" else current.module
        elif callable(getattr(type(current), "get_base_model", None)):  # peft.PeftModel and subclasses
            inner = current.get_base_model()
        else:
            return current
        if not isinstance(inner, torch.nn.Module) or inner is current:
            return current
        current = inner
    return current


def find_output_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's output layer (``get_output_embeddings()`` of the unwrapped model), or None."""
    base = unwrap_model(model)
    getter = getattr(base, "get_output_embeddings", None)
    if not callable(getter):
        return None
    try:
        layer = getter()
    except (AttributeError, NotImplementedError):
        return None
    return layer if isinstance(layer, torch.nn.Module) else None


def _configs(model: torch.nn.Module) -> list[Any]:
    config = getattr(model, "config", None)
    if config is None:
        return []
    found = [config]
    get_text = getattr(config, "get_text_config", None)
    if callable(get_text):
        try:
            text = get_text(decoder=True)
        except TypeError:
            text = get_text()
        if text is not None and text is not config:
            found.append(text)
    return found


def _logit_transform(model: torch.nn.Module) -> str | None:
    """Name of a post-layer logit transform the model applies (soft-capping, scaling), else None."""
    for config in _configs(model):
        cap = getattr(config, "final_logit_softcapping", None)
        if cap not in (None, 0, 0.0):
            return f"final_logit_softcapping={cap}"
        scaling = getattr(config, "logits_scaling", None)
        if scaling not in (None, 1, 1.0):
            return f"logits_scaling={scaling}"
        scale = getattr(config, "logit_scale", None)
        if scale not in (None, 1, 1.0):
            return f"logit_scale={scale}"
    scale = getattr(model, "logit_scale", None)
    if scale is not None and not isinstance(scale, torch.nn.Module):
        return f"logit_scale={scale}"
    return None


def _patch_target(layer: torch.nn.Module) -> str | None:
    """Instance attribute to replace: ``forward``, or accelerate's ``_old_forward``; None if someone else patched."""
    if hasattr(layer, "_hf_hook") and "_old_forward" in layer.__dict__:
        return "_old_forward"
    if "forward" in layer.__dict__:
        return None
    return "forward"


def fused_head_support(model: torch.nn.Module) -> str | None:
    """None when :func:`fused_output_head` can serve ``model``, else one line saying why not (for a warning).

    Checks what can be known before running the model; the rest (the layer is really called, once, on hidden
    states aligned with the labels, and its output reaches the model's logits untouched) is checked at run time
    and raises :class:`FusedHeadUnsupported`.
    """
    if type(model).__name__ == "DataParallel":
        return (
            "model is wrapped in torch.nn.DataParallel (replicas copy the patched layer); use one device per process"
        )
    base = unwrap_model(model)
    name = type(base).__name__
    layer = find_output_layer(model)
    if layer is None:
        return f"{name} has no accessible output layer (get_output_embeddings() returned None)"
    if type(layer) is not torch.nn.Linear:
        kind = type(layer).__module__ + "." + type(layer).__qualname__
        why = " (PEFT wraps it: LoRA on lm_head or modules_to_save)" if kind.startswith("peft.") else ""
        return f"{name}'s output layer is a {kind}{why}, not a plain torch.nn.Linear"
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor) or not weight.dtype.is_floating_point:
        dtype = getattr(weight, "dtype", None)
        return f"{name}'s output layer weight is not a floating-point tensor ({dtype}; quantised?)"
    transform = _logit_transform(base)
    if transform is not None:
        return f"{name} transforms its logits after the output layer ({transform}); the fused loss would skip that"
    if getattr(layer, _ACTIVE_ATTR, False):
        return f"{name}'s output layer is already inside fused_output_head"
    if _patch_target(layer) is None:
        return f"{name}'s output layer forward is already replaced on the instance by another patch"
    return None


def _extract_logits(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict):  # transformers' ModelOutput is a dict
        return outputs.get("logits")
    if isinstance(outputs, tuple | list) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    return getattr(outputs, "logits", None)


class FusedHead:
    """State of one :func:`fused_output_head` block: what the patched layer computed, read by :meth:`result`."""

    def __init__(
        self,
        layer: torch.nn.Module,
        model_name: str,
        encoded_labels: torch.Tensor,
        task_weights: torch.Tensor,
        num_tasks: int,
        chunk_tokens: int | None,
    ) -> None:
        self.layer = layer
        self.model_name = model_name
        self.encoded_labels = encoded_labels
        self.task_weights = task_weights
        self.num_tasks = num_tasks
        self.chunk_tokens = chunk_tokens
        self.calls = 0
        self._sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def forward(self, hidden: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Replacement of the output layer's forward: fused sums from ``hidden``, returns the carrier."""
        self.calls += 1
        if self.calls > 1:
            raise FusedHeadUnsupported(
                f"{self.model_name} called its output layer more than once in one forward; the fused loss covers "
                "one call — use the full-logits path for this model."
            )
        if args or kwargs:
            raise FusedHeadUnsupported(
                f"{self.model_name} called its output layer with extra arguments; the fused loss expects "
                "layer(hidden_states) — use the full-logits path for this model."
            )
        if hidden.shape[:-1] != self.encoded_labels.shape:
            raise FusedHeadUnsupported(
                f"{self.model_name} fed its output layer hidden states {tuple(hidden.shape)} that do not line up "
                f"with the labels {tuple(self.encoded_labels.shape)} (logits_to_keep, or a sequence changed inside "
                "the model); use the full-logits path for this model."
            )
        layer = self.layer
        weighted_sum, nll_sums, counts = fused_weighted_nll_sum(
            hidden,
            layer.weight,
            self.encoded_labels.to(hidden.device, non_blocking=True),
            self.task_weights.to(hidden.device, non_blocking=True),
            self.num_tasks,
            bias=layer.bias,
            chunk_tokens=self.chunk_tokens,
        )
        self._sums = (weighted_sum, nll_sums, counts)
        return weighted_sum.expand(*hidden.shape[:-1], 1)

    def result(self, outputs: Any, validate: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weighted_sum, nll_sums, counts)`` as :func:`cotbal_plugin.loss.weighted_nll_sum` returns them.

        Args:
            outputs: what the model returned (a ``ModelOutput`` / dict with ``logits``, a tuple whose first item
                is the logits, or the logits tensor). ``weighted_sum`` is read from those logits — the carrier —
                so its gradient flows back through the output layer's output and every hook on it.
            validate: also check that the carrier reached the logits with its value intact (one host-device
                sync; worth doing on the first step of a run to catch a model that rescales its logits in a way
                :func:`fused_head_support` cannot see).

        Raises:
            FusedHeadUnsupported: the layer was never called, or the model changed, cast or detached the carrier.
        """
        if self._sums is None:
            raise FusedHeadUnsupported(
                f"{self.model_name}'s forward never called its output layer, so the fused loss was not computed "
                "(it is not zero); use the full-logits path for this model."
            )
        weighted_sum, nll_sums, counts = self._sums
        logits = _extract_logits(outputs)
        expected = tuple(self.encoded_labels.shape) + (1,)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise FusedHeadUnsupported(
                f"{self.model_name} did not return the output layer's result as its logits (expected {expected}, "
                f"got {got}); use the full-logits path for this model."
            )
        if logits.dtype != torch.float32:
            raise FusedHeadUnsupported(
                f"{self.model_name} cast its logits to {logits.dtype}; the fused loss would lose precision — use "
                "the full-logits path for this model."
            )
        carried = logits[(0,) * logits.dim()]
        if weighted_sum.requires_grad and not carried.requires_grad:
            raise FusedHeadUnsupported(
                f"{self.model_name} detached its logits from the output layer; the fused loss would get no gradient."
            )
        if validate and not torch.allclose(carried.detach(), weighted_sum.detach(), rtol=1e-6, atol=0.0):
            before, after = float(weighted_sum.detach()), float(carried.detach())
            raise FusedHeadUnsupported(
                f"{self.model_name} transformed its logits after the output layer ({before:.6g} → {after:.6g}); "
                "use the full-logits path for this model."
            )
        return carried, nll_sums, counts


@contextmanager
def fused_output_head(
    model: torch.nn.Module,
    encoded_labels: torch.Tensor,
    task_weights: torch.Tensor,
    num_tasks: int,
    chunk_tokens: int | None = None,
) -> Iterator[FusedHead]:
    """Run the model's forward with its output layer computing the fused VITW sums (see the module docstring).

    Args:
        model: an HF model, possibly PEFT-wrapped and / or inside DDP / DeepSpeed; call it inside the block
            WITHOUT ``labels`` (so the model does not compute a loss of its own).
        encoded_labels: ``[batch, length]`` task-encoded labels of the batch (position t predicts label t+1).
        task_weights: ``float32[num_tasks]`` λ (tip: divided by the step's denominator and times the number of
            processes, so the weighted sum is the loss and its backward multiplies by exactly 1).
        num_tasks: number of tasks N.
        chunk_tokens: tokens per chunk (default :func:`cotbal_plugin.fused_ce.auto_chunk_tokens`).

    Yields:
        a :class:`FusedHead`; call ``head.result(outputs)`` after the forward.

    Raises:
        FusedHeadUnsupported: :func:`fused_head_support` gave a reason (the same line).
    """
    reason = fused_head_support(model)
    if reason is not None:
        raise FusedHeadUnsupported(reason)
    layer = find_output_layer(model)
    assert layer is not None
    attr = _patch_target(layer)
    assert attr is not None
    head = FusedHead(layer, type(unwrap_model(model)).__name__, encoded_labels, task_weights, num_tasks, chunk_tokens)
    had_attr = attr in layer.__dict__
    previous = layer.__dict__.get(attr)
    setattr(layer, attr, head.forward)
    setattr(layer, _ACTIVE_ATTR, True)
    try:
        yield head
    finally:
        if had_attr:
            setattr(layer, attr, previous)
        else:
            delattr(layer, attr)
        delattr(layer, _ACTIVE_ATTR)
