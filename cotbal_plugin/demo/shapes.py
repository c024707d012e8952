"""A tiny synthetic multi-task visual benchmark built on the paper's premise: coloured shapes on a grid.

Every image is a ``grid`` × ``grid`` board of 14-pixel cells (56 × 56 pixels for the default 4 × 4); a cell is
empty (white) or holds one circle, square or triangle in one of five colours. The cells match the vision tower's
14-pixel patches, so each image token of the tiny LLaVA sees exactly one cell.

Tasks (each with its own images, drawn from its own random stream):

=========  ==========================================================  ===========================  ======
task       question → answer                                           role in the benchmark        metric
=========  ==========================================================  ===========================  ======
``color``  "What color is the triangle?" → ``red`` (1-3 shapes of       short answer; learns early   em
           different kinds: the question names the one to read)          (lower D than ``count``)
``colour`` "What colour is the triangle?" → ``The triangle is red.``    conflicts with ``color``:    em
           (same kind of board and knowledge as ``color``)            same question, other format
``count``  "How many shapes are there?" → ``7`` (1-12 shapes)           short answer; keeps rising   em
                                                                        with more data (hard)
``caption`` "Describe the image." → ``a red circle, a blue square and   long answer; names the       cider
           a green triangle`` (1-3 shapes, reading order)               colours ``colour`` states
``tone``   "What color tone is the triangle?" → ``warm`` / ``cool``     two classes (1-3 shapes)     em
``ground`` "the red circle" + box instruction → ``[x1, y1, x2, y2]``    box in per cent of the       iou_acc
           (1-3 shapes)                                                 image
=========  ==========================================================  ===========================  ======

``pretrain`` (not a task) is the stage-1 alignment set of the demo's tiny VLM: the image alone, answered with its
objects in random order (``blue square, red circle``). It teaches the model to name what it sees, as LLaVA's
stage-1 caption pretraining does, before the instruction tuning that CoTBal balances (see docs/demo.md).

Every split of every task is drawn from its own ``random.Random`` stream seeded with ``(seed, task, split)``, so
the same arguments give byte-identical files and adding a task does not change the others.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

CELL = 14  # pixels per grid cell = the vision tower's patch size: one image token per cell
TASKS = ("color", "colour", "count", "caption", "tone", "ground")
METRICS = {"color": "em", "colour": "em", "count": "em", "caption": "cider", "tone": "em", "ground": "iou_acc"}
PRETRAIN = "pretrain"
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 50, 170),
}
WARM = frozenset({"red", "yellow", "purple"})
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (255, 255, 255)
MAX_COUNT = 12
BBOX_INSTRUCTION = "Provide the bounding box coordinate of the region this sentence describes."
QUESTIONS = {
    "color": "What color is the {kind}?",
    "colour": "What colour is the {kind}?",
    "count": "How many shapes are there?",
    "caption": "Describe the image.",
    "tone": "What color tone is the {kind}?",
}

Cells = dict[tuple[int, int], tuple[str, str]]  # (row, column) -> (colour, kind)


def _cells(rng: random.Random, n: int, grid: int, kinds: Sequence[str] | None = None) -> Cells:
    """``n`` shapes in distinct random cells; kinds given or random, colours random."""
    if n > grid * grid:
        raise ValueError(f"cannot place {n} shapes on a {grid}x{grid} grid; use a larger image_size")
    positions = rng.sample([(r, c) for r in range(grid) for c in range(grid)], n)
    return {p: (rng.choice(sorted(COLORS)), kinds[i] if kinds is not None else rng.choice(SHAPES))
            for i, p in enumerate(positions)}  # fmt: skip


def _box(row: int, col: int) -> tuple[int, int, int, int]:
    """Pixel box (x1, y1, x2, y2; x2/y2 exclusive) of the shape drawn in a cell (2-pixel margin)."""
    x1, y1 = col * CELL + 2, row * CELL + 2
    return x1, y1, x1 + CELL - 4, y1 + CELL - 4


def draw(cells: Cells, grid: int) -> Image.Image:
    """The RGB image of a board."""
    size = grid * CELL
    image = Image.new("RGB", (size, size), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for (row, col), (colour, kind) in cells.items():
        x1, y1, x2, y2 = _box(row, col)
        fill = COLORS[colour]
        if kind == "circle":
            pen.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
        elif kind == "square":
            pen.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
        else:
            pen.polygon([((x1 + x2 - 1) / 2, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=fill)
    return image


def _phrase(colour: str, kind: str) -> str:
    return f"a {colour} {kind}"


def caption_of(cells: Cells) -> str:
    """``a red circle, a blue square and a green triangle``: every shape in reading order (rows, then columns)."""
    parts = [_phrase(*cells[p]) for p in sorted(cells)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _norm_box(row: int, col: int, grid: int) -> str:
    size = grid * CELL
    x1, y1, x2, y2 = (round(100 * v / size) for v in _box(row, col))
    return f"[{x1}, {y1}, {x2}, {y2}]"


def _distinct_kinds(rng: random.Random, grid: int) -> Cells:
    kinds = rng.sample(SHAPES, rng.randint(1, len(SHAPES)))
    return _cells(rng, len(kinds), grid, kinds)


def _sample(task: str, rng: random.Random, grid: int) -> tuple[Cells, str, str]:
    """Return (board, question without the image token, answer) for one sample of ``task``."""
    if task in ("color", "colour", "tone"):
        cells = _distinct_kinds(rng, grid)  # 1-3 shapes of different kinds: the question names the one to read
        colour, kind = rng.choice(list(cells.values()))
        question = QUESTIONS[task].format(kind=kind)
        if task == "color":
            return cells, question, colour
        if task == "colour":
            return cells, question, f"The {kind} is {colour}."
        return cells, question, "warm" if colour in WARM else "cool"
    if task == "count":
        cells = _cells(rng, rng.randint(1, min(MAX_COUNT, grid * grid)), grid)
        return cells, QUESTIONS["count"], str(len(cells))
    if task == "caption":
        cells = _cells(rng, rng.randint(1, 3), grid)
        return cells, QUESTIONS["caption"], caption_of(cells)
    if task == "ground":
        cells = _distinct_kinds(rng, grid)
        (row, col), (colour, kind) = rng.choice(list(cells.items()))
        return cells, f"the {colour} {kind}\n{BBOX_INSTRUCTION}", _norm_box(row, col, grid)
    if task == PRETRAIN:
        cells = _cells(rng, rng.randint(1, 4), grid)
        items = [f"{colour} {kind}" for colour, kind in cells.values()]
        rng.shuffle(items)
        return cells, "", ", ".join(items)
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
    if task in METRICS:
        entry["cotbal_metric"] = METRICS[task]  # metric names of cotbal_plugin.probe.metrics
    return entry


def make_shapes_benchmark(
    out_dir: Path,
    n_train: int,
    n_val: int,
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    image_size: int = 56,
    n_test: int = 0,
    n_pretrain: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the shapes benchmark into ``out_dir`` and return what was written.

    Writes ``images/{name}_{i:05d}.png`` (``image_size`` × ``image_size`` RGB, a multiple of 14), one sharegpt
    file per task and split — ``{task}_train.json``, ``{task}_val.json`` and, when ``n_test`` > 0,
    ``{task}_test.json`` (``conversations`` with ``<image>`` in the human turn, ``images`` relative to
    ``out_dir``) — ``pretrain_train.json`` when ``n_pretrain`` > 0, and ``dataset_info.json`` (entries
    ``{task}_{split}`` with ``cotbal_metric``; the ``_train`` entries also carry ``cotbal_task``). Use ``out_dir``
    as ``dataset_dir`` in a training YAML.

    Returns:
        ``{"dataset_info": {name: entry}, "files": {name: Path}, "image_dir": Path}``.

    Raises:
        ValueError: an unknown task, a negative size or an image size that is not a multiple of 14.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown shapes task(s) {unknown}; known: {', '.join(TASKS)}")
    if min(n_train, n_val, n_test, n_pretrain) < 0:
        raise ValueError(f"sizes must be >= 0, got n_train={n_train}, n_val={n_val}, n_test={n_test}, "
                         f"n_pretrain={n_pretrain}")  # fmt: skip
    if image_size % CELL or image_size < 2 * CELL:
        raise ValueError(f"image_size must be a multiple of {CELL} (one patch per cell) and >= {2 * CELL}, "
                         f"got {image_size}")  # fmt: skip
    grid = image_size // CELL
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    jobs = [(t, s, n) for t in tasks for s, n in (("train", n_train), ("val", n_val), ("test", n_test))
            if s != "test" or n > 0]  # fmt: skip
    if n_pretrain > 0:
        jobs.append((PRETRAIN, "train", n_pretrain))
    for task, split, n in jobs:
        rng = random.Random(f"cotbal-shapes-v2/{seed}/{task}/{split}")
        name = f"{task}_{split}"
        samples = []
        for i in range(n):
            cells, question, answer = _sample(task, rng, grid)
            rel = f"images/{name}_{i:05d}.png"
            draw(cells, grid).save(out_dir / rel, format="PNG")
            prompt = f"<image>\n{question}" if question else "<image>"
            samples.append(
                {
                    "id": f"{name}_{i:05d}",
                    "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
                    "images": [rel],
                }
            )
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(samples, indent=1) + "\n", encoding="utf-8")
        info[name] = _entry(name, task, split)
        files[name] = path
        if progress is not None:
            progress(name)
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
    texts: list[str] = ["<image>\n", BBOX_INSTRUCTION, "[, ] 0 1 2 3 4 5 6 7 8 9 .", "warm cool"]
    texts += [q.format(kind=s) for q in QUESTIONS.values() for s in SHAPES]
    texts += [f"the {c} {s}" for c in COLORS for s in SHAPES]
    texts += [f"The {s} is {c}." for c in COLORS for s in SHAPES]
    texts += [f"{_phrase(c, s)}, and {c} {s}," for c in COLORS for s in SHAPES]
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
