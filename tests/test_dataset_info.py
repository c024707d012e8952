"""The shipped dataset_info.json: paper task lists, metric names, and loading by LLaMA-Factory's own code."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from cotbal_plugin.convert import BENCHMARKS, INSTRUCTION_SHORT_ANSWER, convert_files

ROOT = Path(__file__).resolve().parents[1]
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
SHIPPED = json.loads((ROOT / "dataset_info" / "dataset_info.json").read_text(encoding="utf-8"))
FALLBACK_METRICS = {"em", "vqa", "cider", "iou_acc", "miou", "gleu", "bleu", "rouge_l"}  # probe/metrics.py names


def _known_metric_names() -> set[str]:
    """Metric names of ``cotbal_plugin.probe.metrics`` (its registry) when importable, else the agreed list."""
    try:
        module = importlib.import_module("cotbal_plugin.probe.metrics")
    except ImportError:
        return FALLBACK_METRICS
    for attr in ("METRICS", "METRIC_NAMES", "REGISTRY", "metric_names"):
        value = getattr(module, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, dict | list | tuple | set | frozenset) and value:
            return {str(k) for k in value}
    return FALLBACK_METRICS


def test_benchmarks_follow_the_paper() -> None:
    academic = {s.name for s in BENCHMARKS["academic"]}
    assert academic == {
        "ShareGPT4V",
        "RefCOCO-caption",
        "VQAv2",
        "GQA",
        "ChartQA",
        "OCRVQA",
        "RefCOCO-bbox",
        "ShareGPT",
    }
    assert {s.name for s in BENCHMARKS["chat"]} == {"conversation", "detail", "complex_reasoning"}
    groups = Counter(s.group for s in BENCHMARKS["large"])
    assert groups == {"captioning": 3, "classification": 6, "vqa": 4, "reasoning": 2, "generation": 2}
    by_name = {s.name: s for s in BENCHMARKS["academic"]}
    assert by_name["GQA"].instruction == INSTRUCTION_SHORT_ANSWER
    assert by_name["ShareGPT4V"].instruction is None and by_name["ShareGPT"].metric is None
    assert by_name["RefCOCO-bbox"].metric == "iou_acc" and by_name["RefCOCO-caption"].metric == "cider"


def test_every_entry_is_sharegpt_with_task_and_known_metric() -> None:
    metrics = _known_metric_names()
    assert len(SHIPPED) > 60
    for name, entry in SHIPPED.items():
        assert entry["file_name"] == f"{name}.json"
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "conversations", "images": "images"}
        assert entry["tags"] == TAGS
        assert isinstance(entry["cotbal_task"], str) and entry["cotbal_task"]
        if name.endswith("_train"):
            assert "cotbal_split" not in entry, name
        else:  # eval entries map to their training task (eval sets in training) and say they are not training data
            assert entry["cotbal_split"] == name.rsplit("_", 1)[1], name
            assert entry["cotbal_task"] == SHIPPED[name.rsplit("_", 1)[0] + "_train"]["cotbal_task"], name
        if name != "ShareGPT_train":
            assert entry["cotbal_metric"] in metrics, (name, entry["cotbal_metric"])
    assert "cotbal_metric" not in SHIPPED["ShareGPT_train"]
    assert SHIPPED["M3IT-ImageNet_train"]["cotbal_task"] == "classification"
    assert SHIPPED["VQAv2_train"]["cotbal_task"] == "VQAv2"
    assert SHIPPED["VQAv2_test"]["cotbal_metric"] == "em"
    assert {"RefCOCO-bbox_test", "RefCOCO-bbox_testB", "RefCOCO-bbox_testg"} <= set(SHIPPED)


# --- LLaMA-Factory's own parser and loader ------------------------------------------------------------------------


def test_llamafactory_parses_every_entry_and_ignores_extra_keys() -> None:
    parser = pytest.importorskip("llamafactory.data.parser")
    attrs = parser.get_dataset_list(list(SHIPPED), dict(SHIPPED))
    assert len(attrs) == len(SHIPPED)
    for attr, (name, entry) in zip(attrs, SHIPPED.items(), strict=True):
        assert attr.load_from == "file" and attr.dataset_name == entry["file_name"], name
        assert (attr.formatting, attr.messages, attr.images) == ("sharegpt", "conversations", "images")
        assert (attr.role_tag, attr.user_tag, attr.assistant_tag) == ("from", "human", "gpt")
        assert not hasattr(attr, "cotbal_task") and not hasattr(attr, "cotbal_metric")


def test_llamafactory_loads_converted_and_shapes_files(tmp_path: Path) -> None:
    pytest.importorskip("llamafactory")
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import Seq2SeqTrainingArguments

    from cotbal_plugin.demo import make_shapes_benchmark

    images = tmp_path / "raw" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(images / "a.png")
    records = [
        {
            "id": f"q{i}",
            "task": "VQAv2",
            "image": "a.png",
            "conversations": [{"from": "human", "value": f"<image>\nQ{i}?"}, {"from": "gpt", "value": "blue"}],
        }
        for i in range(3)
    ]
    chat = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    records.append({"id": "s", "task": "ShareGPT", "conversations": chat})
    src = tmp_path / "raw" / "academic_train-4.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "data"
    convert_files([src], out, image_folder=images)

    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(tmp_path / "cache"))
    training_args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "o"), report_to=[])
    data_args = DataArguments(dataset_dir=str(out), dataset="VQAv2_train,ShareGPT_train")
    rows = list(_get_merged_dataset(["VQAv2_train", "ShareGPT_train"], model_args, data_args, training_args, "sft"))
    assert len(rows) == 2
    vqa, share = rows
    assert len(vqa["_prompt"]) == 5 and vqa["_prompt"][0]["content"].startswith("<image>")  # 3 merged turns
    assert Path(vqa["_images"][0]).resolve() == (images / "a.png").resolve()
    assert share["_images"] is None

    shapes = tmp_path / "shapes"
    make_shapes_benchmark(shapes, n_train=2, n_val=1)
    data_args = DataArguments(dataset_dir=str(shapes), dataset="ground_train")
    rows = list(_get_merged_dataset(["ground_train", "caption_val"], model_args, data_args, training_args, "sft"))
    assert len(rows) == 3
    assert all(Path(r["_images"][0]).is_file() for r in rows)


def test_example_yamls_use_shipped_datasets_and_weights_cover_their_tasks() -> None:
    yaml = pytest.importorskip("yaml")
    checked = 0
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        names = [n.strip() for n in str(cfg["dataset"]).split(",")]
        own = path.parent / "dataset_info.json"  # an example with its own data (examples/stage1/) ships its entries
        known = json.loads(own.read_text(encoding="utf-8")) if own.is_file() else SHIPPED
        missing = [n for n in names if n not in known]
        assert not missing, (path.name, missing)
        assert own.is_file() or cfg["dataset_dir"] == "data/cotbal"
        if "cotbal_weights" in cfg:
            weights = json.loads((ROOT / cfg["cotbal_weights"]).read_text(encoding="utf-8"))["weights"]
            assert set(weights) == {SHIPPED[n]["cotbal_task"] for n in names}, path.name
            checked += 1
        assert (ROOT / cfg["deepspeed"]).is_file()
    assert checked >= 3


def test_plan_resolves_a_task_name_to_its_training_entries_only() -> None:
    from cotbal_plugin.probe.plan import _resolve_tasks

    assert _resolve_tasks(["VQAv2"], SHIPPED, "task") == {"VQAv2": ["VQAv2_train"]}
    captioning = _resolve_tasks(["captioning"], SHIPPED, "task")["captioning"]
    assert captioning == ["M3IT-COCO_train", "M3IT-TextCap_train", "M3IT-ParaCap_train"]
