"""What the probes will cost: samples and tokens per job, and GPU-hours from a throughput the user measured.

Tokens are counted cheaply, without LLaMA-Factory's preprocessing:

* ``chars`` (default): the characters of every text of a record (all string values except media paths, ids, role
  tags and ``<image>`` placeholders), divided by 4 and rounded up — the usual characters per token of English BPE
  vocabularies; expect ±30 % on other text (digits, code, boxes such as ``[0.12, 0.5, ...]`` tokenise denser).
* ``tokenizer``: the base model's own tokenizer (``model_name_or_path`` must be a local folder), texts joined by
  newlines. Exact for the text, slower (minutes for ~500k records on two cores).

Neither counts the chat template (system prompt, role tags: tens of tokens per turn). Each image adds
``image_tokens`` (LLaVA-1.5: 576 = 24×24 patches of CLIP ViT-L/14 at 336 px; default 576 for ``template: llava``,
else 0 — pass ``--image-tokens`` for other models).

GPU-hours = tokens trained (tokens × ``num_train_epochs``) / throughput / 3600, with the throughput in tokens per
second *per GPU*. Measure it with a short run of the base YAML plus ``include_effective_tokens_per_second: true``:
LLaMA-Factory writes ``effective_tokens_per_sec`` (input tokens incl. image tokens × epochs / runtime / GPUs) to
``train_results.json``. Prediction jobs use ``--predict-throughput`` (generation is much slower per
token than training) and are left unestimated without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProbeError

TOKEN_METHODS = ("chars", "tokenizer")
CHARS_PER_TOKEN = 4
LLAVA_IMAGE_TOKENS = 576
_SKIP_KEYS = frozenset({"id", "ids", "source_ids", "image", "images", "video", "videos", "audio", "audios"})
_BATCH = 1024
_PLACEHOLDERS = ("<image>", "<video>", "<audio>")


def default_image_tokens(template: str | None) -> int:
    """Tokens per image when ``--image-tokens`` is not given: 576 for LLaVA-1.5 templates, else 0."""
    return LLAVA_IMAGE_TOKENS if str(template or "").startswith("llava") else 0


def _media_columns(entry: Mapping[str, Any]) -> tuple[set[str], str]:
    """Keys whose values are not model text (media paths, ids, role tags) and the images column."""
    columns = entry.get("columns") or {}
    tags = entry.get("tags") or {}
    media = {str(columns.get(k, k)) for k in ("images", "videos", "audios")}
    roles = {str(tags.get("role_tag", "from")), "role"}
    return media | roles | _SKIP_KEYS, str(columns.get("images", "images"))


def _texts(value: Any, skip: set[str], out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in skip:
                _texts(item, skip, out)
    elif isinstance(value, list):
        for item in value:
            _texts(item, skip, out)


@dataclass
class Tally:
    """Samples, tokens and images of a set of records."""

    samples: int = 0
    tokens: int = 0
    images: int = 0
    digest: str = ""

    def add(self, other: Tally) -> None:
        """Add another tally into this one."""
        self.samples += other.samples
        self.tokens += other.tokens
        self.images += other.images


class TokenCounter:
    """Counts the tokens of records of one dataset_info entry (batched when a tokenizer is used)."""

    def __init__(self, method: str = "chars", image_tokens: int = 0, model_dir: str | None = None) -> None:
        if method not in TOKEN_METHODS:
            raise ProbeError(f"unknown --count-tokens method {method!r}; valid: {', '.join(TOKEN_METHODS)}.")
        if not (isinstance(image_tokens, int) and image_tokens >= 0):
            raise ProbeError(f"--image-tokens must be a whole number >= 0, got {image_tokens}.")
        self.method = method
        self.image_tokens = image_tokens
        self._tokenizer = None
        if method == "tokenizer":
            if not model_dir or not Path(model_dir).is_dir():
                raise ProbeError(
                    f"--count-tokens tokenizer needs a local model_name_or_path in the base YAML, got {model_dir!r} "
                    "(a hub id is not downloaded); use --count-tokens chars."
                )
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            except (OSError, ValueError) as err:
                raise ProbeError(
                    f"--count-tokens tokenizer: cannot load the tokenizer of {model_dir!r} ({err})."
                ) from None

    def describe(self) -> str:
        """The method in words (for the manifest and the printout)."""
        text = "characters / 4" if self.method == "chars" else "the base model's tokenizer"
        return f"{text}, + {self.image_tokens} per image, chat template not counted"

    def _text_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._tokenizer is None:
            return [math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts]
        encoded = self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def accumulator(self, entry: Mapping[str, Any]) -> Accumulator:
        """An accumulator counting records of the dataset whose dataset_info entry is ``entry``, one at a time."""
        return Accumulator(self, entry)

    def tally(self, records: Iterable[Mapping[str, Any]], entry: Mapping[str, Any]) -> Tally:
        """Count ``records`` (dicts of one dataset whose dataset_info entry is ``entry``)."""
        acc = self.accumulator(entry)
        for record in records:
            acc.add(record)
        return acc.result()


class Accumulator:
    """Adds records one at a time; texts are tokenised in batches (see :meth:`TokenCounter.accumulator`)."""

    def __init__(self, counter: TokenCounter, entry: Mapping[str, Any]) -> None:
        self._counter = counter
        self._skip, self._image_key = _media_columns(entry)
        self._texts: list[str] = []
        self._total = Tally()

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one record."""
        parts: list[str] = []
        _texts(record, self._skip, parts)
        text = "\n".join(parts)
        for placeholder in _PLACEHOLDERS:  # counted as image_tokens per image instead
            text = text.replace(placeholder, "")
        self._texts.append(text)
        images = record.get(self._image_key)
        n_images = len(images) if isinstance(images, list) else int(bool(images))
        self._total.samples += 1
        self._total.images += n_images
        self._total.tokens += n_images * self._counter.image_tokens
        if len(self._texts) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._texts:
            self._total.tokens += sum(self._counter._text_tokens(self._texts))
            self._texts.clear()

    def result(self) -> Tally:
        """The tally of every record added so far."""
        self._flush()
        return Tally(self._total.samples, self._total.tokens, self._total.images)


@dataclass
class CostModel:
    """Throughputs and epochs that turn tokens into GPU-hours."""

    epochs: float = 3.0
    throughput: float | None = None
    predict_throughput: float | None = None
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise ProbeError for a throughput that is not a positive number."""
        for option, value in (("--throughput", self.throughput), ("--predict-throughput", self.predict_throughput)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ProbeError(f"{option} must be a positive number of tokens per second per GPU, got {value}.")

    def train_hours(self, tokens: int) -> float | None:
        """GPU-hours of a training on ``tokens`` tokens per epoch (None without --throughput)."""
        if self.throughput is None:
            return None
        return tokens * self.epochs / self.throughput / 3600

    def predict_hours(self, tokens: int) -> float | None:
        """GPU-hours of a prediction over ``tokens`` tokens (None without --predict-throughput)."""
        if self.predict_throughput is None:
            return None
        return tokens / self.predict_throughput / 3600


def cost_model(base: Mapping[str, Any], throughput: float | None, predict_throughput: float | None) -> CostModel:
    """The cost model of a base YAML (its ``num_train_epochs``; HF's default 3.0 when absent)."""
    epochs = float(base.get("num_train_epochs", 3.0))
    model = CostModel(epochs=epochs, throughput=throughput, predict_throughput=predict_throughput)
    model.check()
    if int(base.get("max_steps", -1) or -1) > 0:
        model.notes.append(
            f"the base YAML sets max_steps: {base['max_steps']}; the estimate assumes num_train_epochs ({epochs:g})"
        )
    return model


def summarize(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals per job kind: job count, samples, tokens, GPU-hours (None when a throughput is missing)."""
    out: dict[str, Any] = {}
    for kind in ("train", "predict"):
        selected = [j for j in jobs if j["kind"] == kind]
        hours = [j.get("gpu_hours") for j in selected]
        out[kind] = {
            "jobs": len(selected),
            "samples": sum(int(j.get("samples", 0)) for j in selected),
            "tokens": sum(int(j.get("tokens", 0)) for j in selected),
            "gpu_hours": sum(hours) if selected and all(h is not None for h in hours) else None,  # type: ignore[misc]
        }
    return out


def human(n: float) -> str:
    """1234567 → '1.23M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"
