"""The synthetic shapes benchmark: determinism, answers checked against the pixels, vocabulary, answer lengths."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.demo import make_shapes_benchmark, vocabulary
from cotbal_plugin.demo.shapes import BACKGROUND, CELL, COLORS, TASKS, WARM, split_words

RGB_NAME = {rgb: name for name, rgb in COLORS.items()}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _board(image: Image.Image) -> dict[tuple[int, int], tuple[str, str]]:
    """Read the board back from the pixels: (row, col) -> (colour name, kind) of every non-empty cell."""
    grid = image.size[0] // CELL
    px = image.load()
    board = {}
    for r in range(grid):
        for c in range(grid):
            x0, y0 = c * CELL + 2, r * CELL + 2  # the shape's box: 10 x 10 pixels inside the cell
            centre = px[x0 + 5, y0 + 6]
            if centre == BACKGROUND:
                assert all(px[x, y] == BACKGROUND for x in range(x0, x0 + 10) for y in range(y0, y0 + 10))
                continue
            top_left, bottom_left = px[x0, y0], px[x0, y0 + 9]
            if top_left != BACKGROUND:
                kind = "square"
            elif bottom_left != BACKGROUND:
                kind = "triangle"
            else:
                kind = "circle"
            board[(r, c)] = (RGB_NAME[centre], kind)
    return board


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("shapes")
    return root, make_shapes_benchmark(root, n_train=30, n_val=10, seed=3, n_test=5, n_pretrain=12)


def _samples(root: Path, name: str) -> list[dict]:
    return json.loads((root / f"{name}.json").read_text())


def _qa(sample: dict) -> tuple[str, str]:
    human, gpt = sample["conversations"]
    return human["value"], gpt["value"]


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    make_shapes_benchmark(tmp_path / "a", n_train=6, n_val=2, seed=7, tasks=("color", "count"))
    make_shapes_benchmark(tmp_path / "b", n_train=6, n_val=2, seed=7, tasks=("color", "count"))
    make_shapes_benchmark(tmp_path / "c", n_train=6, n_val=2, seed=8, tasks=("color", "count"))
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert len(a) == 2 * 8 + 4 + 1  # images, json per task and split, dataset_info.json
    assert a == b
    assert set(a) == set(c) and a != c


def test_tasks_are_independent_streams(tmp_path: Path) -> None:
    make_shapes_benchmark(tmp_path / "all", n_train=5, n_val=2, seed=1)
    make_shapes_benchmark(tmp_path / "one", n_train=5, n_val=2, seed=1, tasks=("count",))
    assert (tmp_path / "all/count_train.json").read_bytes() == (tmp_path / "one/count_train.json").read_bytes()
    assert set(json.loads((tmp_path / "one/dataset_info.json").read_text())) == {"count_train", "count_val"}


def test_dataset_info_and_sample_structure(bench: tuple[Path, dict]) -> None:
    root, result = bench
    info = json.loads((root / "dataset_info.json").read_text())
    assert info == result["dataset_info"]
    expected = {f"{t}_{s}" for t in TASKS for s in ("train", "val", "test")} | {"pretrain_train"}
    assert set(info) == expected
    for name, entry in info.items():
        task, split = name.rsplit("_", 1)
        assert entry["formatting"] == "sharegpt"
        if split == "train" and task != "pretrain":
            assert entry["cotbal_task"] == task
        elif task != "pretrain":
            assert "cotbal_task" not in entry  # eval data must not join a task's training datasets
        if task != "pretrain":
            assert entry["cotbal_metric"] in ("em", "cider", "iou_acc")
        samples = _samples(root, name)
        assert len(samples) == ({"train": 30, "val": 10, "test": 5}[split] if task != "pretrain" else 12)
        for s in samples:
            human, _ = _qa(s)
            assert human.startswith("<image>") and human.count("<image>") == 1
            assert Image.open(root / s["images"][0]).size == (56, 56)


def test_answers_match_the_pixels(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    for task in TASKS:
        for s in _samples(root, f"{task}_train"):
            board = _board(Image.open(root / s["images"][0]).convert("RGB"))
            question, answer = _qa(s)
            kind = re.search(r"the (circle|square|triangle)", question)
            if task in ("color", "colour", "tone"):
                kinds = [k for _, k in board.values()]
                assert len(kinds) == len(set(kinds)) and kind.group(1) in kinds  # one shape of each kind asked
                colour = next(c for c, k in board.values() if k == kind.group(1))
                expected = {"color": colour, "colour": f"The {kind.group(1)} is {colour}.",
                            "tone": "warm" if colour in WARM else "cool"}[task]  # fmt: skip
                assert answer == expected
            elif task == "count":
                assert int(answer) == len(board)
            elif task == "caption":
                names = [f"a {c} {k}" for _, (c, k) in sorted(board.items())]  # reading order
                assert re.split(r", | and ", answer) == names
            elif task == "ground":
                colour, kind_name = re.search(r"the (\w+) (\w+)", question).groups()
                (r, c), _ = next(item for item in board.items() if item[1] == (colour, kind_name))
                box = [round(100 * (c * CELL + 2) / 56), round(100 * (r * CELL + 2) / 56),
                       round(100 * (c * CELL + 12) / 56), round(100 * (r * CELL + 12) / 56)]  # fmt: skip
                assert json.loads(answer) == box
    for s in _samples(root, "pretrain_train"):  # stage-1 alt-text: every object once, any order
        board = _board(Image.open(root / s["images"][0]).convert("RGB"))
        assert sorted(_qa(s)[1].split(", ")) == sorted(f"{c} {k}" for c, k in board.values())


def test_answer_lengths_differ_by_design(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    words = {t: statistics.mean(len(split_words(_qa(s)[1])) for s in _samples(root, f"{t}_train")) for t in TASKS}
    assert words["color"] == words["count"] == 1
    assert words["colour"] == 5  # "The triangle is red ."
    assert words["caption"] >= 5 * words["color"]


def test_vocabulary_covers_every_text(bench: tuple[Path, dict]) -> None:
    root, result = bench
    vocab = set(vocabulary())
    assert {"<image>", "red", "circle", "colour", "warm", "100", "[", ",", "\n", " ", "."} <= vocab
    for name in result["files"]:
        for s in _samples(root, name):
            for turn in s["conversations"]:
                assert set(split_words(turn["value"])) <= vocab, turn["value"]
                assert set(turn["value"]) <= vocab


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shapes task"):
        make_shapes_benchmark(tmp_path, 1, 1, tasks=("colr",))
    with pytest.raises(ValueError, match=">= 0"):
        make_shapes_benchmark(tmp_path, -1, 1)
    with pytest.raises(ValueError, match="multiple of 14"):
        make_shapes_benchmark(tmp_path, 1, 1, image_size=50)
