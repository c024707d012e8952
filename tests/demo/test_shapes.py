"""Tests of the synthetic shapes benchmark: determinism, answer correctness against the pixels, vocabulary, speed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.demo import make_shapes_benchmark, vocabulary
from cotbal_plugin.demo.shapes import BACKGROUND, COLORS, split_words


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _components(image: Image.Image) -> int:
    """Number of 4-connected regions of non-background pixels."""
    w, h = image.size
    px = image.load()
    seen = [[False] * w for _ in range(h)]
    count = 0
    for y in range(h):
        for x in range(w):
            if seen[y][x] or px[x, y] == BACKGROUND:
                continue
            count += 1
            stack = [(x, y)]
            seen[y][x] = True
            while stack:
                cx, cy = stack.pop()
                for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
                    if 0 <= nx < w and 0 <= ny < h and not seen[ny][nx] and px[nx, ny] != BACKGROUND:
                        seen[ny][nx] = True
                        stack.append((nx, ny))
    return count


def _region_box(image: Image.Image, seed: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel box (x1, y1, x2 exclusive, y2 exclusive) of the same-colour region containing ``seed``."""
    px = image.load()
    colour = px[seed]
    w, h = image.size
    seen = {seed}
    stack = [seed]
    while stack:
        cx, cy = stack.pop()
        for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
            if 0 <= nx < w and 0 <= ny < h and (nx, ny) not in seen and px[nx, ny] == colour:
                seen.add((nx, ny))
                stack.append((nx, ny))
    xs, ys = [p[0] for p in seen], [p[1] for p in seen]
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("shapes")
    return root, make_shapes_benchmark(root, n_train=30, n_val=10, seed=3)


def _samples(root: Path, name: str) -> list[dict]:
    return json.loads((root / f"{name}.json").read_text())


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    make_shapes_benchmark(tmp_path / "a", n_train=12, n_val=4, seed=7)
    make_shapes_benchmark(tmp_path / "b", n_train=12, n_val=4, seed=7)
    make_shapes_benchmark(tmp_path / "c", n_train=12, n_val=4, seed=8)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert len(a) == 4 * 16 + 8 + 1  # images, json per task and split, dataset_info.json
    assert a == b
    assert set(a) == set(c) and a != c
    assert a["color_train.json"] != c["color_train.json"]


def test_tasks_are_independent_streams(tmp_path: Path) -> None:
    make_shapes_benchmark(tmp_path / "all", n_train=5, n_val=2, seed=1)
    make_shapes_benchmark(tmp_path / "one", n_train=5, n_val=2, seed=1, tasks=("count",))
    assert (tmp_path / "all/count_train.json").read_bytes() == (tmp_path / "one/count_train.json").read_bytes()
    info = json.loads((tmp_path / "one/dataset_info.json").read_text())
    assert set(info) == {"count_train", "count_val"}


def test_dataset_info_and_sample_structure(bench: tuple[Path, dict]) -> None:
    root, result = bench
    info = json.loads((root / "dataset_info.json").read_text())
    assert info == result["dataset_info"]
    assert {k: v["cotbal_metric"] for k, v in info.items() if k.endswith("_train")} == {
        "color_train": "em",
        "count_train": "em",
        "ground_train": "iou_acc",
        "caption_train": "cider",
    }
    for name, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "conversations", "images": "images"}
        if name.endswith("_train"):
            assert entry["cotbal_task"] == name.rsplit("_", 1)[0]
        else:
            assert "cotbal_task" not in entry  # eval data must not join a task's training datasets
        assert result["files"][name] == root / entry["file_name"]
        samples = _samples(root, name)
        assert len(samples) == (30 if name.endswith("_train") else 10)
        for s in samples:
            human, gpt = s["conversations"]
            assert (human["from"], gpt["from"]) == ("human", "gpt")
            assert human["value"].startswith("<image>\n") and human["value"].count("<image>") == 1
            assert len(s["images"]) == 1 and (root / s["images"][0]).is_file()
            assert Image.open(root / s["images"][0]).size == (56, 56)


def test_answers_match_the_pixels(bench: tuple[Path, dict]) -> None:
    root, _ = bench
    for s in _samples(root, "count_train"):
        image = Image.open(root / s["images"][0]).convert("RGB")
        assert _components(image) == int(s["conversations"][1]["value"])
    for s in _samples(root, "caption_train"):
        image = Image.open(root / s["images"][0]).convert("RGB")
        answer = s["conversations"][1]["value"]
        assert _components(image) == len(re.findall(r"\ba (\w+) (circle|square|triangle)\b", answer))
        colours = {c for c, rgb in COLORS.items() if rgb in {px for _, px in image.getcolors(4096)}}
        assert set(re.findall(r"\ba (\w+) ", answer)) == colours
    for s in _samples(root, "color_train"):
        image = Image.open(root / s["images"][0]).convert("RGB")
        assert COLORS[s["conversations"][1]["value"]] in {px for _, px in image.getcolors(4096)}
    for s in _samples(root, "ground_train"):
        image = Image.open(root / s["images"][0]).convert("RGB")
        colour = re.search(r"the (\w+) (\w+)", s["conversations"][0]["value"]).group(1)
        x1, y1, x2, y2 = json.loads(s["conversations"][1]["value"])
        assert 0 <= x1 < x2 <= 100 and 0 <= y1 < y2 <= 100
        w, h = image.size
        centre = (round((x1 + x2) / 200 * w), round((y1 + y2) / 200 * h))
        assert image.getpixel(centre) == COLORS[colour]
        px0, py0, px1, py1 = _region_box(image, centre)
        assert [round(100 * v / w) for v in (px0, px1)] == [x1, x2]
        assert [round(100 * v / h) for v in (py0, py1)] == [y1, y2]


def test_vocabulary_covers_every_text(bench: tuple[Path, dict]) -> None:
    root, result = bench
    vocab = set(vocabulary())
    assert {"<image>", "red", "circle", "100", "[", ",", "\n", " ", "Answer"} <= vocab
    for name in result["files"]:
        for s in _samples(root, name):
            for turn in s["conversations"]:
                assert set(split_words(turn["value"])) <= vocab, turn["value"]
                assert set(turn["value"]) <= vocab


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown shapes task"):
        make_shapes_benchmark(tmp_path, 1, 1, tasks=("colour",))
    with pytest.raises(ValueError, match=">= 0"):
        make_shapes_benchmark(tmp_path, -1, 1)


def test_fast_enough(tmp_path: Path) -> None:
    start = time.perf_counter()
    make_shapes_benchmark(tmp_path, n_train=200, n_val=20, seed=0)
    assert time.perf_counter() - start < 5.0
