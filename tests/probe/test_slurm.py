"""``cotbal run --dry-run --format slurm``: the submit script, run against a fake ``sbatch`` that executes each job.

The fake ``sbatch`` (``fake_sbatch.py``) runs a job as soon as it is submitted when its ``afterok`` dependencies
succeeded, so the whole chain — trainings, per-run prediction arrays, eval + weights — really runs (with the fake
``llamafactory-cli``) and the order Slurm would enforce is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cotbal_plugin.cli import main
from cotbal_plugin.probe.errors import ProbeWarning
from cotbal_plugin.probe.plan import PlanConfig, make_plan

from .conftest import FAKE_LAUNCHER

ROOT = Path(__file__).resolve().parents[2]
FAKE_SBATCH = Path(__file__).with_name("fake_sbatch.py")


@pytest.fixture
def cluster(tmp_path: Path, workspace: Path) -> dict:
    cfg = PlanConfig(base_yaml=workspace, out_dir=tmp_path / "plan", tasks=["vqa", "cap"],
                     validation={"vqa": ["vqa_val"], "cap": ["cap_val"]}, metrics={"vqa": ["em"], "cap": ["em"]},
                     mini_fraction=1 / 8, progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        manifest = make_plan(cfg)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_SBATCH} "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SBATCH_LOG": str(tmp_path / "sb"),
           "COTBAL_LAUNCHER": f"{sys.executable} {FAKE_LAUNCHER}", "COTBAL": f"{sys.executable} -m cotbal_plugin",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    return {"manifest": manifest, "plan": tmp_path / "plan", "env": env, "log": tmp_path / "sb"}


def write_script(cluster: dict, capsys, *extra: str) -> Path:
    code = main(["run", "--manifest", str(cluster["plan"]), "--dry-run", "--format", "slurm", "--gpus-per-job", "8",
                 "--sbatch-arg=--partition=gpu", "--sbatch-arg=--time=1:00:00", *extra])  # fmt: skip
    assert code == 0
    assert "submit with: bash" in capsys.readouterr().out
    return cluster["plan"] / "submit_slurm.sh"


def submit(cluster: dict, script: Path) -> list[dict]:
    if cluster["log"].exists():
        cluster["log"].unlink()
    proc = subprocess.run(["bash", str(script)], env=cluster["env"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(x) for x in cluster["log"].read_text().splitlines()]


def test_submit_chain_runs_in_dependency_order(cluster: dict, capsys) -> None:
    script = write_script(cluster, capsys)
    calls = submit(cluster, script)
    by_name = {c["options"]["job-name"]: c for c in calls}
    trains = [c for c in calls if c["options"]["job-name"].startswith("cotbal-train-")]
    predicts = [c for c in calls if c["options"]["job-name"].startswith("cotbal-predict-")]
    assert len(trains) == 3 and len(predicts) == 3 and len(calls) == 7
    for train, pred in zip(trains, predicts):  # run i's predictions wait for run i's training only
        assert pred["options"]["dependency"] == f"afterok:{train['id']}"
        assert pred["options"]["array"] == "0-1" and pred["options"]["gres"] == "gpu:1"
        assert train["options"]["gres"] == "gpu:8" and "array" not in train["options"]
    weights = by_name["cotbal-weights"]
    assert weights["options"]["dependency"] == "afterok:" + ":".join(p["id"] for p in predicts)
    assert all(c["options"]["partition"] == "gpu" and c["options"]["time"] == "1:00:00" for c in calls)
    assert all(c["ran"] and c["codes"] and set(c["codes"]) == {0} for c in calls)
    assert all(Path(j["done"]).is_file() for j in cluster["manifest"]["jobs"])
    weights_json = json.loads((cluster["plan"] / "weights.json").read_text())
    assert set(weights_json["weights"]) == {"vqa", "cap"}
    # submitted again: finished trainings are not resubmitted and their predictions need no dependency
    calls = submit(cluster, script)
    assert not [c for c in calls if c["options"]["job-name"].startswith("cotbal-train-")]
    assert all("dependency" not in c["options"] for c in calls if "predict" in c["options"]["job-name"])


def test_failed_training_holds_its_predictions_only(cluster: dict, capsys) -> None:
    script = write_script(cluster, capsys)
    cluster["env"]["FAKE_FAIL"] = "train_cap+mini"
    calls = submit(cluster, script)
    by_name = {c["options"]["job-name"]: c for c in calls}
    assert by_name["cotbal-train-2"]["codes"] == [1]  # cotbal run exits 1 for the failed job
    assert not by_name["cotbal-predict-2"]["ran"] and by_name["cotbal-predict-1"]["ran"]
    assert not by_name["cotbal-weights"]["ran"]
    log = Path(next(j for j in cluster["manifest"]["jobs"] if j["name"] == "train:cap+mini")["log"])
    assert "fake failure for the test" in log.read_text()


def test_selection_and_errors(cluster: dict, capsys) -> None:
    script = write_script(cluster, capsys, "--only", "train", "--gpus-per-job", "4")
    calls = submit(cluster, script)
    assert [c["options"]["job-name"] for c in calls] == ["cotbal-train-0", "cotbal-train-1", "cotbal-train-2"]
    assert all(c["options"]["gres"] == "gpu:4" for c in calls)
    for job in cluster["manifest"]["jobs"]:  # predictions alone are fine once their trainings are done
        if job["kind"] == "train":
            Path(job["done"]).unlink()
    code = main(["run", "--manifest", str(cluster["plan"]), "--dry-run", "--format", "slurm", "--only", "predict"])
    assert code == 2
    assert (
        "predictions of run 'mini' need train:mini, which is neither selected nor finished" in capsys.readouterr().err
    )
    assert main(["run", "--manifest", str(cluster["plan"]), "--dry-run", "--format", "slurm", "--gpus", "0,1"]) == 2
    assert "Slurm places them: use --gpus-per-job" in capsys.readouterr().err


def test_weights_job_passes_the_planned_fixed_weights(tmp_path: Path, workspace: Path, capsys) -> None:
    """`cotbal plan --fixed box=0.5`: the Slurm eval + weights job passes 0.5, as run_all.sh does (not 1.0)."""
    import shlex

    cfg = PlanConfig(base_yaml=workspace, out_dir=tmp_path / "plan", tasks=["vqa", "cap"], fixed=["box"],
                     fixed_weights={"box": 0.5}, validation={"vqa": ["vqa_val"], "cap": ["cap_val"]},
                     metrics={"vqa": ["em"], "cap": ["em"]}, mini_fraction=1 / 8, progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProbeWarning)
        make_plan(cfg)
    assert main(["run", "--manifest", str(tmp_path / "plan"), "--dry-run", "--format", "slurm", "-q"]) == 0
    assert capsys.readouterr().out == ""  # -q: no status line
    body = (tmp_path / "plan" / "slurm" / "weights.sbatch").read_text()
    line = next(x for x in body.splitlines() if " weights " in x)
    argv = shlex.split(line.replace("$COTBAL", "cotbal"))
    assert argv[argv.index("--fixed") + 1] == "box=0.5"
    script = (tmp_path / "plan" / "run_all.sh").read_text().splitlines()
    script_line = next(x for x in script if x.startswith("cotbal weights"))
    assert "--fixed box=0.5" in script_line
