"""Every example YAML passes LLaMA-Factory's full argument validation (plugin installed), launched as torchrun does.

``cotbal_plugin.llamafactory.check_yaml`` runs ``llamafactory.hparams.get_train_args`` on each file in a child
process with the environment torchrun gives a rank (DeepSpeed YAMLs are only accepted under torchrun). The only
change is ``bf16=false`` on this CPU-only machine. The example weights cover every task of the YAMLs that use
them, and the scripts of ``examples/`` are valid bash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cotbal_plugin.llamafactory.check_yaml import check_yamls
from cotbal_plugin.testing.workspace import cli_env
from cotbal_plugin.weights_file import check_weights_cover, load_weights

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
SCRIPTS = sorted((ROOT / "examples").rglob("*.sh"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8 and SCRIPTS


@pytest.fixture(scope="module")
def verdicts() -> dict[str, object]:
    results = check_yamls([(str(p), "torchrun") for p in EXAMPLES], env=cli_env(), cwd=ROOT)
    return {r.path: r for r in results}


@pytest.mark.integration
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_passes_llamafactory_validation(path: Path, verdicts: dict) -> None:
    result = verdicts[str(path)]
    assert result.ok, result.error
    assert result.overrides in ([], ["bf16=false"])
    config = yaml.safe_load(path.read_text())
    assert config.get("stage", "sft") == "sft"
    if config.get("deepspeed"):
        json.loads((ROOT / config["deepspeed"]).read_text())


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "cotbal_weights" in p.read_text()],
                         ids=lambda p: p.name)  # fmt: skip
def test_example_weights_cover_the_tasks(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    info = json.loads((ROOT / "dataset_info" / "dataset_info.json").read_text())
    tasks = {info.get(name, {}).get("cotbal_task", name) for name in config["dataset"].split(",")}
    check_weights_cover(load_weights(ROOT / config["cotbal_weights"]), tasks, config["cotbal_weights"])


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_example_scripts_are_valid_bash(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_academic_script_plans_the_paper_setting(tmp_path: Path) -> None:
    """``academic.sh`` (plan step) on stand-in files named like the converted data: every --val / --metric resolves."""
    from tests.probe.test_plan_validation import shipped_data

    shipped_data(tmp_path / "data" / "cotbal", n=32)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PLAN_ONLY": "1", "CHECK": "", "COTBAL": f"{sys.executable} -m cotbal_plugin",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    proc = subprocess.run(["bash", str(ROOT / "examples" / "probe" / "academic.sh"), "--no-progress"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "runs" / "academic" / "manifest.json").read_text())
    tasks = ["ShareGPT4V", "RefCOCO-caption", "VQAv2", "GQA", "ChartQA", "OCRVQA", "RefCOCO-bbox"]
    assert list(manifest["tasks"]) == tasks and list(manifest["fixed"]) == ["ShareGPT"]
    assert manifest["fixed"]["ShareGPT"]["weight"] == 1.0  # --fixed ShareGPT=1.0, as on the weights line
    assert all(manifest["tasks"][t]["validation"] == [f"{t}_val"] for t in tasks)
    assert manifest["tasks"]["RefCOCO-bbox"]["metrics"] == ["iou_acc", "miou"]
    assert len(manifest["runs"]) == 8 and len(manifest["jobs"]) == 8 + 8 * 7
    assert "jobs: 64 (8 trainings, 56 predictions)" in proc.stdout
