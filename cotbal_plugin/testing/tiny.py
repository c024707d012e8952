"""Tiny language and vision-language models built locally (no download), for tests, benchmarks and the demo.

- :func:`build_tiny_llama`: a 2-layer ``LlamaForCausalLM`` with a byte-level BPE tokenizer trained on the given
  texts; works with LLaMA-Factory's ``template: default``.
- :func:`build_tiny_llava`: a ``LlavaForConditionalGeneration`` with a tiny CLIP vision tower (28×28 images,
  4 patches) and the same kind of tokenizer plus the ``<image>`` token; works with ``template: llava``.
- :func:`build_tiny_moe`: a 2-layer ``MixtralForCausalLM`` (4 experts, top-2 routing) with the tiny Llama's kind of
  tokenizer; works with ``template: default`` and LLaMA-Factory's ``moe_aux_loss_coef``.
- :func:`build_tiny_qwen2_vl`: a ``Qwen2VLForConditionalGeneration`` (1-block vision tower, 2-layer text model) with
  a ``Qwen2VLProcessor`` whose tokenizer carries Qwen2-VL's special tokens; works with ``template: qwen2_vl``
  (56×56 images → 16 patches → 4 image tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def _train_tokenizer(texts: Iterable[str], vocab_size: int, extra_special: list[str]) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + extra_special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=extra_special or None,
    )
    fast.chat_template = None
    return fast


def _base_texts(texts: Iterable[str]) -> list[str]:
    common = [
        "Human: Assistant: USER: ASSISTANT: A chat between a curious human and an artificial intelligence "
        "assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.",
        "0 1 2 3 4 5 6 7 8 9 [ ] , . ? ! : ; ( ) - + = the a an is of and what which how many color shape",
    ]
    return common + list(texts)


def _decoder_kwargs(tokenizer: Any, hidden_size: int, num_layers: int) -> dict[str, Any]:
    """Config keys shared by the tiny decoder-only models (4 heads, 2 KV heads, untied output layer)."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }


def build_tiny_llama(
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    vocab_size: int = 512,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Build and save a tiny Llama causal LM with a BPE tokenizer trained on ``texts``; returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(_base_texts(texts), vocab_size, [])
    config = LlamaConfig(**_decoder_kwargs(tokenizer, hidden_size, num_layers))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _llava_config(text: Any, image_size: int, hidden_size: int, image_token_id: int) -> Any:
    """A ``LlavaConfig`` around ``text``: a one-layer CLIP tower with 14-pixel patches (one image token per patch)."""
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=14,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=4,
        projection_dim=hidden_size,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )


def build_tiny_llava(
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    vocab_size: int = 512,
    hidden_size: int = 32,
    num_layers: int = 2,
    image_size: int = 28,
    seed: int = 0,
) -> Path:
    """Build and save a tiny LLaVA (CLIP vision tower + Llama) with its processor; returns the folder."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        LlamaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(_base_texts(texts), vocab_size, ["<image>"])
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    text = LlamaConfig(**{**_decoder_kwargs(tokenizer, hidden_size, num_layers), "max_position_embeddings": 4096})
    config = _llava_config(text, image_size, hidden_size, image_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_moe(
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    vocab_size: int = 512,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_experts: int = 4,
    experts_per_token: int = 2,
    output_router_logits: bool = False,
    router_aux_loss_coef: float = 0.001,
    seed: int = 0,
) -> Path:
    """Build and save a tiny Mixtral (sparse MoE) causal LM with a BPE tokenizer trained on ``texts``.

    ``output_router_logits`` and ``router_aux_loss_coef`` are written into the saved config; LLaMA-Factory overrides
    both when the training YAML sets ``moe_aux_loss_coef`` (``configure_moe``), and leaves them as saved otherwise.
    """
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(_base_texts(texts), vocab_size, [])
    config = MixtralConfig(
        **_decoder_kwargs(tokenizer, hidden_size, num_layers),
        num_local_experts=num_experts,
        num_experts_per_tok=experts_per_token,
        output_router_logits=output_router_logits,
        router_aux_loss_coef=router_aux_loss_coef,
    )
    torch.manual_seed(seed)
    model = MixtralForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


QWEN2_VL_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def build_tiny_qwen2_vl(
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    vocab_size: int = 512,
    hidden_size: int = 32,
    num_layers: int = 2,
    image_size: int = 56,
    seed: int = 0,
) -> Path:
    """Build and save a tiny Qwen2-VL (vision tower + Qwen2 text model) with its processor; returns the folder.

    The image processor keeps images of ``image_size``² pixels as they are (``min_pixels`` = ``max_pixels`` =
    ``image_size``²): with 14-pixel patches and 2×2 merging a 56×56 image gives 16 patches and 4 image tokens.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chat = ["system user assistant You are a helpful assistant.", "\n".join(QWEN2_VL_SPECIAL)]
    tokenizer = _train_tokenizer(_base_texts(chat + list(texts)), vocab_size, QWEN2_VL_SPECIAL)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN2_VL_SPECIAL}
    heads = 4
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": num_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        # multimodal RoPE: the head_dim / 2 rotary frequencies split into (time, height, width) sections
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": _mrope(hidden_size, heads)},
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    vision = {
        "depth": 1,
        "embed_dim": hidden_size,
        "hidden_size": hidden_size,
        "num_heads": heads,
        "mlp_ratio": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _mrope(hidden_size: int, heads: int) -> list[int]:
    """Sections (time, height, width) of the ``head_dim / 2`` rotary frequencies: 3/8 each to height and width,
    the rest to time, as Qwen2-VL's ``[16, 24, 24]`` for ``head_dim`` 128 (``[2, 1, 1]`` for ``head_dim`` 8)."""
    half = hidden_size // heads // 2
    if half < 3:
        raise ValueError(f"head_dim {hidden_size // heads} is too small for multimodal RoPE (needs ≥ 6)")
    hw = max(1, 3 * half // 8)
    return [half - 2 * hw, hw, hw]


def tiny_llama_model(
    vocab_size: int = 96, hidden_size: int = 32, num_layers: int = 2, tie_word_embeddings: bool = False, seed: int = 0
) -> object:
    """An in-memory random-init ``LlamaForCausalLM`` (no tokenizer, nothing saved): for model-level unit tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def tiny_llava_model(
    vocab_size: int = 96, hidden_size: int = 32, num_layers: int = 2, image_size: int = 28, seed: int = 0
) -> object:
    """An in-memory random-init ``LlavaForConditionalGeneration`` (CLIP tower, 4 image tokens per 28×28 image).

    The image token id is ``vocab_size - 1``; put ``(image_size // 14) ** 2`` of them per image in ``input_ids``.
    """
    import torch
    from transformers import LlamaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    config = _llava_config(text, image_size, hidden_size, vocab_size - 1)
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> object:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (+ the usual chat words), ``template:
    default``-compatible; its length may stay below ``vocab_size`` when the texts are few (a model's vocabulary can be
    larger than its tokenizer: the extra rows are simply never targets)."""
    return _train_tokenizer(_base_texts(texts), vocab_size, [])
