"""Shared fixtures of the probe tests: a small LLaMA-Factory data folder and a fake ``llamafactory-cli``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

FAKE_LAUNCHER = Path(__file__).with_name("fake_launcher.py")


def write_alpaca(path: Path, task: str, n: int, as_array: bool) -> None:
    """``n`` alpaca records of ``task`` whose answer is ``<task> answer <k>``."""
    records = [{"instruction": f"{task} question {k}", "input": "", "output": f"{task} answer {k}"} for k in range(n)]
    if as_array:
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_workspace(root: Path, sizes: dict[str, int] | None = None, val_size: int = 20, groups: bool = False) -> Path:
    """A data folder with training sets (``sizes``), ``<task>_val`` sets and a base YAML; returns the YAML path."""
    sizes = sizes or {"vqa": 256, "cap": 192, "box": 160}
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    info: dict[str, dict] = {}
    for k, (task, n) in enumerate(sizes.items()):
        fname = f"{task}_train.json" if k % 2 == 0 else f"{task}_train.jsonl"
        write_alpaca(data / fname, task, n, as_array=k % 2 == 0)
        info[task] = {"file_name": fname}
        write_alpaca(data / f"{task}_val.jsonl", task, val_size, as_array=False)
        info[f"{task}_val"] = {"file_name": f"{task}_val.jsonl"}
    if groups:  # two extra datasets forming the task group "grp"
        for name, n in (("g1", 64), ("g2", 96)):
            write_alpaca(data / f"{name}.jsonl", name, n, as_array=False)
            info[name] = {"file_name": f"{name}.jsonl", "cotbal_task": "grp"}
        write_alpaca(data / "grp_val.jsonl", "g1", val_size, as_array=False)
        info["grp_val"] = {"file_name": "grp_val.jsonl"}
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    base = {
        "model_name_or_path": "tiny-model",
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "dataset": ",".join(sizes),
        "dataset_dir": str(data),
        "template": "default",
        "cutoff_len": 128,
        "output_dir": str(root / "saves" / "original"),
        "eval_dataset": "vqa_val",
        "eval_strategy": "steps",
        "tokenized_path": str(root / "cache"),
        "learning_rate": 1e-4,
    }
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Base YAML of a 3-task workspace (vqa: 256 samples, JSON array; cap: 192, JSONL; box: 160, JSON array)."""
    return make_workspace(tmp_path)


@pytest.fixture
def fake_launcher() -> str:
    """Launcher command running the fake ``llamafactory-cli train`` of ``fake_launcher.py``."""
    return f"{sys.executable} {FAKE_LAUNCHER}"
