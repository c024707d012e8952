"""A tiny synthetic multi-task visual benchmark: coloured shapes on a plain background.

Four tasks of different kinds and difficulty, each with its own images:

- ``color``   — "What color is the triangle?" → ``red`` (one-word VQA; easy).
- ``count``   — "How many shapes are in the image?" → ``3`` (1–5 shapes; medium).
- ``ground``  — "the red circle" → ``[x1, y1, x2, y2]``: the shape's bounding box as integers in 0–100, i.e. per
  cent of the image width (x) and height (y), top-left (x1, y1) and bottom-right (x2, y2) corners, rounded;
  a RefCOCO-bbox-like task (hard).
- ``caption`` — "Describe the image briefly." → ``a red circle and a blue square`` (shapes listed left to right).

Every split of every task is drawn from its own ``random.Random`` stream seeded with ``(seed, task, split)``, so
the same arguments give byte-identical files and adding a task does not change the others.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

TASKS = ("color", "count", "ground", "caption")
METRICS = {"color": "em", "count": "em", "ground": "iou_acc", "caption": "cider"}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 50, 170),
}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (255, 255, 255)
MAX_COUNT = 5

SHORT_ANSWER = "Answer the question using a single word or phrase."
BBOX_INSTRUCTION = "Provide the bounding box coordinate of the region this sentence describes."
QUESTIONS = {
    "color": "What color is the {shape}?",
    "count": "How many shapes are in the image?",
    "caption": "Describe the image briefly.",
}

Shape = tuple[str, str, tuple[int, int, int, int]]  # (colour, kind, pixel box x1, y1, x2, y2 inclusive-exclusive)


def _place_shapes(rng: random.Random, n: int, size: int, kinds: Sequence[str] | None = None) -> list[Shape]:
    """Place ``n`` non-overlapping shapes (rejection sampling; boxes keep a 1-pixel gap)."""
    low, high = max(6, size // 6), max(8, size // 3)
    shapes: list[Shape] = []
    attempts = 0
    while len(shapes) < n:
        attempts += 1
        if attempts > 10_000:
            raise RuntimeError(f"cannot place {n} shapes on a {size}x{size} image; use a larger image_size")
        side = rng.randint(low, high)
        x1, y1 = rng.randint(0, size - side), rng.randint(0, size - side)
        box = (x1, y1, x1 + side, y1 + side)
        if any(box[0] <= b[2] and b[0] <= box[2] and box[1] <= b[3] and b[1] <= box[3] for _, _, b in shapes):
            continue
        kind = kinds[len(shapes)] if kinds is not None else rng.choice(SHAPES)
        shapes.append((rng.choice(sorted(COLORS)), kind, box))
    return shapes


def _draw(shapes: Iterable[Shape], size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for colour, kind, (x1, y1, x2, y2) in shapes:
        fill = COLORS[colour]
        if kind == "circle":
            draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif kind == "square":
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            draw.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=fill)
    return image


def _norm_box(box: tuple[int, int, int, int], size: int) -> str:
    x1, y1, x2, y2 = (round(100 * v / size) for v in box)
    return f"[{x1}, {y1}, {x2}, {y2}]"


def _phrase(colour: str, kind: str) -> str:
    return f"a {colour} {kind}"


def _caption(shapes: Sequence[Shape]) -> str:
    parts = [_phrase(c, k) for c, k, _ in sorted(shapes, key=lambda s: (s[2][0] + s[2][2], s[2][1]))]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _sample(task: str, rng: random.Random, size: int) -> tuple[list[Shape], str, str]:
    """Return (shapes, question without the image token, answer) for one sample of ``task``."""
    if task == "color":
        kinds = rng.sample(SHAPES, rng.randint(1, len(SHAPES)))
        shapes = _place_shapes(rng, len(kinds), size, kinds)
        colour, kind, _ = rng.choice(shapes)
        return shapes, f"{QUESTIONS['color'].format(shape=kind)}\n{SHORT_ANSWER}", colour
    if task == "count":
        shapes = _place_shapes(rng, rng.randint(1, MAX_COUNT), size)
        return shapes, f"{QUESTIONS['count']}\n{SHORT_ANSWER}", str(len(shapes))
    if task == "ground":
        kinds = rng.sample(SHAPES, rng.randint(1, len(SHAPES)))
        shapes = _place_shapes(rng, len(kinds), size, kinds)
        colour, kind, box = rng.choice(shapes)
        return shapes, f"the {colour} {kind}\n{BBOX_INSTRUCTION}", _norm_box(box, size)
    if task == "caption":
        shapes = _place_shapes(rng, rng.randint(1, 3), size)
        return shapes, QUESTIONS["caption"], _caption(shapes)
    raise ValueError(f"unknown shapes task {task!r}; known: {', '.join(TASKS)}")


def _entry(name: str, task: str, split: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file_name": f"{name}.json",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    }
    if split == "train":  # as in cotbal_plugin.convert: only training entries name their task
        entry["cotbal_task"] = task
    entry["cotbal_metric"] = METRICS[task]  # metric names of cotbal_plugin.probe.metrics
    return entry


def make_shapes_benchmark(
    out_dir: Path,
    n_train: int,
    n_val: int,
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    image_size: int = 56,
) -> dict[str, Any]:
    """Write the shapes benchmark into ``out_dir`` and return what was written.

    Writes ``images/{task}_{split}_{i:05d}.png`` (``image_size`` × ``image_size`` RGB), ``{task}_train.json`` and
    ``{task}_val.json`` (sharegpt: ``conversations`` with ``<image>`` in the human turn, ``images`` with the path
    relative to ``out_dir``) and ``dataset_info.json`` (entries ``{task}_{split}`` with ``cotbal_metric``;
    the ``_train`` entries also carry ``cotbal_task``). Use ``out_dir`` as ``dataset_dir`` in a training YAML.

    Returns:
        ``{"dataset_info": {name: entry}, "files": {name: Path}, "image_dir": Path}``.

    Raises:
        ValueError: an unknown task or a negative size.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown shapes task(s) {unknown}; known: {', '.join(TASKS)}")
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train} and {n_val}")
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    for task in tasks:
        for split, n in (("train", n_train), ("val", n_val)):
            rng = random.Random(f"cotbal-shapes/{seed}/{task}/{split}")
            name = f"{task}_{split}"
            samples = []
            for i in range(n):
                shapes, question, answer = _sample(task, rng, image_size)
                rel = f"images/{name}_{i:05d}.png"
                _draw(shapes, image_size).save(out_dir / rel, format="PNG")
                samples.append(
                    {
                        "id": f"{name}_{i:05d}",
                        "conversations": [
                            {"from": "human", "value": f"<image>\n{question}"},
                            {"from": "gpt", "value": answer},
                        ],
                        "images": [rel],
                    }
                )
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(samples, indent=1) + "\n", encoding="utf-8")
            info[name] = _entry(name, task, split)
            files[name] = path
    (out_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return {"dataset_info": info, "files": files, "image_dir": image_dir}


_WORD_RE = re.compile(r"<image>|\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Split text the way :func:`vocabulary` counts words: ``<image>``, runs of word characters, punctuation."""
    return _WORD_RE.findall(text)


def vocabulary() -> list[str]:
    """Every word, number, punctuation mark and character that can appear in the benchmark's texts, sorted.

    Words are what :func:`split_words` yields (``<image>`` is one item); single characters (including ``" "`` and
    ``"\\n"``) are listed too, so a character-level or BPE tokenizer trained on this list covers every text.
    """
    texts: list[str] = ["<image>\n", SHORT_ANSWER, BBOX_INSTRUCTION, *QUESTIONS.values(), "[, ] 0 1 2 3 4 5 6 7 8 9"]
    texts += [QUESTIONS["color"].format(shape=s) for s in SHAPES]
    texts += [f"the {c} {s}" for c in COLORS for s in SHAPES]
    texts += [f"{_phrase(c, s)}, and" for c in COLORS for s in SHAPES]
    texts += [str(n) for n in range(101)]
    words: set[str] = set()
    for text in texts:
        words.update(split_words(text))
        words.update(text)
    return sorted(words)


def _iter_texts(samples: Iterable[dict[str, Any]]) -> Iterable[str]:
    for sample in samples:
        for turn in sample["conversations"]:
            yield turn["value"]


def texts_of(path: Path) -> list[str]:
    """All turn texts of one generated JSON file (handy for training a tokenizer on the real data)."""
    return list(_iter_texts(json.loads(Path(path).read_text(encoding="utf-8"))))

