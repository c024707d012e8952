"""Shared fixtures: tiny models and small multi-task datasets built locally once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cotbal_plugin.testing.workspace import all_text, write_text_tasks

TEXT_TASKS = {"short": 1, "long": 12}


@pytest.fixture(scope="session")
def text_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``model/`` (tiny Llama), ``data/`` (tasks short and long) and ``weights.json``."""
    from cotbal_plugin.testing.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("text")
    write_text_tasks(root / "data", TEXT_TASKS, n=8)
    build_tiny_llama(root / "model", all_text(TEXT_TASKS, n=8) + ["third task " * 3])
    (root / "weights.json").write_text(json.dumps({"weights": {"short": 2.0, "long": 0.5}}))
    return root


COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


@pytest.fixture(scope="session")
def vlm_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny LLaVA (``model/``) and two image tasks with real PNG files: ``color`` (1-word answers) and
    ``describe`` (long answers)."""
    from PIL import Image, ImageDraw

    from cotbal_plugin.testing.tiny import build_tiny_llava

    root = tmp_path_factory.mktemp("vlm")
    data = root / "data"
    (data / "images").mkdir(parents=True)
    names = list(COLORS)
    color_rows, describe_rows, texts = [], [], []
    for i in range(8):
        color = names[i % 4]
        img = Image.new("RGB", (28, 28), (255, 255, 255))
        ImageDraw.Draw(img).rectangle([4 + i, 4, 20, 20 - i % 3], fill=COLORS[color])
        path = data / "images" / f"{i}.png"
        img.save(path)
        q1, a1 = "What color is the box?", color
        q2 = "Describe the picture in detail."
        a2 = f"a {color} box on a white background" + (" near the top left corner with sharp square edges" * (i % 2))
        color_rows.append(
            {
                "conversations": [{"from": "human", "value": "<image>" + q1}, {"from": "gpt", "value": a1}],
                "images": [f"images/{i}.png"],
            }
        )
        describe_rows.append(
            {
                "conversations": [{"from": "human", "value": "<image>" + q2}, {"from": "gpt", "value": a2}],
                "images": [f"images/{i}.png"],
            }
        )
        texts += [q1, a1, q2, a2]
    cols = {"messages": "conversations", "images": "images"}
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    info = {}
    for task, rows in (("color", color_rows), ("describe", describe_rows)):
        (data / f"{task}.json").write_text(json.dumps(rows, indent=1))
        info[task] = {"file_name": f"{task}.json", "formatting": "sharegpt", "columns": cols, "tags": tags}
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2))
    build_tiny_llava(root / "model", texts)
    (root / "weights.json").write_text(json.dumps({"weights": {"color": 2.0, "describe": 0.5}}))
    return root


@pytest.fixture(scope="session")
def three_task_workspace(text_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three text tasks of different answer lengths (short 1, mid 4, long 12 words), same tiny Llama."""
    import shutil

    root = tmp_path_factory.mktemp("three")
    shutil.copytree(text_workspace / "model", root / "model")
    write_text_tasks(root / "data", {"short": 1, "mid": 4, "long": 12}, n=8)
    return root


@pytest.fixture(scope="session")
def moe_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny Mixtral (``model/``, 4 experts, top-2, ``output_router_logits`` off as saved) and the text tasks
    ``short`` / ``long`` (``data/``)."""
    from cotbal_plugin.testing.tiny import build_tiny_moe

    root = tmp_path_factory.mktemp("moe")
    write_text_tasks(root / "data", TEXT_TASKS, n=8)
    build_tiny_moe(root / "model", all_text(TEXT_TASKS, n=8))
    return root


def _image_task_rows(data: Path, size: int, image_token: str) -> tuple[dict[str, list], list[str]]:
    """Rows of the image tasks ``color`` (1-word answers) and ``describe`` (5 or 14 words) over 8 PNG files of
    ``size``² pixels written under ``data/images``; returns (task → sharegpt rows, every text)."""
    from PIL import Image, ImageDraw

    (data / "images").mkdir(parents=True, exist_ok=True)
    names = list(COLORS)
    rows: dict[str, list] = {"color": [], "describe": []}
    texts = []
    scale = size // 28
    for i in range(8):
        color = names[i % 4]
        img = Image.new("RGB", (size, size), (255, 255, 255))
        box = [scale * (4 + i), scale * 4, scale * 20, scale * (20 - i % 3)]
        ImageDraw.Draw(img).rectangle(box, fill=COLORS[color])
        img.save(data / "images" / f"{i}.png")
        detail = " near the top left corner with sharp square edges" * (i % 2)
        qa = {
            "color": ("What color is the box?", color),
            "describe": ("Describe the picture in detail.", f"a {color} box on a white background{detail}"),
        }
        for task, (question, answer) in qa.items():
            turns = [{"from": "human", "value": image_token + question}, {"from": "gpt", "value": answer}]
            rows[task].append({"conversations": turns, "images": [f"images/{i}.png"]})
            texts += [question, answer]
    return rows, texts


@pytest.fixture(scope="session")
def qwen2_vl_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny Qwen2-VL (``model/``, 56×56 images → 4 image tokens) and two image tasks with real PNG files:
    ``color`` (1-word answers) and ``describe`` (long answers); ``weights.json`` holds color 2.0, describe 0.5."""
    from cotbal_plugin.testing.tiny import build_tiny_qwen2_vl

    root = tmp_path_factory.mktemp("qwen2vl")
    data = root / "data"
    rows, texts = _image_task_rows(data, 56, "<image>")
    cols = {"messages": "conversations", "images": "images"}
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    info = {}
    for task, task_rows in rows.items():
        (data / f"{task}.json").write_text(json.dumps(task_rows, indent=1))
        info[task] = {"file_name": f"{task}.json", "formatting": "sharegpt", "columns": cols, "tags": tags}
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2))
    build_tiny_qwen2_vl(root / "model", texts, image_size=56)
    (root / "weights.json").write_text(json.dumps({"weights": {"color": 2.0, "describe": 0.5}}))
    return root
