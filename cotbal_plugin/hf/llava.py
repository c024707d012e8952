"""Models of the original LLaVA codebase (and its forks), which splice the image features in inside ``forward``.

``LlavaLlamaForCausalLM`` (github.com/haotian-liu/LLaVA, and forks such as the CoTBal authors') receives one
``IMAGE_TOKEN_INDEX`` placeholder per image in ``input_ids``; its ``forward`` calls
``prepare_inputs_labels_for_multimodal``, which replaces each placeholder by the image's patch features, inserts
ignored labels there, drops padding, truncates to ``config.tokenizer_model_max_length`` and re-pads. Its logits are
therefore longer than the collated labels. The VITW loss needs labels aligned with the logits, so for such a model
the trainer calls ``prepare_inputs_labels_for_multimodal`` itself (with the task-encoded labels, which it moves
around like any label) and runs the model on the resulting ``inputs_embeds`` — exactly what ``forward`` does when
``inputs_embeds`` is given. HF's ``LlavaForConditionalGeneration`` needs none of this: its processor expands the
image tokens in ``input_ids`` already.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..task_labels import IGNORE_INDEX
from ..weights_file import CotbalConfigError

PREPARE = "prepare_inputs_labels_for_multimodal"
_CORE_ARGS = ("input_ids", "position_ids", "attention_mask", "past_key_values", "labels")


def splices_images(model: Any, inputs: dict[str, Any]) -> Any:
    """The model's ``prepare_inputs_labels_for_multimodal`` if this batch needs it (images given, no embeddings)."""
    prepare = getattr(model, PREPARE, None)
    if not callable(prepare) or inputs.get("images") is None or inputs.get("inputs_embeds") is not None:
        return None
    return prepare


def valid_targets(labels: torch.Tensor) -> torch.Tensor:
    """Number of supervised next-token targets (labels ≠ -100 after the first position), on the labels' device."""
    return (labels[..., 1:] != IGNORE_INDEX).sum()


def splice_inputs(prepare: Any, inputs: dict[str, Any], labels: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
    """Run ``prepare_inputs_labels_for_multimodal`` and return (model inputs with ``inputs_embeds``, aligned labels).

    Works with both signatures of the LLaVA codebase: ``(input_ids, position_ids, attention_mask, past_key_values,
    labels, images[, image_sizes])`` returning six values, and the older one without ``position_ids`` returning five.
    Extra batch keys the method accepts (``image_sizes``, ``modalities``) are passed to it by name.
    """
    params = inspect.signature(prepare).parameters
    values = {
        "input_ids": inputs.get("input_ids"),
        "position_ids": inputs.get("position_ids"),
        "attention_mask": inputs.get("attention_mask"),
        "past_key_values": None,
        "labels": labels,
    }
    consumed = set(_CORE_ARGS)
    for name in params:
        if name not in values and name in inputs:
            values[name] = inputs[name]
            consumed.add(name)
    call = {k: v for k, v in values.items() if k in params}
    required = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in call
    ]
    if required or "labels" not in call:
        raise CotbalConfigError(
            f"cotbal_plugin: {type(getattr(prepare, '__self__', prepare)).__name__}.{PREPARE} takes "
            f"{list(params)}; expected the LLaVA codebase's (input_ids, position_ids, attention_mask, "
            "past_key_values, labels, images, ...)."
        )
    out = prepare(**call)
    if len(out) == 6:
        _, position_ids, attention_mask, _, embeds, new_labels = out
    elif len(out) == 5:
        _, attention_mask, _, embeds, new_labels = out
        position_ids = None
    else:
        raise CotbalConfigError(
            f"cotbal_plugin: {PREPARE} returned {len(out)} values; expected the LLaVA codebase's 5 or 6."
        )
    model_inputs = {k: v for k, v in inputs.items() if k not in consumed}
    model_inputs["inputs_embeds"] = embeds
    if attention_mask is not None:
        model_inputs["attention_mask"] = attention_mask
    if position_ids is not None:
        model_inputs["position_ids"] = position_ids
    if embeds is None:  # no image in this batch after all: the method returned the inputs unchanged
        model_inputs.pop("inputs_embeds")
        model_inputs["input_ids"] = inputs.get("input_ids")
        return model_inputs, labels
    return model_inputs, new_labels
