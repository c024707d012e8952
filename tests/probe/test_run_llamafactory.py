"""``cotbal run`` with the real ``llamafactory-cli`` on a tiny Llama: parallel jobs, and a killed probe that resumes.

* Two probe trainings run side by side (``--parallel 2``, each with its own ``MASTER_PORT``), a prediction starts
  only after its training and is renamed from ``.partial`` when complete.
* A probe training killed (SIGKILL to its process group) right after ``checkpoint-10`` resumes from that
  checkpoint on the next ``cotbal run`` and ends with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from cotbal_plugin.probe.errors import ProbeWarning
from cotbal_plugin.probe.jobs import SaveSettings
from cotbal_plugin.probe.plan import PlanConfig, make_plan
from cotbal_plugin.probe.runner import JobFailed, run_jobs, select_jobs
from cotbal_plugin.testing.workspace import cli_env, load_params, max_abs_diff, run_train, sft_config

pytestmark = pytest.mark.integration

KILL_LAUNCHER = Path(__file__).with_name("kill_launcher.py")
CLI = [str(Path(sys.executable).parent / "llamafactory-cli"), "train"]


def probe_plan(root: Path, text_workspace: Path, **overrides) -> dict:
    """A plan over the tiny text tasks short / long (8 samples each; validation = a copy of the training set)."""
    data = root / "data"
    shutil.copytree(text_workspace / "data", data)
    info = json.loads((data / "dataset_info.json").read_text())
    for task in ("short", "long"):
        info[f"{task}_val"] = {"file_name": f"{task}.json"}
    (data / "dataset_info.json").write_text(json.dumps(info))
    base = sft_config(text_workspace / "model", data, root / "unused", dataset="short,long", max_new_tokens=4,
                      per_device_eval_batch_size=8, **overrides)  # fmt: skip
    (root / "base.yaml").write_text(yaml.safe_dump(base))
    cfg = PlanConfig(base_yaml=root / "base.yaml", out_dir=root / "plan", validation={}, metrics={"short": ["em"],
                     "long": ["em"]}, mini_fraction=0.5, progress=False, save=SaveSettings(10))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        return make_plan(cfg)


def test_parallel_jobs_with_llamafactory(tmp_path: Path, text_workspace: Path) -> None:
    m = probe_plan(tmp_path, text_workspace, max_steps=3)
    jobs = select_jobs(m["jobs"], None, ["train:mini", "train:short+mini", "predict:mini:short_val"])
    summary = run_jobs(jobs, CLI, progress=False, parallel=2, env=cli_env(), all_jobs=m["jobs"])
    assert summary.ok and sorted(summary.ran) == sorted(j["name"] for j in jobs)
    (s1, e1), (s2, e2) = summary.timings["train:mini"], summary.timings["train:short+mini"]
    assert s1 < e2 and s2 < e1  # the two trainings ran side by side
    assert summary.timings["predict:mini:short_val"][0] >= e1  # the prediction waited for its training
    trainings = [j for j in jobs if j["kind"] == "train"]
    for job in trainings:
        assert json.loads(Path(job["done"]).read_text())["global_step"] == 3
    pred = next(j for j in jobs if j["kind"] == "predict")
    rows = [json.loads(x) for x in Path(pred["done"]).read_text().splitlines()]
    assert len(rows) == 8 and all({"prompt", "predict", "label"} <= set(r) for r in rows)
    assert not Path(pred["write_dir"]).exists()
    ports = [Path(j["log"]).read_text().split("MASTER_PORT=")[1].split()[0] for j in trainings]
    assert ports[0] != ports[1]


def test_killed_probe_resumes_to_the_same_parameters(tmp_path: Path, text_workspace: Path) -> None:
    m = probe_plan(tmp_path, text_workspace, max_steps=30, disable_shuffling=False, learning_rate=0.1)
    job = next(j for j in m["jobs"] if j["name"] == "train:mini")
    cfg = yaml.safe_load(Path(job["yaml"]).read_text())
    assert cfg["save_steps"] == 10 and cfg["save_only_model"] is False and "overwrite_output_dir" not in cfg
    env = cli_env()
    # 1. killed right after checkpoint-10 was saved
    with pytest.raises(JobFailed, match=r"FAILED  train:mini: exit code 137"):
        run_jobs([job], [sys.executable, str(KILL_LAUNCHER)], progress=False, env={**env, "KILL_AT_CHECKPOINT": "10"})
    out = Path(job["output_dir"])
    assert (out / "checkpoint-10" / "trainer_state.json").is_file() and not Path(job["done"]).exists()
    # 2. the same cotbal run again: LLaMA-Factory resumes from the newest complete checkpoint
    summary = run_jobs([job], CLI, progress=False, env=env)
    assert summary.ran == ["train:mini"]
    log = Path(job["log"]).read_text()
    resumed = log.split("===== cotbal run: train:mini")[-1]
    assert (
        "Resuming training from" in resumed
        and "Resuming training from checkpoint with epoch 5 and global step 10" in resumed
    )
    assert resumed.count("'loss': ") == 20, "the second attempt trains steps 11-30 only"
    # 3. an uninterrupted run of the same YAML
    reference = dict(cfg, output_dir=str(tmp_path / "reference"))
    (tmp_path / "reference.yaml").write_text(yaml.safe_dump(reference))
    proc = run_train(tmp_path / "reference.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((tmp_path / "reference" / "trainer_state.json").read_text())["global_step"] == 30
    assert max_abs_diff(load_params(out), load_params(tmp_path / "reference")) <= 1e-6
