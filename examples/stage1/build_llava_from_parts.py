"""Assemble an untrained LLaVA-1.5 ("stage 0") from its parts, for projector pre-training with LLaMA-Factory.

The paper fine-tunes from Vicuna-1.5 plus a stage-1 projector (LLaVA-1.5's recipe), not from the instruction-tuned
``llava-hf/llava-1.5-7b-hf``. LLaMA-Factory trains a LLaVA model but does not build one from a language model and
a vision tower, so this script does that with transformers alone:

* the language model (``lmsys/vicuna-7b-v1.5``) and the vision tower (``openai/clip-vit-large-patch14-336``) keep
  their pretrained weights; the tokenizer gains ``<image>`` (and ``<pad>`` when it has no pad token), the embedding
  matrix is resized to a multiple of 64 (as in ``llava-hf/llava-1.5-7b-hf``);
* the projector is LLaVA-1.5's 2-layer MLP with GELU, freshly initialised (``torch.nn.Linear``'s default, as in
  the original LLaVA code), seeded by ``--seed``;
* features come from the second-to-last CLIP layer without the CLS token (``vision_feature_layer: -2``,
  ``vision_feature_select_strategy: default``), 24 × 24 = 576 image tokens at 336 px.

The modules are moved into the LLaVA model rather than copied, so memory holds one copy of the weights (~14 GB in
bf16 for 7B). Then either

* train the projector alone with ``examples/stage1/llava1_5_7b_pretrain.yaml`` (LCS-558K, ``freeze_language_model``
  + ``freeze_vision_tower``), or
* load the stage-1 projector LLaVA-1.5 released (``--projector .../mm_projector.bin`` from
  ``liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5``; the CoTBal authors' scripts start from it with
  ``--pretrain_mm_mlp_adapter``): the output is then the paper's starting point, no stage-1 training needed,

and use the folder as ``model_name_or_path`` of the probe and final-training YAMLs.

    python examples/stage1/build_llava_from_parts.py --language-model lmsys/vicuna-7b-v1.5 \\
        --vision-tower openai/clip-vit-large-patch14-336 [--projector mm_projector.bin] --out models/llava-1.5-7b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

IMAGE_TOKEN = "<image>"


# LLaVA's mm_projector.bin (nn.Sequential(Linear, GELU, Linear)) → transformers' LlavaMultiModalProjector
PROJECTOR_KEYS = {"0.weight": "linear_1.weight", "0.bias": "linear_1.bias", "2.weight": "linear_2.weight",
                  "2.bias": "linear_2.bias"}  # fmt: skip


def load_projector(path: str | Path) -> dict:
    """The state dict of LLaVA's released ``mm_projector.bin`` in ``LlavaMultiModalProjector`` names."""
    import torch

    raw = torch.load(str(path), map_location="cpu", weights_only=True)
    out = {}
    for key, value in raw.items():
        suffix = key.split("mm_projector.")[-1]
        if suffix not in PROJECTOR_KEYS:
            raise ValueError(f"{path}: unexpected key {key!r}; expected model.mm_projector.{{0,2}}.{{weight,bias}}")
        out[PROJECTOR_KEYS[suffix]] = value
    if set(out) != set(PROJECTOR_KEYS.values()):
        raise ValueError(f"{path}: missing projector weights {sorted(set(PROJECTOR_KEYS.values()) - set(out))}")
    return out


def build(
    language_model: str,
    vision_tower: str,
    out: str | Path,
    dtype: str = "bfloat16",
    seed: int = 0,
    projector: str | Path | None = None,
) -> Path:
    """Write the assembled model, tokenizer and processor to ``out``; returns ``out``.

    ``projector``: LLaVA's released stage-1 ``mm_projector.bin`` (else the projector is freshly initialised).
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionModel,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    torch_dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    added = {"additional_special_tokens": [IMAGE_TOKEN]}
    if tokenizer.pad_token is None:
        added["pad_token"] = "<pad>"
    tokenizer.add_special_tokens(added)
    lm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch_dtype)
    lm.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    vision = CLIPVisionModel.from_pretrained(vision_tower, dtype=torch_dtype)
    image_processor = CLIPImageProcessor.from_pretrained(vision_tower)

    config = LlavaConfig(
        vision_config=vision.config,
        text_config=lm.config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    config.pad_token_id = tokenizer.pad_token_id
    with torch.device("meta"):  # no second copy of the weights: the pretrained modules are moved in below
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    torch.manual_seed(seed)
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(torch_dtype)
    if projector is not None:
        model.model.multi_modal_projector.load_state_dict(load_projector(projector))
    leftovers = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if leftovers:
        raise RuntimeError(f"parameters left uninitialised: {leftovers[:5]}")
    model.generation_config = lm.generation_config

    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token=IMAGE_TOKEN,
    )
    out = Path(out)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--language-model", required=True, help="causal LM (e.g. lmsys/vicuna-7b-v1.5)")
    parser.add_argument("--vision-tower", required=True, help="CLIP vision model (openai/clip-vit-large-patch14-336)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the projector's initialisation")
    parser.add_argument("--projector", help="LLaVA's released stage-1 mm_projector.bin (skips stage-1 training)")
    args = parser.parse_args(argv)
    out = build(args.language_model, args.vision_tower, args.out, args.dtype, args.seed, args.projector)
    if args.projector:
        print(f"LLaVA with the released stage-1 projector written to {out}: use it as model_name_or_path")
    else:
        print(f"stage-0 LLaVA written to {out}; train its projector with examples/stage1/llava1_5_7b_pretrain.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
