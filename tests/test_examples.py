"""Every example YAML parses with LLaMA-Factory's own parser (plugin installed), so none rots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import cotbal_plugin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))

cotbal_plugin.install()


def test_there_are_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_parses(path, monkeypatch):
    from llamafactory.hparams import parser

    from cotbal_plugin.llamafactory import state
    from cotbal_plugin.llamafactory.data import dataset_task
    from cotbal_plugin.weights_file import check_weights_cover

    monkeypatch.chdir(ROOT)
    config = yaml.safe_load(path.read_text())
    config["bf16"] = False  # this CPU cannot run bf16; everything else is parsed as written
    model_args, data_args, training_args, finetuning_args, _ = parser._parse_train_args(config)
    assert finetuning_args.stage == "sft"
    if config.get("deepspeed"):
        assert (ROOT / config["deepspeed"]).is_file()
        json.loads((ROOT / config["deepspeed"]).read_text())
    run = state.active()
    if config.get("loss") == "cotbal":
        assert run is not None
        if run.weights is not None:
            info = json.loads((ROOT / "dataset_info" / "dataset_info.json").read_text())
            tasks = {dataset_task(name, info) for name in data_args.dataset}
            check_weights_cover(run.weights, tasks, config["cotbal_weights"])
    else:
        assert run is None
