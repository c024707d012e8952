"""The shape of the LLaVA codebase (github.com/haotian-liu/LLaVA ``llava/train/train.py`` and
``llava/train/llava_trainer.py``), rebuilt small for tests — not its code:

* ``LazySupervisedDataset``: a ``torch.utils.data.Dataset`` over a LLaVA-format JSON list (``image``,
  ``conversations``); ``__getitem__`` loads the image and returns tensors ``input_ids`` / ``labels`` / ``image``
  (prompt masked) — plus, the one line a CoTBal user adds, the record's ``task``;
* ``DataCollatorForSupervisedDataset``: pads ``input_ids`` / ``labels`` with ``pad_sequence``, truncates to
  ``model_max_length``, builds ``attention_mask`` and stacks the images; every other key is dropped;
* ``LLaVATrainer``: a ``Trainer`` with its own train sampler and optimizer parameter groups;
* ``TinyLlavaLlama``: a causal LM that, like ``LlavaLlamaForCausalLM``, takes one ``IMAGE_TOKEN_INDEX``
  placeholder per image and splices the projected image patches in inside ``forward``
  (``prepare_inputs_labels_for_multimodal``), truncating to ``config.tokenizer_model_max_length``.

Two tokenisations: ``expand=True`` for HF's ``LlavaForConditionalGeneration`` (the processor repeats the image
token once per patch, images go in ``pixel_values``), ``expand=False`` for ``TinyLlavaLlama`` (one placeholder,
images in ``images``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200


def write_llava_json(vlm_workspace: Path, out: Path) -> Path:
    """A LLaVA-format training file from the session's two image tasks, interleaved, each record with a task."""
    records = []
    data = vlm_workspace / "data"
    per_task = {t: json.loads((data / f"{t}.json").read_text()) for t in ("color", "describe")}
    for i, pair in enumerate(zip(per_task["color"], per_task["describe"])):
        for task, row in zip(("color", "describe"), pair):
            human, gpt = row["conversations"]
            question = human["value"].replace("<image>", "")
            records.append(
                {
                    "id": f"{task}-{i}",
                    "image": row["images"][0],
                    "conversations": [
                        {"from": "human", "value": "<image>\n" + question},
                        {"from": "gpt", "value": gpt["value"]},
                    ],
                    "task": task,
                }
            )
    out.write_text(json.dumps(records, indent=1))
    return out


class LazySupervisedDataset(torch.utils.data.Dataset):
    """LLaVA's lazy dataset: one record → ``input_ids``, ``labels`` (prompt masked), ``image`` (+ ``task``)."""

    def __init__(self, data_path: Path, image_folder: Path, processor: Any, expand: bool, with_task: bool = True):
        self.list_data_dict = json.loads(Path(data_path).read_text())
        self.image_folder = Path(image_folder)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.expand = expand
        self.with_task = with_task

    def __len__(self) -> int:
        return len(self.list_data_dict)

    def _prompt_ids(self, question: str, pixel: Any, image: Any) -> list[int]:
        before, after = question.split("<image>")
        text = f"USER: {before}<image>{after} ASSISTANT:"
        if self.expand:
            ids = self.processor(text=text, images=image, return_tensors="pt")["input_ids"][0].tolist()
            return [self.tokenizer.bos_token_id] + ids
        left, right = text.split("<image>")
        return (
            [self.tokenizer.bos_token_id]
            + self.tokenizer(left, add_special_tokens=False)["input_ids"]
            + [IMAGE_TOKEN_INDEX]
            + self.tokenizer(right, add_special_tokens=False)["input_ids"]
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        source = self.list_data_dict[i]
        image = Image.open(self.image_folder / source["image"]).convert("RGB")
        pixel = self.processor.image_processor(image, return_tensors="pt")["pixel_values"][0]
        human, gpt = source["conversations"]
        prompt = self._prompt_ids(human["value"], pixel, image)
        answer = self.tokenizer(" " + gpt["value"], add_special_tokens=False)["input_ids"] + [
            self.tokenizer.eos_token_id
        ]
        data_dict = {
            "input_ids": torch.tensor(prompt + answer),
            "labels": torch.tensor([IGNORE_INDEX] * len(prompt) + answer),
            "image": pixel,
        }
        if self.with_task:
            data_dict["task"] = source["task"]  # the one line a CoTBal user adds to LLaVA's __getitem__
        return data_dict


@dataclass
class DataCollatorForSupervisedDataset:
    """LLaVA's collator: pad, truncate to ``model_max_length``, stack images; other keys are dropped."""

    tokenizer: Any
    image_key: str = "images"

    def __call__(self, instances: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = [instance["input_ids"] for instance in instances]
        labels = [instance["labels"] for instance in instances]
        pad = self.tokenizer.pad_token_id
        input_ids = torch.nn.utils.rnn.pad_sequence(input_ids, batch_first=True, padding_value=pad)
        labels = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)
        input_ids = input_ids[:, : self.tokenizer.model_max_length]
        labels = labels[:, : self.tokenizer.model_max_length]
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": input_ids.ne(pad)}
        batch[self.image_key] = torch.stack([instance["image"] for instance in instances])
        return batch


@dataclass
class LlavaTrainingArguments(TrainingArguments):
    """LLaVA's extra training arguments (and its default ``remove_unused_columns=False``)."""

    remove_unused_columns: bool = field(default=False)
    mm_projector_lr: float | None = None
    group_by_modality_length: bool = False
    model_max_length: int = 512


class LLaVATrainer(Trainer):
    """LLaVA's trainer: its own sampler hook and optimizer parameter groups (decay / no decay / projector)."""

    used_own_sampler = False
    used_own_optimizer = False

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        self.used_own_sampler = True
        return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None:
            self.used_own_optimizer = True
            decay = set(self.get_decay_parameter_names(self.model))
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            projector_lr = self.args.mm_projector_lr
            groups = []
            for is_projector in (False, True):
                for with_decay in (True, False):
                    params = [
                        p for n, p in named if (n in decay) == with_decay and ("mm_projector" in n) == is_projector
                    ]
                    group: dict[str, Any] = {"params": params, "weight_decay": self.args.weight_decay * with_decay}
                    if is_projector and projector_lr is not None:
                        group["lr"] = projector_lr
                    groups.append(group)
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)
            self.optimizer = optimizer_cls([g for g in groups if g["params"]], **optimizer_kwargs)
        return self.optimizer


class TinyLlavaLlama(LlamaForCausalLM):
    """A causal LM that splices image patches in inside ``forward``, like the LLaVA codebase's models."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.patch = 14
        self.vision_tower = nn.Linear(3 * self.patch * self.patch, config.hidden_size)  # a frozen-style patchifier
        self.mm_projector = nn.Linear(config.hidden_size, config.hidden_size)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``[n, 3, H, W]`` → ``[n, patches, hidden]``."""
        p = self.patch
        patches = images.unfold(2, p, p).unfold(3, p, p)  # n, 3, h, w, p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(images.size(0), -1, 3 * p * p)
        return self.mm_projector(self.vision_tower(patches))

    def prepare_inputs_labels_for_multimodal(
        self, input_ids, position_ids, attention_mask, past_key_values, labels, images, image_sizes=None
    ):
        """Replace each ``IMAGE_TOKEN_INDEX`` by its image's patch features (labels ignored there), drop padding,
        truncate to ``config.tokenizer_model_max_length``, pad right; the LLaVA codebase's contract."""
        if images is None or input_ids.shape[1] == 1:
            return input_ids, position_ids, attention_mask, past_key_values, None, labels
        features = self.encode_images(images)
        keep = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        if labels is None:
            labels_in = torch.full_like(input_ids, IGNORE_INDEX)
        else:
            labels_in = labels
        embeds, new_labels = [], []
        image_index = 0
        for ids, lab, mask in zip(input_ids, labels_in, keep):
            ids, lab = ids[mask], lab[mask]
            pieces, piece_labels, start = [], [], 0
            for pos in torch.nonzero(ids == IMAGE_TOKEN_INDEX).flatten().tolist() + [len(ids)]:
                pieces.append(self.get_input_embeddings()(ids[start:pos]))
                piece_labels.append(lab[start:pos])
                if pos < len(ids):
                    feat = features[image_index]
                    image_index += 1
                    pieces.append(feat)
                    piece_labels.append(torch.full((feat.size(0),), IGNORE_INDEX, dtype=lab.dtype))
                start = pos + 1
            embeds.append(torch.cat(pieces))
            new_labels.append(torch.cat(piece_labels))
        limit = getattr(self.config, "tokenizer_model_max_length", None)
        if limit is not None:
            embeds = [e[:limit] for e in embeds]
            new_labels = [x[:limit] for x in new_labels]
        width = max(e.size(0) for e in embeds)
        batch = len(embeds)
        out_embeds = embeds[0].new_zeros(batch, width, embeds[0].size(1))
        out_labels = torch.full((batch, width), IGNORE_INDEX, dtype=labels_in.dtype)
        out_mask = torch.zeros(batch, width, dtype=torch.bool)
        out_pos = torch.zeros(batch, width, dtype=torch.long)
        for b, (e, lab) in enumerate(zip(embeds, new_labels)):
            n = e.size(0)
            out_embeds[b, :n], out_labels[b, :n], out_mask[b, :n] = e, lab, True
            out_pos[b, :n] = torch.arange(n)
        mask_out = out_mask.to(attention_mask.dtype) if attention_mask is not None else None
        return (
            None,
            out_pos if position_ids is not None else None,
            mask_out,
            past_key_values,
            out_embeds,
            out_labels if labels is not None else None,
        )

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        images=None,
        image_sizes=None,
        **kwargs,
    ):
        if inputs_embeds is None:
            input_ids, position_ids, attention_mask, past_key_values, inputs_embeds, labels = (
                self.prepare_inputs_labels_for_multimodal(
                    input_ids, position_ids, attention_mask, past_key_values, labels, images, image_sizes
                )
            )
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            **kwargs,
        )


def tiny_llava_llama(vlm_model_dir: Path, seed: int = 0) -> TinyLlavaLlama:
    """A ``TinyLlavaLlama`` with the text config of the session's tiny LLaVA (same tokenizer), seeded init."""
    from transformers import AutoConfig

    text = AutoConfig.from_pretrained(vlm_model_dir).text_config
    config = LlamaConfig(**{k: v for k, v in text.to_dict().items() if k in LlamaConfig().to_dict()})
    torch.manual_seed(seed)
    return TinyLlavaLlama(config)
