"""Tiny language and vision-language models built locally (no download), for tests, benchmarks and the demo.

- :func:`build_tiny_llama`: a 2-layer ``LlamaForCausalLM`` with a byte-level BPE tokenizer trained on the given
  texts; works with LLaMA-Factory's ``template: default``.
- :func:`build_tiny_llava`: a ``LlavaForConditionalGeneration`` with a tiny CLIP vision tower (28×28 images,
  4 patches) and the same kind of tokenizer plus the ``<image>`` token; works with ``template: llava``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


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
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(_base_texts(texts), vocab_size, ["<image>"])
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=14,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=4,
        projection_dim=hidden_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
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
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=14,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=4,
        projection_dim=hidden_size,
    )
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
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=vocab_size - 1,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> object:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (+ the usual chat words), ``template:
    default``-compatible; its length may stay below ``vocab_size`` when the texts are few (a model's vocabulary can be
    larger than its tokenizer: the extra rows are simply never targets)."""
    return _train_tokenizer(_base_texts(texts), vocab_size, [])
